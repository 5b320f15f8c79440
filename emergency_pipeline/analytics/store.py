"""The analytics file: every DuckDB history table people query (outcomes, plans, views).

The safety state (lease, ledgers) is not here but in the safety store (safety_store/), and
a run's working data is in run_tables: neither ever waits on this file.

DuckDB allows one writing process at a time, and any other process holding the file open,
even read-only, blocks a writer. An analyst's open notebook must not fail a scheduled run or
lose its results, so a write that cannot get the lock within `lock_wait_seconds` goes to a
spool folder beside the database (`<file>.spool/`, one DuckDB file per write) and the next
write that gets the lock applies the spool first, in order, exactly once.

All of it sits behind this one module so that moving to a shared DuckDB service or a
warehouse is a change here, not in the assets.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from emergency_pipeline.stage_files import attach, connect_file, stage_config

log = logging.getLogger(__name__)

# Tables with a fixed schema: history that analysts query and the pipeline appends to.
SCHEMA = """
CREATE TABLE IF NOT EXISTS operation_outcomes (
    run_id VARCHAR, source VARCHAR, source_file VARCHAR, source_row INTEGER,
    phone_number VARCHAR, number_id VARCHAR, action VARCHAR,
    target_enabled BOOLEAN, target_address_id VARCHAR, result VARCHAR, reason VARCHAR,
    batch_id VARCHAR, job_id VARCHAR, job_status VARCHAR,
    error_code VARCHAR, error_title VARCHAR, error_detail VARCHAR, error_pointer VARCHAR,
    extras VARCHAR, planned_at TIMESTAMPTZ, submitted_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ, recorded_at TIMESTAMPTZ, address_given VARCHAR,
    enabled_before BOOLEAN, address_id_before VARCHAR, applied BOOLEAN, account VARCHAR
);
-- Files made before addresses could be given by their fields (issue 7).
ALTER TABLE operation_outcomes ADD COLUMN IF NOT EXISTS address_given VARCHAR;
-- Files made before issue 27: the setting before the change, whether the run applied, the
-- account (NULL in older rows; the views infer `applied` from the results).
ALTER TABLE operation_outcomes ADD COLUMN IF NOT EXISTS enabled_before BOOLEAN;
ALTER TABLE operation_outcomes ADD COLUMN IF NOT EXISTS address_id_before VARCHAR;
ALTER TABLE operation_outcomes ADD COLUMN IF NOT EXISTS applied BOOLEAN;
ALTER TABLE operation_outcomes ADD COLUMN IF NOT EXISTS account VARCHAR;
CREATE TABLE IF NOT EXISTS address_resolutions (
    run_id VARCHAR, source VARCHAR, address_key VARCHAR, address_given VARCHAR,
    status VARCHAR, address_id VARCHAR, candidates VARCHAR, "rows" INTEGER,
    phone_numbers VARCHAR, errors VARCHAR, suggested VARCHAR, detail VARCHAR,
    recorded_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS _spool_applied (spool_id VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ);
"""

# Views for analysts; the README shows how to query them.
VIEWS = """
-- A run applied when it says so, or (rows from before the column, results a later run
-- published for a stopped one) when any of its numbers has a job's result.
CREATE OR REPLACE VIEW applied_runs AS
SELECT run_id FROM operation_outcomes GROUP BY run_id
HAVING coalesce(bool_or(applied), false)
    OR bool_or(result IN ('succeeded', 'failed', 'pending', 'expired'));

-- The latest row of every number from any run, plan-only runs included (a plan-only run's
-- `planned` hides an earlier failure here: see latest_applied_outcome_per_number).
CREATE OR REPLACE VIEW latest_outcome_per_number AS
SELECT * FROM operation_outcomes
WHERE coalesce(phone_number, number_id) IS NOT NULL
QUALIFY row_number() OVER (
    PARTITION BY coalesce(phone_number, number_id) ORDER BY recorded_at DESC, run_id DESC
) = 1;

-- What the account was last told, per number: the latest row from applied runs only,
-- rejected rows left out (a rejected row never reached the account).
CREATE OR REPLACE VIEW latest_applied_outcome_per_number AS
SELECT * FROM operation_outcomes
WHERE coalesce(phone_number, number_id) IS NOT NULL AND result <> 'rejected'
  AND run_id IN (SELECT run_id FROM applied_runs)
QUALIFY row_number() OVER (
    PARTITION BY coalesce(phone_number, number_id) ORDER BY recorded_at DESC, run_id DESC
) = 1;

-- What is failing now: numbers whose latest applied result is failed or expired.
CREATE OR REPLACE VIEW failing_now AS
SELECT * FROM latest_applied_outcome_per_number WHERE result IN ('failed', 'expired');

CREATE OR REPLACE VIEW failures_by_error_code AS
SELECT error_code, error_title, count(*) AS failures,
       count(DISTINCT coalesce(phone_number, number_id)) AS numbers,
       min(recorded_at) AS first_seen, max(recorded_at) AS last_seen
FROM operation_outcomes WHERE result IN ('failed', 'expired')
GROUP BY ALL ORDER BY failures DESC;

CREATE OR REPLACE VIEW run_summary AS
SELECT run_id, any_value(source) AS source, min(recorded_at) AS recorded_at,
       run_id IN (SELECT run_id FROM applied_runs) AS applied,
       any_value(account) AS account,
       count(*) AS desired_rows,
       count(*) FILTER (result = 'succeeded') AS succeeded,
       count(*) FILTER (result = 'failed') AS failed,
       count(*) FILTER (result = 'pending') AS pending,
       count(*) FILTER (result = 'expired') AS expired,
       count(*) FILTER (result = 'unchanged') AS unchanged,
       count(*) FILTER (result = 'planned') AS planned,
       count(*) FILTER (result = 'skipped') AS skipped,
       count(*) FILTER (result = 'rejected') AS rejected
FROM operation_outcomes GROUP BY run_id ORDER BY recorded_at DESC;
"""


# How long a writer remembers that the file was held by someone else (see Store._connect).
HELD_MEMORY_SECONDS = 120.0


class StoreLocked(RuntimeError):
    """The database file is held by another process beyond the configured wait."""


def _is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


@dataclass
class Store:
    database: str
    connection_config: dict[str, Any] = field(default_factory=dict)
    lock_wait_seconds: float = 0.5    # then spool (writes) or say so (reads): never stall

    @property
    def spool_dir(self) -> Path:
        return Path(f"{self.database}.spool")

    # -- connections -------------------------------------------------------------------------

    @property
    def _held_marker(self) -> Path:
        return Path(f"{self.database}.held")

    def _recently_held(self) -> bool:
        try:
            return time.time() - self._held_marker.stat().st_mtime < HELD_MEMORY_SECONDS
        except OSError:
            return False

    def _connect(self, read_only: bool, rows: int | None = None) -> duckdb.DuckDBPyConnection:
        """Connect, waiting with backoff while another process holds the lock.

        Once a writer has found the file held (an analyst's notebook), the writes and reads
        that follow within HELD_MEMORY_SECONDS, in any process, try once (writes then spool):
        a run must not pay the full wait again for each of them."""
        wait = self.lock_wait_seconds
        if self._recently_held():
            wait = 0.0
        deadline = time.monotonic() + wait
        delay = 0.05
        while True:
            try:
                # The stages' memory limit unless the resource says otherwise: copying a
                # 5,000,000-row stage into the history took DuckDB's default, 80% of the RAM.
                return connect_file(self.database, {**stage_config(rows),
                                                    **self.connection_config}, read_only)
            except duckdb.IOException as exc:
                if not _is_lock_error(exc) or time.monotonic() + delay > deadline:
                    if _is_lock_error(exc):
                        if not read_only:
                            self._held_marker.touch()
                        raise StoreLocked(
                            f"{self.database} is locked by another process "
                            f"(waited {self.lock_wait_seconds:.0f}s)") from None
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    @contextlib.contextmanager
    def writer(self, rows: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection with the schema in place and the spool applied (`rows`:
        about how many it writes, stage_config)."""
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        con = self._connect(read_only=False, rows=rows)
        self._held_marker.unlink(missing_ok=True)
        try:
            con.execute(SCHEMA)
            con.execute(VIEWS)
            self._apply_spool(con)
            if _has_table(con, "e911_coverage"):   # the coverage report has run once
                from emergency_pipeline.e911_coverage.report import views_sql

                con.execute(views_sql())
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A read-only connection, or None when the file does not exist or is write-locked."""
        if not Path(self.database).exists():
            yield None
            return
        try:
            con = self._connect(read_only=True)
        except StoreLocked:
            log.warning("%s is write-locked by another process; reading the spool only",
                        self.database)
            yield None
            return
        try:
            yield con
        finally:
            con.close()

    # -- writes ------------------------------------------------------------------------------

    def write(self, table: str, frame: pd.DataFrame, mode: str = "append",
              replace_on: tuple[str, ...] | list[str] = ()) -> str:
        """Append or replace `table` with `frame`; returns 'database' or 'spool'.

        `replace_on` (columns): rows of the table that share those columns' values with a row
        of the frame are deleted in the same transaction, so writing the same rows again (a
        re-executed step, results published by another run) lands them exactly once.
        A frame that cannot reach the database in time is spooled, never dropped."""
        mode = _mode(mode, replace_on)
        try:
            with self.writer(rows=len(frame)) as con:
                with _transaction(con):
                    _write_frame(con, table, frame, mode)
                return "database"
        except StoreLocked:
            self._spool(table, mode, lambda con: _bind_frame(con, frame), len(frame))
            return "spool"

    def copy_from(self, table: str, stage_file: str, select: str, mode: str = "append",
                  replace_on: tuple[str, ...] | list[str] = (), rows: int | None = None) -> str:
        """As write(), for the rows of `select` over a run's stage file (attached as `src`):
        a million rows go from file to file inside DuckDB, never through pandas. `rows`:
        about how many (stage_config)."""
        mode = _mode(mode, replace_on)

        def bind(con: duckdb.DuckDBPyConnection) -> None:
            attach(con, src=stage_file)
            con.execute(f"CREATE OR REPLACE TEMP VIEW frame AS {select}")

        try:
            with self.writer(rows=rows) as con:
                bind(con)
                try:
                    with _transaction(con):
                        _write_relation(con, table, mode)
                finally:
                    con.execute("DROP VIEW frame")
                    con.execute("DETACH src")
                return "database"
        except StoreLocked:
            self._spool(table, mode, bind, rows)
            return "spool"

    def flush(self) -> int:
        """Apply whatever is spooled; returns how many spool files remain."""
        try:
            with self.writer():
                pass
        except StoreLocked:
            pass
        return len(self._spool_files())

    def _spool(self, table: str, mode: str, bind, rows: int | None) -> None:
        """Keep the rows that `bind` makes visible as `frame` in a spool file of their own."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        # Nanosecond time first so that files sort in write order; the uuid makes them unique.
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}-{mode}-{table}.duckdb"
        tmp = self.spool_dir / f".{name}.tmp"
        con = connect_file(tmp, stage_config(rows))
        try:
            bind(con)
            con.execute("CREATE TABLE spooled AS SELECT * FROM frame")
        finally:
            con.close()
        os.replace(tmp, self.spool_dir / name)  # atomic: a half-written spool is never seen
        log.warning("database locked: %s rows for %s kept in %s until it is free",
                    "the" if rows is None else rows, table, self.spool_dir / name)

    def _spool_files(self) -> list[Path]:
        if not self.spool_dir.exists():
            return []
        return sorted(p for p in self.spool_dir.glob("*.duckdb") if not p.name.startswith("."))

    def _apply_spool(self, con: duckdb.DuckDBPyConnection) -> None:
        for path in self._spool_files():
            spool_id = path.stem
            _, _, mode, table = spool_id.split("-", 3)
            already = con.execute("SELECT 1 FROM _spool_applied WHERE spool_id = ?",
                                  [spool_id]).fetchone()
            if not already:
                frame = _read_spool(path)
                with _transaction(con):
                    _write_frame(con, table, frame, mode)
                    con.execute("INSERT INTO _spool_applied VALUES (?, now())", [spool_id])
            path.unlink()  # after the commit; a crash before it is caught by _spool_applied

    # -- reads -------------------------------------------------------------------------------

    def read(self, sql_table: str, where: str = "TRUE", params: list | None = None) -> pd.DataFrame:
        """Rows of a table from the database and from the spool (not yet applied)."""
        frames = []
        with self.reader() as con:
            if con is not None and _has_table(con, sql_table):
                frames.append(con.execute(f"SELECT * FROM {sql_table} WHERE {where}",
                                          params or []).df())
        for path in self._spool_files():
            if path.stem.endswith(f"-{sql_table}"):
                spooled = _read_spool(path)
                mem = duckdb.connect()
                mem.register("spooled", spooled)
                frames.append(mem.execute(f"SELECT * FROM spooled WHERE {where}",
                                          params or []).df())
                mem.close()
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """An analyst's query against the database (read-only)."""
        with self.reader() as con:
            if con is None:
                raise StoreLocked(f"{self.database} is missing or write-locked")
            return con.execute(sql, params or []).df()


def _has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    # fetchall: a result left half-read (fetchone) makes DuckDB 2 refuse the unregister that
    # follows, so appending an empty frame to an existing table failed.
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
        "AND table_catalog = current_database()", [table]
    ).fetchall()[0][0])


def _read_spool(path: Path) -> pd.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT * FROM spooled").df()
    finally:
        con.close()


def _mode(mode: str, replace_on: tuple[str, ...] | list[str]) -> str:
    if mode not in ("append", "replace"):
        raise ValueError(f"mode must be 'append' or 'replace', not {mode!r}")
    if replace_on:
        if mode != "append" or not all(c.isidentifier() for c in replace_on):
            raise ValueError("replace_on takes column names, with mode 'append'")
        return "upsert." + ".".join(replace_on)
    return mode


def _bind_frame(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> None:
    con.register("frame", frame)


def _write_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, mode: str) -> None:
    _bind_frame(con, frame)
    try:
        _write_relation(con, table, mode)
    finally:
        con.unregister("frame")


def _write_relation(con: duckdb.DuckDBPyConnection, table: str, mode: str) -> None:
    """Write the relation `frame` (a registered frame or a view) into `table`."""
    if mode == "replace" or not _has_table(con, table):
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM frame")
        return
    _add_new_columns(con, table)
    if mode.startswith("upsert."):
        cols = mode.split(".")[1:]
        match = " AND ".join(f't."{c}" IS NOT DISTINCT FROM f."{c}"' for c in cols)
        con.execute(f"DELETE FROM {table} AS t WHERE EXISTS "
                    f"(SELECT 1 FROM (SELECT DISTINCT {', '.join(cols)} FROM frame) "
                    f"AS f WHERE {match})")
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM frame")


def _add_new_columns(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Columns the frame has and an older file's table lacks (a table grows, never breaks)."""
    have = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
    for name, kind, *_ in con.execute("DESCRIBE SELECT * FROM frame").fetchall():
        if name not in have:
            con.execute(f'ALTER TABLE {table} ADD COLUMN "{name}" {kind}')


@contextlib.contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
