"""How rows land in a table of the analytics file, whether written now (store.py) or applied
later from the spool (spool.py): append, replace, or append replacing the rows that share
some columns' values (an upsert), the table growing the columns it lacks.

The rows to write are the relation `frame` on the connection: a registered DataFrame or a
view over a run's stage file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import duckdb
import pandas as pd


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    # fetchall: a result left half-read (fetchone) makes DuckDB 2 refuse the unregister that
    # follows, so appending an empty frame to an existing table failed.
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
        "AND table_catalog = current_database()", [table]
    ).fetchall()[0][0])


def write_mode(mode: str, replace_on: tuple[str, ...] | list[str]) -> str:
    """'append', 'replace', or 'upsert.<col>.<col>...' (the form a spool file's name keeps)."""
    if mode not in ("append", "replace"):
        raise ValueError(f"mode must be 'append' or 'replace', not {mode!r}")
    if replace_on:
        if mode != "append" or not all(c.isidentifier() for c in replace_on):
            raise ValueError("replace_on takes column names, with mode 'append'")
        return "upsert." + ".".join(replace_on)
    return mode


def bind_frame(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> None:
    con.register("frame", frame)


def write_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame,
                mode: str) -> None:
    bind_frame(con, frame)
    try:
        write_relation(con, table, mode)
    finally:
        con.unregister("frame")


def write_relation(con: duckdb.DuckDBPyConnection, table: str, mode: str) -> None:
    """Write the relation `frame` (a registered frame or a view) into `table`."""
    if mode == "replace" or not has_table(con, table):
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
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
