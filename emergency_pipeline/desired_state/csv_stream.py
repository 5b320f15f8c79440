"""A CSV file -> grids of text (positional object columns, "" = empty), chunk by chunk.

Memory is bounded by the chunk, not the file. The file is first made UTF-8 without NUL bytes
(read as is when it already is; otherwise transcoded, streaming, to a temporary file), then
parsed by the first of these that can give exactly the records today's rules give:

1. DuckDB, for "plain" files (no quote character, no empty line, no lone CR): each line is one
   record, split on the separator in SQL. DuckDB skips empty lines and, for quoted cells, reads
   a few odd cases differently from the csv parsers (`"3" ` with a space after the quote, an
   unterminated quote), which would shift row numbers or change cells: such files take 2.
2. pandas' C parser, in chunks (the parser the in-memory reader used).
3. The csv module, padded to the widest row, for ragged rows (more cells than the first row).

A parser that cannot finish raises Reparse; the caller drops what it staged and tries the next.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .encoding import decode_csv, detect_encoding
from .errors import DesiredStateError

BLOCK = 1 << 22
# Up to this size a file that is not UTF-8 is decoded whole, exactly as the in-memory reader
# did; a larger one is detected on its first SAMPLE bytes and decoded streaming.
SAMPLE = 32 << 20
# A file past this is read on two threads (a 100,000-row sheet is about 6 MB).
TWO_THREADS_BYTES = 32 << 20
_BOM = b"\xef\xbb\xbf"
_LONE_CR = re.compile(rb"\r(?!\n)")
_EMPTY_LINE = re.compile(rb"\n\r?\n")

Grids = Iterator[tuple[pd.DataFrame, int]]     # (grid, source row of its first line)


class Reparse(Exception):
    """This parser cannot read the file the way today's rules do: use the next one."""


@dataclass(frozen=True)
class Prepared:
    source: Path        # the file as given (for messages)
    path: Path          # UTF-8 text without NUL bytes: the file itself or a transcoded copy
    sep: str
    plain: bool         # DuckDB may split its lines (see the module doc)
    size: int


def sniff_separator(text: str) -> str:
    """Comma, or the semicolon / tab that some locales' spreadsheet exports use: whichever the
    first non-blank line (the header) holds most of."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    counts = {sep: header.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] > counts[","] else ","


def _blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            yield block


def _is_clean_utf8(path: Path) -> bool:
    """Valid UTF-8 (a BOM allowed) and no NUL byte: DuckDB and pandas can read it as it is."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for block in _blocks(path):
            if b"\x00" in block:
                return False
            decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _transcode(path: Path, out: Path, size: int) -> None:
    """The file as UTF-8 without NUL bytes (which the in-memory reader also removed)."""
    with open(path, "rb") as f, open(out, "w", encoding="utf-8", newline="") as w:
        if size <= SAMPLE:
            w.write(decode_csv(f.read(), path).replace("\x00", ""))
            return
        head = f.read(SAMPLE)
        try:
            head.decode("utf-8")
            encoding = "utf-8-sig"
        except UnicodeDecodeError as exc:
            # A cut multi-byte character at the end of the sample is still UTF-8.
            encoding = "utf-8-sig" if exc.start >= len(head) - 3 else detect_encoding(head, path)
        decoder = codecs.getincrementaldecoder(encoding)("strict")
        try:
            block = head
            while block:
                w.write(decoder.decode(block).replace("\x00", ""))
                block = f.read(BLOCK)
            w.write(decoder.decode(b"", final=True))
        except UnicodeDecodeError:
            raise DesiredStateError(
                f"{path}: cannot tell the file's text encoding (its first {SAMPLE >> 20} MB read "
                f"as {encoding}, a later part does not); save it from Excel as 'CSV UTF-8 "
                "(Comma delimited)'") from None


def prepare(path: Path, workdir: Path) -> Prepared:
    try:
        size = path.stat().st_size
        text_path = path
        if not _is_clean_utf8(path):
            text_path = workdir / "utf8.csv"
            _transcode(path, text_path, size)
        plain, content, prefix, tail, have_line = True, False, b"", b"", False
        for i, block in enumerate(_blocks(text_path)):
            if i == 0 and block.startswith(_BOM):
                block = block[len(_BOM):]
            if i == 0 and block.startswith((b"\n", b"\r\n")):
                plain = False                   # an empty first line
            content = content or bool(block.strip(b"\r\n"))
            window = tail + block
            if plain and (b'"' in block or b"\x01" in block or _EMPTY_LINE.search(window)
                          or _LONE_CR.search(window[:-1])):
                plain = False
            tail = window[-2:]
            if not have_line:
                prefix += block
                have_line = _has_first_line(prefix)
        if tail.endswith(b"\r"):
            plain = False
    except OSError as exc:
        raise DesiredStateError(f"{path}: cannot read ({exc.strerror})") from exc
    # Only line breaks make a file empty: a cell of spaces is a cell (found by the fuzzing).
    if not content:
        raise DesiredStateError(f"{path}: the file is empty (no header, no data rows)")
    sep = sniff_separator(prefix.decode("utf-8", "ignore"))
    return Prepared(path, text_path, sep, plain, size)


def _has_first_line(prefix: bytes) -> bool:
    lines = prefix.decode("utf-8", "ignore").splitlines()
    return any(line.strip() for line in lines[:-1])


def parsers(p: Prepared, chunk_rows: int) -> list[Callable[[], Grids]]:
    """The parsers to try, in order (see the module doc)."""
    out = [lambda: _duckdb_grids(p, chunk_rows)] if p.plain else []
    return out + [lambda: _pandas_grids(p, chunk_rows), lambda: _csv_grids(p, chunk_rows)]


def _duckdb_grids(p: Prepared, chunk_rows: int) -> Grids:
    import duckdb

    from emergency_pipeline.duckdb_pool import borrowed, sql_text

    # A small database of its own: the lines stream through it, nothing is kept. A second
    # thread only for a big file (a one-thread database is borrowed, duckdb_pool.py).
    threads = 2 if p.size > TWO_THREADS_BYTES else 1
    try:
        with borrowed({"memory_limit": "256MB", "threads": threads}) as con:
            con.execute("SET enable_progress_bar = false")     # no bar in the run's logs
            lines = (f"(SELECT string_split(coalesce(line, ''), {sql_text(p.sep)}) AS s FROM "
                     f"read_csv({sql_text(p.path)}, columns={{'line': 'VARCHAR'}}, "
                     "delim='\x01', quote='', escape='', header=false, auto_detect=false, "
                     f"strict_mode=false, max_line_size={max(p.size, 1 << 21) + 1}))")
            # The widest row sets the width, as for the csv module (the file has a line: prepare).
            width = con.execute(f"SELECT max(len(s)) FROM {lines}").fetchone()[0]
            cols = ", ".join(f"s[{i + 1}] AS c{i}" for i in range(width))
            result = con.execute(f"SELECT {cols} FROM {lines}")
            first = 1
            while len(df := result.fetch_df_chunk(max(1, chunk_rows // 2048))):
                grid = df.astype(object).fillna("")
                grid.columns = range(width)
                yield grid, first
                first += len(grid)
    except duckdb.Error as exc:
        raise Reparse(str(exc)) from None


def _pandas_grids(p: Prepared, chunk_rows: int) -> Grids:
    first, width = 1, None
    try:
        with pd.read_csv(p.path, header=None, dtype=object, keep_default_na=False,
                         na_filter=False, skip_blank_lines=False, engine="c", sep=p.sep,
                         encoding="utf-8-sig", chunksize=chunk_rows) as reader:
            for chunk in reader:
                width = len(chunk.columns) if width is None else width
                if len(chunk.columns) != width:
                    raise Reparse("rows wider than the first")
                grid = chunk.fillna("")
                grid.columns = range(width)
                yield grid, first
                first += len(grid)
    except (pd.errors.ParserError, ValueError) as exc:
        # Ragged rows (more cells than the first line) end up here, as they did in memory.
        raise Reparse(str(exc)) from None


def _csv_grids(p: Prepared, chunk_rows: int) -> Grids:
    # The csv module refuses cells over 128 KiB by default; the C parser had no limit.
    csv.field_size_limit(max(csv.field_size_limit(), p.size + 1))

    def records() -> Iterator[list[str]]:
        with open(p.path, encoding="utf-8-sig", newline="") as f:
            yield from csv.reader(f, delimiter=p.sep)

    try:
        width = max((len(r) for r in records()), default=0)
        first = 1
        rest = records()
        while batch := list(itertools.islice(rest, chunk_rows)):
            grid = pd.DataFrame([r + [""] * (width - len(r)) for r in batch], dtype=object)
            if width == 0:
                grid = pd.DataFrame(index=range(len(batch)))
            grid.columns = range(width)
            yield grid, first
            first += len(batch)
    except csv.Error as exc:
        raise DesiredStateError(f"{p.source}: not a readable CSV ({exc})") from None
