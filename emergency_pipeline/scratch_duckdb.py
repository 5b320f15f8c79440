"""An in-memory DuckDB for a small piece of work (the frame-in, frame-out helpers that tests and
library callers use: read_desired_state, compute_plan, make_batches).

A new DuckDB database costs about 15 ms to open, most of a small sheet's whole read (33 ms);
the property and fuzz tests open thousands. So each thread keeps one in-memory database and
each use gets a schema of its own, dropped with all it holds when the use ends (and the
connection's TEMP views and tables with it): nothing outlives it but the empty database. The pipeline's steps do not use this: their work goes to
the run's stage files (stage_files.py), with the memory settings those need.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

_LOCAL = threading.local()


def _database() -> duckdb.DuckDBPyConnection:
    held = getattr(_LOCAL, "held", None)
    if held is None or held[0] != os.getpid():   # a forked child opens its own
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        held = _LOCAL.held = (os.getpid(), con)
    return held[1]


def _drop_temporary(con: duckdb.DuckDBPyConnection) -> None:
    """The connection's temporary views and tables (TEMP objects live outside any schema)."""
    for kind, sql in (
            ("VIEW", "SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal"),
            ("TABLE", "SELECT table_name FROM duckdb_tables() WHERE temporary")):
        for (name,) in con.execute(sql).fetchall():
            con.execute(f'DROP {kind} IF EXISTS temp.main."{name}"')


@contextmanager
def scratch_duckdb() -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose current schema is new and empty; the schema (tables, views) is
    dropped on exit. Frames registered on it should be unregistered by the caller, as on any
    connection, or they stay referenced until the name is registered again."""
    if getattr(_LOCAL, "busy", False):           # nested in this thread: a database of its own
        with duckdb.connect() as own:
            own.execute("SET enable_progress_bar = false")
            yield own
        return
    con = _database()
    schema = f"scratch_{uuid.uuid4().hex}"
    con.execute(f"CREATE SCHEMA memory.{schema}")
    con.execute(f"USE memory.{schema}")
    _LOCAL.busy = True
    try:
        yield con
    finally:
        _LOCAL.busy = False
        try:
            con.execute("USE memory.main")
            con.execute(f"DROP SCHEMA memory.{schema} CASCADE")
            _drop_temporary(con)
        except duckdb.Error:                     # left in a failed transaction: start afresh
            del _LOCAL.held
            con.close()
