"""The spool: writes that found the analytics file held by another process (an analyst's open
notebook) wait in `<database>.spool/`, one DuckDB file per write, and the next writer that
gets the lock applies them first, in order, exactly once (store.py).

A spool file's name keeps its order, its write mode and its table:
`<time_ns>-<uuid8>-<mode>-<table>.duckdb`; `_spool_applied` (schema.py) records each one
applied, so a crash between the commit and the file's removal applies it only once.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from emergency_pipeline.analytics.table_writes import transaction, write_frame
from emergency_pipeline.stage_files import file_connection, stage_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Spool:
    folder: Path

    def keep(self, table: str, mode: str, bind: Callable[[duckdb.DuckDBPyConnection], None],
             rows: int | None) -> None:
        """Keep the rows that `bind` makes visible as `frame` in a spool file of their own."""
        self.folder.mkdir(parents=True, exist_ok=True)
        # Nanosecond time first so that files sort in write order; the uuid makes them unique.
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}-{mode}-{table}.duckdb"
        tmp = self.folder / f".{name}.tmp"
        with file_connection(tmp, stage_config(rows)) as con:
            bind(con)
            con.execute("CREATE TABLE spooled AS SELECT * FROM frame")
        os.replace(tmp, self.folder / name)  # atomic: a half-written spool is never seen
        log.warning("database locked: %s rows for %s kept in %s until it is free",
                    "the" if rows is None else rows, table, self.folder / name)

    def files(self) -> list[Path]:
        """The spool files not yet applied, oldest first."""
        if not self.folder.exists():
            return []
        return sorted(p for p in self.folder.glob("*.duckdb") if not p.name.startswith("."))

    def apply(self, con: duckdb.DuckDBPyConnection) -> None:
        """Write every spool file into the database `con` holds for writing, in order."""
        for path in self.files():
            spool_id = path.stem
            _, _, mode, table = spool_id.split("-", 3)
            already = con.execute("SELECT 1 FROM _spool_applied WHERE spool_id = ?",
                                  [spool_id]).fetchone()
            if not already:
                frame = _read(path)
                with transaction(con):
                    write_frame(con, table, frame, mode)
                    con.execute("INSERT INTO _spool_applied VALUES (?, now())", [spool_id])
            path.unlink()  # after the commit; a crash before it is caught by _spool_applied

    def rows(self, table: str, where: str = "TRUE",
             params: list | None = None) -> list[pd.DataFrame]:
        """The spooled rows of `table` matching `where`, one frame per spool file."""
        frames = []
        for path in self.files():
            if path.stem.endswith(f"-{table}"):
                with file_connection(path, {}, read_only=True) as con:
                    frames.append(con.execute(f"SELECT * FROM spooled WHERE {where}",
                                              params or []).df())
        return frames


def _read(path: Path) -> pd.DataFrame:
    with file_connection(path, {}, read_only=True) as con:
        return con.execute("SELECT * FROM spooled").df()
