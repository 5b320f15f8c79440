"""Submitting batches as update_emergency_settings jobs and following them to their end.

Safety rules from the design carried out here:
- never two jobs in flight for the same number: open ledger batches are resumed (followed,
  or their job looked up) before anything new is submitted;
- a batch is recorded in the ledger before its POST and its job id right after it;
- the client never retries a job POST blindly (it looks for the job first).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from emergency_pipeline import ledger
from emergency_pipeline.batching import Batch
from emergency_pipeline.client import JobRejected, TelnyxAPIError, TelnyxClient, job_matches
from emergency_pipeline.contract import DEFAULT_MAX_JOBS_IN_FLIGHT, JOB_TERMINAL_STATUSES
from emergency_pipeline.refusals import MAX_SPLIT_REQUESTS, narrow_refusal
from emergency_pipeline.store import Store


@dataclass
class ApplyState:
    """What happened to each batch of a run (resumed or submitted)."""

    batches: dict[str, Batch] = field(default_factory=dict)
    batch_job: dict[str, str] = field(default_factory=dict)          # batch_id -> job_id
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)    # job_id -> latest job
    # identifier -> (batch_id, error dict) for numbers Telnyx refused at submission (422)
    refused: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    submitted_at: dict[str, datetime] = field(default_factory=dict)  # batch_id -> when
    splits_left: int = MAX_SPLIT_REQUESTS   # extra POSTs for narrowing refusals (refusals.py)
    resumed: int = 0
    adopted: int = 0
    abandoned: int = 0


def _error_dict(err: Any) -> dict[str, Any]:
    return {"code": err.code, "title": err.title, "detail": err.detail, "pointer": err.pointer}


def resume_open_batches(client: TelnyxClient, store: Store, run_id: str, log: Any,
                        state: ApplyState) -> None:
    """Pick up batches an earlier run recorded but did not see to the end."""
    open_ = ledger.open_batches(store)
    if not open_:
        return
    log.info(f"resuming {len(open_)} open batch(es) from earlier runs")
    unanswered = [o for o in open_ if o.job_id is None]
    skew = timedelta(seconds=client.config.clock_skew_seconds)
    recent = (client.list_jobs(created_after=min(o.recorded_at for o in unanswered) - skew)
              if unanswered else [])
    for item in open_:
        batch, job_id = item.batch, item.job_id
        if job_id is None:
            # The run stopped between recording the batch and recording its POST's answer:
            # the job exists only if the POST reached Telnyx. Look for it before anything.
            wanted = frozenset(batch.identifiers)
            job = next((j for j in recent if job_matches(j, wanted)
                        and (_parse_time(j.get("created_at")) or item.recorded_at)
                        >= item.recorded_at - skew), None)
            if job is None:
                ledger.record(store, [batch], run_id, "abandoned",
                              detail="no job found for this batch on resume")
                state.abandoned += 1
                continue
            job_id = job["id"]
            ledger.record(store, [batch], run_id, "submitted", job_id=job_id,
                          job_status=job.get("status"), detail="adopted on resume")
            state.adopted += 1
        state.batches[batch.batch_id] = batch
        state.batch_job[batch.batch_id] = job_id
        state.resumed += 1


def submit_batches(client: TelnyxClient, store: Store, batches: list[Batch], run_id: str,
                   log: Any, state: ApplyState,
                   max_jobs_in_flight: int = DEFAULT_MAX_JOBS_IN_FLIGHT) -> None:
    """Submit each batch once, keeping at most `max_jobs_in_flight` of ours in flight."""
    if not batches:
        return
    ledger.record(store, batches, run_id, "recorded")
    queue = list(batches)
    total = len(queue)
    done = 0
    while queue:
        batch = queue.pop(0)
        _wait_for_room(client, state, max_jobs_in_flight, log)
        state.submitted_at[batch.batch_id] = datetime.now(timezone.utc)
        try:
            sub = client.submit_update_emergency_settings(
                list(batch.identifiers), batch.emergency_enabled, batch.emergency_address_id)
        except JobRejected as exc:
            ledger.record(store, [batch], run_id, "rejected",
                          detail=[_error_dict(e) for e in exc.errors])
            again = _handle_rejection(batch, exc, state)
            if again:
                # Telnyx refuses the whole job for a few bad numbers; send the others again.
                ledger.record(store, again, run_id, "recorded",
                              detail=f"part of {batch.batch_id}")
                queue[:0] = again
                total += len(again)
            log.warning(f"batch {batch.batch_id} refused by Telnyx: {exc}")
            continue
        job = sub.job
        state.batches[batch.batch_id] = batch
        state.batch_job[batch.batch_id] = job["id"]
        state.jobs[job["id"]] = job
        state.adopted += int(sub.adopted)
        ledger.record(store, [batch], run_id, "submitted", job_id=job["id"],
                      job_status=job.get("status"),
                      detail="adopted after an ambiguous failure" if sub.adopted else None)
        done += 1
        log.info(f"batches submitted: {done}/{total} (job {job['id']}, "
                 f"{len(batch.identifiers)} numbers)")


def _handle_rejection(batch: Batch, exc: JobRejected, state: ApplyState) -> list[Batch]:
    """Record the refused numbers; return the batches to send again (refusals.py)."""
    out = narrow_refusal(batch, exc.errors, exc.by_number, state.splits_left)
    state.splits_left -= out.requests
    for ident, err in out.refused.items():
        state.refused[ident] = (batch.batch_id, _error_dict(err) if err is not None else {
            "code": None, "title": f"HTTP {exc.status}", "detail": str(exc), "pointer": None})
    return list(out.resend)


def _in_flight(state: ApplyState) -> list[str]:
    return [j for j in state.batch_job.values()
            if state.jobs.get(j, {}).get("status") not in JOB_TERMINAL_STATUSES]


def _wait_for_room(client: TelnyxClient, state: ApplyState, cap: int, log: Any) -> None:
    delay = 0.5
    while len(in_flight := _in_flight(state)) >= cap:
        log.info(f"{len(in_flight)} jobs in flight (cap {cap}); waiting for some to finish")
        state.jobs.update(client.follow_jobs(in_flight, deadline_seconds=0))
        time.sleep(delay)
        delay = min(delay * 2, 10.0)


def follow(client: TelnyxClient, store: Store, run_id: str, log: Any, state: ApplyState,
           deadline_seconds: float) -> None:
    """Follow every job of the run to a terminal status or the deadline."""
    job_ids = sorted(set(state.batch_job.values()))
    if not job_ids:
        return
    log.info(f"following {len(job_ids)} job(s) for up to {deadline_seconds:.0f}s")
    state.jobs.update(client.follow_jobs(job_ids, deadline_seconds=deadline_seconds))
    _abandon_unknown_jobs(client, store, run_id, log, state)
    finished = [b for b, j in state.batch_job.items()
                if state.jobs.get(j, {}).get("status") in JOB_TERMINAL_STATUSES]
    for batch_id in finished:
        job = state.jobs[state.batch_job[batch_id]]
        ledger.record(store, [state.batches[batch_id]], run_id, "finished",
                      job_id=job["id"], job_status=job["status"])
    log.info(f"jobs finished: {len(finished)}/{len(state.batch_job)}")


def _abandon_unknown_jobs(client: TelnyxClient, store: Store, run_id: str, log: Any,
                         state: ApplyState) -> None:
    """Close ledger batches whose job the account does not know (404), e.g. a ledger kept
    across emulator restarts or accounts: their numbers are planned afresh next run."""
    for batch_id, job_id in list(state.batch_job.items()):
        if job_id in state.jobs:
            continue
        try:
            state.jobs[job_id] = client.get_job(job_id)
        except TelnyxAPIError as exc:
            if exc.status != 404:
                continue  # unreadable for now: the batch stays open for the next run
            log.warning(f"job {job_id} of batch {batch_id} is not on this account; "
                        "its numbers will be planned afresh")
            ledger.record(store, [state.batches[batch_id]], run_id, "abandoned",
                          job_id=job_id, detail="job not found on the account (404)")
            del state.batch_job[batch_id]
            state.abandoned += 1


def number_results(state: ApplyState) -> dict[str, dict[str, Any]]:
    """Per number (keyed by id and by E.164), what its job or the refusal says."""
    out: dict[str, dict[str, Any]] = {}

    def put(keys: list[str | None], row: dict[str, Any]) -> None:
        for key in keys:
            if key:
                out[key] = row

    for batch_id, job_id in state.batch_job.items():
        job = state.jobs.get(job_id, {})
        status = job.get("status")
        base = {"batch_id": batch_id, "job_id": job_id, "job_status": status,
                "submitted_at": state.submitted_at.get(batch_id),
                "finished_at": _parse_time(job.get("updated_at"))
                if status in JOB_TERMINAL_STATUSES else None}
        seen: set[str] = set()
        for op in job.get("successful_operations", []):
            put([op.get("id"), op.get("phone_number")], {**base, "result": "succeeded"})
            seen.update(filter(None, [op.get("id"), op.get("phone_number")]))
        for op in job.get("failed_operations", []):
            err = (op.get("errors") or [{}])[0]
            put([op.get("id"), op.get("phone_number")], {
                **base, "result": "failed", "error_code": err.get("code"),
                "error_title": err.get("title"), "error_detail": err.get("detail"),
                "error_pointer": (err.get("source") or {}).get("pointer")})
            seen.update(filter(None, [op.get("id"), op.get("phone_number")]))
        # Numbers not yet settled: still pending, or lost with the job.
        unsettled = {"pending": "pending", "in_progress": "pending", None: "pending",
                     "expired": "expired", "failed": "failed", "completed": "failed"}[status]
        reason = {"expired": "the job expired before this number was processed",
                  "failed": "the job failed before this number was processed",
                  "completed": "the job completed without reporting this number"}.get(
                      status, "the job was still in flight when the run stopped following it")
        pending_ops = {op.get("id") or op.get("phone_number"): op
                       for op in job.get("pending_operations", [])}
        batch = state.batches.get(batch_id)
        for ident in (batch.identifiers if batch else pending_ops):
            if ident in seen:
                continue
            op = pending_ops.get(ident, {})
            put([ident, op.get("id"), op.get("phone_number")],
                {**base, "result": unsettled, "reason": reason})
    for ident, (batch_id, err) in state.refused.items():
        put([ident], {"batch_id": batch_id, "job_id": None, "job_status": None,
                      "submitted_at": state.submitted_at.get(batch_id), "finished_at": None,
                      "result": "failed", "reason": "refused by Telnyx when submitted",
                      "error_code": err["code"], "error_title": err["title"],
                      "error_detail": err["detail"], "error_pointer": err["pointer"]})
    return out


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None

