"""In-memory DuckDB databases a process keeps open and lends out, one use at a time.

Opening a DuckDB database costs about 18 ms of CPU (it builds its catalog of functions);
attaching a file to an open one, 1.5 ms. A small run opens some fifty (a stage file each, the
history, the checks' reads), and the frame helpers that tests call thousands of times
(read_desired_state, build_plan, make_batches) one each: a fifth of the CPU of test_pipeline.py
and test_read_back_budget.py went there. So a use borrows an idle database, alone:

- it gets a connection of its own (a cursor), which takes its registered frames, TEMP objects
  and current database with it when the use ends, and a schema of its own, current, which
  takes the tables and views it made (unqualified) with it;
- the settings it asks for (memory limit, threads, spill folder, write buffer) are set on the
  database for it, and the ones it does not ask for are DuckDB's defaults, as on a new one;
- every file it attached is detached when it ends, which releases the file's lock at once:
  another process may open the file as soon as the use is over, as when it was closed.

A database goes back to the pool only as a new one would be: nothing attached, nothing made,
its spill folder unused, and only after a small use (one thread). Otherwise it is closed
(DuckDB removes a spill folder it made when it closes), and so is any use that asks for a
setting only a new database takes.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import duckdb

# The settings a borrowed database takes per use (SET GLOBAL); any other asks for a new one.
PER_USE = ("memory_limit", "threads", "temp_directory", "write_buffer_row_group_count")
# Idle databases kept: a use rarely nests more than two deep, and threads rarely overlap.
MAX_IDLE = 4

_EMPTY = "1MB"       # the memory limit of an idle database (clean)
_LOCK = threading.Lock()
_IDLE: list[_Pooled] = []
_OWNER_PID = os.getpid()
_FORKED: list[_Pooled] = []    # a parent's databases: never used or closed in a forked child


class _Pooled:
    def __init__(self) -> None:
        self.base = duckdb.connect()
        self.settings: dict[str, str] = {}      # what was SET, so a use SETs only the changes

    def set_for(self, config: Mapping[str, str]) -> None:
        for key in PER_USE:
            want = config.get(key)
            if self.settings.get(key) == want:
                continue
            if want is None:
                self.base.execute(f"RESET GLOBAL {key}")
            else:
                self.base.execute(f"SET GLOBAL {key} = {sql_text(want)}")
            self.settings[key] = want

    def lend(self) -> tuple[duckdb.DuckDBPyConnection, str]:
        """A connection of its own, working in a new schema (what the use makes unqualified
        goes there, and goes with it)."""
        schema = f"use_{uuid.uuid4().hex}"
        con = self.base.cursor()
        con.execute(f"CREATE SCHEMA memory.{schema}; USE memory.{schema}")
        return con, schema

    def clean(self, schema: str) -> bool:
        """Drop the use's schema and detach what it attached; True when the database is as
        good as new."""
        attached = self.base.execute(
            "SELECT database_name FROM duckdb_databases() "
            "WHERE NOT internal AND database_name <> 'memory'").fetchall()
        # A 1 MB limit makes the buffer pool give back what it kept for reuse (50 MB after a
        # use of 300,000 rows: +27 MB on a 100,000-number run's peak); the next use sets its own.
        self.base.execute("".join(f'DETACH "{name}"; ' for (name,) in attached)
                          + f"DROP SCHEMA memory.{schema} CASCADE; "
                          + f"SET GLOBAL memory_limit = '{_EMPTY}'")
        self.settings["memory_limit"] = _EMPTY
        # A spill folder once used cannot be changed, and is removed only on close. A use that
        # asked for several threads is a big one (stage_threads): 18 ms is nothing to it, and
        # its database kept 20 MB more through a 1,000,000-number run than new ones did.
        spill = self.settings.get("temp_directory")
        one_thread = int(self.settings.get("threads") or 1) == 1
        return one_thread and not (spill and os.path.isdir(spill))


def sql_text(value: Any) -> str:
    """`value` as a SQL string literal, for what DuckDB takes no parameter for (ATTACH and COPY
    paths, SET values, the bodies of views)."""
    return "'" + str(value).replace("'", "''") + "'"


def _take() -> _Pooled:
    global _OWNER_PID
    with _LOCK:
        if os.getpid() != _OWNER_PID:     # forked: the parent's databases stay the parent's
            _FORKED.extend(_IDLE)
            _IDLE.clear()
            _OWNER_PID = os.getpid()
        if _IDLE:
            return _IDLE.pop()
    return _Pooled()


def _give_back(pooled: _Pooled) -> None:
    with _LOCK:
        if os.getpid() == _OWNER_PID and len(_IDLE) < MAX_IDLE:
            _IDLE.append(pooled)
            return
    pooled.base.close()


@contextmanager
def borrowed(config: Mapping[str, Any] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to an in-memory database of its own for the block, with `config` (DuckDB
    settings) in force. Attach files to it as to a new one; they are detached on exit."""
    config = {key: str(value) for key, value in (config or {}).items()}
    if not set(config) <= set(PER_USE):
        with duckdb.connect(config=config) as own:   # e.g. an option only a new one takes
            yield own
        return
    pooled = _take()
    try:
        try:
            pooled.set_for(config)
        except duckdb.Error:        # DuckDB's default spill folder (.tmp) was used: a new one
            pooled.base.close()
            pooled = _Pooled()
            pooled.set_for(config)
        con, schema = pooled.lend()
    except BaseException:
        pooled.base.close()
        raise
    reusable = False
    try:
        yield con
    finally:
        try:
            con.close()
            reusable = pooled.clean(schema)
        except duckdb.Error:
            reusable = False
        finally:
            if reusable:
                _give_back(pooled)
            else:
                pooled.base.close()


def idle_count() -> int:
    """How many databases wait in this process's pool (for tests)."""
    with _LOCK:
        return len(_IDLE) if os.getpid() == _OWNER_PID else 0
