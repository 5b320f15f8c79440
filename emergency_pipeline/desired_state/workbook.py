"""An XLSX workbook looked at before calamine parses it: which sheet to read, and whether it is
small enough to parse at all.

calamine allocates the whole grid from A1 to the last cell, and reserves room for the declared
`<dimension>`; a 1.7 KB file with one cell at XFD1048576 asks for 512 GiB and the process
aborts (no exception to catch). So the zip's members, the sheet's declared dimension and the
cells it really holds are checked here first, streaming the XML with byte regexes: constant
memory, nothing expanded.

Limits (documented in README.md):
- MAX_ROWS rows and MAX_COLUMNS columns, counted from A1 (declared or real);
- MAX_CELLS cells in that grid (rows x columns), and in cell elements;
- MAX_UNCOMPRESSED_BYTES for all members together, MAX_MEMBERS members.

Sheet choice: the named sheet (hidden ones too: naming it is a deliberate choice); else the
active sheet if it is visible; else the first visible sheet. A hidden sheet is never read by
default: an old, hidden tab once disabled numbers nobody meant to touch.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from .errors import DesiredStateError

MAX_ROWS = 1_048_576                 # Excel's own limit
MAX_COLUMNS = 1_000                  # a desired-state sheet has about 15
MAX_CELLS = 16_000_000               # rows x columns from A1: about 1 GB once in Python
MAX_UNCOMPRESSED_BYTES = 1 << 30     # 1 GiB of XML
MAX_MEMBERS = 10_000
_MAX_PART_BYTES = 16 << 20           # workbook.xml and its rels: small in any real file

_CHUNK = 1 << 20
_REF = re.compile(rb'<(?:\w+:)?(c|row)\s[^>]*?\br="([A-Za-z]{0,4})([0-9]{1,10})"')
_CELL = re.compile(rb"<(?:\w+:)?c[\s/>]")
_ROW = re.compile(rb"<(?:\w+:)?row[\s/>]")
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\s[^>]*?\bref="([^"]*)"')
_A1 = re.compile(r"^\$?([A-Za-z]{1,4})\$?([0-9]{1,10})$")
_FIX = "save the sheet's data alone into a new workbook (or as CSV) and drop that instead"


@dataclass(frozen=True)
class Sheet:
    name: str
    visible: bool
    part: str | None        # zip member of its XML (None: not found)


def column_number(letters: str | bytes) -> int:
    n = 0
    for ch in letters.upper() if isinstance(letters, str) else letters.decode().upper():
        n = n * 26 + ord(ch) - 64
    return n


def choose_sheet(path: Path, sheet: str | None) -> str:
    """Check the workbook's limits and return the name of the sheet to read."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DesiredStateError(f"{path}: not a readable XLSX workbook ({exc})") from None
    with zf:
        _check_members(path, zf)
        sheets, active = _sheets(path, zf)
        chosen = _pick(path, sheets, active, sheet)
        if chosen.part is None:     # unchecked XML must not reach calamine
            raise DesiredStateError(f"{path}: not a readable XLSX workbook (sheet "
                                    f"{chosen.name!r} has no part in the file)")
        _check_sheet_size(path, zf, chosen)
        return chosen.name


def other_sheets(path: Path, read: str) -> list[str]:
    """The workbook's other visible sheets (for the hint when the sheet read held no data)."""
    try:
        with zipfile.ZipFile(path) as zf:
            sheets, _ = _sheets(path, zf)
    except (DesiredStateError, zipfile.BadZipFile, OSError, ValueError):
        return []
    return [s.name for s in sheets if s.visible and s.name != read]


def _check_members(path: Path, zf: zipfile.ZipFile) -> None:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise DesiredStateError(f"{path}: refused, the workbook holds {len(infos)} parts "
                                f"(limit {MAX_MEMBERS}); {_FIX}")
    total = sum(i.file_size for i in infos)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise DesiredStateError(
            f"{path}: refused, the workbook unpacks to {total / 2**20:,.0f} MiB (limit "
            f"{MAX_UNCOMPRESSED_BYTES / 2**20:,.0f} MiB); {_FIX}")


def _xml(path: Path, zf: zipfile.ZipFile, name: str) -> ElementTree.Element | None:
    try:
        info = zf.getinfo(name)
    except KeyError:
        return None
    if info.file_size > _MAX_PART_BYTES:
        raise DesiredStateError(f"{path}: refused, {name} is {info.file_size:,} bytes; {_FIX}")
    data = zf.read(info)
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:   # never in OOXML; entity expansion bombs
        raise DesiredStateError(f"{path}: refused, {name} declares XML entities")
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise DesiredStateError(f"{path}: not a readable XLSX workbook ({name}: {exc})") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(element: ElementTree.Element, name: str) -> str | None:
    for key, value in element.attrib.items():
        if _local(key) == name:
            return value
    return None


def _workbook_part(path: Path, zf: zipfile.ZipFile) -> str:
    rels = _xml(path, zf, "_rels/.rels")
    for rel in rels.iter() if rels is not None else ():
        if _local(rel.tag) == "Relationship" and (rel.get("Type") or "").endswith(
                "/officeDocument"):
            return rel.get("Target", "").lstrip("/")
    return "xl/workbook.xml"


def _sheets(path: Path, zf: zipfile.ZipFile) -> tuple[list[Sheet], int]:
    """The sheets in workbook order, and the index of the active tab."""
    book_part = _workbook_part(path, zf)
    book = _xml(path, zf, book_part)
    if book is None:
        raise DesiredStateError(f"{path}: not a readable XLSX workbook (no {book_part})")
    folder, name = posixpath.split(book_part)
    rels = _xml(path, zf, posixpath.join(folder, "_rels", name + ".rels"))
    targets = {}
    for rel in rels.iter() if rels is not None else ():
        if _local(rel.tag) == "Relationship":
            target = rel.get("Target", "")
            targets[rel.get("Id")] = (target.lstrip("/") if target.startswith("/")
                                      else posixpath.normpath(posixpath.join(folder, target)))
    sheets, active = [], 0
    for el in book.iter():
        tag = _local(el.tag)
        if tag == "sheet":
            part = targets.get(_attr(el, "id"))
            sheets.append(Sheet(el.get("name", ""), el.get("state", "visible") == "visible",
                                part if part in zf.namelist() else None))
        elif tag == "workbookView" and (el.get("activeTab") or "").isdigit():
            active = int(el.get("activeTab"))
    return sheets, active


def _pick(path: Path, sheets: list[Sheet], active: int, name: str | None) -> Sheet:
    if name is not None:
        for s in sheets:
            if s.name == name:
                return s
        raise DesiredStateError(
            f"{path}: no sheet named {name!r} (sheets: {', '.join(s.name for s in sheets)})")
    if not sheets:
        raise DesiredStateError(f"{path}: the workbook has no sheets")
    if 0 <= active < len(sheets) and sheets[active].visible:
        return sheets[active]
    visible = [s for s in sheets if s.visible]
    if not visible:
        raise DesiredStateError(
            f"{path}: every sheet is hidden ({', '.join(s.name for s in sheets)}); name the "
            "sheet to read (--sheet, or `sheet` in the run config) if a hidden one is meant")
    return visible[0]


def _pieces(zf: zipfile.ZipFile, part: str):
    """The member's bytes in chunks that end after a complete tag (constant memory)."""
    with zf.open(part) as fh:
        tail = b""
        while chunk := fh.read(_CHUNK):
            data = tail + chunk
            cut = data.rfind(b">") + 1 or max(0, len(data) - 1024)   # no tag end: text
            yield data[:cut]
            tail = data[cut:]
        if tail:
            yield tail


def _check_sheet_size(path: Path, zf: zipfile.ZipFile, sheet: Sheet) -> None:
    where = f"{path}[{sheet.name}]"
    max_row = max_col = cells = rows = refless = 0
    declared = False
    for piece in _pieces(zf, sheet.part):
        if not declared and (m := _DIMENSION.search(piece)):
            declared = True
            _check_area(where, "declares", *_declared_extent(m.group(1)))
        with_ref = 0
        for kind, letters, number in _REF.findall(piece):
            max_row = max(max_row, int(number))
            if kind == b"c" and letters:
                with_ref += 1
                max_col = max(max_col, column_number(letters))
        n = len(_CELL.findall(piece))
        cells += n
        rows += len(_ROW.findall(piece))
        refless += n - with_ref
        _check_area(where, "holds cells up to", max(max_row, rows), max_col)
        if cells > MAX_CELLS:
            raise DesiredStateError(f"{where}: refused, more than {MAX_CELLS:,} cells; {_FIX}")
    if refless:
        # Cells without an r="A1" reference follow the previous one: the widest row bounds it.
        _check_area(where, "holds cells up to", max(max_row, rows),
                    max(max_col, _widest_row(zf, sheet.part)))


def _widest_row(zf: zipfile.ZipFile, part: str) -> int:
    """Cells in the longest row (rare path: writers that omit cell references)."""
    widest = current = 0
    token = re.compile(rb"<(/?)(?:\w+:)?(row|c)[\s/>]")
    for piece in _pieces(zf, part):
        for closing, kind in token.findall(piece):
            if kind == b"row":
                current = 0
            elif not closing:
                current += 1
                widest = max(widest, current)
    return widest


def _declared_extent(ref: bytes) -> tuple[int, int]:
    last = ref.decode("ascii", "replace").split(":")[-1]
    m = _A1.match(last)
    if not m:
        return 0, 0          # an unreadable dimension is ignored; the real cells are checked
    return int(m.group(2)), column_number(m.group(1))


def _check_area(where: str, verb: str, rows: int, cols: int) -> None:
    if rows > MAX_ROWS or cols > MAX_COLUMNS or rows * cols > MAX_CELLS:
        raise DesiredStateError(
            f"{where}: refused, the sheet {verb} {rows:,} rows x {cols:,} columns from A1 "
            f"(limits: {MAX_ROWS:,} rows, {MAX_COLUMNS:,} columns, {MAX_CELLS:,} cells); "
            f"probably a stray cell far from the data: delete the empty rows and columns "
            f"after the data, or {_FIX}")
