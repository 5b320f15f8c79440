"""The safety store in one SQLite file (WAL mode): one machine, no server.

One connection per thread, kept: closing the last connection to a WAL file checkpoints it
and deletes the WAL (an fsync, ~15 ms on a slow disk), which a connection per call paid on
every call. Writes take the write lock first (`BEGIN IMMEDIATE`), which makes every
read-check-write atomic across processes. The store's clock is this host's time.time(),
available to SQL as store_now().
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
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
        self._local = threading.local()
        self._orphans: list[sqlite3.Connection] = []  # inherited across a fork: never used
        prepare_folder(self.path)
        try:
            con = self._connect()
            try:
                # WAL: readers (holder(), an operator's sqlite3) never block the writer.
                if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    con.execute("PRAGMA journal_mode=WAL")
            finally:
                con.close()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(explain(self.path, str(exc))) from None
        except sqlite3.DatabaseError as exc:  # another kind of file where the store should be
            raise StoreUnavailable(f"the safety store {self.path} cannot be opened ({exc}): "
                                   "move that file away, or set EMERGENCY_PIPELINE_STATE_URL "
                                   "to another store") from None

    def describe(self) -> str:
        return str(self.path)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we write BEGIN / COMMIT ourselves.
        con = sqlite3.connect(self.path, timeout=self.busy_seconds, isolation_level=None)
        con.create_function("store_now", 0, time.time)
        return con

    def _con(self) -> sqlite3.Connection:
        """This thread's connection (a forked child opens its own: never share one)."""
        held = getattr(self._local, "con", None)
        if held is not None and held[0] == os.getpid():
            return held[1]
        if held is not None:
            self._orphans.append(held[1])
        try:
            con = self._connect()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(explain(self.path, str(exc))) from None
        self._local.con = (os.getpid(), con)
        return con

    def now(self) -> float:
        return time.time()

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction, committed on success and rolled back on error."""
        con = self._con()
        if con.in_transaction:  # a COMMIT that failed earlier left it open: start clean
            con.execute("ROLLBACK")
        con.execute("PRAGMA synchronous=FULL")  # a recorded batch survives a power cut
        con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield con
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def statement(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection in autocommit: each statement its own transaction.

        Heartbeats and the fence's checks need no fsync each: a power cut loses at most a
        few heartbeats, which only makes the lease look older. Still atomic.
        """
        con = self._con()
        con.execute("PRAGMA synchronous=NORMAL")
        yield con

    @staticmethod
    def insert_text_rows(con: sqlite3.Connection, table: str, columns: Sequence[str],
                         rows: Sequence[Sequence[str | None]], tail: str = "") -> None:
        """INSERT many rows of TEXT columns (`tail`: an ON CONFLICT clause)."""
        con.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ("
                        + ",".join("?" * len(columns)) + f") {tail}", rows)

    def session(self) -> "SqliteBackend":
        """What a heartbeat thread uses: here the same per-call connections."""
        return self

    def close(self) -> None:
        """Close this thread's connection (other threads' close when their thread ends)."""
        held = getattr(self._local, "con", None)
        if held is not None and held[0] == os.getpid():
            held[1].close()
        self._local.con = None
