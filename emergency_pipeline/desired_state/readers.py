"""Sources -> raw tables of text: CSV, XLSX (calamine), a folder of them, a DuckDB table or query.

Everything is text. A raw table keeps the row number an operator sees: for spreadsheets the first
non-blank row is the header, rows are numbered as the spreadsheet numbers them (XLSX: the real
row; CSV: the record, so a quoted cell spanning lines is still one row). For DuckDB, source_row is
the 1-based position in the result. Blank rows (every cell empty) are not input rows: they are
counted in `blank_rows` and otherwise ignored.

Hostile input: a workbook is checked (workbook.py) before calamine parses it, a CSV's encoding
is detected (encoding.py), a DuckDB query runs alone, read-only, with no file access.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .encoding import decode_csv
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


def _table_from_grid(source: str, grid: pd.DataFrame, first_row: int) -> RawTable:
    """grid: object DataFrame of text ("" = empty), positional columns; row i is sheet row first_row+i."""
    nonblank = (grid != "").any(axis=1).to_numpy() if len(grid.columns) else np.zeros(len(grid), bool)
    hits = np.flatnonzero(nonblank)
    if len(hits) == 0:
        raise DesiredStateError(f"{source}: the file is empty (no header, no data rows)")
    h = hits[0]
    headers = _unique_headers(list(grid.iloc[h]))
    body = grid.iloc[h + 1:]
    keep = nonblank[h + 1:]
    rows = np.arange(first_row + h + 1, first_row + len(grid), dtype=np.int64)
    cells = body[keep].reset_index(drop=True)
    cells.columns = headers
    blank = int((~keep).sum())
    if len(cells) == 0:
        raise DesiredStateError(
            f"{source}: no data rows under the header (columns found: {', '.join(headers)}); "
            "an empty desired state is never an instruction")
    return RawTable(source, headers, cells, rows[keep], blank)


def _sniff_separator(text: str) -> str:
    """Comma, or the semicolon / tab that some locales' spreadsheet exports use: whichever the
    first non-blank line (the header) holds most of."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    counts = {sep: header.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] > counts[","] else ","


def read_csv(path: Path) -> RawTable:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DesiredStateError(f"{path}: cannot read ({exc.strerror})") from exc
    text = decode_csv(data, path).replace("\x00", "")
    # Only line breaks make a file empty: a cell of spaces is a cell (found by the fuzzing).
    if not text.strip("\r\n"):
        raise DesiredStateError(f"{path}: the file is empty (no header, no data rows)")
    sep = _sniff_separator(text)
    try:
        # Fast path: the C parser, everything as text, blank lines kept so rows keep their numbers.
        grid = pd.read_csv(io.StringIO(text), header=None, dtype=object, keep_default_na=False,
                           na_filter=False, skip_blank_lines=False, engine="c", sep=sep)
        grid = grid.fillna("")
    except (pd.errors.ParserError, ValueError):
        # Ragged rows (more cells than the first line): the csv module, padded to the widest row.
        # (The csv module refuses cells over 128 KiB by default; the C parser had none.)
        csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
        try:
            records = list(csv.reader(io.StringIO(text), delimiter=sep))
        except csv.Error as exc:
            raise DesiredStateError(f"{path}: not a readable CSV ({exc})") from None
        width = max((len(r) for r in records), default=0)
        grid = pd.DataFrame([r + [""] * (width - len(r)) for r in records], dtype=object)
    grid.columns = range(len(grid.columns))
    return _table_from_grid(str(path), grid, first_row=1)


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


def read_xlsx(path: Path, sheet: str | None = None) -> RawTable:
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
    source = f"{path}[{name}]" if sheet is not None else str(path)
    width = max((len(r) for r in values), default=0)
    grid = pd.DataFrame([[_cell_text(c) for c in r] + [""] * (width - len(r)) for r in values],
                        dtype=object)
    table = _table_from_grid(source, grid, first_row=1)
    table.sheet = name
    return table


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


def read_duckdb(path: Path, table: str | None = None, query: str | None = None) -> RawTable:
    import duckdb

    if (table is None) == (query is None):
        raise DesiredStateError(f"{path}: give exactly one of table= or query= for a DuckDB source")
    if not path.exists():
        raise DesiredStateError(f"{path}: no such DuckDB file")
    sql = f"SELECT * FROM {_quote_ident(table)}" if table is not None else \
        _single_select(path, query)
    source = f"{path}::{table}" if table is not None else f"{path}::query"
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise DesiredStateError(f"{path}: cannot open the DuckDB file ({exc})") from exc
    try:
        _lock_down(con)
        try:
            df = con.execute(sql).df()
        except duckdb.Error as exc:
            tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables")
                      .fetchall()]
            raise DesiredStateError(
                f"{source}: the query failed ({exc}); tables: {', '.join(tables) or 'none'}") from exc
    finally:
        con.close()
    if len(df) == 0:
        raise DesiredStateError(
            f"{source}: no rows; an empty desired state is never an instruction")
    headers = _unique_headers(list(df.columns))
    cells = pd.DataFrame({h: _series_text(df.iloc[:, i]).to_numpy() for i, h in enumerate(headers)})
    nonblank = (cells != "").any(axis=1).to_numpy()
    rows = np.arange(1, len(cells) + 1, dtype=np.int64)
    return RawTable(source, headers, cells[nonblank].reset_index(drop=True), rows[nonblank],
                    int((~nonblank).sum()))


def read_tables(source: str | Path, sheet: str | None = None, table: str | None = None,
                query: str | None = None) -> list[RawTable]:
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and p.suffix.lower() in SPREADSHEET_SUFFIXES
                       and not p.name.startswith((".", "~$")))
        if not files:
            raise DesiredStateError(
                f"{path}: no spreadsheets ({', '.join(SPREADSHEET_SUFFIXES)}) in the folder")
        return [_read_file(p, sheet) for p in files]
    if table is not None or query is not None or path.suffix.lower() in DUCKDB_SUFFIXES:
        return [read_duckdb(path, table, query)]
    if not path.exists():
        raise DesiredStateError(f"{path}: no such file or folder")
    return [_read_file(path, sheet)]


def _read_file(path: Path, sheet: str | None) -> RawTable:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path)
    if suffix in _WORKBOOK_SUFFIXES:
        return read_xlsx(path, sheet)
    if suffix in _REFUSED_WORKBOOKS:
        raise DesiredStateError(f"{path}: {suffix} workbooks are not read (their size cannot be "
                                "checked before parsing); save the sheet as .xlsx or CSV")
    raise DesiredStateError(f"{path}: unsupported file type {suffix!r} (use CSV or XLSX)")
