"""Every table a run leaves behind, normalised, and the comparison of two such dumps.

What is dumped (all of it through files and SQL, no package module imported, so that the
package can be restructured under it):

- `duckdb:<name>`: every table and view of the analytics DuckDB file;
- `safety:<name>`: every table of the safety store (the SQLite file under DAGSTER_HOME);
- `file:<path>`: the CSV files next to the database (the plan's full list under plans/,
  the coverage export under coverage/), and the coverage page's HTML, line by line.

What is normalised (values that differ from run to run by nature, never by behaviour):

- moments of the run itself: a TIMESTAMP, an epoch number or an ISO text within the run's
  time window becomes "<now>" (an earlier one, such as a generated account's created_at,
  stays: a bug that wrote 1970 or a shifted zone still shows);
- UUIDs (Dagster run ids, Telnyx job ids; a job's id comes from the order in which
  concurrent POSTs reach the server) become "run#1", "uuid#1"...: run ids in the order of
  the runs, the others in order of first appearance, operation_outcomes read first in a
  stable order, so a number that lands in another job still shows;
- the emulator's port (in base URLs and account keys), the work folder ("<work>"), the
  lease holder's host and pid.

Rows are compared as multisets (sorted): no table promises an order. Files keep their
order, which is what a reader of the CSV sees.
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
                 r"|\d{8}T\d{6}Z")
# The first table read when ids are numbered: one row per desired row, a stable order.
ANCHOR = "duckdb:operation_outcomes"
BY_COLUMN = {"pid": "<pid>", "host": "<host>"}


@dataclass(frozen=True)
class Context:
    """What marks a value as this run's own: its time window (epoch seconds), the run ids
    in order, the work folder and the emulator's port."""
    since: float
    until: float
    run_ids: tuple[str, ...]
    workdir: str
    port: int


def _in_window(ctx: Context, moment: float) -> bool:
    return ctx.since <= moment <= ctx.until


def _iso_moment(text: str) -> float | None:
    try:
        if "T" in text and len(text) == 16 and text.endswith("Z"):       # 20261207T065050Z
            return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=timezone.utc).timestamp()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


class Normaliser:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.labels = {run: f"run#{k}" for k, run in enumerate(ctx.run_ids, 1)}
        self.port = re.compile(rf"(127\.0\.0\.1|localhost|loopback|\[::1\]):{ctx.port}\b")

    def unknown(self, row: list[Any]) -> list[str]:
        """The UUIDs of `row` not numbered yet."""
        return [u for v in row if isinstance(v, str) and "-" in v
                for u in UUID.findall(v) if u not in self.labels]

    def learn(self, found: list[str]) -> None:
        for u in found:
            self.labels.setdefault(u, f"uuid#{len(self.labels) + 1}")

    def text(self, value: str) -> str:
        # The cheap tests first: most values (numbers, ids, reasons) need none of it.
        if "-" in value and len(value) >= 36:
            value = UUID.sub(lambda m: self.labels.get(m.group(), "<uuid>"), value)
        if "/" in value:
            value = value.replace(self.ctx.workdir, "<work>")
        if ":" in value:
            value = self.port.sub(r"\1:<port>", value)
        if ":" in value or "Z" in value:
            value = ISO.sub(self._moment, value)
        return value

    def _moment(self, m: re.Match) -> str:
        at = _iso_moment(m.group())
        return "<now>" if at is not None and _in_window(self.ctx, at) else m.group()

    def column(self, name: str, kind: str) -> Callable[[Any], Any]:
        """The normaliser of one column's values, chosen once per column."""
        if name.lower() in BY_COLUMN:
            fixed = BY_COLUMN[name.lower()]
            return lambda v: None if v is None else fixed
        if kind.startswith(("TIMESTAMP", "DATE")):   # read as epoch seconds (_duckdb_tables)
            return self._epoch
        if kind in ("VARCHAR", "TEXT", "csv", "html"):
            return lambda v: None if v is None else self.text(v)
        return self.value

    def _epoch(self, value: float | None) -> Any:
        if value is None or _in_window(self.ctx, value):
            return None if value is None else "<now>"
        return datetime.fromtimestamp(value, timezone.utc).isoformat()

    def value(self, value: Any) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, datetime):
            at = (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
            return self._epoch(at)
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, (int, float)):
            return "<now>" if _in_window(self.ctx, float(value)) else value
        if not isinstance(value, str):
            value = json.dumps(value, default=str, sort_keys=True)
        return self.text(value)


@dataclass(frozen=True)
class Table:
    """A table as found: its columns ([name, type]) and how to read its rows (read twice,
    never kept raw: a 100,000-number workload's tables hold about two million rows)."""
    columns: list[list[str]]
    fetch: Callable[[], list[list[Any]]]
    ordered: bool = False             # files: their order is what a reader sees


def _duckdb_tables(path: Path) -> dict[str, Table]:
    def fetch(name: str, cols: list[list[str]]) -> Callable[[], list[list[Any]]]:
        # Moments as epoch seconds: Python datetimes with zones cost more than the rest.
        select = ", ".join(f'epoch("{c}")' if k.startswith(("TIMESTAMP", "DATE")) else f'"{c}"'
                           for c, k in cols)

        def rows() -> list[list[Any]]:
            with duckdb.connect(str(path), read_only=True) as con:
                return [list(r) for r in con.execute(f'SELECT {select} FROM "{name}"').fetchall()]
        return rows
    out: dict[str, Table] = {}
    with duckdb.connect(str(path), read_only=True) as con:
        names = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT internal AND NOT temporary "
            "UNION SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary"
        ).fetchall()
        for (name,) in names:
            cols = [[c[0], c[1]] for c in con.execute(f'DESCRIBE "{name}"').fetchall()]
            out[f"duckdb:{name}"] = Table(cols, fetch(name, cols))
    return out


def _sqlite_tables(path: Path) -> dict[str, Table]:
    def fetch(name: str) -> Callable[[], list[list[Any]]]:
        def rows() -> list[list[Any]]:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                return [list(r) for r in con.execute(f'SELECT * FROM "{name}"')]
            finally:
                con.close()
        return rows
    out: dict[str, Table] = {}
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                            "AND name NOT LIKE 'sqlite_%'").fetchall()
        for (name,) in names:
            cols = [[c[1], c[2]] for c in con.execute(f'PRAGMA table_info("{name}")')]
            out[f"safety:{name}"] = Table(cols, fetch(name))
    finally:
        con.close()
    return out


def _csv_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _files(root: Path) -> dict[str, Table]:
    out: dict[str, Table] = {}
    for folder in ("plans", "coverage"):
        for path in sorted((root / folder).glob("*")):
            rel = f"file:{folder}/{path.name}"
            if path.suffix == ".csv":
                header = next(iter(_csv_rows(path)), [])
                out[rel] = Table([[h, "csv"] for h in header],
                                 lambda p=path: _csv_rows(p)[1:], ordered=True)
            elif path.suffix == ".html":
                out[rel] = Table([["line", "html"]], lambda p=path: [
                    [x] for x in p.read_text(encoding="utf-8").splitlines()], ordered=True)
    return out


def raw_dump(database: Path, safety: Path) -> dict[str, Table]:
    """The tables of the analytics file, the safety store and the files beside them."""
    tables = _duckdb_tables(database)
    if safety.exists():
        tables.update(_sqlite_tables(safety))
    tables.update(_files(database.parent))
    return tables


def _masked(row: list[Any]) -> str:
    return UUID.sub("<uuid>", json.dumps(row, default=str))


def normalise(tables: dict[str, Table], ctx: Context) -> dict[str, Any]:
    """The dump: {name: {"columns", "rows"}}, each row the JSON text of its normalised
    values, ids numbered by first appearance (ANCHOR first, then by name)."""
    norm = Normaliser(ctx)
    order = sorted(tables, key=lambda n: (n != ANCHOR, n))
    for name in order:
        norm.learn(norm.unknown([name]))
        rows = tables[name].fetch()
        if not any(norm.unknown(row) for row in rows):
            continue   # nothing to number here (the run ids are numbered already)
        for row in (rows if tables[name].ordered else sorted(rows, key=_masked)):
            norm.learn(norm.unknown(row))
    out: dict[str, Any] = {}
    for name in order:
        t = tables[name]
        fns = [norm.column(c, k) for c, k in t.columns]
        rows = [json.dumps([f(v) for f, v in zip(fns, row)]) for row in t.fetch()]
        if not t.ordered:
            rows.sort()
        out[norm.text(name)] = {"columns": t.columns, "rows": rows}
    return dict(sorted(out.items()))


def write_dump(dump: dict[str, Any], path: Path, meta: dict[str, Any]) -> None:
    """One row per line, so a change to the golden file reads as a diff of rows."""
    lines = ["{", f'"meta": {json.dumps(meta, sort_keys=True)},', '"tables": {']
    for k, (name, t) in enumerate(dump.items()):
        lines.append(f'{json.dumps(name)}: {{"columns": {json.dumps(t["columns"])}, "rows": [')
        if t["rows"]:
            lines.append(",\n".join(t["rows"]))
        lines[-1] += "]}" + ("," if k < len(dump) - 1 else "")
    lines.append("}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_dump(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    tables = {name: {"columns": t["columns"], "rows": [json.dumps(r) for r in t["rows"]]}
              for name, t in data["tables"].items()}
    return tables, data["meta"]


def _row_text(columns: list[list[str]], row: list[Any], only: set[int] | None = None) -> str:
    return ", ".join(f"{c[0]}={v!r}" for k, (c, v) in enumerate(zip(columns, row))
                     if only is None or k in only)


def compare(before: dict[str, Any], after: dict[str, Any], show: int = 3) -> tuple[bool, str]:
    """(equal, the report): per table, rows before/after and equal or DIFFERENT with the
    first `show` differing rows of each side."""
    lines, same = [], True
    width = max((len(n) for n in {*before, *after}), default=10)
    for name in sorted({*before, *after}):
        b, a = before.get(name), after.get(name)
        if b is None or a is None:
            same = False
            side = "before" if b is None else "after"
            lines.append(f"{name:<{width}}  {'-' if b is None else len(b['rows']):>7} / "
                         f"{'-' if a is None else len(a['rows']):<7}  DIFFERENT (no such "
                         f"table {side})")
            continue
        b_rows, a_rows = Counter(b["rows"]), Counter(a["rows"])
        columns_same = b["columns"] == a["columns"]
        order_same = b["rows"] == a["rows"] or b_rows == a_rows and not name.startswith("file:")
        ok = columns_same and b_rows == a_rows and order_same
        same &= ok
        lines.append(f"{name:<{width}}  {len(b['rows']):>7} / {len(a['rows']):<7}  "
                     f"{'equal' if ok else 'DIFFERENT'}")
        if ok:
            continue
        if not columns_same:
            lines.append(f"    columns before: {b['columns']}")
            lines.append(f"    columns after:  {a['columns']}")
            continue
        gone = sorted((b_rows - a_rows).elements())
        new = sorted((a_rows - b_rows).elements())
        if not gone and not new:
            lines.append("    the same rows in another order")
        cols = b["columns"]
        for k, (g, n) in enumerate(zip(gone, new)):
            if k == show:
                break
            g_row, n_row = json.loads(g), json.loads(n)
            diff = {i for i, (x, y) in enumerate(zip(g_row, n_row)) if x != y}
            lines.append(f"    - {_row_text(cols, g_row)}")
            lines.append(f"    + changed: {_row_text(cols, n_row, diff)}")
        for label, extra in (("-", gone[len(new):]), ("+", new[len(gone):])):
            for row in extra[:show]:
                lines.append(f"    {label} {_row_text(cols, json.loads(row))}")
        lines.append(f"    ({len(gone)} rows only before, {len(new)} only after)")
    return same, "\n".join(lines)
