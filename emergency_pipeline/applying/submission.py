"""Submitting batches as update_emergency_settings jobs, and following them to their end.

Runs only under the account lease (safety_store/), its fence confirmed right before every
job POST. The safety rules carried out here, a part for each:
- rule 3: open ledger batches of earlier runs are resumed (followed, adopted, or found never
  made) before anything new is sent (applying/resume.py); right before each wave, the
  account's jobs created since the snapshot are read once, and a number pending in a job
  that is not ours is taken out of the wave (`skipped`, naming that job: applying/waves.py);
- rule 4: a wave is recorded in the ledger in one transaction before its POSTs; a POST with
  no clear answer is looked for over the late-job window (client), and left open, never sent
  again, when the job list cannot prove that no job was made (applying/waves.py);
- rule 5: a batch is closed only in the transaction that records its numbers' results; a
  refused POST or an unreadable job ends its own numbers, never the other batches
  (applying/batches_in_flight.py, applying/following.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

import pandas as pd

from emergency_pipeline.applying.batches_in_flight import BatchesInFlight, ResultsSoFar
from emergency_pipeline.applying.following import Following
from emergency_pipeline.applying.number_result import NumberResult
from emergency_pipeline.applying.resume import resume_open_batches
from emergency_pipeline.applying.waves import Waves
from emergency_pipeline.client import TelnyxClient
from emergency_pipeline.planning.batching import Batch
from emergency_pipeline.safety_store import HeldLease, Ledger, LedgerBatch


@dataclass(frozen=True)
class RunIdentity:
    run_id: str
    account: str          # the account's key (client/account_identity.py), never the API key
    source: str
    outcomes_db: str      # where this run's outcome rows go


@dataclass(frozen=True)
class Settings:
    max_jobs_in_flight: int = 500
    wave_size: int = 50                # batches recorded and POSTed together
    follow_timeout_seconds: float = 900.0
    poll_seconds: float = 1.0          # a finished job is seen within about this long


@dataclass(frozen=True)
class BatchSummary:
    """One batch of the run as the ledger holds it at the end: a row of `emergency_jobs`."""

    batch_id: str
    job_id: str | None
    state: str
    job_status: str | None
    numbers: int
    emergency_enabled: bool
    emergency_address_id: str | None


BATCH_COLUMNS = [f.name for f in fields(BatchSummary)]


def batches_frame(batches: Sequence[BatchSummary]) -> pd.DataFrame:
    """The `batches` table and the `emergency_jobs` history rows."""
    return pd.DataFrame([asdict(b) for b in batches], columns=BATCH_COLUMNS)


@dataclass(frozen=True)
class Submission:
    """What the step learned: per-identifier results, and one row per batch for people."""

    results: dict[str, NumberResult]
    batches: tuple[BatchSummary, ...]
    errors: tuple[str, ...] = ()       # why the run must end failed
    resumed: int = 0
    adopted: int = 0
    abandoned: int = 0
    taken_out: int = 0                 # numbers left to another's job
    split_requests: int = 0            # extra POSTs narrowing refusals


def submit_and_follow(client: TelnyxClient, ledger: Ledger, run: RunIdentity,
                      batches: Sequence[Batch], *, snapshot_at: datetime,
                      aliases: dict[str, str], settings: Settings, log: Any,
                      fence: HeldLease, apply: bool = True) -> Submission:
    """The apply step: resume, submit in waves (if `apply`), follow, and close with results.
    `fence`: the account lease this run holds; LeaseLost when another run took it over."""
    in_flight, results = BatchesInFlight(), ResultsSoFar(run.run_id)
    resumed = resume_open_batches(client, ledger, run, fence, log, in_flight)
    following = Following(client, ledger, settings, log, fence, in_flight, results)
    waves = Waves(client, ledger, run, settings, log, fence, following, resumed.ledger_jobs)
    if apply:
        waves.send(_not_blocked(batches, resumed.blocked, aliases, results), snapshot_at,
                   aliases)
    following.follow()
    return Submission(
        results=results.by_identifier,
        batches=tuple(_summary(b) for b in ledger.batches_of_run(run.run_id)),
        errors=tuple(waves.errors), resumed=resumed.resumed,
        adopted=resumed.adopted + waves.adopted,
        abandoned=resumed.abandoned + following.abandoned, taken_out=waves.taken_out,
        split_requests=waves.split_requests)


def _not_blocked(batches: Sequence[Batch], blocked: frozenset[str], aliases: dict[str, str],
                 results: ResultsSoFar) -> list[Batch]:
    """The batches without the numbers an earlier run's unanswered batch still holds (those
    end skipped)."""
    reason = ("in an earlier run's batch whose job POST got no answer yet; left alone until "
              "its job can appear")
    todo = []
    for batch in batches:
        kept = results.set_aside(batch, {i: reason for i in batch.identifiers
                                         if i in blocked or aliases.get(i) in blocked})
        if kept is not None:
            todo.append(kept)
    return todo


def _summary(item: LedgerBatch) -> BatchSummary:
    return BatchSummary(item.batch.batch_id, item.job_id, item.state, item.job_status,
                        len(item.batch.identifiers), item.batch.emergency_enabled,
                        item.batch.emergency_address_id)
