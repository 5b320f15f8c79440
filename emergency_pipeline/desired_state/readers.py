"""Sources -> raw tables of text: CSV, XLSX (calamine), a folder of them, a DuckDB table or query.

Everything is text. A raw table keeps the row number an operator sees: for spreadsheets the first
non-blank row is the header, rows are numbered as the spreadsheet numbers them (XLSX: the real
row; CSV: the record, so a quoted cell spanning lines is still one row). For DuckDB, source_row is
the 1-based position in the result. Blank rows (every cell empty) are not input rows: they are
counted in `blank_rows` and otherwise ignored.

Each source is read chunk by chunk (RawTables of at most chunk_rows data rows) so that memory is
bounded by the chunk: a CSV streams (csv_stream.py), a DuckDB result is fetched in chunks, a
workbook is held whole (a sheet has at most 1,048,576 rows) and cut into chunks.

Hostile input: a workbook is checked (workbook.py) before calamine parses it, a CSV's encoding
is detected (encoding.py), a DuckDB query runs alone, read-only, with no file access.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import csv_stream
from .errors import DesiredStateError
from .workbook import choose_sheet

SPREADSHEET_SUFFIXES = (".csv", ".xlsx", ".xlsm")
_WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")     # checked by workbook.py, then read by calamine
# Formats whose size cannot be checked cheaply before calamine allocates the grid.
_REFUSED_WORKBOOKS = (".xls", ".ods")
DUCKDB_SUFFIXES = (".duckdb", ".db", ".ddb")


@dataclass
class RawTable:
    source_file: str
    headers: list[str]          # unique, in sheet order
    cells: pd.DataFrame         # one object column of stripped-or-not text per header; "" = empty
    rows: np.ndarray            # int64 source_row of each cells row
    blank_rows: int = 0
    sheet: str | None = None    # the workbook sheet read (None: not a workbook)


class Counts:
    """What one source gave, filled in as its chunks are read."""

    def __init__(self, source_file: str, sheet: str | None = None) -> None:
        self.source_file = source_file
        self.sheet = sheet
        self.rows = 0               # non-blank data rows: the input rows
        self.blank_rows = 0


def _unique_headers(raw: list[object]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, h in enumerate(raw):
        name = str(h).strip() if h is not None else ""
        if not name:
            name = f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        out.append(name)
    return out


def grid_tables(grids: Iterator[tuple[pd.DataFrame, int]], counts: Counts) -> Iterator[RawTable]:
    """Spreadsheet grids, chunk by chunk -> RawTables of data rows. A grid is an object
    DataFrame of text ("" = empty) with positional columns whose first row is sheet row
    `first`; the first non-blank row of the sheet is the header."""
    source = counts.source_file
    headers: list[str] | None = None
    for grid, first in grids:
        nonblank = ((grid != "").any(axis=1).to_numpy() if len(grid.columns)
                    else np.zeros(len(grid), bool))
        start = 0
        if headers is None:
            hits = np.flatnonzero(nonblank)
            if len(hits) == 0:
                continue                  # blank rows above the header are not input rows
            start = int(hits[0]) + 1
            headers = _unique_headers(list(grid.iloc[start - 1]))
        keep = nonblank[start:]
        counts.blank_rows += int((~keep).sum())
        if not keep.any():
            continue
        cells = grid.iloc[start:][keep].reset_index(drop=True)
        cells.columns = headers
        counts.rows += len(cells)
        rows = np.arange(first + start, first + len(grid), dtype=np.int64)[keep]
        yield RawTable(source, headers, cells, rows, 0, counts.sheet)
    if headers is None:
        raise DesiredStateError(f"{source}: the file is empty (no header, no data rows)")
    if counts.rows == 0:
        raise DesiredStateError(
            f"{source}: no data rows under the header (columns found: {', '.join(headers)}); "
            "an empty desired state is never an instruction")


def read_csv(path: Path, chunk_rows: int, workdir: Path) -> Iterator[Reader]:
    """The parsers that may read the file, in order (csv_stream.py): the caller uses the first
    that does not raise csv_stream.Reparse, dropping what an abandoned one gave."""
    prepared = csv_stream.prepare(path, workdir)
    for parser in csv_stream.parsers(prepared, chunk_rows):
        yield lambda counts, parser=parser: grid_tables(parser(), counts)


def _cell_text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isfinite(v) and v.is_integer() and abs(v) < 2**53:
            return str(int(v))          # a number typed as a number: 19705555098.0 -> 19705555098
        # Past 2**53 a float has lost digits (a 19-digit id typed as a number): keep the
        # scientific form so that validation rejects it instead of inventing digits.
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    return str(v)


def read_xlsx(path: Path, sheet: str | None, chunk_rows: int, counts: Counts) -> Iterator[RawTable]:
    """The named sheet, else the active one if visible, else the first visible (workbook.py),
    once the workbook has passed the size limits."""
    from python_calamine import CalamineWorkbook

    name = choose_sheet(path, sheet)
    try:
        wb = CalamineWorkbook.from_path(str(path))
        # skip_empty_area=False starts at A1, so list index + 1 is the real row number.
        values = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - calamine raises many types, and a Rust
        # panic arrives as pyo3's PanicException, a BaseException
        raise DesiredStateError(f"{path}: not a readable XLSX workbook ({exc})") from None
    counts.source_file = f"{path}[{name}]" if sheet is not None else str(path)
    counts.sheet = name
    width = max((len(r) for r in values), default=0)
    # Text cells (empty ones are "") as they are, without a call each: a sheet of a few
    # thousand rows whose last cell sits far out is millions of them.
    grid = pd.DataFrame([[c if type(c) is str else _cell_text(c) for c in r]
                         + [""] * (width - len(r)) for r in values], dtype=object)
    del values
    chunks = ((grid.iloc[a:a + chunk_rows], a + 1) for a in range(0, len(grid), chunk_rows))
    yield from grid_tables(chunks, counts)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _series_text(s: pd.Series) -> pd.Series:
    values = s.to_numpy(dtype=object)
    missing = pd.isna(values)
    return pd.Series(["" if miss else _cell_text(v) for v, miss in zip(values, missing)],
                     dtype=object)


def _lock_down(con) -> None:
    """No file, network or extension access, and no way to turn it back on: a query from a
    run's config must not read /proc/self/environ or write files. The source file itself is
    already open."""
    for setting in ("enable_external_access=false", "autoinstall_known_extensions=false",
                    "autoload_known_extensions=false", "python_enable_replacements=false",
                    "lock_configuration=true"):
        con.execute(f"SET {setting}")


def _single_select(path: Path, query: str) -> str:
    """The query, if DuckDB's own parser sees exactly one SELECT (WITH ... SELECT included)."""
    import duckdb

    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise DesiredStateError(f"{path}::query: not valid SQL ({exc})") from None
    kinds = [st.type.name for st in statements]
    if kinds != ["SELECT"]:
        raise DesiredStateError(
            f"{path}::query: refused, a desired-state query must be one SELECT (or WITH ... "
            f"SELECT) statement; got {', '.join(kinds) or 'nothing'}")
    return query


def read_duckdb(path: Path, table: str | None, query: str | None, chunk_rows: int,
                counts: Counts) -> Iterator[RawTable]:
    """The result in chunks of about chunk_rows (whole DuckDB vectors of 2,048 rows)."""
    import duckdb

    sql = f"SELECT * FROM {_quote_ident(table)}" if table is not None else \
        _single_select(path, query)
    source = counts.source_file
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise DesiredStateError(f"{path}: cannot open the DuckDB file ({exc})") from exc
    try:
        _lock_down(con)
        try:
            result = con.execute(sql)
        except duckdb.Error as exc:
            tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables")
                      .fetchall()]
            raise DesiredStateError(
                f"{source}: the query failed ({exc}); tables: {', '.join(tables) or 'none'}") from exc
        headers: list[str] = []
        first = 1
        while len(df := result.fetch_df_chunk(max(1, chunk_rows // 2048))) or first == 1:
            if len(df) == 0:
                raise DesiredStateError(
                    f"{source}: no rows; an empty desired state is never an instruction")
            headers = headers or _unique_headers(list(df.columns))
            cells = pd.DataFrame({h: _series_text(df.iloc[:, i]).to_numpy()
                                  for i, h in enumerate(headers)})
            nonblank = (cells != "").any(axis=1).to_numpy()
            rows = np.arange(first, first + len(cells), dtype=np.int64)
            first += len(cells)
            counts.blank_rows += int((~nonblank).sum())
            counts.rows += int(nonblank.sum())
            if nonblank.any():
                yield RawTable(source, headers, cells[nonblank].reset_index(drop=True),
                               rows[nonblank])
    finally:
        con.close()


Reader = Callable[[Counts], Iterator[RawTable]]


def list_sources(source: str | Path, sheet: str | None = None, table: str | None = None,
                 query: str | None = None) -> list[tuple[Path, str]]:
    """(path, kind) of each source to read, kind "csv", "xlsx" or "duckdb"; refused ones raise."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and p.suffix.lower() in SPREADSHEET_SUFFIXES
                       and not p.name.startswith((".", "~$")))
        if not files:
            raise DesiredStateError(
                f"{path}: no spreadsheets ({', '.join(SPREADSHEET_SUFFIXES)}) in the folder")
        return [(p, _kind(p)) for p in files]
    if table is not None or query is not None or path.suffix.lower() in DUCKDB_SUFFIXES:
        if (table is None) == (query is None):
            raise DesiredStateError(
                f"{path}: give exactly one of table= or query= for a DuckDB source")
        if not path.exists():
            raise DesiredStateError(f"{path}: no such DuckDB file")
        return [(path, "duckdb")]
    if not path.exists():
        raise DesiredStateError(f"{path}: no such file or folder")
    return [(path, _kind(path))]


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in _WORKBOOK_SUFFIXES:
        return "xlsx"
    if suffix in _REFUSED_WORKBOOKS:
        raise DesiredStateError(f"{path}: {suffix} workbooks are not read (their size cannot be "
                                "checked before parsing); save the sheet as .xlsx or CSV")
    raise DesiredStateError(f"{path}: unsupported file type {suffix!r} (use CSV or XLSX)")


def readers(path: Path, kind: str, *, sheet: str | None, table: str | None, query: str | None,
            chunk_rows: int, workdir: Path) -> Iterator[Reader]:
    """The ways to read one source, to try in order (only a CSV has more than one)."""
    if kind == "csv":
        yield from read_csv(path, chunk_rows, workdir)
    elif kind == "xlsx":
        yield lambda counts: read_xlsx(path, sheet, chunk_rows, counts)
    else:
        yield lambda counts: read_duckdb(path, table, query, chunk_rows, counts)


def source_name(path: Path, kind: str, table: str | None) -> str:
    """source_file before reading (a workbook's may gain its sheet when the run named one)."""
    if kind == "duckdb":
        return f"{path}::{table}" if table is not None else f"{path}::query"
    return str(path)
