"""Real XLSX files for the hostile-input tests: hidden and active sheets, and sheets whose XML
is patched after saving (a stray far cell, a huge declared dimension)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path


def workbook(path: Path, sheets: dict[str, list[list]], hidden: tuple[str, ...] = (),
             active: str | None = None) -> Path:
    """Saved by openpyxl, then hidden sheets and the active tab set in xl/workbook.xml
    directly: openpyxl refuses an all-hidden workbook and moves a hidden active tab."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    wb.save(path)

    def edit(xml: str) -> str:
        for name in hidden:
            xml = re.sub(rf'(<sheet name="{re.escape(name)}"[^>]*?)state="visible"',
                         r'\1state="hidden"', xml)
        tab = list(sheets).index(active) if active is not None else 0
        xml = re.sub(r'activeTab="\d+"', "", xml)
        return xml.replace("<workbookView", f'<workbookView activeTab="{tab}"', 1)

    return patch_sheet(path, edit, member="xl/workbook.xml")


def patch_sheet(path: Path, edit, member: str = "xl/worksheets/sheet1.xml") -> Path:
    """Rewrite one member of the zip through edit(xml_text) -> xml_text."""
    with zipfile.ZipFile(path) as zf:
        parts = {i.filename: zf.read(i) for i in zf.infolist()}
    parts[member] = edit(parts[member].decode()).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    return path


def far_cell(xml: str, ref: str = "XFD1048576") -> str:
    """A cell at `ref`, in a row of its own, as the issue's 1.7 KB file had."""
    row = int(re.sub(r"[A-Za-z]", "", ref))
    cell = f'<row r="{row}"><c r="{ref}" t="inlineStr"><is><t>x</t></is></c></row>'
    return xml.replace("</sheetData>", cell + "</sheetData>")


def declared(xml: str, ref: str) -> str:
    return re.sub(r'<dimension ref="[^"]*"', f'<dimension ref="{ref}"', xml)
