"""Desired-state readers and validation: real files under tmp_path, table-driven, and properties."""

from __future__ import annotations

import csv
import json
import re
import random
import string

import duckdb
import numpy as np
import openpyxl
import pandas as pd
import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emergency_pipeline.desired_state import DesiredStateError, read_desired_state
from emergency_pipeline.desired_state.phones import nanp_digits, nanp_valid, parse_one, parse_phones

ADDR = "1315262044401589175"
NUMBER_ID = "1293385034380736105"


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def write_xlsx(path, rows, title="Sheet", start_row=1, extra_sheets=()):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = title
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            if v is not None:
                ws.cell(row=start_row + i, column=j + 1, value=v)
    for name, srows in extra_sheets:
        other = wb.create_sheet(name)
        for row in srows:
            other.append(row)
    wb.save(path)
    return path


def one(tmp_path, phone, flag="true", address=ADDR, region="US"):
    p = write_csv(tmp_path / "one.csv", [["phone_number", "emergency_enabled",
                                          "emergency_address_id"], [phone, flag, address]])
    return read_desired_state(p, default_region=region, require_rows=False)


# -- phone numbers ------------------------------------------------------------------------------

@pytest.mark.parametrize("cell,e164,number_id,reason", [
    ("+19705555098", "+19705555098", None, None),
    (" +1 (970) 555-5098 ", "+19705555098", None, None),
    ("970-555-5098", "+19705555098", None, None),
    ("19705555098", "+19705555098", None, None),
    ("19705555098.0", "+19705555098", None, None),        # a float written out as text
    ("tel:+19705555098", "+19705555098", None, None),
    ("\u200b+19705555098", "+19705555098", None, None),   # zero-width space from a copy/paste
    ("+44 20 7946 0958", "+442079460958", None, None),
    (NUMBER_ID, None, NUMBER_ID, None),                   # a Telnyx id: digits, not possible
    ("1.97E+10", None, None, "scientific notation"),
    ("1234567890", None, None, "invalid phone number"),   # possible length, no such area code
    ("5551234", None, None, "without its area code"),
    ("+1970555509", None, None, "too short"),
    ("hello", None, None, "not a phone number"),
    ("+1 970 555 5098 ext 12", None, None, "extension"),
    ("", None, None, "missing phone number"),
])
def test_phone_cells(tmp_path, cell, e164, number_id, reason):
    ds = one(tmp_path, cell)
    if reason is None:
        row = ds.accepted.iloc[0]
        assert (row.phone_number if pd.notna(row.phone_number) else None) == e164
        assert (row.number_id if pd.notna(row.number_id) else None) == number_id
    else:
        assert ds.accepted.empty
        rej = ds.rejected.iloc[0]
        assert reason in rej.reason and rej.fix and rej.source_row == 2
        assert rej.column == "phone_number" and rej.value == cell.strip()


def test_default_region_is_configurable(tmp_path):
    assert one(tmp_path, "020 7946 0958", region="GB").accepted.phone_number[0] == "+442079460958"
    assert one(tmp_path, "020 7946 0958", region="US").accepted.empty


def test_unknown_region_raises(tmp_path):
    with pytest.raises(DesiredStateError, match="default_region"):
        one(tmp_path, "+19705555098", region="XX")


def test_fast_path_agrees_with_phonenumbers():
    rng = random.Random(11)
    nats = [str(rng.randrange(2 * 10**9, 10**10)) for _ in range(8000)]
    nats += [rng.choice(["212", "970", "268", "876", "809", "416", "800", "900", "555"])
             + str(rng.randrange(10**6, 10**7)) for _ in range(8000)]
    fast = nanp_valid(pd.Series(nats))
    slow = [phonenumbers.is_valid_number(phonenumbers.parse("+1" + n)) for n in nats]
    assert list(fast) == slow
    assert 0.2 < fast.mean() < 0.9          # the sample exercises both answers


def test_punctuated_and_national_nanp_numbers_take_the_fast_path():
    cells = np.array(["(970) 555-5098", "970.555.5098", "1-970-555-5098", "+1 970 555 5098",
                      "9705555098", "+19705555098", "020 7946 0958", "+2025550100"], dtype=object)
    assert nanp_digits(cells, national=True) == ["9705555098"] * 6 + [None, None]
    # Outside NANP only the international forms are NANP numbers.
    assert nanp_digits(cells, national=False) == [None, None, None, "9705555098", None,
                                                  "9705555098", None, None]


@pytest.mark.parametrize("region", ["US", "JM", "GB"])
def test_nanp_edge_cells_read_as_phonenumbers_reads_them(region):
    cells = ["0 212 555 1234", "02125551234", "(0) 212-555-1234", "+2125551234", "112125551234",
             "1 1 212 555 1234", "+1 (212) 555-1234", "(212) 555-1234", "212-555-123",
             "1-555-555-1234", "+1 311 555 1234", "212 555 1234 x12", "212/555/1234",
             "+12125551234"]
    got = parse_phones(pd.Series(cells, dtype=object), region)
    for i, cell in enumerate(cells):
        want = parse_one(cell, region)
        row = tuple(None if pd.isna(v) else v for v in got[["e164", "number_id", "reason"]].iloc[i])
        assert row == (want.e164, want.number_id, want.reason), cell


_AREAS = ["212", "970", "268", "876", "809", "416", "800", "900", "555", "311", "200", "999"]


@settings(max_examples=600, deadline=None)
@given(region=st.sampled_from(["US", "CA", "JM", "AG", "PR", "GB", "DE"]),
       lead=st.sampled_from(["", "1", "+1", "+", "+2", "0", "11"]),
       area=st.sampled_from(_AREAS), rest=st.integers(0, 10**7 - 1),
       seps=st.lists(st.sampled_from(["", "", "", " ", "-", ".", "(", ")"]),
                     min_size=13, max_size=13),
       odd=st.sampled_from([None, None, None, "/", "x", "+", "1"]), at=st.integers(0, 12))
def test_parse_phones_reads_nanp_cells_as_phonenumbers_does(region, lead, area, rest, seps,
                                                           odd, at):
    """Whatever the fast path takes, it must read exactly as phonenumbers (parse_one) does;
    what it leaves, parse_one reads. Separators, prefixes and regions around its edges, and
    now and then a character it does not take."""
    digits = lead + area + f"{rest:07d}"
    if odd:
        seps[at] = odd
    cell = ("".join(s + d for s, d in zip(seps, digits)) + seps[-1]).strip()
    if not cell:
        return
    got = parse_phones(pd.Series([cell], dtype=object), region).iloc[0]
    want = parse_one(cell, region)
    assert (got.e164, got.number_id, got.reason) == (want.e164, want.number_id, want.reason)


def test_number_id_rule():
    assert parse_one(NUMBER_ID, "US").number_id == NUMBER_ID
    assert parse_one("12345", "US").number_id == "12345"          # too short to be a number
    assert parse_one("9705555098", "US").e164 == "+19705555098"   # a valid number wins
    assert parse_one("+1293385034380736105", "US").reason          # a + is never an id


# -- flags, addresses, columns ------------------------------------------------------------------

@pytest.mark.parametrize("flag,expected", [
    (w, True) for w in ("true", "TRUE", "Yes", "y", "1", "on", "Enabled", " true ")
] + [(w, False) for w in ("false", "No", "N", "0", "OFF", "disabled")])
def test_flag_words(tmp_path, flag, expected):
    ds = one(tmp_path, "+19705555098", flag, ADDR if expected else "")
    assert ds.accepted.emergency_enabled.tolist() == [expected]


@pytest.mark.parametrize("flag,address,reason,column", [
    ("maybe", ADDR, "unreadable emergency_enabled flag", "emergency_enabled"),
    ("", ADDR, "missing emergency_enabled flag", "emergency_enabled"),
    ("true", "", "enabled without an address", "emergency_address_id"),
    ("false", ADDR, "disabled but an address", "emergency_address_id"),
])
def test_flag_and_address_rules(tmp_path, flag, address, reason, column):
    ds = one(tmp_path, "+19705555098", flag, address)
    assert ds.accepted.empty
    assert reason in ds.rejected.reason[0] and ds.rejected.column[0] == column
    assert ds.rejected.fix[0]


@pytest.mark.parametrize("headers", [
    ["phone_number", "emergency_enabled", "emergency_address_id"],
    ["Phone Number", "Emergency Enabled", "Emergency Address ID"],
    ["NUMBER", "enabled", "address_id"],
    ["phone", "E911", "emergency address"],
    ["E.164", "Emergency", "Address-Id"],
    ["DID", "e911", "addressid"],
    ["tn", "enabled?", "emergency_address"],
])
def test_column_aliases(tmp_path, headers):
    p = write_csv(tmp_path / "a.csv", [headers, ["+19705555098", "yes", ADDR]])
    ds = read_desired_state(p)
    assert ds.accepted.emergency_address_id.tolist() == [ADDR]


def test_file_without_its_phone_or_flag_column_is_an_error(tmp_path):
    # Issue 15: a sheet that lost a column rejected every row and the run went green.
    p = write_csv(tmp_path / "a.csv", [["mobile", "state", "site"],
                                       ["+19705555098", "yes", "HQ"], ["+19705555099", "no", ""]])
    with pytest.raises(DesiredStateError, match=r"no phone_number column \(columns found: "
                       r"mobile, state, site\): name a column phone_number"):
        read_desired_state(p, require_rows=False)
    p = write_csv(tmp_path / "b.csv", [["phone", "site"], ["+19705555098", "HQ"]])
    with pytest.raises(DesiredStateError, match="no emergency_enabled column.*e911"):
        read_desired_state(p)


def test_a_sheet_without_a_usable_row_is_an_error(tmp_path):
    p = write_csv(tmp_path / "a.csv", [["phone", "enabled"], ["junk", "no"], ["+19705555098", "maybe"],
                                       ["hello", "no"]])
    with pytest.raises(DesiredStateError, match=r"no usable row, all 3 rejected: 2 x not a phone "
                       r"number \(row 2, phone; fix: .*\); 1 other reason$"):
        read_desired_state(p)
    assert len(read_desired_state(p, require_rows=False).rejected) == 3


def test_rejected_rows_keep_the_normalised_number_and_extras(tmp_path):
    p = write_csv(tmp_path / "a.csv", [["phone", "enabled", "ticket", "site"],
                                       ["(970) 555-5098", "maybe", "T-1", "HQ"],
                                       ["junk", "no", "T-2", ""], ["+19705555099", "no", "", ""]])
    rej = read_desired_state(p).rejected.set_index("source_row")
    assert rej.at[2, "phone_number"] == "+19705555098"      # looked up by E.164 later
    assert json.loads(rej.at[2, "extras"]) == {"ticket": "T-1", "site": "HQ"}
    assert rej.at[3, "phone_number"] == "junk"               # no number: the cell as written
    assert json.loads(rej.at[3, "extras"]) == {"ticket": "T-2", "site": ""}


@pytest.mark.parametrize("cell,why", [
    ("1.31526E+18", "scientific notation"),                   # Excel's CSV of a number cell
    ("1.315262044401589e+18", "scientific notation"),         # an XLSX number cell, read
    ("1315262044401590000", "ends in zeros after 15 digits"),  # Excel's CSV, 0 decimals
    ("1315262044401589175.0", "decimal number"),
])
def test_excel_mangled_ids_are_rejected_with_the_fix(tmp_path, cell, why):
    ds = one(tmp_path, "+19705555098", "true", cell)          # as an address id
    assert ds.accepted.empty
    rej = ds.rejected.iloc[0]
    assert why in rej.reason and rej.column == "emergency_address_id" and rej.value == cell
    assert "format the column as Text" in rej.fix
    ds = one(tmp_path, cell, "false", "")                       # as a number id
    assert ds.accepted.empty and "format the column as Text" in ds.rejected.fix[0]
    # A real 19-digit id (not ending in zeros) is still taken as is.
    assert one(tmp_path, "+19705555098", "true", ADDR).accepted.emergency_address_id[0] == ADDR
    assert one(tmp_path, NUMBER_ID, "false", "").accepted.number_id[0] == NUMBER_ID


def test_extras_are_carried_as_json(tmp_path):
    p = write_csv(tmp_path / "a.csv", [["phone", "enabled", "address_id", "ticket", "note"],
                                       ["+19705555098", "y", ADDR, "CHG-1", 'say "hi"\\ok']])
    extras = json.loads(read_desired_state(p).accepted.extras[0])
    assert extras == {"ticket": "CHG-1", "note": 'say "hi"\\ok'}


# -- row numbers, duplicates, accounting --------------------------------------------------------

def test_csv_row_numbers_count_blank_lines_and_quoted_newlines(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("phone,enabled,address_id,note\n"
                 "+19705555098,yes,1,\n"
                 "\n"
                 '+19705555099,yes,,"two\nlines"\n'
                 "bad,yes,1,\n")
    ds = read_desired_state(p)
    assert ds.accepted.source_row.tolist() == [2]
    assert ds.rejected.source_row.tolist() == [4, 5]
    assert ds.counts()["blank_rows"] == 1


def test_duplicates_collapse_and_conflicts_are_rejected(tmp_path):
    p = write_csv(tmp_path / "a.csv", [
        ["phone", "enabled", "address_id", "ticket"],
        ["+19705555098", "yes", ADDR, "A"],
        ["(970) 555-5098", "true", ADDR, "B"],      # identical target: collapses into row 2
        ["+19705555099", "yes", ADDR, ""],
        ["9705555099", "no", "", ""],               # conflicts with row 4
        ["+19705555099", "no", "", ""],             # and with row 4 again
    ])
    ds = read_desired_state(p)
    assert ds.accepted.source_row.tolist() == [2]
    assert json.loads(ds.accepted.extras[0]) == {"ticket": "A"}
    assert ds.duplicates[["source_row", "duplicate_of_row"]].values.tolist() == [[3, 2]]
    conflicts = ds.rejected.set_index("source_row").reason
    assert "row 5" in conflicts[4] and "row 6" in conflicts[4]
    assert "row 4" in conflicts[5] and "row 6" in conflicts[5]
    assert ds.counts() == {"input_rows": 5, "accepted": 1, "rejected_rows": 3, "rejections": 3,
                           "collapsed_duplicates": 1, "blank_rows": 0}


def test_a_row_with_two_problems_is_one_rejected_row(tmp_path):
    p = write_csv(tmp_path / "a.csv", [["phone", "enabled"], ["junk", "maybe"]])
    ds = read_desired_state(p, require_rows=False)
    assert len(ds.rejected) == 2 and ds.counts()["rejected_rows"] == 1
    ds.check_accounting()


@pytest.mark.parametrize("content", ["", "\n\n", "phone,enabled,address_id\n",
                                     "phone,enabled\n,\n\n"])
def test_empty_csv_is_an_error(tmp_path, content):
    p = tmp_path / "a.csv"
    p.write_text(content)
    with pytest.raises(DesiredStateError, match="empty|no data rows"):
        read_desired_state(p)


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(DesiredStateError, match="no such"):
        read_desired_state(tmp_path / "nope.csv")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DesiredStateError, match="unsupported"):
        read_desired_state(tmp_path / "a.txt")


# -- XLSX ---------------------------------------------------------------------------------------

def test_xlsx_numeric_cells_and_real_row_numbers(tmp_path):
    p = write_xlsx(tmp_path / "a.xlsx", [
        ["Phone", "E911", "Address ID", "Ticket"],
        [19705555098, True, int(ADDR[:15]), 42],     # numbers typed as numbers
        [None, None, None, None],                    # a blank row keeps its number
        [9705555099.0, "no", None, 1.5],
        ["junk", "yes", ADDR, None],
    ], start_row=3)
    ds = read_desired_state(p)
    assert ds.accepted.phone_number.tolist() == ["+19705555098", "+19705555099"]
    assert ds.accepted.source_row.tolist() == [4, 6]
    assert ds.accepted.emergency_address_id[0] == ADDR[:15]
    assert json.loads(ds.accepted.extras[0]) == {"Ticket": "42"}
    assert json.loads(ds.accepted.extras[1]) == {"Ticket": "1.5"}
    assert ds.rejected.source_row.tolist() == [7]


def test_xlsx_id_typed_as_a_number_is_rejected_not_rounded(tmp_path):
    p = write_xlsx(tmp_path / "a.xlsx", [["number", "enabled"], [int(NUMBER_ID) * 1.0, "no"]])
    ds = read_desired_state(p, require_rows=False)
    assert ds.accepted.empty
    assert "scientific notation" in ds.rejected.reason[0]


@pytest.mark.parametrize("sep", [";", "\t"])
def test_csv_with_semicolons_or_tabs(tmp_path, sep):
    p = tmp_path / "a.csv"
    p.write_text(sep.join(["phone", "enabled", "note"]) + "\n"
                 + sep.join(["+19705555098", "no", "a,b"]) + "\n")
    ds = read_desired_state(p)
    assert ds.accepted.phone_number.tolist() == ["+19705555098"]
    assert json.loads(ds.accepted.extras[0]) == {"note": "a,b"}


def test_xlsx_named_sheet(tmp_path):
    p = write_xlsx(tmp_path / "a.xlsx", [["notes"], ["nothing here"]], title="Readme",
                   extra_sheets=[("Numbers", [["phone", "enabled"], ["+19705555098", "no"]])])
    ds = read_desired_state(p, sheet="Numbers")
    assert ds.accepted.phone_number.tolist() == ["+19705555098"]
    assert ds.accepted.source_file[0].endswith("[Numbers]")
    with pytest.raises(DesiredStateError, match="Readme, Numbers"):
        read_desired_state(p, sheet="Nope")
    # The first sheet has no usable columns: the sheet is refused.
    with pytest.raises(DesiredStateError, match="no phone_number column"):
        read_desired_state(p)


def test_xlsx_header_only_is_an_error(tmp_path):
    p = write_xlsx(tmp_path / "a.xlsx", [["phone", "enabled", "address_id"]])
    with pytest.raises(DesiredStateError, match="no data rows"):
        read_desired_state(p)


def test_damaged_xlsx_is_a_clear_error(tmp_path):
    p = tmp_path / "a.xlsx"
    p.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(DesiredStateError, match="not a readable XLSX"):
        read_desired_state(p)


# -- folders and DuckDB -------------------------------------------------------------------------

def test_folder_of_spreadsheets(tmp_path):
    d = tmp_path / "inbox"
    d.mkdir()
    write_csv(d / "a.csv", [["phone", "enabled", "address_id"], ["+19705555098", "yes", ADDR]])
    write_xlsx(d / "b.xlsx", [["number", "e911", "address_id"], [19705555098, "yes", ADDR],
                              [19705555099, "no", None]])
    (d / "~$b.xlsx").write_bytes(b"lock file")
    (d / "readme.txt").write_text("ignored")
    ds = read_desired_state(d)
    assert len(ds.accepted) == 2
    dup = ds.duplicates.iloc[0]
    assert dup.source_file.endswith("b.xlsx") and dup.duplicate_of_file.endswith("a.csv")
    assert ds.files.rows.tolist() == [1, 2]
    ds.check_accounting()


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(DesiredStateError, match="no spreadsheets"):
        read_desired_state(tmp_path)


def test_duckdb_table_and_query(tmp_path):
    db = tmp_path / "desired.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE desired (tn BIGINT, enabled BOOLEAN, address_id VARCHAR, "
                "site VARCHAR, phone2 DOUBLE)")
    con.execute(f"INSERT INTO desired VALUES (19705555098, true, '{ADDR}', 'HQ', 1.0), "
                "(19705555099, false, NULL, NULL, NULL), (NULL, NULL, NULL, NULL, NULL)")
    con.close()
    ds = read_desired_state(db, table="desired")
    assert ds.accepted.phone_number.tolist() == ["+19705555098", "+19705555099"]
    assert ds.accepted.source_row.tolist() == [1, 2]
    assert json.loads(ds.accepted.extras[0]) == {"site": "HQ", "phone2": "1"}
    assert ds.counts()["blank_rows"] == 1
    q = read_desired_state(db, query="SELECT tn, enabled FROM desired WHERE NOT enabled")
    assert q.accepted.phone_number.tolist() == ["+19705555099"]
    with pytest.raises(DesiredStateError, match="tables: desired"):
        read_desired_state(db, table="nope")
    with pytest.raises(DesiredStateError, match="no rows"):
        read_desired_state(db, query="SELECT * FROM desired WHERE false")


# -- properties ---------------------------------------------------------------------------------

HEADERS = ["phone_number", "Phone", "number", "e164", "did", "tn", "emergency_enabled",
           "Enabled", "E911", "emergency", "address_id", "Emergency Address", "ticket", "note",
           "site", "", "junk"]
CELLS = st.one_of(
    st.sampled_from(["+19705555098", "+19705555099", "(970) 555-5100", "9705555101",
                     "19705555102.0", "1.97E+10", NUMBER_ID, "12345", "+44 20 7946 0958",
                     "yes", "no", "TRUE", "off", "maybe", ADDR, "1", "0", "", " ", "None",
                     "NaN", "#N/A"]),
    st.text(max_size=12),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-10**20, max_value=10**20).map(str),
)


@st.composite
def grids(draw):
    width = draw(st.integers(0, 5))
    header = draw(st.lists(st.sampled_from(HEADERS), min_size=width, max_size=width))
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=width + 1), max_size=12))
    return [header] + rows


def _nonblank(rows):
    return [r for r in rows if any(c != "" for c in r)]


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(grid=grids())
def test_any_csv_yields_rows_or_reasons(tmp_path, grid):
    p = write_csv(tmp_path / "g.csv", grid)
    with open(p, newline="", encoding="utf-8") as f:
        expected_rows = len(_nonblank(list(csv.reader(f)))) - 1
    try:
        ds = read_desired_state(p, require_rows=False)
    except DesiredStateError as exc:
        assert expected_rows <= 0 or re.search(r"no (phone_number|emergency_enabled) column",
                                               str(exc))
        return
    assert ds.input_rows == expected_rows
    ds.check_accounting()
    assert ds.rejected.reason.notna().all() and (ds.rejected.reason != "").all()
    assert ds.rejected.fix.notna().all()
    ok = ds.accepted
    assert (ok.phone_number.notna() ^ ok.number_id.notna()).all()
    assert (ok.emergency_enabled == ok.emergency_address_id.notna()).all()
    key = ok.phone_number.fillna("id:" + ok.number_id.fillna(""))
    assert not key.duplicated().any()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(st.lists(st.one_of(
    st.none(), st.booleans(), st.integers(-10**15, 10**15),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from(["+19705555098", "yes", "no", ADDR, "", "x"]),
    st.text(alphabet=string.printable.strip(), max_size=8)), max_size=4), max_size=8))
def test_any_xlsx_yields_rows_or_reasons(tmp_path, rows):
    p = write_xlsx(tmp_path / "g.xlsx", [["phone", "enabled", "address_id", "note"]] + rows)
    try:
        ds = read_desired_state(p)
    except DesiredStateError:
        return
    ds.check_accounting()
    assert ds.input_rows <= len(rows)
    assert np.all(ds.accepted.source_row.to_numpy() >= 2)


def test_csv_encodings_and_ragged_rows(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes("\ufeffphone,enabled,site\n+19705555098,yes\n+19705555099,no,Zürich,extra\n"
                  .encode("utf-8"))
    ds = read_desired_state(p)
    assert ds.accepted.source_row.tolist() == [3]      # row 2 enables without an address
    assert json.loads(ds.accepted.extras[0]) == {"site": "Zürich", "column_4": "extra"}
    p.write_bytes("phone,enabled,site\n+19705555099,no,Café\n".encode("cp1252"))
    assert json.loads(read_desired_state(p).accepted.extras[0]) == {"site": "Café"}
