"""A run's stage files: DuckDB connections sized to the rows they work on, files written a
row group at a time (real files)."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd

from emergency_pipeline.stage_files import (THREAD_ROWS, WRITE_ROW_GROUP_ROWS, RunTables, StageRef,
                                           attached, stage_threads)
from emergency_pipeline.analytics.store import Store

CORES = os.cpu_count() or 1


def _threads(con) -> int:
    return int(con.execute("SELECT current_setting('threads')").fetchone()[0])


def test_a_thread_per_default_row_group_of_rows_up_to_the_cores() -> None:
    assert stage_threads(0) == 1
    assert stage_threads(THREAD_ROWS) == 1
    assert stage_threads(THREAD_ROWS + 1) == min(2, CORES)
    assert stage_threads(50 * THREAD_ROWS) == CORES


def test_a_stage_built_for_few_rows_runs_on_one_thread(tmp_path: Path) -> None:
    run = RunTables(tmp_path, "r")
    with run.building("plan", rows=100_000) as con:
        assert _threads(con) == 1
    with run.building("plan", rows=5_000_000) as con:
        assert _threads(con) == CORES
    with run.building("plan") as con:          # size unknown: DuckDB's own default
        assert _threads(con) == CORES


def test_stages_attached_together_take_the_largest_ones_size(tmp_path: Path) -> None:
    run = RunTables(tmp_path, "r")
    small = run.write("desired", {"accepted": pd.DataFrame({"a": [1, 2]})}, counts={"rows": 2})
    big = StageRef("r", "snapshot", small.path, counts={"numbers": 10 * THREAD_ROWS,
                                                        "addresses": 3})
    with attached(d=small) as con:
        assert _threads(con) == 1
    with attached(d=small, s=big) as con:
        assert _threads(con) == CORES
    with attached(d=small.path) as con:        # a path only: size unknown
        assert _threads(con) == CORES


def test_a_history_copy_keeps_every_row_whatever_its_threads(tmp_path: Path) -> None:
    run = RunTables(tmp_path, "r")
    rows = THREAD_ROWS + 5
    ref = run.write("plan", {"plan": pd.DataFrame({"n": range(rows)})}, counts={"rows": rows})
    store = Store(str(tmp_path / "o.duckdb"))
    for hint in (1, rows, None):
        store.copy_from("copied", ref.path, "SELECT * FROM src.plan", rows=hint)
    got = store.query("SELECT count(*) AS n, count(DISTINCT n) AS d FROM copied")
    assert (int(got["n"][0]), int(got["d"][0])) == (3 * rows, rows)


def _row_groups(path: str, table: str) -> list[int]:
    con = duckdb.connect(path, read_only=True)     # as an analyst opens it
    try:
        return [n for (n,) in con.execute(
            f"SELECT max(count) FROM pragma_storage_info('{table}') GROUP BY row_group_id "
            "ORDER BY row_group_id").fetchall()]
    finally:
        con.close()


def test_stage_files_and_the_history_are_written_a_row_group_at_a_time(tmp_path: Path) -> None:
    """Small row groups are what let DuckDB write an append into the file while it runs,
    holding a row group in memory rather than all the rows until the commit."""
    run = RunTables(tmp_path, "r")
    rows = 3 * WRITE_ROW_GROUP_ROWS + 7
    with run.building("plan", rows=rows) as con:
        con.execute(f"CREATE TABLE plan AS SELECT range AS n FROM range({rows})")
    ref = run.ref("plan", {"rows": rows})
    assert _row_groups(ref.path, "plan") == [WRITE_ROW_GROUP_ROWS] * 3 + [7]
    store = Store(str(tmp_path / "o.duckdb"))
    store.copy_from("copied", ref.path, "SELECT * FROM src.plan", rows=rows)
    store.copy_from("copied", ref.path, "SELECT * FROM src.plan", rows=rows)
    groups = _row_groups(store.database, "copied")
    assert sum(groups) == 2 * rows and max(groups) <= WRITE_ROW_GROUP_ROWS
    # The file stays an ordinary DuckDB file: its views work when opened directly.
    con = duckdb.connect(store.database, read_only=True)
    try:
        views = [v for (v,) in con.execute("SELECT view_name FROM duckdb_views() "
                                           "WHERE NOT internal").fetchall()]
        assert views and all(con.execute(f'SELECT count(*) FROM "{v}"').fetchone() for v in views)
    finally:
        con.close()


def test_stage_connections_spill_beside_the_runs_files(tmp_path: Path) -> None:
    """Not into a .tmp folder of whatever directory the run was started from."""
    run = RunTables(tmp_path, "r")
    with run.building("plan", rows=10) as con:
        spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchone()[0])
    assert spill.parent == run.dir and spill.name.endswith(".duckdb.tmp")
    ref = run.ref("plan", {"rows": 0})
    with attached(p=ref) as con:                # the checks' and the metadata's reads
        spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchone()[0])
    assert spill == Path(f"{ref.path}.tmp")
