"""Hostile desired-state sources (issue 14): hidden sheets, XLSX bombs, CSV encodings, DuckDB
queries that read files. Real files under tmp_path; the bombs are read in a child process, so a
missing guard shows as a crash of that child, not of the suite."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from emergency_pipeline.desired_state import DesiredStateError, read_desired_state
from emergency_pipeline.desired_state import workbook as wbmod

from _workbooks import declared, far_cell, patch_sheet, workbook

ADDR = "1315262044401589175"
HEADER = ["phone_number", "enabled", "address_id", "note"]
OLD = [HEADER, ["+13162429136", "no", "", "old"], ["+15626933888", "no", "", "old"]]
CURRENT = [HEADER, ["+13162429136", "yes", ADDR, "new"], ["+15626933888", "yes", ADDR, "new"]]


def _enabled(ds) -> list[bool]:
    return ds.accepted["emergency_enabled"].tolist()


# -- which sheet ---------------------------------------------------------------------------

def test_hidden_first_sheet_is_skipped_for_the_visible_active_one(tmp_path: Path) -> None:
    path = workbook(tmp_path / "d.xlsx", {"old_2019": OLD, "current": CURRENT},
                    hidden=("old_2019",), active="current")
    ds = read_desired_state(path)
    assert _enabled(ds) == [True, True]
    assert ds.sheets_read == (f"{path}[current]",)
    assert ds.files["sheet"].tolist() == ["current"]


def test_active_sheet_is_read_when_visible_and_first_visible_when_it_is_hidden(
        tmp_path: Path) -> None:
    path = workbook(tmp_path / "a.xlsx", {"old": OLD, "current": CURRENT}, active="current")
    assert _enabled(read_desired_state(path)) == [True, True]
    # The active tab hidden (a workbook edited by a script): the first visible sheet.
    path = workbook(tmp_path / "b.xlsx", {"hidden": CURRENT, "x": OLD, "y": CURRENT},
                    hidden=("hidden",), active="hidden")
    ds = read_desired_state(path)
    assert _enabled(ds) == [False, False] and ds.sheets_read == (f"{path}[x]",)


def test_a_hidden_sheet_is_read_only_when_named(tmp_path: Path) -> None:
    path = workbook(tmp_path / "d.xlsx", {"old_2019": OLD, "current": CURRENT},
                    hidden=("old_2019",), active="current")
    ds = read_desired_state(path, sheet="old_2019")
    assert _enabled(ds) == [False, False]
    assert ds.sheets_read == (f"{path}[old_2019]",)
    only_hidden = workbook(tmp_path / "h.xlsx", {"a": OLD, "b": CURRENT}, hidden=("a", "b"))
    with pytest.raises(DesiredStateError, match=r"h\.xlsx: every sheet is hidden \(a, b\)"):
        read_desired_state(only_hidden)


def test_csv_has_no_sheet(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("phone_number,enabled\n+13162429136,no\n")
    ds = read_desired_state(path)
    assert ds.sheets_read == () and ds.files["sheet"].isna().all()


# -- size limits, before calamine --------------------------------------------------------

def _read_in_child(path: Path) -> subprocess.CompletedProcess:
    code = textwrap.dedent("""
        import sys
        from emergency_pipeline.desired_state import DesiredStateError, read_desired_state
        try:
            read_desired_state(sys.argv[1])
        except DesiredStateError as exc:
            print("REFUSED", exc)
        else:
            print("READ")
    """)
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120)


def test_one_far_cell_is_refused_and_the_process_lives(tmp_path: Path) -> None:
    # The 1.7 KB file: A1:C2 and one cell at XFD1048576 made calamine abort (134).
    path = patch_sheet(workbook(tmp_path / "bomb.xlsx", {"s": CURRENT}), far_cell)
    assert path.stat().st_size < 10_000
    done = _read_in_child(path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"REFUSED {path}[s]: refused, the sheet holds cells up to "
                                  "1,048,576 rows x 16,384 columns"), done.stdout
    assert "delete the empty rows and columns" in done.stdout


def test_a_lower_case_far_reference_is_refused_too(tmp_path: Path) -> None:
    path = patch_sheet(workbook(tmp_path / "lower.xlsx", {"s": CURRENT}),
                       lambda xml: far_cell(xml, "xfd1048576"))
    with pytest.raises(DesiredStateError, match="16,384 columns"):
        read_desired_state(path)


def test_a_huge_declared_dimension_is_refused(tmp_path: Path) -> None:
    path = patch_sheet(workbook(tmp_path / "dim.xlsx", {"s": CURRENT}),
                       lambda xml: declared(xml, "A1:XFD1048576"))
    done = _read_in_child(path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"REFUSED {path}[s]: refused, the sheet declares "), done.stdout


def test_far_cells_on_a_hidden_sheet_do_not_matter_unless_it_is_read(tmp_path: Path) -> None:
    path = workbook(tmp_path / "d.xlsx", {"junk": OLD, "current": CURRENT}, hidden=("junk",),
                    active="current")
    patch_sheet(path, far_cell)                       # sheet1.xml is the hidden "junk"
    assert _enabled(read_desired_state(path)) == [True, True]
    with pytest.raises(DesiredStateError, match=r"\[junk\]: refused"):
        read_desired_state(path, sheet="junk")


def test_rows_and_columns_within_excel_limits_but_too_many_cells(tmp_path: Path) -> None:
    path = patch_sheet(workbook(tmp_path / "wide.xlsx", {"s": CURRENT}),
                       lambda xml: far_cell(xml, "ALL900000"))   # 1000 columns x 900,000 rows
    with pytest.raises(DesiredStateError, match="16,000,000 cells"):
        read_desired_state(path)


def test_cells_without_references_are_bounded_by_the_widest_row(tmp_path: Path,
                                                                monkeypatch) -> None:
    # Some writers omit r="A1": each cell follows the previous one.
    row = "<row>" + "<c t=\"inlineStr\"><is><t>x</t></is></c>" * 40 + "</row>"
    path = patch_sheet(workbook(tmp_path / "norefs.xlsx", {"s": CURRENT}),
                       lambda xml: xml.replace("</sheetData>", row + "</sheetData>"))
    assert read_desired_state(path).input_rows == 3             # 40 columns: fine
    monkeypatch.setattr(wbmod, "MAX_COLUMNS", 30)
    with pytest.raises(DesiredStateError, match="40 columns"):
        read_desired_state(path)


def test_uncompressed_size_and_member_count_are_limited(tmp_path: Path, monkeypatch) -> None:
    import zipfile

    path = workbook(tmp_path / "zip.xlsx", {"s": CURRENT})
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/media/padding.bin", b"\0" * (4 << 20))   # 4 MiB of zeros: a few KB
    assert path.stat().st_size < 100_000
    monkeypatch.setattr(wbmod, "MAX_UNCOMPRESSED_BYTES", 2 << 20)
    with pytest.raises(DesiredStateError, match=r"zip\.xlsx: refused, the workbook unpacks to 4"):
        read_desired_state(path)
    monkeypatch.setattr(wbmod, "MAX_UNCOMPRESSED_BYTES", 1 << 30)
    monkeypatch.setattr(wbmod, "MAX_MEMBERS", 5)
    with pytest.raises(DesiredStateError, match="parts"):
        read_desired_state(path)


def test_not_a_zip_and_entity_declarations_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DesiredStateError, match="junk.xlsx: not a readable XLSX workbook"):
        read_desired_state(junk)
    laughs = workbook(tmp_path / "laughs.xlsx", {"s": CURRENT})
    patch_sheet(laughs, lambda xml: '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
                + xml.split("?>", 1)[-1], member="xl/workbook.xml")
    with pytest.raises(DesiredStateError, match="declares XML entities"):
        read_desired_state(laughs)


@pytest.mark.parametrize("suffix", [".xls", ".ods"])
def test_formats_that_cannot_be_checked_first_are_refused(tmp_path: Path, suffix) -> None:
    path = tmp_path / f"old{suffix}"
    path.write_bytes(b"anything")
    with pytest.raises(DesiredStateError, match=rf"old\{suffix}: .*save the sheet as \.xlsx"):
        read_desired_state(path)


# -- CSV encodings ---------------------------------------------------------------------------

TEXT = ("phone_number,enabled,address_id,note\n"
        f"+13162429136,yes,{ADDR},Montréal café — Zürich Straße\n"
        "+15626933888,no,,naïve façade\n")


@pytest.mark.parametrize("encoding,bom", [
    ("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"),
    ("utf-16-be", b"\xfe\xff"), ("cp1252", b""), ("mac_roman", b""),
])
def test_csv_encodings_are_detected(tmp_path: Path, encoding, bom) -> None:
    path = tmp_path / f"{encoding}.csv"
    path.write_bytes(bom + TEXT.encode(encoding))
    ds = read_desired_state(path)
    notes = [json.loads(e)["note"] for e in ds.accepted["extras"]]
    assert notes == ["Montréal café — Zürich Straße", "naïve façade"]
    assert ds.rejected.empty


def test_latin1_csv_is_read(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(TEXT.replace(" —", "").encode("latin-1"))   # latin-1 has no dash
    ds = read_desired_state(path)
    assert json.loads(ds.accepted["extras"][1])["note"] == "naïve façade"


def test_utf16_excel_unicode_text_with_tabs(tmp_path: Path) -> None:
    # Excel's "Unicode text": UTF-16 LE with BOM, tab separated (the all-rejected file).
    path = tmp_path / "unicode.csv"
    path.write_bytes(TEXT.replace(",", "\t").encode("utf-16"))
    ds = read_desired_state(path)
    assert len(ds.accepted) == 2 and ds.rejected.empty


# -- DuckDB queries --------------------------------------------------------------------------

@pytest.fixture
def source_db(tmp_path: Path) -> Path:
    path = tmp_path / "src.duckdb"
    con = duckdb.connect(str(path))
    con.execute('CREATE TABLE "odd ""name" (phone_number VARCHAR, enabled VARCHAR)')
    con.execute("INSERT INTO \"odd \"\"name\" VALUES ('+13162429136', 'no')")
    con.close()
    return path


def test_a_select_and_a_with_select_are_read(source_db: Path) -> None:
    assert read_desired_state(source_db, query='SELECT * FROM "odd ""name"').input_rows == 1
    assert read_desired_state(source_db, query='WITH x AS (FROM "odd ""name") '
                              'SELECT * FROM x;').input_rows == 1
    assert read_desired_state(source_db, table='odd "name').input_rows == 1


@pytest.mark.parametrize("query,match", [
    ("SELECT content AS phone_number, 'no' AS enabled FROM read_text('/proc/self/environ')",
     "file system operations are disabled"),
    ("SELECT * FROM read_csv('/etc/passwd')", "file system operations are disabled"),
    ("SELECT * FROM '/etc/hostname'", "the query failed"),
    ("COPY (SELECT 1) TO '{out}'", "must be one SELECT .* got COPY"),
    ("ATTACH '{out}.duckdb' AS x", "got ATTACH"),
    ("INSTALL httpfs", "got "),
    ("LOAD httpfs", "got LOAD"),
    ("SET enable_external_access = true", "got SET"),
    ("SELECT 1 AS phone_number; COPY (SELECT 1) TO '{out}'", "got SELECT, COPY"),
    ("SELECT * FROM glob('/*')", "disabled"),
])
def test_queries_that_reach_outside_the_file_are_refused(source_db: Path, tmp_path: Path,
                                                         query: str, match: str) -> None:
    out = tmp_path / "leak.csv"
    with pytest.raises(DesiredStateError, match=match) as info:
        read_desired_state(source_db, query=query.format(out=out))
    assert not out.exists() and not Path(f"{out}.duckdb").exists()
    assert str(source_db) in str(info.value)


def test_a_lock_down_cannot_be_undone_inside_a_select(source_db: Path) -> None:
    # Settings are statements, refused above; a SELECT cannot change them either.
    ds = read_desired_state(source_db, query=(
        "SELECT '+13162429136' AS phone_number, 'no' AS enabled, "
        "current_setting('enable_external_access')::VARCHAR AS ext, "
        "current_setting('lock_configuration')::VARCHAR AS locked"))
    extras = json.loads(ds.accepted["extras"][0])
    assert extras == {"ext": "false", "locked": "true"}
