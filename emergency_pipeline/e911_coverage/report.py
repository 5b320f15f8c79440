"""E911 coverage of a whole account, for compliance (Kari's Law, RAY BAUM'S Act): per number its
E911 state and address, whether a desired-state sheet manages it, the last target a job set
and its last result, and four categories to act on.

    coverage_views(con, account)   # over n.numbers, n.addresses (a snapshot stage) and,
                                   # when attached as h, the analytics history
    con.execute(f"CREATE TABLE coverage AS {COVERAGE_SQL}")
    counts(con) -> dict[str, int]

Categories (each a boolean column, and a view in the analytics file):
- active_without_e911: the number's status is active and E911 is off;
- unmanaged: no desired-state source's latest run has the number;
- drift: E911 or its address differs from the last applied target: the target the latest
  applied run set (succeeded) or found already so (unchanged) for the number; someone
  changed it outside the pipeline, e.g. in the portal;
- address_not_validated: the number's E911 address has `validate_address: false`, the only
  validation field the API's Address has (created without validation for emergency use).
  An address the API says nothing about is not counted.
"""

from __future__ import annotations

from typing import Any

from emergency_pipeline.duckdb_pool import sql_text

CATEGORIES = ("active_without_e911", "unmanaged", "drift", "address_not_validated")
VIEWS = {f"coverage_{c}": c for c in CATEGORIES}
_ADDRESS_FIELDS = ("street_address", "extended_address", "locality", "administrative_area",
                   "postal_code", "country_code", "validate_address")

# The history's facts per number id (rows that named a number by its E.164 only are keyed
# through the snapshot). `h_outcomes` is empty when there is no history yet.
COVERAGE_SQL = """
WITH keyed AS (
    SELECT o.*, coalesce(o.number_id, p.id) AS nid
    FROM h_outcomes AS o LEFT JOIN n.numbers AS p
      ON o.number_id IS NULL AND p.phone_number = o.phone_number),
applied_runs AS (
    SELECT run_id FROM keyed GROUP BY run_id
    HAVING coalesce(bool_or(applied), false)
        OR bool_or(result IN ('succeeded', 'failed', 'pending', 'expired'))),
last_applied AS (
    -- The target an applied run set (succeeded) or found already so (unchanged).
    SELECT nid, arg_max(target_enabled, recorded_at) AS last_applied_enabled,
           arg_max(target_address_id, recorded_at) AS last_applied_address_id,
           max(recorded_at) AS last_applied_at, arg_max(run_id, recorded_at) AS last_applied_run
    FROM keyed SEMI JOIN applied_runs USING (run_id)
    WHERE result IN ('succeeded', 'unchanged') AND nid IS NOT NULL GROUP BY nid),
last_result AS (
    SELECT nid, arg_max(result, recorded_at) AS last_result, max(recorded_at) AS last_result_at
    FROM keyed SEMI JOIN applied_runs USING (run_id)
    WHERE result <> 'rejected' AND nid IS NOT NULL GROUP BY nid),
latest_runs AS (SELECT source, arg_max(run_id, recorded_at) AS run_id FROM keyed GROUP BY source),
managed AS (
    SELECT nid, string_agg(DISTINCT source, ', ' ORDER BY source) AS managed_by
    FROM keyed SEMI JOIN latest_runs USING (source, run_id)
    WHERE result <> 'rejected' AND nid IS NOT NULL GROUP BY nid)
SELECT params.account, params.run_id, params.taken_at,
       x.id AS number_id, x.phone_number, x.status, x.emergency_enabled, x.emergency_status,
       x.emergency_address_id,
       CASE WHEN x.emergency_address_id IS NOT NULL THEN concat_ws(', ', a.street_address,
            a.extended_address, a.locality,
            nullif(trim(concat_ws(' ', a.administrative_area, a.postal_code)), ''),
            a.country_code) END AS address,
       CASE lower(a.validate_address) WHEN 'true' THEN true WHEN 'false' THEN false END
           AS address_validated,
       m.managed_by, l.last_applied_enabled, l.last_applied_address_id, l.last_applied_at,
       l.last_applied_run, r.last_result, r.last_result_at,
       coalesce(x.status = 'active' AND NOT x.emergency_enabled, false) AS active_without_e911,
       m.nid IS NULL AS unmanaged,
       coalesce(l.nid IS NOT NULL AND (
           x.emergency_enabled IS DISTINCT FROM l.last_applied_enabled
           OR (l.last_applied_enabled
               AND x.emergency_address_id IS DISTINCT FROM l.last_applied_address_id)), false)
           AS drift,
       coalesce(x.emergency_enabled AND lower(a.validate_address) = 'false', false)
           AS address_not_validated
FROM n.numbers AS x
LEFT JOIN addr AS a ON a.id = x.emergency_address_id
LEFT JOIN managed AS m ON m.nid = x.id
LEFT JOIN last_applied AS l ON l.nid = x.id
LEFT JOIN last_result AS r ON r.nid = x.id, params
"""

_HISTORY_COLUMNS = {"run_id": "VARCHAR", "source": "VARCHAR", "phone_number": "VARCHAR",
                    "number_id": "VARCHAR", "target_enabled": "BOOLEAN",
                    "target_address_id": "VARCHAR", "result": "VARCHAR",
                    "recorded_at": "TIMESTAMPTZ", "applied": "BOOLEAN", "account": "VARCHAR"}


def _have(con: Any, relation: str) -> set[str]:
    return {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}


def coverage_views(con: Any, *, account: str, run_id: str, taken_at: str,
                   history: bool) -> None:
    """The relations COVERAGE_SQL reads: `addr` (the snapshot's addresses, every field
    present), `h_outcomes` (this account's rows of h.operation_outcomes, or none when
    `history` is False) and `params`."""
    have = _have(con, "n.addresses")
    con.execute("CREATE OR REPLACE TEMP VIEW addr AS SELECT CAST(id AS VARCHAR) AS id, " + ", ".join(
        f"CAST({f if f in have else 'NULL'} AS VARCHAR) AS {f}" for f in _ADDRESS_FIELDS)
        + " FROM n.addresses")
    found = history and bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'h' AND "
        "table_name = 'operation_outcomes'").fetchall()[0][0])
    cols = _have(con, "h.operation_outcomes") if found else set()
    select = ", ".join(f"CAST({c if c in cols else 'NULL'} AS {t}) AS {c}"
                       for c, t in _HISTORY_COLUMNS.items())
    if found:   # rows from before the account column belong to whichever account ran them
        literal = sql_text(account)    # a view takes no parameters
        column = "account" if "account" in cols else "NULL"
        con.execute(f"CREATE OR REPLACE TEMP VIEW h_outcomes AS SELECT {select} FROM "
                    f"h.operation_outcomes WHERE coalesce(CAST({column} AS VARCHAR), "
                    f"{literal}) = {literal}")
    else:
        con.execute(f"CREATE OR REPLACE TEMP VIEW h_outcomes AS SELECT {select} WHERE false")
    con.execute("CREATE OR REPLACE TEMP TABLE params AS SELECT ?::VARCHAR AS account, "
                "?::VARCHAR AS run_id, ?::TIMESTAMPTZ AS taken_at", [account, run_id, taken_at])


def counts(con: Any, table: str = "coverage") -> dict[str, int]:
    row = con.execute(
        f"SELECT count(*), count(*) FILTER (emergency_enabled), "
        + ", ".join(f"count(*) FILTER ({c})" for c in CATEGORIES) + f" FROM {table}"
    ).fetchall()[0]
    return dict(zip(("numbers", "e911_enabled", *CATEGORIES), map(int, row)))


def views_sql() -> str:
    """One view per category over the latest coverage of each account (analytics file)."""
    out = []
    for view, column in VIEWS.items():
        out.append(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM e911_coverage "
                   f"WHERE {column} ORDER BY account, phone_number;")
    return "\n".join(out)
