"""The analytics file: every DuckDB history table people query (outcomes, plans, views).

The safety state (lease, ledgers) is not here but in the safety store (safety_store/), and
a run's working data is in its stage files (stage_files.py): neither ever waits on this file.

DuckDB allows one writing process at a time, and any other process holding the file open,
even read-only, blocks a writer. An analyst's open notebook must not fail a scheduled run or
lose its results, so a write that cannot get the lock within `lock_wait_seconds` goes to the
spool (spool.py: `<file>.spool/`, one DuckDB file per write) and the next write that gets
the lock applies the spool first, in order, exactly once.

All of it sits behind this module (its schema in schema.py, how rows land in a table in
table_writes.py) so that moving to a shared DuckDB service or a warehouse is a change here,
not in the assets.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from emergency_pipeline.analytics.schema import SCHEMA, VIEWS
from emergency_pipeline.analytics.spool import Spool
from emergency_pipeline.analytics.table_writes import (
    bind_frame, has_table, transaction, write_frame, write_mode, write_relation)
from emergency_pipeline.stage_files import attach, file_connection, stage_config

log = logging.getLogger(__name__)


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

    @property
    def spool(self) -> Spool:
        return Spool(self.spool_dir)

    # -- connections -------------------------------------------------------------------------

    @property
    def _held_marker(self) -> Path:
        return Path(f"{self.database}.held")

    def _recently_held(self) -> bool:
        try:
            return time.time() - self._held_marker.stat().st_mtime < HELD_MEMORY_SECONDS
        except OSError:
            return False

    @contextlib.contextmanager
    def _connect(self, read_only: bool, rows: int | None = None
                 ) -> Iterator[duckdb.DuckDBPyConnection]:
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
            opened = contextlib.ExitStack()
            try:
                # The stages' memory limit unless the resource says otherwise: copying a
                # 5,000,000-row stage into the history took DuckDB's default, 80% of the RAM.
                con = opened.enter_context(file_connection(
                    self.database, {**stage_config(rows), **self.connection_config},
                    read_only))
                break
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
        with opened:
            yield con

    @contextlib.contextmanager
    def writer(self, rows: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection with the schema in place and the spool applied (`rows`:
        about how many it writes, stage_config)."""
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with self._connect(read_only=False, rows=rows) as con:
            self._held_marker.unlink(missing_ok=True)
            con.execute(SCHEMA)
            con.execute(VIEWS)
            self.spool.apply(con)
            if has_table(con, "e911_coverage"):   # the coverage report has run once
                from emergency_pipeline.e911_coverage.report import views_sql

                con.execute(views_sql())
            yield con

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A read-only connection, or None when the file does not exist or is write-locked."""
        if not Path(self.database).exists():
            yield None
            return
        opened = contextlib.ExitStack()
        try:
            con = opened.enter_context(self._connect(read_only=True))
        except StoreLocked:
            log.warning("%s is write-locked by another process; reading the spool only",
                        self.database)
            yield None
            return
        with opened:
            yield con

    # -- writes ------------------------------------------------------------------------------

    def write(self, table: str, frame: pd.DataFrame, mode: str = "append",
              replace_on: tuple[str, ...] | list[str] = ()) -> str:
        """Append or replace `table` with `frame`; returns 'database' or 'spool'.

        `replace_on` (columns): rows of the table that share those columns' values with a row
        of the frame are deleted in the same transaction, so writing the same rows again (a
        re-executed step, results published by another run) lands them exactly once.
        A frame that cannot reach the database in time is spooled, never dropped."""
        mode = write_mode(mode, replace_on)
        try:
            with self.writer(rows=len(frame)) as con:
                with transaction(con):
                    write_frame(con, table, frame, mode)
                return "database"
        except StoreLocked:
            self.spool.keep(table, mode, lambda con: bind_frame(con, frame), len(frame))
            return "spool"

    def copy_from(self, table: str, stage_file: str, select: str, mode: str = "append",
                  replace_on: tuple[str, ...] | list[str] = (), rows: int | None = None) -> str:
        """As write(), for the rows of `select` over a run's stage file (attached as `src`):
        a million rows go from file to file inside DuckDB, never through pandas. `rows`:
        about how many (stage_config)."""
        mode = write_mode(mode, replace_on)

        def bind(con: duckdb.DuckDBPyConnection) -> None:
            attach(con, src=stage_file)
            con.execute(f"CREATE OR REPLACE TEMP VIEW frame AS {select}")

        try:
            with self.writer(rows=rows) as con:
                bind(con)
                try:
                    with transaction(con):
                        write_relation(con, table, mode)
                finally:
                    con.execute("DROP VIEW frame")
                    con.execute("DETACH src")
                return "database"
        except StoreLocked:
            self.spool.keep(table, mode, bind, rows)
            return "spool"

    def flush(self) -> int:
        """Apply whatever is spooled; returns how many spool files remain."""
        try:
            with self.writer():
                pass
        except StoreLocked:
            pass
        return len(self.spool.files())

    # -- reads -------------------------------------------------------------------------------

    def read(self, sql_table: str, where: str = "TRUE", params: list | None = None) -> pd.DataFrame:
        """Rows of a table from the database and from the spool (not yet applied)."""
        frames = []
        with self.reader() as con:
            if con is not None and has_table(con, sql_table):
                frames.append(con.execute(f"SELECT * FROM {sql_table} WHERE {where}",
                                          params or []).df())
        frames.extend(self.spool.rows(sql_table, where, params))
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
