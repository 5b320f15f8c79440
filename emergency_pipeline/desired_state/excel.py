"""Ids that a spreadsheet program has already corrupted.

Excel keeps 15 significant digits of a number: a 19-digit Telnyx id typed into a cell that is
not formatted as Text is stored rounded, and shows (or is saved to CSV) as 1.31526E+18, as
1.315262523861456e+18, or as 1315262523861460000. The digits are gone; no reader can bring
them back, so such an id is refused with the fix rather than guessed or looked up.
"""

from __future__ import annotations

import re

SCIENTIFIC = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?[eE][+-]?[0-9]+")
_DECIMAL = re.compile(r"[0-9]+\.[0-9]+")
_DIGITS = re.compile(r"[0-9]+")
EXCEL_DIGITS = 15
FIX = "format the column as Text in the spreadsheet and type (or paste) the full id again"


def mangled_id(value: str) -> str | None:
    """Why `value` (a stripped cell) cannot be an id a spreadsheet kept intact, or None."""
    if not value:
        return None
    if SCIENTIFIC.fullmatch(value):
        return f"id in scientific notation ({value}): the spreadsheet stored it as a number " \
               f"and kept only {EXCEL_DIGITS} of its digits"
    if _DECIMAL.fullmatch(value) and len(value.replace(".", "").lstrip("0")) > EXCEL_DIGITS:
        return f"id written as a decimal number ({value}): the spreadsheet stored it as a " \
               f"number and kept only {EXCEL_DIGITS} of its digits"
    if _DIGITS.fullmatch(value):
        significant = value.lstrip("0")
        if len(significant) > EXCEL_DIGITS and set(significant[EXCEL_DIGITS:]) == {"0"}:
            return f"id {value} ends in zeros after {EXCEL_DIGITS} digits, as a spreadsheet " \
                   "writes a long id it has rounded"
    return None
