"""A run's stage files: DuckDB connections sized to the rows they work on (real files)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from emergency_pipeline.run_tables import (ROW_GROUP_ROWS, RunTables, StageRef, attached,
                                           stage_threads)
from emergency_pipeline.store import Store

CORES = os.cpu_count() or 1


def _threads(con) -> int:
    return int(con.execute("SELECT current_setting('threads')").fetchone()[0])


def test_a_thread_per_row_group_up_to_the_cores() -> None:
    assert stage_threads(0) == 1
    assert stage_threads(ROW_GROUP_ROWS) == 1
    assert stage_threads(ROW_GROUP_ROWS + 1) == min(2, CORES)
    assert stage_threads(50 * ROW_GROUP_ROWS) == CORES


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
    big = StageRef("r", "snapshot", small.path, counts={"numbers": 10 * ROW_GROUP_ROWS,
                                                        "addresses": 3})
    with attached(d=small) as con:
        assert _threads(con) == 1
    with attached(d=small, s=big) as con:
        assert _threads(con) == CORES
    with attached(d=small.path) as con:        # a path only: size unknown
        assert _threads(con) == CORES


def test_a_history_copy_keeps_every_row_whatever_its_threads(tmp_path: Path) -> None:
    run = RunTables(tmp_path, "r")
    rows = ROW_GROUP_ROWS + 5
    ref = run.write("plan", {"plan": pd.DataFrame({"n": range(rows)})}, counts={"rows": rows})
    store = Store(str(tmp_path / "o.duckdb"))
    for hint in (1, rows, None):
        store.copy_from("copied", ref.path, "SELECT * FROM src.plan", rows=hint)
    got = store.query("SELECT count(*) AS n, count(DISTINCT n) AS d FROM copied")
    assert (int(got["n"][0]), int(got["d"][0])) == (3 * rows, rows)
