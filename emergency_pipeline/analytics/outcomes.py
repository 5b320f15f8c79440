"""One outcome row per desired number per run (design rule 5), in SQL over the run's tables.

Results: succeeded, failed, pending, expired (from jobs); unchanged (noop); skipped (with
the plan's reason); planned (a plan-only run); rejected (a bad spreadsheet row).

OUTCOMES_SQL reads four relations: `plan` (the plan stage), `results` (per identifier, what
its job or the submission said: applying/number_result.py), `rejected` (the rows the desired state and
the address resolution rejected, one row per problem) and `params` (one row: run_id,
source, applied, account, recorded_at). Each row carries the number's setting before the
change, as the run's snapshot read it (enabled_before, address_id_before). A number's result is looked up by the plan's identifier,
then its id, then its E.164.
"""

from __future__ import annotations

from emergency_pipeline.planning.plan import ACTIONABLE_SQL

COLUMNS = [
    "run_id", "source", "source_file", "source_row", "phone_number", "number_id", "action",
    "target_enabled", "target_address_id", "address_given", "result", "reason", "batch_id", "job_id",
    "job_status", "error_code", "error_title", "error_detail", "error_pointer", "extras",
    "planned_at", "submitted_at", "finished_at", "recorded_at",
    "enabled_before", "address_id_before", "applied", "account",
]
RESULT_FIELDS = ["batch_id", "job_id", "job_status", "result", "reason", "error_code",
                 "error_title", "error_detail", "error_pointer", "submitted_at", "finished_at",
                 "job_target_enabled", "job_target_address_id"]


def _found(field: str) -> str:
    """The field of the first result found: by identifier, then id, then E.164."""
    return (f"CASE WHEN r1.result IS NOT NULL THEN r1.{field} "
            f"WHEN r2.result IS NOT NULL THEN r2.{field} ELSE r3.{field} END")


_FOUND = ",\n           ".join(f"{_found(f)} AS f_{f}" for f in RESULT_FIELDS)


def _pick(field: str) -> str:
    """A result field of an outcome row: the job's where this run's row has one."""
    return (f"CASE WHEN action IN ({ACTIONABLE_SQL}) AND planned.applied THEN f_{field} "
            f"WHEN action IN ('noop', 'skip') AND same_target THEN f_{field} END")


OUTCOMES_SQL = f"""
WITH looked AS (
    SELECT p.*, {_FOUND}
    FROM plan AS p
    LEFT JOIN results AS r1 ON r1.identifier = p.identifier
    LEFT JOIN results AS r2 ON r2.identifier = p.number_id
    LEFT JOIN results AS r3 ON r3.identifier = p.phone_number),
targeted AS (
    -- A number of this plan that was in an earlier run's job this run followed takes that
    -- job's result only when the job set this plan's target: a result for another run's
    -- target must never read as this run's success.
    SELECT *, f_result IS NOT NULL
              AND f_job_target_enabled = target_enabled::VARCHAR
              AND (f_job_target_enabled = 'false'
                   OR f_job_target_address_id IS NOT DISTINCT FROM target_address_id)
              AS same_target
    FROM looked),
planned AS (
    SELECT l.*, params.applied,
           CASE
            WHEN action IN ('noop', 'skip') AND same_target THEN f_result
            WHEN action = 'noop' THEN 'unchanged'
            WHEN action = 'skip' THEN 'skipped'
            WHEN NOT params.applied THEN 'planned'
            ELSE coalesce(f_result, 'skipped') END AS out_result,
           CASE
            -- not submitted by this run, but in an earlier run's job that this run followed
            WHEN action IN ('noop', 'skip') AND same_target
                 THEN rtrim('in a job submitted by an earlier run; ' || coalesce(f_reason, ''),
                            '; ')
            WHEN action IN ('noop', 'skip') AND f_result IS NOT NULL
                 THEN l.reason || '; it was in job ' || coalesce(f_job_id, '?')
                      || ' of an earlier run, for another target (that job: ' || f_result
                      || ')'
            WHEN action IN ('noop', 'skip') THEN l.reason
            WHEN NOT params.applied THEN 'plan-only run: apply was not requested'
            WHEN f_result IS NULL THEN 'not submitted in this run'
            ELSE f_reason END AS out_reason
    FROM targeted AS l, params),
problems AS (
    -- A row may be rejected for several columns; it still gets exactly one outcome.
    SELECT source_file, source_row::BIGINT AS source_row,
           string_agg('column ' || "column" || ': ' || reason || ' (fix: ' || fix || ')', '; '
                      ORDER BY _pos) AS reason,
           arg_min(phone_number, _pos) AS phone_number, arg_min(extras, _pos) AS extras,
           min(_pos) AS first_pos
    FROM rejected GROUP BY source_file, source_row)
SELECT params.run_id, params.source, source_file, source_row::BIGINT AS source_row,
       phone_number, number_id, action, target_enabled, target_address_id, address_given,
       out_result AS result, out_reason AS reason,
       {_pick("batch_id")} AS batch_id, {_pick("job_id")} AS job_id,
       {_pick("job_status")} AS job_status, {_pick("error_code")} AS error_code,
       {_pick("error_title")} AS error_title, {_pick("error_detail")} AS error_detail,
       {_pick("error_pointer")} AS error_pointer, extras, planned_at,
       TRY_CAST({_pick("submitted_at")} AS TIMESTAMPTZ) AS submitted_at,
       TRY_CAST({_pick("finished_at")} AS TIMESTAMPTZ) AS finished_at,
       params.recorded_at, current_enabled AS enabled_before,
       current_address_id AS address_id_before, params.applied, params.account
FROM planned, params
UNION ALL BY NAME
SELECT params.run_id, params.source, source_file, source_row, phone_number,
       'rejected' AS result, reason, extras, params.recorded_at,
       (SELECT min(planned_at) FROM plan) AS planned_at, params.applied, params.account
FROM (SELECT * FROM problems ORDER BY first_pos), params
"""


_REJECTED_COLUMNS = {"source_file": "VARCHAR", "source_row": "BIGINT", "column": "VARCHAR",
                     "value": "VARCHAR", "reason": "VARCHAR", "fix": "VARCHAR",
                     "phone_number": "VARCHAR", "extras": "VARCHAR"}


def outcome_views(con, plan: str, results: str, rejected: list[str], *, run_id: str,
                  source: str, applied: bool, account: str | None = None) -> None:
    """The relations OUTCOMES_SQL reads, over tables con knows (stage files attached)."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW plan AS SELECT * FROM {plan}")
    # Every result field as text: a column of a frame that held only None arrives untyped.
    have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {results}").fetchall()}
    con.execute("CREATE OR REPLACE TEMP VIEW results AS SELECT " + ", ".join(
        f"CAST({c if c in have else 'NULL'} AS VARCHAR) AS {c}"
        for c in ["identifier", *RESULT_FIELDS]) + f" FROM {results}")
    parts = []
    for table in rejected:
        have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()}
        parts.append("SELECT " + ", ".join(
            f'CAST({f"{chr(34)}{c}{chr(34)}" if c in have else "NULL"} AS {t}) AS "{c}"'
            for c, t in _REJECTED_COLUMNS.items()) + f" FROM {table}")
    con.execute("CREATE OR REPLACE TEMP VIEW rejected AS SELECT *, row_number() OVER () AS "
                "_pos FROM (" + " UNION ALL ".join(parts) + ")")
    con.execute("CREATE OR REPLACE TEMP TABLE params AS SELECT ?::VARCHAR AS run_id, "
                "?::VARCHAR AS source, ?::BOOLEAN AS applied, ?::VARCHAR AS account, "
                "now() AS recorded_at", [run_id, source, applied, account])
