"""The plan: one action per accepted desired row, against a snapshot of the account (pure).

Actions: enable, disable, change_address, noop, skip (with a reason). The first rule that applies
decides a row's skip reason:
  1. not in the account (no number with that E.164 / id)
  2. the address is not one of the account's addresses (rows that enable)
  3. the same account number is asked for twice (once by E.164, once by id): identical rows keep
     the first and skip the others; conflicting rows are all skipped
  4. a job is still in flight for the number (design rule 3)
  5. emergency_status is provisioning / deprovisioning (a change would race it)
  6. the number's status does not allow emergency changes (only for rows that would change)
Rules 1-5 skip noop rows too: their "current" values are unsettled or unverifiable.
A number whose emergency_status is provisioning-failed counts as not enabled, so a row that wants
it enabled plans `enable` again. Numbers absent from the desired state never appear.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from emergency_pipeline import telnyx_contract as contract
from emergency_pipeline.duckdb_pool import borrowed, sql_text

ACTIONS = ("enable", "disable", "change_address", "noop", "skip")
ACTIONABLE = ("enable", "disable", "change_address")
PLAN_COLUMNS = [
    "source_file", "source_row", "phone_number", "number_id", "identifier", "id_kind",
    "target_enabled", "target_address_id", "address_given", "current_enabled", "current_address_id",
    "current_emergency_status", "number_status", "action", "reason", "extras",
]


def _text(s: pd.Series) -> pd.Series:
    """Ids and numbers as text (None when missing): an id read as 1.2e18 or 12.0 becomes digits."""
    def one(v):
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)
    if s.dtype == object or str(s.dtype) in ("str", "string"):
        out = s.astype(object)
        return out.where(out.notna(), None)
    return s.astype(object).map(one)


def _flags(s: pd.Series) -> np.ndarray:
    """emergency_enabled of the snapshot as a bool array (missing or unreadable = False)."""
    if pd.api.types.is_bool_dtype(s) and not s.isna().any():
        return s.to_numpy(dtype=bool)
    codes, uniques = pd.factorize(s.to_numpy(dtype=object), use_na_sentinel=False)
    as_bool = np.array([u is True or (isinstance(u, (bool, np.bool_)) and bool(u))
                        or (isinstance(u, str) and u.strip().lower() == "true") for u in uniques]
                       + [False], dtype=bool)
    return as_bool[codes]


def _quoted(values) -> str:
    return ", ".join(map(sql_text, values))


ACTIONABLE_SQL = _quoted(ACTIONABLE)   # for `action IN (...)`


# The plan in SQL over four views (plan_views): acc (the accepted rows, in order), numbers
# (the snapshot), addresses (id), in_flight (identifier); write_plan runs it. A million rows
# are planned inside DuckDB, never as Python objects. Each part names the rule it carries.
#
# The rows are planned a range of positions at a time (PLAN_RANGE_SQL), each range sorted and
# appended in order: one statement over every row held its joins, the rows between and a sort
# of every column at once (100,000 rows: +95 MB, a range at a time +48; 1,000,000: +510 MB in
# 7 s, +320 in 4 s). What each range needs of the whole is made first: the snapshot's numbers
# by E.164 and by id (PLAN_NUMBERS_SQL), and rule 3, which looks across all rows
# (PLAN_DUP_SQL, matched on numbers and positions alone).
PLAN_RANGE_ROWS = 25_000
MAX_PLAN_RANGES = 8
PLAN_NUMBERS_SQL = {
    # A number listed twice counts once, its first sighting. Grouped to the first position
    # and joined back: a window over whole rows cost seconds at a million numbers.
    "plan_by_phone": """
SELECT n.* FROM numbers AS n SEMI JOIN (
    SELECT min(_npos) AS _npos FROM numbers WHERE phone_number IS NOT NULL
    GROUP BY phone_number) USING (_npos)""",
    # Only the ids that rows without an E.164 ask for: most sheets name numbers by E.164,
    # and a copy of the whole account would cost memory for nothing.
    "plan_by_id": """
SELECT n.* FROM numbers AS n SEMI JOIN (
    SELECT min(_npos) AS _npos FROM numbers WHERE id IN (
        SELECT number_id FROM acc WHERE phone_number IS NULL)
    GROUP BY id) USING (_npos)""",
}

# How a desired row (a) finds its number: by E.164, or by id when it has no E.164.
_MATCH = """
    LEFT JOIN plan_by_phone AS p ON a.phone_number = p.phone_number
    LEFT JOIN plan_by_id AS i ON a.phone_number IS NULL AND a.number_id = i.id"""

# rule 3: several desired rows resolved to one account number; only those rows are read whole
PLAN_DUP_SQL = f"""
WITH
m AS (
    SELECT a._pos, coalesce(p.id, i.id) AS m_id
    FROM acc AS a{_MATCH}),
twice AS (
    SELECT m._pos, m.m_id, a.source_file || ' row ' || a.source_row AS label,
           a.emergency_enabled::VARCHAR || '|' || coalesce(a.emergency_address_id, '') AS t
    FROM m JOIN acc AS a USING (_pos)
    WHERE m.m_id IN (SELECT m_id FROM m WHERE m_id IS NOT NULL
                     GROUP BY m_id HAVING count(*) > 1)),
grouped AS (SELECT m_id, count(DISTINCT t) > 1 AS conflicting,
                   arg_min(label, _pos) AS first_label, min(_pos) AS first_pos
            FROM twice GROUP BY m_id),
others AS (SELECT a._pos, string_agg(b.label, ', ' ORDER BY b._pos) AS labels
           FROM twice AS a JOIN twice AS b ON a.m_id = b.m_id AND a._pos <> b._pos
           GROUP BY a._pos)
SELECT t._pos, CASE
    WHEN g.conflicting THEN 'conflicting rows for the same account number '
         || '(by E.164 and by id): ' || o.labels
    WHEN t._pos <> g.first_pos THEN 'the same account number as ' || g.first_label
    END AS dup_reason
FROM twice AS t JOIN grouped AS g USING (m_id) JOIN others AS o USING (_pos)
"""

# The plan of the accepted rows at positions lo < _pos <= hi (parameters $lo, $hi).
PLAN_RANGE_SQL = f"""
WITH
matched AS (
    SELECT a.*, a.phone_number IS NOT NULL AS by_e164,
           coalesce(a.phone_number, a.number_id) AS identifier,
           CASE WHEN a.phone_number IS NOT NULL THEN 'e164' ELSE 'id' END AS id_kind,
           coalesce(p.id, i.id) AS m_id, coalesce(p.phone_number, i.phone_number) AS m_phone,
           coalesce(p.status, i.status) AS nstatus,
           coalesce(p.emergency_status, i.emergency_status) AS estatus,
           coalesce(p.emergency_address_id, i.emergency_address_id) AS cur_address,
           coalesce(p.emergency_enabled, i.emergency_enabled, false) AS cur_flag,
           a.emergency_enabled AS target_enabled, a.emergency_address_id AS target_address
    FROM (SELECT * FROM acc WHERE _pos > $lo AND _pos <= $hi) AS a{_MATCH}),
diffed AS (
    SELECT *, m_id IS NOT NULL AS known, m_id IS NOT NULL AND cur_flag AS cur_on,
           -- provisioning-failed counts as not enabled: enable it again
           CASE WHEN target_enabled
                     AND NOT (m_id IS NOT NULL AND cur_flag
                              AND estatus IS DISTINCT FROM 'provisioning-failed') THEN 'enable'
                WHEN target_enabled AND NOT coalesce(cur_address = target_address, false)
                     THEN 'change_address'
                WHEN target_enabled THEN 'noop'
                WHEN m_id IS NOT NULL AND cur_flag THEN 'disable'
                ELSE 'noop' END AS diff,
           -- rule 2: an enabling row's address must be one of the account's
           target_enabled AND NOT coalesce(target_address IN (
               SELECT id FROM addresses WHERE id IS NOT NULL), false) AS bad_address
    FROM matched),
ruled AS (
    SELECT d.*, dup.dup_reason, CASE
        WHEN NOT known THEN 1
        WHEN bad_address THEN 2
        WHEN dup.dup_reason IS NOT NULL THEN 3
        -- rule 4: a job in flight holds the number (by the sheet's identifier, id or E.164)
        WHEN identifier IN (SELECT identifier FROM in_flight)
             OR m_id IN (SELECT identifier FROM in_flight)
             OR m_phone IN (SELECT identifier FROM in_flight) THEN 4
        WHEN estatus IN ({_quoted(contract.EMERGENCY_STATUSES_IN_TRANSITION)}) THEN 5
        WHEN diff IN ({ACTIONABLE_SQL}) AND NOT coalesce(
             nstatus IN ({_quoted(contract.NUMBER_STATUSES_ALLOWING_EMERGENCY)}), false) THEN 6
        ELSE 0 END AS rule
    FROM diffed AS d LEFT JOIN plan_dup AS dup USING (_pos))
SELECT source_file, source_row::BIGINT AS source_row,
       CASE WHEN known THEN m_phone ELSE phone_number END AS phone_number,
       CASE WHEN known THEN m_id ELSE number_id END AS number_id,
       identifier, id_kind, target_enabled, target_address AS target_address_id,
       address_given, CASE WHEN known THEN cur_on END AS current_enabled,
       cur_address AS current_address_id, estatus AS current_emergency_status,
       nstatus AS number_status,
       CASE WHEN rule > 0 THEN 'skip' ELSE diff END AS action,
       CASE
        WHEN rule = 1 AND by_e164 THEN 'not in the account: no number ' || identifier
        WHEN rule = 1 THEN 'not in the account: no number with id ' || identifier
        WHEN rule = 2 THEN coalesce(address_note, 'address not in the account: '
             || coalesce(target_address, 'none') || ' is not one of the account''s addresses')
        WHEN rule = 3 THEN dup_reason
        WHEN rule = 4 THEN 'a job is already in flight for this number'
        WHEN rule = 5 THEN 'emergency_status is ' || coalesce(estatus, 'none')
             || '; wait until it settles'
        WHEN rule = 6 THEN 'number status ' || coalesce(nstatus, 'none')
             || ' does not allow emergency changes'
        WHEN diff = 'enable' THEN 'emergency is off (or its provisioning failed): enable'
        WHEN diff = 'disable' THEN 'emergency is on: disable'
        WHEN diff = 'change_address' THEN 'address ' || coalesce(cur_address, 'none')
             || ' -> ' || coalesce(target_address, 'none')
        WHEN target_enabled THEN 'already enabled with this address'
        ELSE 'already disabled' END AS reason,
       coalesce(extras, '{{}}') AS extras
FROM ruled ORDER BY _pos
"""


def plan_ranges(rows: int) -> list[tuple[int, int]]:
    """The (lo, hi] position ranges write_plan plans one at a time: about PLAN_RANGE_ROWS rows
    each, and at most MAX_PLAN_RANGES of them (each range reads the whole snapshot once)."""
    count = min(MAX_PLAN_RANGES, max(1, math.ceil(rows / PLAN_RANGE_ROWS)))
    size = max(1, math.ceil(rows / count))
    return [(lo, lo + size) for lo in range(0, max(rows, 1), size)]


def write_plan(con, table: str) -> int:
    """The plan of the views plan_views made, into a new table `table` (PLAN_COLUMNS and
    planned_at, one time for every row), in the accepted rows' order. Returns its rows."""
    rows = con.execute("SELECT count(*) FROM acc").fetchall()[0][0]
    planned_at = con.execute("SELECT now()").fetchall()[0][0]
    for name, sql in PLAN_NUMBERS_SQL.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE plan_dup AS {PLAN_DUP_SQL}")
    select = f"SELECT *, $at::TIMESTAMPTZ AS planned_at FROM ({PLAN_RANGE_SQL})"
    for i, (lo, hi) in enumerate(plan_ranges(rows)):
        con.execute(f"CREATE TABLE {table} AS {select}" if i == 0
                    else f"INSERT INTO {table} {select}", {"lo": lo, "hi": hi, "at": planned_at})
    for name in (*PLAN_NUMBERS_SQL, "plan_dup"):
        con.execute(f"DROP TABLE {name}")
    return rows


_ACC_COLUMNS = {"source_file": "VARCHAR", "source_row": "BIGINT", "phone_number": "VARCHAR",
                "number_id": "VARCHAR", "emergency_enabled": "BOOLEAN",
                "emergency_address_id": "VARCHAR", "address_given": "VARCHAR",
                "address_note": "VARCHAR", "extras": "VARCHAR"}
_NUMBER_COLUMNS = {"id": "VARCHAR", "phone_number": "VARCHAR", "status": "VARCHAR",
                   "emergency_enabled": "BOOLEAN", "emergency_address_id": "VARCHAR",
                   "emergency_status": "VARCHAR"}


def plan_views(con, accepted: str, numbers: str, addresses: str, in_flight: str) -> None:
    """Temp views acc, numbers, addresses, in_flight over the given tables (names as con
    knows them: stage files attached, or frames registered), typed as write_plan reads them."""
    have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {accepted}").fetchall()}
    acc_cols = ", ".join(f"CAST({c if c in have else 'NULL'} AS {t}) AS {c}"
                         for c, t in _ACC_COLUMNS.items())
    con.execute(f"CREATE OR REPLACE TEMP VIEW acc AS SELECT {acc_cols}, "
                f"row_number() OVER () AS _pos FROM {accepted}")
    num_cols = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in _NUMBER_COLUMNS.items())
    con.execute(f"CREATE OR REPLACE TEMP VIEW numbers AS SELECT {num_cols}, "
                f"row_number() OVER () AS _npos FROM {numbers}")
    con.execute("CREATE OR REPLACE TEMP VIEW addresses AS "
                f"SELECT CAST(id AS VARCHAR) AS id FROM {addresses}")
    con.execute("CREATE OR REPLACE TEMP VIEW in_flight AS "
                f"SELECT CAST(identifier AS VARCHAR) AS identifier FROM {in_flight}")


def _objects(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(object).where(frame.notna(), None)


def build_plan(accepted: pd.DataFrame, numbers: pd.DataFrame, addresses: pd.DataFrame,
               in_flight: frozenset[str] | set[str] = frozenset()) -> pd.DataFrame:
    """The plan of frames (tests, small inputs): the same SQL the asset runs on its tables."""
    acc = accepted.reset_index(drop=True).copy()
    for c in ("phone_number", "number_id", "emergency_address_id"):
        acc[c] = _text(acc[c]) if c in acc else None
    acc["emergency_enabled"] = acc["emergency_enabled"].astype(bool)
    nums = _objects(pd.DataFrame({c: _text(numbers[c]) for c in _NUMBER_COLUMNS
                                  if c != "emergency_enabled"}, index=numbers.index))
    nums["emergency_enabled"] = _flags(numbers["emergency_enabled"])
    addrs = pd.DataFrame({"id": _text(addresses["id"]) if len(addresses)
                          else pd.Series([], dtype=object)})
    flight = pd.DataFrame({"identifier": pd.Series(sorted(map(str, in_flight)), dtype=object)})
    frames = {"f_acc": _objects(acc).assign(emergency_enabled=acc["emergency_enabled"].to_numpy()),
              "f_numbers": nums, "f_addresses": _objects(addrs), "f_flight": flight}
    with borrowed() as con:     # the frames' registrations go with the borrowed connection
        for name, frame in frames.items():
            con.register(name, frame)
        plan_views(con, *frames)
        write_plan(con, "plan")
        plan = con.execute("SELECT * EXCLUDE (planned_at) FROM plan").df()
    plan["current_enabled"] = plan["current_enabled"].astype("boolean")
    plan["target_enabled"] = plan["target_enabled"].astype(bool)
    return plan[PLAN_COLUMNS]


def plan_summary(plan: pd.DataFrame) -> pd.DataFrame:
    """Numbers by action and target (enabled + address), for a markdown table."""
    if len(plan) == 0:
        return pd.DataFrame(columns=["action", "target_enabled", "target_address_id", "numbers"])
    g = plan.assign(target_address_id=plan["target_address_id"].fillna("-")).groupby(
        ["action", "target_enabled", "target_address_id"], sort=True, dropna=False).size()
    return g.reset_index(name="numbers")


def plan_summary_markdown(plan: pd.DataFrame) -> str:
    s = plan_summary(plan)
    lines = ["| action | target_enabled | target_address_id | numbers |", "|---|---|---|---:|"]
    lines += [f"| {r.action} | {r.target_enabled} | {r.target_address_id} | {r.numbers} |"
              for r in s.itertuples(index=False)]
    return "\n".join(lines)
