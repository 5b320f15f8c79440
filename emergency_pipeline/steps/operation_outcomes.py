"""Step 6, `emergency_operation_outcomes`: one row per desired number of the run
(analytics/outcomes.py), published to the analytics file (and, when configured, the Parquet
history); the run's old stage folders pruned."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import pandas as pd

from emergency_pipeline.analytics.outcomes import OUTCOMES_SQL, outcome_views
from emergency_pipeline.analytics.parquet_history import export_runs, history_url
from emergency_pipeline.analytics.publish import publish_run
from emergency_pipeline.stage_files import StageRef, attach, prune
from emergency_pipeline.steps.context import RunContext

# error_detail cut short: a long one made each row of the UI's table tall (the SQL in the
# metadata gives it whole).
FAILURES_SAMPLE_SQL = """
SELECT phone_number, result, error_code, error_title,
    CASE WHEN length(error_detail) > 60 THEN left(error_detail, 59) || '…'
         ELSE error_detail END AS error_detail, error_pointer
FROM outcomes WHERE result IN ('failed', 'expired') LIMIT 20
"""


@dataclass(frozen=True)
class RunStages:
    """The stage files the outcomes are made of."""

    desired: StageRef
    resolution: StageRef
    plan: StageRef
    jobs: StageRef


@dataclass(frozen=True)
class OutcomesStep:
    ref: StageRef
    counts: dict[str, int]
    stored_in: str                                   # "history", or "spool" when held
    failures_sample: pd.DataFrame = field(compare=False)
    submit_errors: tuple[str, ...]                   # batches that could not be submitted


def record_outcomes(run: RunContext, stages: RunStages,
                    lease: AbstractContextManager) -> OutcomesStep:
    """The outcomes made and published while `lease` is held (an apply run's account lease,
    released when it ends); the Parquet export and the pruning after."""
    with lease:
        with run.stages.building("outcomes", rows=stages.plan.rows) as con:
            aliases = {"p": stages.plan, "sub": stages.jobs, "d": stages.desired,
                       "r": stages.resolution}
            attach(con, **aliases)
            outcome_views(con, "p.plan", "sub.results", ["d.rejected", "r.rejected"],
                          run_id=run.run_id, source=run.source,
                          applied=bool(stages.jobs.info["applied"]),
                          account=run.account_label)
            con.execute(f"CREATE TABLE outcomes AS {OUTCOMES_SQL}")
            by_result = dict(con.execute("SELECT result, count(*) FROM outcomes GROUP BY ALL "
                                         "ORDER BY ALL").fetchall())
            failures = con.execute(FAILURES_SAMPLE_SQL).df()
            for alias in aliases:
                con.execute(f"DETACH {alias}")
        counts = {"rows": sum(by_result.values()),
                  **{f"result_{r}": int(n) for r, n in by_result.items()}}
        run.log.info("results: " + ", ".join(f"{r} {n}" for r, n in by_result.items()))
        ref = run.stages.ref("outcomes", counts)
        where = publish_run(run.analytics, ref, run.ledger() if run.applies else None,
                            run.run_id)
    if where == "spool":
        run.log.warning(f"{run.analytics.database} is held by another process: the outcomes "
                        f"are kept in {run.analytics.spool_dir} and land at the next write")
    export_history(run)
    prune(run.storage_dir, run.keep_run_tables_days * 86400, keep={run.run_id})
    return OutcomesStep(ref, counts, where, failures,
                        tuple(stages.jobs.info.get("errors") or ()))


def export_history(run: RunContext) -> dict[str, int]:
    """This run's history rows to the shared history location, when there is one."""
    url = history_url(run.history_url)
    if not url:
        return {}
    exported = export_runs(run.analytics, url, run.account_label, [run.run_id], run.run_id)
    if exported:
        run.log.info(f"history: {sum(exported.values())} rows as Parquet files to {url}")
    return exported
