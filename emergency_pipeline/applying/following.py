"""Following the jobs of the batches in flight to their end: each round reads them once,
closes the finished ones with their numbers' results in one ledger transaction (rule 5),
and a job gone from the account ends only its own batch's numbers.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from emergency_pipeline.applying.batches_in_flight import BatchesInFlight, ResultsSoFar
from emergency_pipeline.applying.number_result import Key, batch_results, job_results
from emergency_pipeline.client import TelnyxAPIError, TelnyxClient
from emergency_pipeline.safety_store import BatchClose, HeldLease, Ledger
from emergency_pipeline.telnyx_contract import JOB_TERMINAL_STATUSES

if TYPE_CHECKING:
    from emergency_pipeline.applying.submission import Settings

PROGRESS_SECONDS = 30   # while no job finishes, how often following says so


class Following:
    """Reads the jobs in flight, round by round, and closes their batches as they end."""

    def __init__(self, client: TelnyxClient, ledger: Ledger, settings: Settings, log: Any,
                 fence: HeldLease, in_flight: BatchesInFlight, results: ResultsSoFar) -> None:
        self.client, self.ledger, self.settings, self.log, self.fence = (
            client, ledger, settings, log, fence)
        self.in_flight, self.results = in_flight, results
        self.abandoned = 0                                    # jobs gone from the account
        self.progress: tuple[tuple[int, int], float] = ((-1, -1), 0.0)   # last line, when

    def room(self) -> int:
        """Jobs that may be sent now under the cap, waiting (and following) until some may."""
        cap = self.settings.max_jobs_in_flight
        while (room := cap - len(self.in_flight)) <= 0:
            self.log.info(f"{len(self.in_flight)} jobs in flight (cap {cap}); waiting for "
                          "some to finish")
            self.poll_once()
            time.sleep(self.settings.poll_seconds)
        return room

    def _read_jobs(self) -> dict[str, dict]:
        """The jobs followed, as the account has them now: one listing of the jobs created
        since the oldest of them (newest first, so usually one page), and a GET only for a
        job the listing did not show."""
        ids = set(self.in_flight.job_of.values())
        oldest = self.in_flight.oldest_submission(datetime.now(timezone.utc))
        since = self.client.server_since(oldest)
        latest = {str(j.get("id")): j for j in self.client.list_jobs(created_after=since)
                  if str(j.get("id")) in ids}
        missing = sorted(ids - set(latest))
        if missing:
            latest.update(self.client.follow_jobs(missing, deadline_seconds=0))
        done = sum(1 for j in latest.values() if j.get("status") in JOB_TERMINAL_STATUSES)
        self._progress(done, len(ids))
        return latest

    def _progress(self, done: int, of: int) -> None:
        """A line when a job finishes, else one every PROGRESS_SECONDS: not one per poll (a
        ten-minute follow wrote 600 identical lines, each an event Dagster stores)."""
        (last, at), now = self.progress, time.monotonic()
        if (done, of) != last or now - at >= PROGRESS_SECONDS:
            self.log.info(f"jobs: {done} of {of} finished")
            self.progress = ((done, of), now)

    def poll_once(self) -> None:
        """One round over the jobs followed: the finished ones close with their results, all
        in one ledger transaction."""
        latest = self._read_jobs()
        closing = []
        for key, job_id in list(self.in_flight.job_of.items()):
            job = latest.get(job_id)
            if job is None:
                job = self._unreadable(key, job_id)
                if job is None:
                    continue
            if job.get("status") in JOB_TERMINAL_STATUSES:
                origin = self.in_flight.origin(key)
                closing.append(BatchClose(key, "finished", job_id, job.get("status"),
                                          job_results(self.in_flight.done(key), job, origin)))
            else:
                # Its rows are made once, if the follow ends before it does (a hundred
                # thousand pending rows per poll cost seconds at a million numbers).
                self.in_flight.last_seen[key] = job
        self.results.close(self.ledger, closing)

    def _unreadable(self, key: Key, job_id: str) -> dict | None:
        """A job the round could not read: gone from the account (404) closes its batch as
        abandoned (its numbers are planned afresh next run); otherwise try next round."""
        try:
            return self.client.get_job(job_id)
        except TelnyxAPIError as exc:
            if exc.status != 404:
                return None
        self.log.warning(f"job {job_id} of batch {key[1]} is not on this account; "
                         "its numbers will be planned afresh")
        self.ledger.move([key], "abandoned", by_run=self.results.run_id, job_id=job_id,
                         detail="job not found on the account (404)")
        origin = self.in_flight.origin(key)
        batch = self.in_flight.done(key)
        self.abandoned += 1
        self.results.put(batch_results(
            batch, "skipped", f"job {job_id} is not on the account (404)", origin))
        return None

    def follow(self) -> None:
        """Until every job followed has ended or the follow timeout: then the numbers of the
        jobs still in flight end this run pending (the next run follows them)."""
        in_flight = self.in_flight
        if not in_flight.job_of:
            return
        deadline = time.monotonic() + self.settings.follow_timeout_seconds
        self.log.info(f"following {len(in_flight)} job(s) for up to "
                      f"{self.settings.follow_timeout_seconds:.0f}s")
        # A job just sent is not done yet: the first poll comes half a poll after the
        # earliest submission (at once when an earlier run's job is among them), then one
        # every poll. Off the whole seconds since submission: a job that takes whole seconds
        # is seen half a poll after its end, not a whole poll (polls in step with it just
        # missed it every time).
        sent = [in_flight.submitted_at.get(k) for k in in_flight.job_of]
        if None not in sent:
            half = self.settings.poll_seconds / 2
            wait = (min(sent) - datetime.now(timezone.utc)).total_seconds() + half
            time.sleep(max(0.0, min(wait, half)))
        while True:
            began = time.monotonic()
            if self.fence.lost is not None:
                raise self.fence.lost   # the holder follows and closes these jobs now
            self.poll_once()
            if not in_flight.job_of:
                break
            if time.monotonic() >= deadline:
                self.log.warning(f"{len(in_flight)} job(s) still in flight at the follow "
                                 "deadline: their numbers end this run pending; the next run "
                                 "follows them")
                break
            # One poll per poll_seconds, the poll's own time included: a listing of a hundred
            # jobs of 1,000 numbers takes a good part of a second.
            next_poll = began + self.settings.poll_seconds
            time.sleep(max(0.0, min(next_poll, deadline) - time.monotonic()))
        for key in in_flight.job_of:   # still in flight: their numbers end this run pending
            if key in in_flight.last_seen:
                self.results.put(job_results(in_flight.batch_of[key], in_flight.last_seen[key],
                                             in_flight.origin(key)))
