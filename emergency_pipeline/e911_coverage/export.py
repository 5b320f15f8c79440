"""The coverage report as files a compliance officer can file: one HTML page (the counts, what
each category means, the first numbers of each) and a CSV of every number to act on.

    write_export(con, folder, account, taken_at, counts) -> [html path, csv path]

`con` holds the table `coverage` (e911_coverage/report.py). The CSV is written by DuckDB (a million rows
never pass through Python); the page lists at most PAGE_ROWS numbers per category.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from emergency_pipeline.e911_coverage.report import CATEGORIES
from emergency_pipeline.duckdb_pool import sql_text

PAGE_ROWS = 25
MEANING = {
    "active_without_e911": "active numbers with E911 off (Kari's Law: 911 must reach help "
                           "from every line)",
    "unmanaged": "numbers no desired-state sheet manages (their E911 is nobody's job)",
    "drift": "numbers whose E911 or address differs from the last target the pipeline "
             "applied (changed outside it, e.g. in the portal)",
    "address_not_validated": "numbers whose E911 address was created without validation "
                             "for emergency use (the API's validate_address: false; RAY "
                             "BAUM'S Act: a dispatchable location)",
}
CSV_COLUMNS = ["phone_number", "number_id", "status", "emergency_enabled", "emergency_status",
               "emergency_address_id", "address", "address_validated", "managed_by",
               "last_applied_enabled", "last_applied_address_id", "last_applied_at",
               "last_result", *CATEGORIES]


def export_stem(account: str, taken_at: str) -> str:
    when = datetime.fromisoformat(taken_at).strftime("%Y%m%dT%H%M%SZ")
    return f"e911-coverage-{re.sub(r'[^A-Za-z0-9._-]+', '_', account)}-{when}"


def write_export(con: Any, folder: Path, account: str, taken_at: str,
                 counts: dict[str, int]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    stem = export_stem(account, taken_at)
    csv = folder / f"{stem}.csv"
    flagged = " OR ".join(CATEGORIES)
    con.execute(f"COPY (SELECT {', '.join(CSV_COLUMNS)} FROM coverage WHERE {flagged} "
                f"ORDER BY phone_number) TO {sql_text(csv)} (HEADER, DELIMITER ',')")
    sections = []
    for c in CATEGORIES:
        rows = con.execute(
            "SELECT phone_number, status, emergency_enabled, coalesce(address, ''), "
            f"coalesce(managed_by, ''), coalesce(last_result, '') FROM coverage WHERE {c} "
            f"ORDER BY phone_number LIMIT {PAGE_ROWS}").fetchall()
        sections.append(_section(c, counts[c], rows, csv.name))
    page = folder / f"{stem}.html"
    page.write_text(_page(account, taken_at, counts, sections, csv.name), encoding="utf-8")
    return [page, csv]


def _section(category: str, total: int, rows: list[tuple], csv_name: str) -> str:
    e = html.escape
    head = f"<h2>{e(category)}: {total}</h2><p>{e(MEANING[category])}</p>"
    if not rows:
        return head + "<p>None.</p>"
    body = "".join("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    more = (f"<p>and {total - len(rows)} more: see {e(csv_name)}</p>"
            if total > len(rows) else "")
    return (head + "<table><tr><th>number</th><th>status</th><th>E911</th><th>address</th>"
            "<th>managed by</th><th>last result</th></tr>" + body + "</table>" + more)


def _page(account: str, taken_at: str, counts: dict[str, int], sections: list[str],
          csv_name: str) -> str:
    e = html.escape
    summary = "".join(f"<tr><td>{e(k)}</td><td>{v}</td></tr>" for k, v in counts.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>E911 coverage: {e(account)}</title>
<style>body{{font-family:sans-serif;font-size:12px;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:2px 6px;text-align:left}}h2{{font-size:14px}}</style>
</head><body>
<h1>E911 coverage of account {e(account)}</h1>
<p>Read from the account at {e(taken_at)} (UTC), read-only. Every number to act on is in
{e(csv_name)}.</p>
<table>{summary}</table>
{''.join(sections)}
</body></html>
"""
