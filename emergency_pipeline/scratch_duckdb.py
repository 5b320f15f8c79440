"""An in-memory DuckDB for a small piece of work (the frame-in, frame-out helpers that tests and
library callers use: read_desired_state, compute_plan, make_batches).

A new DuckDB database costs about 15 ms to open, most of a small sheet's whole read (33 ms);
the property and fuzz tests open thousands. So each use borrows a database from the process's
pool (duckdb_pool.py), which gives it a schema of its own, dropped with all it holds when the
use ends (the connection's TEMP views and tables go with the connection): nothing outlives it. The
pipeline's steps do not use this: their work goes to the run's stage files (stage_files.py),
with the memory settings those need.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from emergency_pipeline.duckdb_pool import borrowed


@contextmanager
def scratch_duckdb() -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose current schema is new and empty; the schema (tables, views) is
    dropped on exit."""
    with borrowed() as con:
        yield con
