"""Step 5, `emergency_update_jobs`: the plan's batches, submitted as update_emergency_settings
jobs when the run applies, followed to their end; every batch recorded in the ledger before
its POST and closed with its results (applying/submission.py). Writes the `submission`
stage (results, batches) and the history's emergency_jobs.

Before anything is sent: the disable guard (rule 2), and no batch may target an address the
resolution did not create (rule 7). After: the results other runs stopped before recording
are published (rule 5), and the successes of earlier runs' jobs this run followed are left
to the next snapshot to verify.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from emergency_pipeline.addressing.resolution import is_placeholder
from emergency_pipeline.analytics.publish import publish_orphans
from emergency_pipeline.applying.number_result import results_frame
from emergency_pipeline.applying.read_back import resumed_successes
from emergency_pipeline.applying.submission import (
    RunIdentity, Settings, Submission, batches_frame, submit_and_follow,
)
from emergency_pipeline.planning.batching import Batch, other_names, plan_batches
from emergency_pipeline.planning.disable_guard import SafetyGuardError, check_disable_guard
from emergency_pipeline.safety_store import Ledger
from emergency_pipeline.stage_files import StageRef, attached
from emergency_pipeline.steps.context import RunContext, StepFailed
from emergency_pipeline.telnyx_contract import DEFAULT_MAX_JOBS_IN_FLIGHT


@dataclass(frozen=True)
class ApplySettings:
    """The apply step's settings (the asset's ApplyConfig): batching, the disable guard's
    limits, and how jobs are sent and followed."""

    max_batch_size: int = 1000
    max_disable_count: int = 100
    max_disable_share: float = 0.05
    allow_mass_disable: bool = False
    follow_timeout_seconds: float = 900.0
    max_jobs_in_flight: int = DEFAULT_MAX_JOBS_IN_FLIGHT
    wave_size: int = 50

    def submission(self) -> Settings:
        return Settings(max_jobs_in_flight=self.max_jobs_in_flight, wave_size=self.wave_size,
                        follow_timeout_seconds=self.follow_timeout_seconds)


@dataclass(frozen=True)
class JobsStep:
    ref: StageRef
    applied: bool
    counts: dict[str, int]
    batches: pd.DataFrame = field(compare=False)   # the run's batches, for the metadata
    history_rows: int                              # emergency_jobs rows written
    errors: tuple[str, ...]                        # batches that could not be submitted


def update_jobs(run: RunContext, hold: Any, plan: StageRef, snapshot: StageRef, *,
                settings: ApplySettings) -> JobsStep:
    """`hold`: the account lease this step holds (its fence is confirmed before each POST);
    a plan-only run's holds nothing."""
    with attached(p=plan) as con:
        batches = plan_batches(con, "p.plan", max_size=settings.max_batch_size)
        aliases = other_names(con, "p.plan") if run.applies else {}
    if run.applies and any(is_placeholder(b.emergency_address_id) for b in batches):
        # Cannot be configured (one switch for the run): a bug, never sent.
        raise StepFailed("some numbers target addresses the resolution did not create: "
                         "nothing submitted; report this with the run id")
    try:
        check_disable_guard(plan.counts.get("action_disable", 0), snapshot.counts["numbers"],
                            settings.max_disable_count, settings.max_disable_share,
                            allow=settings.allow_mass_disable)
    except SafetyGuardError as exc:
        if run.applies:
            raise StepFailed(str(exc)) from None
        run.log.warning(f"an apply run would be refused: {exc}")
    if not run.applies:
        return _plan_only(run, batches)
    identity = RunIdentity(run.run_id, hold.holder.account, run.source, run.outcomes_db)
    with run.client() as client:
        ledger = run.ledger()
        done = submit_and_follow(
            client, ledger, identity, batches,
            snapshot_at=datetime.fromisoformat(snapshot.info["taken_at"]),
            aliases=aliases, log=run.log, fence=hold, settings=settings.submission())
        # Another run's outcomes file, opened the way this run opens its own.
        publish_orphans(ledger, identity.account, run.run_id, run.log,
                        lambda path: dataclasses.replace(run.analytics, database=path),
                        own_db=identity.outcomes_db, account_label=run.account_label)
        _defer_resumed_successes(run, ledger, identity.account, done, snapshot)
    jobs = batches_frame(done.batches)
    counts = {"batches_planned": len(batches), "jobs": int(jobs["job_id"].notna().sum()),
              "batches_resumed_from_earlier_runs": done.resumed,
              "jobs_adopted": done.adopted, "batches_abandoned": done.abandoned,
              "numbers_left_to_others_jobs": done.taken_out,
              **{f"batches_{s}": int(n) for s, n in jobs["state"].value_counts().items()}}
    ref = run.stages.write("submission",
                           {"results": results_frame(done.results.values()), "batches": jobs},
                           counts=counts, info={"applied": True, "errors": list(done.errors)})
    if len(jobs):
        run.analytics.write("emergency_jobs", run.stamp(jobs).assign(recorded_at=_now()))
    return JobsStep(ref, True, counts, jobs, len(jobs), done.errors)


def _plan_only(run: RunContext, batches: list[Batch]) -> JobsStep:
    run.log.info(f"plan-only run: {len(batches)} batch(es) not submitted (apply them "
                 "with --apply, or the run tag emergency_pipeline/apply: <account>)")
    counts = {"batches_planned": len(batches)}
    ref = run.stages.write("submission", {"results": results_frame(())}, counts=counts,
                           info={"applied": False, "errors": []})
    shown = pd.DataFrame(
        [{"numbers": len(b.identifiers), "emergency_enabled": b.emergency_enabled,
          "emergency_address_id": b.emergency_address_id,
          "actions": ", ".join(f"{a} {n}" for a, n in b.action_counts)} for b in batches],
        columns=["numbers", "emergency_enabled", "emergency_address_id", "actions"])
    return JobsStep(ref, False, counts, shown, 0, ())


def _defer_resumed_successes(run: RunContext, ledger: Ledger, account: str, done: Submission,
                             snapshot: StageRef) -> None:
    """Earlier runs' jobs this run saw succeed: left to the next snapshot to verify."""
    now = _now().timestamp()
    for earlier, rows in resumed_successes(done.results, run.run_id, snapshot).items():
        ledger.defer_verification(account, earlier, now, rows)
        run.log.info(f"{len(rows)} numbers whose job of run {earlier} succeeded in this "
                     "run are left to verify at the next snapshot")


def _now() -> datetime:
    return datetime.now(timezone.utc)
