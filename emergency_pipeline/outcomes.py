"""One outcome row per desired number per run (design rule 5), built without I/O.

Results: succeeded, failed, pending, expired (from jobs); unchanged (noop); skipped (with
the plan's reason); planned (a plan-only run); rejected (a bad spreadsheet row).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

ACTIONABLE = ("enable", "disable", "change_address")

COLUMNS = [
    "run_id", "source", "source_file", "source_row", "phone_number", "number_id", "action",
    "target_enabled", "target_address_id", "address_given", "result", "reason", "batch_id", "job_id",
    "job_status", "error_code", "error_title", "error_detail", "error_pointer", "extras",
    "planned_at", "submitted_at", "finished_at", "recorded_at",
]
_RESULT_FIELDS = ["batch_id", "job_id", "job_status", "result", "reason", "error_code",
                  "error_title", "error_detail", "error_pointer", "submitted_at", "finished_at"]


def _results_frame(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_dict(results, orient="index")
    for col in _RESULT_FIELDS:
        if col not in frame.columns:
            frame[col] = None
    frame = frame[_RESULT_FIELDS]
    frame.index.name = "_key"
    return frame.reset_index()


def _lookup(rows: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """Results for each row, by identifier first, then by number id, then by E.164."""
    found = pd.DataFrame(index=rows.index, columns=_RESULT_FIELDS, dtype=object)
    for key in ("identifier", "number_id", "phone_number"):
        todo = found["result"].isna() & rows[key].notna()
        if not todo.any() or results.empty:
            continue
        hit = rows.loc[todo, [key]].reset_index().merge(
            results, left_on=key, right_on="_key", how="inner").set_index("index")
        found.loc[hit.index, _RESULT_FIELDS] = hit[_RESULT_FIELDS].astype(object)
    return found


def build_outcomes(plan: pd.DataFrame, rejected: pd.DataFrame,
                   results: dict[str, dict[str, Any]], *, run_id: str, source: str,
                   applied: bool, planned_at: datetime, recorded_at: datetime) -> pd.DataFrame:
    rows = plan.copy()
    found = _lookup(rows, _results_frame(results))
    out = pd.DataFrame({c: rows[c] if c in rows.columns else None for c in COLUMNS},
                       index=rows.index).astype(object)
    out["target_enabled"] = rows["target_enabled"]
    out["result"] = None
    action = rows["action"]

    noop = action.eq("noop")
    out.loc[noop, "result"] = "unchanged"

    skip = action.eq("skip")
    out.loc[skip, "result"] = "skipped"
    # Not submitted by this run, but in an earlier run's job that this run followed: the
    # number's result is that job's (it may already show the target, hence noop).
    followed = (noop | skip) & found["result"].notna()
    out.loc[followed, _RESULT_FIELDS] = found.loc[followed, _RESULT_FIELDS]
    out.loc[followed, "reason"] = (
        "in a job submitted by an earlier run; " + found.loc[followed, "reason"].fillna("")
    ).str.rstrip("; ")

    act = action.isin(ACTIONABLE)
    if applied:
        out.loc[act, _RESULT_FIELDS] = found.loc[act, _RESULT_FIELDS]
        lost = act & out["result"].isna()
        out.loc[lost, "result"] = "skipped"
        out.loc[lost, "reason"] = "not submitted in this run"
    else:
        out.loc[act, "result"] = "planned"
        out.loc[act, "reason"] = "plan-only run: apply was not requested"

    out["run_id"], out["source"] = run_id, source
    out["planned_at"], out["recorded_at"] = planned_at, recorded_at
    return pd.concat([out, _rejected_rows(rejected, run_id, source, planned_at, recorded_at)],
                     ignore_index=True)[COLUMNS]


def _rejected_rows(rejected: pd.DataFrame, run_id: str, source: str, planned_at: datetime,
                   recorded_at: datetime) -> pd.DataFrame:
    if rejected is None or rejected.empty:
        return pd.DataFrame(columns=COLUMNS)
    # A row may be rejected for several columns; it still gets exactly one outcome.
    text = ("column " + rejected["column"].astype(str) + ": " + rejected["reason"].astype(str)
            + " (fix: " + rejected["fix"].astype(str) + ")")
    grouped = rejected.assign(_text=text).groupby(["source_file", "source_row"], sort=False,
                                                  dropna=False)
    first = grouped.first()
    out = pd.DataFrame(index=range(len(first)), columns=COLUMNS, dtype=object)
    out["source_file"] = first.index.get_level_values(0)
    out["source_row"] = first.index.get_level_values(1)
    out["reason"] = grouped["_text"].agg("; ".join).to_numpy()
    for column in ("phone_number", "extras"):   # the E.164 form where it parsed; the sheet's
        if column in first.columns:              # other columns (ticket, site, ...)
            out[column] = first[column].to_numpy()
    out["result"] = "rejected"
    out["run_id"], out["source"] = run_id, source
    out["planned_at"], out["recorded_at"] = planned_at, recorded_at
    return out
