"""The one-line errors an operator reads (issue 27): the sheet a workbook was read from and
how to name another, the fix for a new address's names (blank cells or a missing column),
the path named once, and messages kept short."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from _workbooks import workbook
from emergency_pipeline.addressing.places import _missing_fix
from emergency_pipeline.desired_state import DesiredStateError, write_desired_state

ROWS = [["phone_number", "emergency_enabled"], ["+12135550100", "false"]]


def _read(path: Path, tmp_path: Path, **kw) -> None:
    con = duckdb.connect(str(tmp_path / "stage.duckdb"))
    try:
        write_desired_state(str(path), con, **kw)
    finally:
        con.close()


def test_a_workbook_whose_data_is_on_another_sheet_names_it(tmp_path: Path) -> None:
    book = workbook(tmp_path / "book.xlsx",
                    {"Notes": [["E911 sheet owned by ops; see tab E911"]], "E911": ROWS},
                    active="Notes")
    with pytest.raises(DesiredStateError) as err:
        _read(book, tmp_path)
    text = str(err.value)
    assert "read sheet 'Notes'" in text and "--sheet 'E911'" in text
    assert len(text.replace(str(book), "<path>")) <= 200    # short, whatever the path
    _read(book, tmp_path, sheet="E911")         # the hint works


def test_a_missing_column_on_the_active_sheet_names_the_others(tmp_path: Path) -> None:
    book = workbook(tmp_path / "book.xlsx",
                    {"Summary": [["site", "count"], ["HQ", "3"]], "Numbers": ROWS})
    with pytest.raises(DesiredStateError) as err:
        _read(book, tmp_path)
    assert "no phone_number column" in str(err.value)
    assert "read sheet 'Summary'" in str(err.value) and "--sheet 'Numbers'" in str(err.value)


def test_the_fix_for_new_address_names_is_the_one_that_applies() -> None:
    blank = _missing_fix(["first_name", "last_name"],
                         {"first_name": "Contact First Name", "last_name": "Contact Last Name"})
    assert blank.startswith("fill the blank Contact First Name, Contact Last Name cells")
    assert "add " not in blank
    absent = _missing_fix(["first_name", "last_name", "business_name"], {})
    assert absent.startswith("add columns first_name, last_name, business_name")
    assert "fill" not in absent
    mixed = _missing_fix(["first_name", "business_name"], {"first_name": "First"})
    assert "fill the blank First cell" in mixed and "add a column business_name" in mixed
    for text in (blank, absent, mixed):
        assert len(text) <= 200 and "default_<name>" in text
