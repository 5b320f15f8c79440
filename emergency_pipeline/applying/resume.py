"""Resuming the batches earlier runs left open in the ledger, before anything new is sent
(rule 3): a batch with a job is followed; a batch whose POST got no answer has its job
adopted when the account shows one, is abandoned once no job can appear any more (the
late-job window, rule 4), and is otherwise left open, its numbers held back from this run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from emergency_pipeline.applying.batches_in_flight import BatchesInFlight
from emergency_pipeline.client import TelnyxClient, job_matches
from emergency_pipeline.client.job_ops import parse_time
from emergency_pipeline.safety_store import HeldLease, Ledger, LedgerBatch

if TYPE_CHECKING:
    from emergency_pipeline.applying.submission import RunIdentity


@dataclass(frozen=True)
class Resumed:
    # Identifiers still unsettled in an earlier run's batch (a POST whose job may yet
    # appear): this run must not send them.
    blocked: frozenset[str]
    ledger_jobs: frozenset[str]      # every job the ledger knows: none is a new POST's
    resumed: int = 0
    adopted: int = 0
    abandoned: int = 0


def resume_open_batches(client: TelnyxClient, ledger: Ledger, run: RunIdentity,
                        fence: HeldLease, log: Any, in_flight: BatchesInFlight) -> Resumed:
    """Pick up batches earlier runs left open: those with a job join `in_flight`."""
    ledger_jobs = frozenset(ledger.job_ids(run.account))
    open_ = ledger.open_batches(run.account)
    if not open_:
        return Resumed(frozenset(), ledger_jobs)
    log.info(f"resuming {len(open_)} open batch(es) of earlier runs")
    blocked: set[str] = set()
    adopted = abandoned = 0
    unanswered = [b for b in open_ if b.job_id is None]
    # Telnyx's created_at against the moment each wave was recorded, on Telnyx's clock.
    since = {b.key: _telnyx_since(client, b) for b in unanswered}
    recent = client.list_jobs(created_after=min(since.values())) if unanswered else []
    window = timedelta(seconds=client.config.late_job_window)
    now = ledger.now()
    for item in open_:
        key = item.key
        if item.job_id is not None:
            in_flight.aimed(key, item.batch, item.submitted_at)
            in_flight.follow(key, item.batch, item.job_id)
            continue
        in_flight.aimed(key, item.batch)
        wanted = frozenset(item.batch.identifiers)
        job = next((j for j in recent if job_matches(j, wanted)
                    and (parse_time(j.get("created_at")) or since[key]) >= since[key]),
                   None)
        if job is not None:
            ledger.move([key], "submitted", by_run=run.run_id, job_id=job["id"],
                        job_status=job.get("status"), detail="adopted on resume")
            in_flight.follow(key, item.batch, job["id"])
            adopted += 1
        elif now - _sent_by(fence, item) > window:
            # Older than any server delay the window covers: no job was ever made.
            ledger.move([key], "abandoned", by_run=run.run_id,
                        detail="no job found for this batch on resume")
            abandoned += 1
        else:
            blocked.update(item.batch.identifiers)
            _hold_open(ledger, run.run_id, fence, item)
            ago = (now - _sent_by(fence, item)).total_seconds()
            log.warning(f"batch {item.batch.batch_id} of run {item.run_id} may have "
                        f"been sent {max(ago, 0):.0f}s ago without an answer; its "
                        "numbers are left alone until its job can appear "
                        f"({window.total_seconds():.0f}s after)")
    return Resumed(frozenset(blocked), ledger_jobs, len(open_), adopted, abandoned)


def _taken_from(fence: HeldLease, item: LedgerBatch) -> datetime | None:
    """When our lease was taken over from this batch's run, if its process was not
    proven dead: it may have sent the batch's POST up to that moment, never after (its
    fence stops it)."""
    took = fence.holder.took_over
    if took is None or took.proven_dead or took.run_id != item.run_id:
        return None
    return took.at


def _sent_by(fence: HeldLease, item: LedgerBatch) -> datetime:
    """The latest moment the batch's POST may have been sent (store clock): when it was
    recorded, or, for a holder taken over alive, the takeover (or what a run that took it
    over earlier wrote down: `sent_by`)."""
    moments = [item.recorded_at, item.sent_by, _taken_from(fence, item)]
    return max(m for m in moments if m is not None)


def _hold_open(ledger: Ledger, run_id: str, fence: HeldLease, item: LedgerBatch) -> None:
    """Write down that a holder taken over alive may have sent this batch until the
    takeover, so that a later run (this one may end before the window does) waits the
    same window."""
    taken = _taken_from(fence, item)
    if taken is not None and (item.sent_by is None or item.sent_by < taken):
        ledger.move([item.key], "unanswered", by_run=run_id, sent_by=taken,
                    detail=f"run {item.run_id} was taken over at {taken.isoformat()} "
                           "while possibly alive: its POST may have gone out until then")


def _telnyx_since(client: TelnyxClient, item: LedgerBatch) -> datetime:
    """The earliest created_at on Telnyx's clock a job of this batch can have: recorded
    with the batch by its run (that run's measure of the server's clock), else the
    ledger's time taken as this host's."""
    if item.telnyx_recorded_at is not None:
        return item.telnyx_recorded_at
    return client.server_since(item.recorded_at)
