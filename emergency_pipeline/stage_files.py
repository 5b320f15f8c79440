"""A run's working data: one DuckDB file per stage, in a folder of the run's own.

    <state dir>/runs/<run_id>/desired.duckdb      accepted, rejected
                              snapshot.duckdb     numbers, addresses, in_flight
                              resolution.duckdb   accepted, rejected, addresses, resolutions
                              plan.duckdb         plan
                              submission.duckdb   results, batches
                              outcomes.duckdb     outcomes

Nothing another run writes can be read here (design rule 8): the folder is named by the run
id, and Dagster hands the next step only a `StageRef` (the file, its counts) through the
run-scoped IO manager. A stage file is written under a temporary name and renamed, so a step
killed mid-write leaves no half file, and a re-executed step simply writes it again. Each
stage is its own file so that a check reading one stage never waits on a step writing the
next (DuckDB allows one writing process per file).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from emergency_pipeline.duckdb_pool import borrowed, sql_text


# Rows worth a DuckDB thread of their own: DuckDB's default row group (122,880 rows).
THREAD_ROWS = 122_880
# Row groups of the files a run writes (stage files, the history). An append of more rows
# than this goes into the file while it runs (DuckDB's optimistic write), so a write holds
# about one row group in memory, not all its rows until the commit: copying 100,000 outcome
# rows into the history took +23 MB instead of +72 MB, and less time.
WRITE_ROW_GROUP_ROWS = 16_384


def stage_threads(rows: int) -> int:
    """A thread per THREAD_ROWS of the rows a statement works on, up to the cores. Below
    that a second thread saves next to nothing, yet keeps its own hash tables and buffers:
    one thread took 20-35 MB off a 100,000-number run's peak, in the same time."""
    return max(1, min(os.cpu_count() or 1, -(-rows // THREAD_ROWS)))


MEMORY_SETTING, DEFAULT_MEMORY = "EMERGENCY_PIPELINE_DUCKDB_MEMORY", "512MB"
# For work whose result is a by-product (the plan's full list): a sort past this spills to
# disk rather than hold a million-row plan (+482 MB in 2.0 s; spilling, +259 MB in 2.5 s).
BY_PRODUCT_MEMORY = "256MB"


def stage_config(rows: int | None = None) -> dict[str, str]:
    """DuckDB settings of every stage connection: a memory limit, past which DuckDB spills
    to disk (its default, 80% of the machine, let a 5,000,000-row plan take 5 GB); appends
    flushed a row group at a time (DuckDB buffers five); and, when the rows the connection
    works on are known, stage_threads of them."""
    config = {"memory_limit": os.environ.get(MEMORY_SETTING, DEFAULT_MEMORY),
              "write_buffer_row_group_count": "1"}
    if rows is not None:
        config["threads"] = str(stage_threads(rows))
    return config


def spill_early(con: duckdb.DuckDBPyConnection) -> None:
    """One thread and BY_PRODUCT_MEMORY for what follows on con, unless the user chose the
    memory limit (MEMORY_SETTING): theirs stands."""
    con.execute("SET threads = 1")
    if MEMORY_SETTING not in os.environ:
        con.execute(f"SET memory_limit = '{BY_PRODUCT_MEMORY}'")


@contextlib.contextmanager
def file_connection(path: str | Path, config: Mapping[str, Any], read_only: bool = False
                    ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose default database is the DuckDB file at `path`, written in row
    groups of WRITE_ROW_GROUP_ROWS (an option of ATTACH only, hence the attach); the file is
    closed, and its lock released, when the block ends. Spills go beside the file, as they do
    for a file opened directly."""
    with borrowed({"temp_directory": f"{path}.tmp", **config}) as con:
        options = "READ_ONLY" if read_only else f"ROW_GROUP_SIZE {WRITE_ROW_GROUP_ROWS}"
        con.execute(f"ATTACH {sql_text(path)} AS file ({options})")
        con.execute("USE file")
        yield con


def attach(con: duckdb.DuckDBPyConnection, **stages: StageRef | str | Path) -> None:
    """Stage files (refs or paths) attached read-only to con under their keywords' names."""
    for alias, ref in stages.items():
        path = ref.path if isinstance(ref, StageRef) else ref
        con.execute(f"ATTACH {sql_text(path)} AS {alias} (READ_ONLY)")


@dataclass(frozen=True)
class StageRef:
    """What Dagster passes between steps: where a stage's tables are, and their counts."""

    run_id: str
    stage: str
    path: str
    counts: dict[str, int] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)   # small facts (JSON-able)

    @property
    def rows(self) -> int:
        """About the rows of its largest table: the largest of its counts."""
        return max(self.counts.values(), default=0)

    def read(self, table: str, where: str = "TRUE") -> pd.DataFrame:
        with _open(self.path, self.rows) as con:
            return con.execute(f'SELECT * FROM "{table}" WHERE {where}').df()

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "stage": self.stage, "path": self.path,
                "counts": self.counts, "info": self.info}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StageRef:
        return cls(**data)


@contextlib.contextmanager
def attached(frames: Mapping[str, Any] | None = None, **stages: StageRef | str
             ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection with stage files (refs or paths) attached read-only under their keywords'
    names, and frames registered under theirs."""
    # Sized to the largest stage (each of DuckDB's pipelines scans one table); unknown when
    # a stage is given by its path only.
    refs = list(stages.values())
    known = refs and all(isinstance(ref, StageRef) for ref in refs)
    paths = {alias: ref.path if isinstance(ref, StageRef) else ref for alias, ref in stages.items()}
    config = stage_config(max(r.rows for r in refs) if known else None)
    if paths:   # spills beside the run's files, not in the directory the process started in
        config["temp_directory"] = f"{next(iter(paths.values()))}.tmp"
    with borrowed(config) as con:
        attach(con, **paths)
        for name, frame in (frames or {}).items():
            con.register(name, frame)
        yield con


def query(sql: str, params: list | None = None, **stages: StageRef) -> list[tuple]:
    """Run SQL over stage files, each attached read-only under its keyword's name."""
    with attached(**stages) as con:
        return con.execute(sql, params or []).fetchall()


@contextlib.contextmanager
def _open(path: str | Path, rows: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    with file_connection(path, stage_config(rows), read_only=True) as con:
        yield con


class RunTables:
    """The working tables of one run."""

    def __init__(self, root: str | Path, run_id: str) -> None:
        self.root = Path(root)
        self.run_id = run_id
        self.dir = self.root / "runs" / run_id

    def path(self, stage: str) -> Path:
        return self.dir / f"{stage}.duckdb"

    @contextlib.contextmanager
    def building(self, stage: str, rows: int | None = None
                 ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to a new stage file, put in place only when the block succeeds (an
        earlier attempt's file is replaced; a failed or killed one leaves none). `rows`: about
        how many rows its statements read (stage_config)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{stage}.{os.getpid()}.tmp.duckdb"
        tmp.unlink(missing_ok=True)
        with file_connection(tmp, stage_config(rows)) as con:
            yield con
            con.execute("CHECKPOINT")
        os.replace(tmp, self.path(stage))   # atomic: readers see the old file or the new one

    def ref(self, stage: str, counts: dict[str, int] | None = None,
            info: dict[str, Any] | None = None) -> StageRef:
        return StageRef(self.run_id, stage, str(self.path(stage)), dict(counts or {}),
                        dict(info or {}))

    def write(self, stage: str, tables: dict[str, pd.DataFrame], *,
              counts: dict[str, int] | None = None, info: dict[str, Any] | None = None
              ) -> StageRef:
        """Write a stage's tables at once (replacing an earlier attempt) and return its ref."""
        with self.building(stage, rows=max(map(len, tables.values()), default=0)) as con:
            for name, frame in tables.items():
                con.register("frame", frame)
                con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM frame')
                con.unregister("frame")
        return self.ref(stage, counts, info)


def prune(root: str | Path, keep_seconds: float, keep: set[str] = frozenset()) -> int:
    """Drop run folders untouched for longer than keep_seconds (their data is in the analytics
    file by then); returns how many were dropped."""
    runs = Path(root) / "runs"
    if not runs.is_dir():
        return 0
    cutoff = time.time() - keep_seconds
    dropped = 0
    for path in runs.iterdir():
        if path.name in keep or not path.is_dir():
            continue
        try:
            newest = max((p.stat().st_mtime for p in path.iterdir()), default=path.stat().st_mtime)
        except FileNotFoundError:
            continue
        if newest < cutoff:
            shutil.rmtree(path, ignore_errors=True)
            dropped += 1
    return dropped
