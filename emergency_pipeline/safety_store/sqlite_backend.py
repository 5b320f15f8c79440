"""The safety store in one SQLite file (WAL mode): one machine, no server.

A connection per transaction: safe from any thread (the heartbeat thread too) and process,
and cheap (~50 us). Writes take the write lock first (`BEGIN IMMEDIATE`), which makes every
read-check-write atomic across processes. The store's clock is this host's time.time(),
available to SQL as store_now().
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from emergency_pipeline.safety_store.location import (
    Location, StoreUnavailable, explain, prepare_folder,
)


class SqliteBackend:
    kind = "sqlite"
    now_sql = "store_now()"
    for_update = ""  # BEGIN IMMEDIATE already holds the only write lock

    def __init__(self, location: Location, busy_seconds: float = 60.0) -> None:
        assert location.path is not None
        self.location = location
        self.path: Path = location.path
        self.busy_seconds = busy_seconds
        prepare_folder(self.path)
        try:
            con = self._connect()
            try:
                # WAL: readers (holder(), an operator's sqlite3) never block the writer.
                if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    con.execute("PRAGMA journal_mode=WAL")
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(explain(self.path, str(exc))) from None

    def describe(self) -> str:
        return str(self.path)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we write BEGIN / COMMIT ourselves.
        con = sqlite3.connect(self.path, timeout=self.busy_seconds, isolation_level=None)
        con.create_function("store_now", 0, time.time)
        con.execute("PRAGMA synchronous=FULL")  # a recorded batch survives a power cut
        return con

    def now(self) -> float:
        return time.time()

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction, committed on success and rolled back on error."""
        try:
            con = self._connect()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(explain(self.path, str(exc))) from None
        try:
            con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield con
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()

    @contextlib.contextmanager
    def statement(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit: each statement its own transaction."""
        try:
            con = self._connect()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(explain(self.path, str(exc))) from None
        try:
            yield con
        finally:
            con.close()

    def session(self) -> "SqliteBackend":
        """What a heartbeat thread uses: here the same per-call connections."""
        return self

    def close(self) -> None:
        pass
