"""Sending batches in waves, behind the fence.

Before each wave, the account's jobs created since the snapshot are read once, and a number
pending in a job that is not this run's is taken out of the wave (`skipped`, naming that
job: rule 3). The wave is recorded in the ledger in one transaction, under a current lease
token, before its POSTs; each POST confirms the fence right before it is sent (rule 3), and
a POST with no clear answer is never sent again blindly (rule 4). A refused POST ends only
its own numbers (rule 5; applying/refusals.py narrows a refusal that names no number).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from emergency_pipeline.applying.batches_in_flight import BatchesInFlight, ResultsSoFar
from emergency_pipeline.applying.following import Following
from emergency_pipeline.applying.number_result import Key, batch_results, refused_results
from emergency_pipeline.applying.refusals import MAX_SPLIT_REQUESTS, narrow_refusal
from emergency_pipeline.client import (
    JobRejected, JobUnanswered, TelnyxAPIError, TelnyxClient, job_numbers,
)
from emergency_pipeline.planning.batching import Batch
from emergency_pipeline.safety_store import BatchClose, HeldLease, LeaseLost, Ledger
from emergency_pipeline.telnyx_contract import JOB_IN_FLIGHT_STATUSES

if TYPE_CHECKING:
    from emergency_pipeline.applying.submission import RunIdentity, Settings


class Waves:
    """Sends this step's batches, a wave at a time, and hands their jobs to `following`."""

    def __init__(self, client: TelnyxClient, ledger: Ledger, run: RunIdentity,
                 settings: Settings, log: Any, fence: HeldLease, following: Following,
                 ledger_jobs: frozenset[str]) -> None:
        self.client, self.ledger, self.run, self.settings, self.log = (
            client, ledger, run, settings, log)
        self.fence = fence                                    # confirmed before every POST
        self.following = following                            # waits for room under the cap
        self.in_flight: BatchesInFlight = following.in_flight
        self.results: ResultsSoFar = following.results
        self.ledger_jobs = ledger_jobs                        # every job the ledger knows
        self.existing: set[str] = set()                       # jobs made before our POSTs
        self.splits_left = MAX_SPLIT_REQUESTS                 # applying/refusals.py's budget
        self.errors: list[str] = []                           # why the run must end failed
        self.adopted = 0
        self.taken_out = 0                                    # numbers left to another's job
        self.split_requests = 0                               # extra POSTs narrowing refusals

    def _foreign_pending(self, since: datetime) -> dict[str, str]:
        """Numbers pending in jobs created since `since` that this step does not own. Every
        job listed existed before the wave's POSTs: none of them may be adopted as a POST's
        job after a lost answer (self.existing)."""
        taken: dict[str, str] = {}
        for job in self.client.list_jobs(created_after=since):
            self.existing.add(str(job.get("id")))
            if (job.get("status") not in JOB_IN_FLIGHT_STATUSES
                    or str(job.get("id")) in self.in_flight.ours):
                continue
            for name in job_numbers(job):   # done or not: the job is still in flight
                taken[name] = str(job.get("id"))
        return taken

    def _take_out(self, wave: list[Batch], taken: dict[str, str],
                  aliases: dict[str, str]) -> list[Batch]:
        kept: list[Batch] = []
        for batch in wave:
            job_for = {i: taken.get(i) or taken.get(aliases.get(i, "")) for i in batch.identifiers}
            out = {i: j for i, j in job_for.items() if j}
            if not out:
                kept.append(batch)
                continue
            self.taken_out += len(out)
            self.log.warning(f"{len(out)} number(s) of batch {batch.batch_id} are pending in "
                             f"job(s) {', '.join(sorted(set(out.values())))} that another "
                             "run or person created after the snapshot: left alone")
            rest = self.results.set_aside(batch, {
                ident: f"pending in job {job_id}, created by someone else after this run's "
                       "snapshot; left alone (rule 3)" for ident, job_id in out.items()})
            if rest is not None:
                kept.append(rest)
        return kept

    def _post(self, batch: Batch, existing: frozenset[str]) -> tuple[str, Any]:
        try:
            return "ok", self.client.submit_update_emergency_settings(
                list(batch.identifiers), batch.emergency_enabled, batch.emergency_address_id,
                existing=existing, before_post=self.fence.confirm)
        except LeaseLost as exc:
            return "lost", exc
        except JobRejected as exc:
            return "rejected", exc
        except JobUnanswered as exc:
            return "unanswered", exc
        except TelnyxAPIError as exc:
            return "error", exc

    def send(self, batches: Sequence[Batch], snapshot_at: datetime,
             aliases: dict[str, str]) -> None:
        run_id = self.run.run_id
        queue = list(batches)
        total, sent, stop = len(queue), 0, None
        with ThreadPoolExecutor(max_workers=self.client.config.max_concurrency,
                                thread_name_prefix="telnyx-post") as pool:
            while queue and stop is None:
                room = self.following.room()
                wave, queue = queue[:min(room, self.settings.wave_size)], queue[
                    min(room, self.settings.wave_size):]
                # Jobs created since the snapshot, by Telnyx's clock: with Telnyx 30 s behind
                # the host, the host's snapshot time hid another operator's new job.
                wave = self._take_out(wave, self._foreign_pending(
                    self.client.server_since(snapshot_at)), aliases)
                if not wave:
                    continue
                keys = [(run_id, b.batch_id) for b in wave]
                for key, batch in zip(keys, wave):
                    self.in_flight.aimed(key, batch)
                now = datetime.now(timezone.utc)
                # Recorded only while our lease token is current (checked in the same
                # transaction): a run that lost the lease records nothing more.
                self.ledger.record(wave, run_id=run_id, account=self.run.account,
                                   source=self.run.source, outcomes_db=self.run.outcomes_db,
                                   fence=self.fence,
                                   telnyx_recorded_at=self.client.server_since(now))
                # Every job known before the wave's POSTs, once a wave (the ledger's grow
                # with every run): none of them is a POST's job after a lost answer.
                existing = frozenset(self.existing | self.in_flight.ours | self.ledger_jobs)
                answers = list(pool.map(lambda b: self._post(b, existing), wave))
                submitted, closing = [], []
                lost: LeaseLost | None = None
                for key, batch, (kind, value) in zip(keys, wave, answers):
                    self.in_flight.aimed(key, batch, now)
                    if kind == "lost":
                        # Never sent: the batch stays recorded, open, for the lease's holder.
                        lost = value
                    elif kind == "ok":
                        submitted.append((key, batch, value.job, value.adopted))
                    elif kind == "rejected":
                        again = self._rejected(key, batch, value, closing)
                        queue[:0] = again   # sent next, before the other batches
                        total += len(again)
                    elif kind == "unanswered":
                        self.ledger.move([key], "unanswered", by_run=run_id, detail=str(value))
                        self.results.put(batch_results(batch, "pending", (
                            f"the job POST got no answer ({value.reason}); no job could be "
                            "looked for, so it was not sent again: the next run adopts its "
                            "job or submits it afresh"), self.in_flight.origin(key)))
                    else:
                        self.ledger.move([key], "abandoned", by_run=run_id, detail=str(value))
                        self.results.put(batch_results(batch, "skipped",
                                                       f"not submitted: {value}",
                                                       self.in_flight.origin(key)))
                        self.errors.append(f"batch {batch.batch_id} not submitted: {value}")
                        if value.status in (401, 403):
                            stop = value     # every further POST would be refused the same
                self.results.close(self.ledger, closing)
                self.ledger.submitted([
                    (key, str(job["id"]), job.get("status"),
                     "adopted after an ambiguous failure" if adopted else None)
                    for key, _, job, adopted in submitted], by_run=run_id)
                for key, batch, job, adopted in submitted:
                    self.in_flight.follow(key, batch, job["id"])
                    self.adopted += int(adopted)
                if lost is not None:
                    # The jobs this wave made are in the ledger (the holder follows them);
                    # nothing more is sent, followed or closed by this run.
                    raise lost
                sent += len(wave)
                self.log.info(f"batches submitted: {sent}/{total} "
                              f"({len(submitted)} jobs created in this wave)")
        for batch in queue:   # left when submitting stopped: nothing was sent for them
            key = (run_id, batch.batch_id)
            self.results.put(batch_results(
                batch, "skipped", f"not submitted: submitting stopped after {stop}",
                self.in_flight.origin(key)))

    def _rejected(self, key: Key, batch: Batch, exc: JobRejected,
                  closing: list[BatchClose]) -> list[Batch]:
        """Telnyx refused the job: its refused numbers end failed with Telnyx's error, and
        the rest is sent again (applying/refusals.py narrows a refusal that names no number)."""
        self.log.warning(f"batch {batch.batch_id} refused by Telnyx: {exc}")
        out = narrow_refusal(batch, exc.errors, exc.by_number, self.splits_left)
        self.splits_left -= out.requests
        self.split_requests += out.requests
        closing.append(BatchClose(key, "rejected", None, None, refused_results(
            out.refused, self.in_flight.origin(key), status=exc.status, message=str(exc))))
        return list(out.resend)
