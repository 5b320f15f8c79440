"""The desired state written into DuckDB tables, chunk by chunk: memory bounded by the chunk.

    summary = write_desired_state("desired.csv", con, default_region="US")

writes into the open, writable connection `con` (replacing tables of the same names):

    accepted    ACCEPTED_COLUMNS of validate.py, in source order
    rejected    REJECTED_COLUMNS, ordered by source_file, source_row (a row's problems in the
                order validate_table finds them)
    duplicates  DUPLICATE_COLUMNS: identical copies collapsed into an accepted row
    files       source_file, sheet, rows, blank_rows, accepted, rejected_rows, collapsed

Each chunk of a source (readers.py) is validated by validate_table and appended to staging
tables; duplicates, which may span chunks and files, are resolved in SQL at the end with the
rules the in-memory reader had: rows of one number (E.164, or number id) asking for the same
thing (flag, address id, address fields) collapse into the first, rows asking for different
things are all rejected, each naming the others. The final tables appear only when the whole
source was read; on DesiredStateError none is replaced and the staging tables are dropped.
"""

from __future__ import annotations

import itertools
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from .columns import PHONE
from .csv_stream import Reparse
from .errors import DesiredStateError
from .readers import Counts, RawTable, list_sources, readers, source_name
from .validate import (ACCEPTED_COLUMNS, REJECTED_COLUMNS, address_place,
                       duplicate_key, validate_table)

# Rows validated at a time, as pandas object columns (about 1 KB a row while validated):
# 50,000 held a 100,000-row sheet's peak 25 MB lower than 100,000, for half a second more
# at 1,000,000 rows (each chunk's append into DuckDB has a fixed cost).
CHUNK_ROWS = 50_000
FILES_COLUMNS = ["source_file", "sheet", "rows", "blank_rows", "accepted", "rejected_rows",
                 "collapsed"]
_TYPES = {"source_row": "BIGINT", "duplicate_of_row": "BIGINT", "emergency_enabled": "BOOLEAN",
          "rows": "BIGINT", "blank_rows": "BIGINT", "accepted": "BIGINT",
          "rejected_rows": "BIGINT", "collapsed": "BIGINT"}
_CONFLICT_FIX = "keep one row per number (or make the rows agree)"


@dataclass(frozen=True)
class DesiredSummary:
    input_rows: int
    accepted: int
    rejected_rows: int
    rejections: int
    collapsed_duplicates: int
    blank_rows: int
    sheets_read: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        """As DesiredState.counts()."""
        out = asdict(self)
        del out["sheets_read"]
        return out


def check_region(default_region: str) -> str:
    import phonenumbers

    if default_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise DesiredStateError(f"unknown default_region {default_region!r} (e.g. 'US', 'CA')")
    return default_region.upper()


def write_desired_state(source: str | Path, con, *, sheet: str | None = None,
                        default_region: str = "US", table: str | None = None,
                        query: str | None = None, chunk_rows: int = CHUNK_ROWS,
                        require_rows: bool = True) -> DesiredSummary:
    """Read, validate and write a desired state into `con` (see the module doc). Raises
    DesiredStateError if it cannot be read, has no data rows, lacks its phone or flag column,
    or (require_rows) every row is rejected; other bad rows are rejected with a reason and fix."""
    region = check_region(default_region)
    sources = list_sources(source, sheet=sheet, table=table, query=query)
    stage = _Stage(con, region)
    try:
        with tempfile.TemporaryDirectory(prefix="desired-") as work:
            for path, kind in sources:
                stage.read(path, kind, sheet=sheet, table=table, query=query,
                           chunk_rows=chunk_rows, workdir=Path(work))
        return stage.finish(require_rows)
    finally:
        stage.drop()


def _with_sheet_hint(exc: DesiredStateError, path: Path, kind: str, counts: Counts,
                     named: str | None) -> DesiredStateError:
    """A workbook whose sheet read holds no usable table: say which sheet was read and how to
    name another (the data is often on a tab that is not the active one)."""
    if kind != "xlsx" or counts.sheet is None or named is not None:
        return exc
    from .workbook import other_sheets

    others = other_sheets(path, counts.sheet)
    if not others:
        return exc
    # The fix is the other sheet: the general words about empty sheets only lengthen it.
    said = str(exc).replace("; an empty desired state is never an instruction", "")
    more = f" (or {', '.join(repr(o) for o in others[1:4])})" if len(others) > 1 else ""
    return DesiredStateError(f"{said}; read sheet {counts.sheet!r} (the active one): try "
                             f"--sheet {others[0]!r}{more}")


def _columns_sql(columns: list[str]) -> str:
    return ", ".join(f'"{c}" {_TYPES.get(c, "VARCHAR")}' for c in columns)


def _select(columns: list[str], alias: str = "") -> str:
    return ", ".join(f'{alias}"{c}"' for c in columns)


class _Stage:
    def __init__(self, con, region: str) -> None:
        self.con = con
        self.region = region
        tag = uuid.uuid4().hex[:8]    # two writers into one database never share a table
        self.acc, self.rej, self.dup, self.col = (f"_desired_{n}_{tag}" for n in
                                                 ("acc", "rej", "dup", "collapsed"))
        self.view = f"_desired_chunk_{tag}"
        self.acc_ord = itertools.count()
        self.rej_ord = itertools.count()
        self.files: list[Counts] = []
        con.execute(f"CREATE TABLE {self.acc} ({_columns_sql(ACCEPTED_COLUMNS)}, "
                    "_ord BIGINT, _key VARCHAR, _place VARCHAR)")
        con.execute(f"CREATE TABLE {self.rej} ({_columns_sql(REJECTED_COLUMNS)}, _ord BIGINT)")

    def drop(self) -> None:
        for t in (self.acc, self.rej, self.dup, self.col):
            self.con.execute(f"DROP TABLE IF EXISTS {t}")

    def read(self, path: Path, kind: str, *, chunk_rows: int, **kw) -> None:
        for reader in readers(path, kind, chunk_rows=chunk_rows, **kw):
            counts = Counts(source_name(path, kind, kw["table"]))
            acc_mark, rej_mark = next(self.acc_ord), next(self.rej_ord)
            try:
                for raw in reader(counts):
                    self._add(raw)
            except DesiredStateError as exc:
                raise _with_sheet_hint(exc, path, kind, counts, kw.get("sheet")) from None
            except Reparse:
                # This parser cannot read the file as the rules say: forget what it gave.
                self.con.execute(f"DELETE FROM {self.acc} WHERE _ord >= ?", [acc_mark])
                self.con.execute(f"DELETE FROM {self.rej} WHERE _ord >= ?", [rej_mark])
                continue
            self.files.append(counts)
            return
        raise AssertionError(f"{path}: no parser read it")   # the csv module reads any text

    def _add(self, raw: RawTable) -> None:
        accepted, rejected = validate_table(raw, self.region)
        if len(rejected):
            rejected = rejected.sort_values("source_row", kind="stable", ignore_index=True)
            rejected["_ord"] = [next(self.rej_ord) for _ in range(len(rejected))]
            self._append(self.rej, rejected)
        if len(accepted):
            accepted["_ord"] = [next(self.acc_ord) for _ in range(len(accepted))]
            accepted["_key"] = duplicate_key(accepted)
            accepted["_place"] = address_place(accepted)
            self._append(self.acc, accepted)

    def _append(self, table: str, df: pd.DataFrame) -> None:
        self.con.register(self.view, df)
        try:
            self.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {self.view}")
        finally:
            self.con.unregister(self.view)

    def _resolve_duplicates(self) -> None:
        con, acc = self.con, self.acc
        target = ("CASE WHEN emergency_enabled THEN 'True' ELSE 'False' END || '|' || "
                  "coalesce(emergency_address_id, '') || '|' || _place")
        # Keys seen twice, found by their hashes first: a 5,000,000-row sheet's keys would
        # make a large hash table, its 8-byte hashes a small one.
        con.execute(f"""
            CREATE TABLE {self.dup} AS
            WITH twice AS (SELECT hash(_key) AS h FROM {acc} GROUP BY 1 HAVING count(*) > 1)
            SELECT _key, count(DISTINCT {target}) > 1 AS conflict, min(_ord) AS first_ord
            FROM {acc} WHERE hash(_key) IN (SELECT h FROM twice)
            GROUP BY _key HAVING count(*) > 1""")
        # Each conflicting row is rejected naming the others, in source order.
        label = ("CASE WHEN b.source_file = a.source_file THEN '' ELSE b.source_file || ' ' END"
                 " || 'row ' || b.source_row || ' (' || CASE WHEN b.emergency_enabled THEN "
                 "'enable with ' || coalesce(b.emergency_address_id, b._place) "
                 "ELSE 'disable' END || ')'")
        ident = "coalesce(a.phone_number, 'id ' || a.number_id)"
        con.execute(f"""
            INSERT INTO {self.rej} BY NAME
            SELECT a.source_file, a.source_row, ? AS "column", {ident} AS value,
                   'conflicting rows for the same number: '
                       || string_agg({label}, '; ' ORDER BY b._ord) AS reason,
                   ? AS fix, {ident} AS phone_number, a.extras, ? + a._ord AS _ord
            FROM {acc} a JOIN {self.dup} d ON a._key = d._key AND d.conflict
            JOIN {acc} b ON b._key = a._key AND b._ord <> a._ord
            GROUP BY a._ord, a.source_file, a.source_row, a.phone_number, a.number_id, a.extras
            """, [PHONE, _CONFLICT_FIX, next(self.rej_ord)])
        con.execute(f"""
            CREATE TABLE {self.col} AS
            SELECT b.source_file, b.source_row, b.phone_number, b.number_id,
                   f.source_file AS duplicate_of_file, f.source_row AS duplicate_of_row
            FROM {acc} b JOIN {self.dup} d ON b._key = d._key AND NOT d.conflict
                                           AND b._ord <> d.first_ord
            JOIN {acc} f ON f._ord = d.first_ord
            ORDER BY b._ord""")
        # DELETE keeps the order of the rows that stay.
        con.execute(f"DELETE FROM {acc} USING {self.dup} d WHERE {acc}._key = d._key "
                    f"AND (d.conflict OR {acc}._ord <> d.first_ord)")

    def _per_file(self) -> pd.DataFrame:
        files = pd.DataFrame({"source_file": [c.source_file for c in self.files],
                              "sheet": pd.Series([c.sheet for c in self.files], dtype=object),
                              "rows": [c.rows for c in self.files],
                              "blank_rows": [c.blank_rows for c in self.files]})
        for name, sql in (
                ("accepted", f"SELECT source_file, count(*) FROM {self.acc} GROUP BY 1"),
                ("rejected_rows", f"SELECT source_file, count(DISTINCT source_row) "
                                  f"FROM {self.rej} GROUP BY 1"),
                ("collapsed", f"SELECT source_file, count(*) FROM {self.col} GROUP BY 1")):
            per = dict(self.con.execute(sql).fetchall())
            files[name] = files["source_file"].map(per).fillna(0).astype("int64")
        return files[FILES_COLUMNS]

    def finish(self, require_rows: bool) -> DesiredSummary:
        self._resolve_duplicates()
        con = self.con
        files = self._per_file()
        # source_file names the sheet only when the run named it; sheets_read always does.
        sheets = tuple(c.source_file if c.source_file.endswith(f"[{c.sheet}]")
                       else f"{c.source_file}[{c.sheet}]" for c in self.files if c.sheet)
        summary = DesiredSummary(
            input_rows=int(files["rows"].sum()), accepted=int(files["accepted"].sum()),
            rejected_rows=int(files["rejected_rows"].sum()),
            rejections=con.execute(f"SELECT count(*) FROM {self.rej}").fetchone()[0],
            collapsed_duplicates=int(files["collapsed"].sum()),
            blank_rows=int(files["blank_rows"].sum()), sheets_read=sheets)
        if summary.accepted + summary.rejected_rows + summary.collapsed_duplicates \
                != summary.input_rows:
            raise AssertionError(f"desired-state accounting broken: {summary.counts()}")
        if require_rows and summary.accepted == 0:
            raise DesiredStateError(self._no_usable_row(files, summary))
        con.execute(f"CREATE OR REPLACE TABLE accepted AS SELECT {_select(ACCEPTED_COLUMNS)} "
                    f"FROM {self.acc}")
        con.execute(f"CREATE OR REPLACE TABLE rejected AS SELECT {_select(REJECTED_COLUMNS)} "
                    f"FROM {self.rej} ORDER BY source_file, source_row, _ord")
        con.execute(f"CREATE OR REPLACE TABLE duplicates AS SELECT * FROM {self.col}")
        con.execute(f"CREATE OR REPLACE TABLE files ({_columns_sql(FILES_COLUMNS)})")
        if len(files):
            self._append("files", files)
        return summary

    def _no_usable_row(self, files: pd.DataFrame, summary: DesiredSummary) -> str:
        """Why a sheet gave nothing to plan: the first reason, its row and fix."""
        reasons = self.con.execute(f"""
            SELECT reason, count(*), arg_min(source_row, k), arg_min("column", k),
                   arg_min(fix, k)
            FROM (SELECT *, row_number() OVER (ORDER BY source_file, source_row, _ord) AS k
                  FROM {self.rej})
            GROUP BY reason ORDER BY min(k)""").fetchall()
        # Short (about 200 characters): the first reason with its fix; the others are
        # counted (the run's rejections list them). A reason's parenthesised detail (the
        # parser's) is left out.
        reason, n, row, column, fix = reasons[0]
        more = len(reasons) - 1
        return (f"{', '.join(files['source_file'])}: no usable row, all {summary.rejected_rows} "
                f"rejected: {n} x {reason.split(' (')[0]} (row {row}, {column}; fix: {fix})"
                + (f"; {more} other reason{'s' if more > 1 else ''}" if more > 0 else ""))
