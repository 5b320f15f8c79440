"""Submitting batches as update_emergency_settings jobs, and following them to their end.

Runs only under the account lease (safety_store/), its fence confirmed right before every
job POST. The safety rules carried out here:
- rule 3: open ledger batches of earlier runs are resumed (followed, adopted, or found never
  made) before anything new is sent; right before each wave, the account's jobs created
  since the snapshot are read once, and a number pending in a job that is not ours is taken
  out of the wave (`skipped`, naming that job);
- rule 4: a wave is recorded in the ledger in one transaction before its POSTs; a POST with
  no clear answer is looked for over the late-job window (client), and left open, never sent
  again, when the job list cannot prove that no job was made;
- rule 5: a batch is closed only in the transaction that records its numbers' results; a
  refused POST or an unreadable job ends its own numbers, never the other batches.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from emergency_pipeline.planning.batching import Batch, batch_of
from emergency_pipeline.client import (
    JobRejected, JobUnanswered, TelnyxAPIError, TelnyxClient, job_matches, job_numbers,
)
from emergency_pipeline.client.job_ops import parse_time
from emergency_pipeline.telnyx_contract import JOB_IN_FLIGHT_STATUSES, JOB_TERMINAL_STATUSES
from emergency_pipeline.applying.refusals import MAX_SPLIT_REQUESTS, narrow_refusal
from emergency_pipeline.safety_store import HeldLease, LeaseLost, Ledger, LedgerBatch

Key = tuple[str, str]   # (run_id, batch_id): a batch as the ledger knows it
PROGRESS_SECONDS = 30   # while no job finishes, how often following says so


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


@dataclass
class Submission:
    """What the step learned: per-identifier results, and one row per batch for people."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)     # why the run must end failed
    resumed: int = 0
    adopted: int = 0
    abandoned: int = 0
    taken_out: int = 0                                   # numbers left to another's job
    split_requests: int = 0                              # extra POSTs narrowing refusals


def _error(err: Any) -> dict[str, Any]:
    return {"error_code": err.code, "error_title": err.title, "error_detail": err.detail,
            "error_pointer": err.pointer}


def job_results(batch: Batch, job: dict[str, Any]) -> list[dict[str, Any]]:
    """One result per identifier of the batch, from its job (pure)."""
    status = job.get("status")
    base = {"job_id": job.get("id"), "job_status": status,
            "finished_at": job.get("updated_at") if status in JOB_TERMINAL_STATUSES else None}
    found: dict[str, dict[str, Any]] = {}
    for op in job.get("successful_operations") or []:
        for key in (op.get("id"), op.get("phone_number")):
            if key:
                found[str(key)] = {"result": "succeeded"}
    for op in job.get("failed_operations") or []:
        err = (op.get("errors") or [{}])[0]
        row = {"result": "failed", "error_code": err.get("code"),
               "error_title": err.get("title"), "error_detail": err.get("detail"),
               "error_pointer": (err.get("source") or {}).get("pointer")}
        for key in (op.get("id"), op.get("phone_number")):
            if key:
                found[str(key)] = row
    unsettled = {"expired": ("expired", "the job expired before this number was processed"),
                 "failed": ("failed", "the job failed before this number was processed"),
                 "completed": ("failed", "the job completed without reporting this number")
                 }.get(status, ("pending", f"job {job.get('id')} was still {status or 'in flight'}"
                                " when the run stopped following it"))
    return [{"identifier": ident, **base,
             **found.get(ident, {"result": unsettled[0], "reason": unsettled[1]})}
            for ident in batch.identifiers]


def _rows(batch: Batch, result: str, reason: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"identifier": i, "result": result, "reason": reason, **extra}
            for i in batch.identifiers]


class _Run:
    """One apply step's work on the account (a class only to keep its many parts together)."""

    def __init__(self, client: TelnyxClient, ledger: Ledger, run: RunIdentity,
                 settings: Settings, log: Any, fence: HeldLease) -> None:
        self.client, self.ledger, self.run, self.settings, self.log = (
            client, ledger, run, settings, log)
        self.fence = fence                                    # confirmed before every POST
        self.out = Submission()
        self.following: dict[Key, LedgerBatch | Batch] = {}   # open batches with a job
        self.job_of: dict[Key, str] = {}
        self.submitted_at: dict[Key, datetime] = {}
        self.targets: dict[Key, Batch] = {}                   # what each batch asked for
        self.ours: set[str] = set()                           # job ids this step follows
        self.splits_left = MAX_SPLIT_REQUESTS                 # applying/refusals.py's budget
        self.existing: set[str] = set()                       # jobs made before our POSTs
        self.ledger_jobs: frozenset[str] = frozenset()        # every job the ledger knows
        self.last_seen: dict[Key, dict] = {}                  # in-flight jobs, last read
        self.progress: tuple[tuple[int, int], float] = ((-1, -1), 0.0)   # last line, when

    # -- results ---------------------------------------------------------------------------

    def _put(self, key: Key, rows: list[dict[str, Any]]) -> None:
        # The batch's own target goes with each result: a number of this run's plan that was
        # in an earlier run's job takes that job's result only if the job had its target.
        batch = self.targets.get(key)
        target = {} if batch is None else {
            "job_target_enabled": batch.emergency_enabled,
            "job_target_address_id": batch.emergency_address_id}
        ours = key[0] == self.run.run_id
        for row in rows:
            had = self.out.results.get(row["identifier"])
            if not ours and had is not None and had.get("run_id") == self.run.run_id:
                continue   # this run's own batch speaks for the number, not an earlier one's
            self.out.results[row["identifier"]] = {
                "batch_id": key[1], "run_id": key[0],
                "submitted_at": self.submitted_at.get(key), **target, **row}

    def _close(self, closing: list[tuple[Key, str, str | None, str | None, list[dict]]]) -> None:
        self.ledger.close(closing, by_run=self.run.run_id)
        for key, _, _, _, rows in closing:
            self._put(key, rows)

    # -- resume ----------------------------------------------------------------------------

    def resume(self) -> set[str]:
        """Pick up batches earlier runs left open; returns identifiers still unsettled there
        (a POST whose job may yet appear), which this run must not send."""
        self.ledger_jobs = frozenset(self.ledger.job_ids(self.run.account))
        open_ = self.ledger.open_batches(self.run.account)
        if not open_:
            return set()
        self.log.info(f"resuming {len(open_)} open batch(es) of earlier runs")
        self.out.resumed = len(open_)
        blocked: set[str] = set()
        unanswered = [b for b in open_ if b.job_id is None]
        # Telnyx's created_at against the moment each wave was recorded, on Telnyx's clock.
        since = {b.key: self._telnyx_since(b) for b in unanswered}
        recent = (self.client.list_jobs(created_after=min(since.values()))
                  if unanswered else [])
        window = timedelta(seconds=self.client.config.late_job_window)
        now = self.ledger.now()
        for item in open_:
            key = item.key
            self.targets[key] = item.batch
            if item.job_id is not None:
                self.following[key], self.job_of[key] = item, item.job_id
                self.ours.add(item.job_id)
                self.submitted_at[key] = item.submitted_at
                continue
            wanted = frozenset(item.batch.identifiers)
            job = next((j for j in recent if job_matches(j, wanted)
                        and (parse_time(j.get("created_at")) or since[key]) >= since[key]),
                       None)
            if job is not None:
                self.ledger.move([key], "submitted", by_run=self.run.run_id, job_id=job["id"],
                                 job_status=job.get("status"), detail="adopted on resume")
                self.following[key], self.job_of[key] = item, job["id"]
                self.ours.add(str(job["id"]))
                self.out.adopted += 1
            elif now - self._sent_by(item) > window:
                # Older than any server delay the window covers: no job was ever made.
                self.ledger.move([key], "abandoned", by_run=self.run.run_id,
                                 detail="no job found for this batch on resume")
                self.out.abandoned += 1
            else:
                blocked.update(item.batch.identifiers)
                self._hold_open(item)
                ago = (now - self._sent_by(item)).total_seconds()
                self.log.warning(f"batch {item.batch.batch_id} of run {item.run_id} may have "
                                 f"been sent {max(ago, 0):.0f}s ago without an answer; its "
                                 "numbers are left alone until its job can appear "
                                 f"({window.total_seconds():.0f}s after)")
        return blocked

    def _taken_from(self, item: LedgerBatch) -> datetime | None:
        """When our lease was taken over from this batch's run, if its process was not
        proven dead: it may have sent the batch's POST up to that moment, never after (its
        fence stops it)."""
        took = self.fence.holder.took_over
        if took is None or took.proven_dead or took.run_id != item.run_id:
            return None
        return took.at

    def _sent_by(self, item: LedgerBatch) -> datetime:
        """The latest moment the batch's POST may have been sent (store clock): when it was
        recorded, or, for a holder taken over alive, the takeover (or what a run that took it
        over earlier wrote down: `sent_by`)."""
        moments = [item.recorded_at, item.sent_by, self._taken_from(item)]
        return max(m for m in moments if m is not None)

    def _hold_open(self, item: LedgerBatch) -> None:
        """Write down that a holder taken over alive may have sent this batch until the
        takeover, so that a later run (this one may end before the window does) waits the
        same window."""
        taken = self._taken_from(item)
        if taken is not None and (item.sent_by is None or item.sent_by < taken):
            self.ledger.move([item.key], "unanswered", by_run=self.run.run_id, sent_by=taken,
                             detail=f"run {item.run_id} was taken over at {taken.isoformat()} "
                                    "while possibly alive: its POST may have gone out until "
                                    "then")

    def _telnyx_since(self, item: LedgerBatch) -> datetime:
        """The earliest created_at on Telnyx's clock a job of this batch can have: recorded
        with the batch by its run (that run's measure of the server's clock), else the
        ledger's time taken as this host's."""
        if item.telnyx_recorded_at is not None:
            return item.telnyx_recorded_at
        return self.client.server_since(item.recorded_at)

    # -- submitting ------------------------------------------------------------------------

    def _foreign_pending(self, since: datetime) -> dict[str, str]:
        """Numbers pending in jobs created since `since` that this step does not own. Every
        job listed existed before the wave's POSTs: none of them may be adopted as a POST's
        job after a lost answer (self.existing)."""
        taken: dict[str, str] = {}
        for job in self.client.list_jobs(created_after=since):
            self.existing.add(str(job.get("id")))
            if job.get("status") not in JOB_IN_FLIGHT_STATUSES or str(job.get("id")) in self.ours:
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
            self.out.taken_out += len(out)
            self.log.warning(f"{len(out)} number(s) of batch {batch.batch_id} are pending in "
                             f"job(s) {', '.join(sorted(set(out.values())))} that another "
                             "run or person created after the snapshot: left alone")
            for ident, job_id in out.items():
                self.out.results[ident] = {
                    "identifier": ident, "result": "skipped", "batch_id": None,
                    "reason": f"pending in job {job_id}, created by someone else after this "
                              "run's snapshot; left alone (rule 3)"}
            rest = [i for i in batch.identifiers if i not in out]
            if rest:
                kept.append(batch_of(rest, batch.emergency_enabled,
                                     batch.emergency_address_id, batch.id_kind,
                                     batch.action_counts))
        return kept

    def _post(self, batch: Batch) -> tuple[str, Any]:
        try:
            return "ok", self.client.submit_update_emergency_settings(
                list(batch.identifiers), batch.emergency_enabled, batch.emergency_address_id,
                existing=frozenset(self.existing | self.ours | self.ledger_jobs),
                before_post=self.fence.confirm)
        except LeaseLost as exc:
            return "lost", exc
        except JobRejected as exc:
            return "rejected", exc
        except JobUnanswered as exc:
            return "unanswered", exc
        except TelnyxAPIError as exc:
            return "error", exc

    def submit(self, batches: Sequence[Batch], snapshot_at: datetime,
               aliases: dict[str, str]) -> None:
        queue = list(batches)
        total, sent, stop = len(queue), 0, None
        with ThreadPoolExecutor(max_workers=self.client.config.max_concurrency,
                                thread_name_prefix="telnyx-post") as pool:
            while queue and stop is None:
                room = self._room()
                wave, queue = queue[:min(room, self.settings.wave_size)], queue[
                    min(room, self.settings.wave_size):]
                # Jobs created since the snapshot, by Telnyx's clock: with Telnyx 30 s behind
                # the host, the host's snapshot time hid another operator's new job.
                wave = self._take_out(wave, self._foreign_pending(
                    self.client.server_since(snapshot_at)), aliases)
                if not wave:
                    continue
                keys = [(self.run.run_id, b.batch_id) for b in wave]
                self.targets.update(zip(keys, wave))
                now = datetime.now(timezone.utc)
                # Recorded only while our lease token is current (checked in the same
                # transaction): a run that lost the lease records nothing more.
                self.ledger.record(wave, run_id=self.run.run_id, account=self.run.account,
                                   source=self.run.source, outcomes_db=self.run.outcomes_db,
                                   fence=self.fence,
                                   telnyx_recorded_at=self.client.server_since(now))
                answers = list(pool.map(self._post, wave))
                submitted, closing = [], []
                lost: LeaseLost | None = None
                for key, batch, (kind, value) in zip(keys, wave, answers):
                    self.submitted_at[key] = now
                    if kind == "lost":
                        # Never sent: the batch stays recorded, open, for the lease's holder.
                        lost = value
                    elif kind == "ok":
                        job = value.job
                        submitted.append((key, batch, job, value.adopted))
                    elif kind == "rejected":
                        again = self._rejected(key, batch, value, closing)
                        queue[:0] = again   # sent next, before the other batches
                        total += len(again)
                    elif kind == "unanswered":
                        self.ledger.move([key], "unanswered", by_run=self.run.run_id,
                                         detail=str(value))
                        self._put(key, _rows(batch, "pending", (
                            f"the job POST got no answer ({value.reason}); no job could be "
                            "looked for, so it was not sent again: the next run adopts its "
                            "job or submits it afresh")))
                    else:
                        self.ledger.move([key], "abandoned", by_run=self.run.run_id,
                                         detail=str(value))
                        self._put(key, _rows(batch, "skipped", f"not submitted: {value}"))
                        self.out.errors.append(f"batch {batch.batch_id} not submitted: {value}")
                        if value.status in (401, 403):
                            stop = value     # every further POST would be refused the same
                self._close(closing)
                self.ledger.submitted([
                    (key, str(job["id"]), job.get("status"),
                     "adopted after an ambiguous failure" if adopted else None)
                    for key, _, job, adopted in submitted], by_run=self.run.run_id)
                for key, batch, job, adopted in submitted:
                    self.following[key], self.job_of[key] = batch, str(job["id"])
                    self.ours.add(str(job["id"]))
                    self.out.adopted += int(adopted)
                if lost is not None:
                    # The jobs this wave made are in the ledger (the holder follows them);
                    # nothing more is sent, followed or closed by this run.
                    raise lost
                sent += len(wave)
                self.log.info(f"batches submitted: {sent}/{total} "
                              f"({len(submitted)} jobs created in this wave)")
        for batch in queue:   # left when submitting stopped: nothing was sent for them
            self._put((self.run.run_id, batch.batch_id), _rows(
                batch, "skipped", f"not submitted: submitting stopped after {stop}"))

    def _rejected(self, key: Key, batch: Batch, exc: JobRejected,
                  closing: list) -> list[Batch]:
        """Telnyx refused the job: its refused numbers end failed with Telnyx's error, and
        the rest is sent again (applying/refusals.py narrows a refusal that names no number)."""
        self.log.warning(f"batch {batch.batch_id} refused by Telnyx: {exc}")
        out = narrow_refusal(batch, exc.errors, exc.by_number, self.splits_left)
        self.splits_left -= out.requests
        self.out.split_requests += out.requests
        general = {"error_code": None, "error_title": f"HTTP {exc.status}",
                   "error_detail": str(exc), "error_pointer": None}
        closing.append((key, "rejected", None, None, [
            {"identifier": i, "result": "failed", "reason": "refused by Telnyx when submitted",
             **(_error(err) if err is not None else general)}
            for i, err in out.refused.items()]))
        return list(out.resend)

    # -- following -------------------------------------------------------------------------

    def _in_flight(self) -> list[Key]:
        return list(self.job_of)

    def _room(self) -> int:
        while (room := self.settings.max_jobs_in_flight - len(self._in_flight())) <= 0:
            self.log.info(f"{len(self._in_flight())} jobs in flight (cap "
                          f"{self.settings.max_jobs_in_flight}); waiting for some to finish")
            self._poll_once()
            time.sleep(self.settings.poll_seconds)
        return room

    def _read_jobs(self) -> dict[str, dict]:
        """The jobs followed, as the account has them now: one listing of the jobs created
        since the oldest of them (newest first, so usually one page), and a GET only for a
        job the listing did not show."""
        ids = set(self.job_of.values())
        oldest = min((self.submitted_at.get(k) or datetime.now(timezone.utc)
                      for k in self.job_of), default=datetime.now(timezone.utc))
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

    def _poll_once(self) -> None:
        """One round over the jobs followed: the finished ones close with their results, all
        in one ledger transaction."""
        latest = self._read_jobs()
        closing = []
        for key, job_id in list(self.job_of.items()):
            job = latest.get(job_id)
            if job is None:
                job = self._unreadable(key, job_id)
                if job is None:
                    continue
            batch = _plain(self.following[key])
            if job.get("status") in JOB_TERMINAL_STATUSES:
                closing.append((key, "finished", job_id, job.get("status"),
                                job_results(batch, job)))
                del self.job_of[key]
            else:
                # Its rows are made once, if the follow ends before it does (a hundred
                # thousand pending rows per poll cost seconds at a million numbers).
                self.last_seen[key] = job
        self._close(closing)

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
        self.ledger.move([key], "abandoned", by_run=self.run.run_id, job_id=job_id,
                         detail="job not found on the account (404)")
        batch = _plain(self.following.pop(key))
        del self.job_of[key]
        self.out.abandoned += 1
        self._put(key, _rows(batch, "skipped", f"job {job_id} is not on the account (404)"))
        return None

    def follow(self) -> None:
        if not self.job_of:
            return
        deadline = time.monotonic() + self.settings.follow_timeout_seconds
        self.log.info(f"following {len(self.job_of)} job(s) for up to "
                      f"{self.settings.follow_timeout_seconds:.0f}s")
        # A job just sent is not done yet: the first poll comes half a poll after the
        # earliest submission (at once when an earlier run's job is among them), then one
        # every poll. Off the whole seconds since submission: a job that takes whole seconds
        # is seen half a poll after its end, not a whole poll (polls in step with it just
        # missed it every time).
        sent = [self.submitted_at.get(k) for k in self.job_of]
        if None not in sent:
            half = self.settings.poll_seconds / 2
            wait = (min(sent) - datetime.now(timezone.utc)).total_seconds() + half
            time.sleep(max(0.0, min(wait, half)))
        while True:
            began = time.monotonic()
            if self.fence.lost is not None:
                raise self.fence.lost   # the holder follows and closes these jobs now
            self._poll_once()
            if not self.job_of:
                break
            if time.monotonic() >= deadline:
                self.log.warning(f"{len(self.job_of)} job(s) still in flight at the follow "
                                 "deadline: their numbers end this run pending; the next run "
                                 "follows them")
                break
            # One poll per poll_seconds, the poll's own time included: a listing of a hundred
            # jobs of 1,000 numbers takes a good part of a second.
            next_poll = began + self.settings.poll_seconds
            time.sleep(max(0.0, min(next_poll, deadline) - time.monotonic()))
        for key in self.job_of:   # still in flight: their numbers end this run pending
            if key in self.last_seen:
                self._put(key, job_results(_plain(self.following[key]), self.last_seen[key]))

    def batch_rows(self) -> list[dict[str, Any]]:
        rows = []
        for b in self.ledger.batches_of_run(self.run.run_id):
            rows.append({"batch_id": b.batch.batch_id, "job_id": b.job_id, "state": b.state,
                         "job_status": b.job_status, "numbers": len(b.batch.identifiers),
                         "emergency_enabled": b.batch.emergency_enabled,
                         "emergency_address_id": b.batch.emergency_address_id})
        return rows


def _plain(batch: LedgerBatch | Batch) -> Batch:
    return batch.batch if isinstance(batch, LedgerBatch) else batch


def submit_and_follow(client: TelnyxClient, ledger: Ledger, run: RunIdentity,
                      batches: Sequence[Batch], *, snapshot_at: datetime,
                      aliases: dict[str, str], settings: Settings, log: Any,
                      fence: HeldLease, apply: bool = True) -> Submission:
    """The apply step: resume, submit in waves (if `apply`), follow, and close with results.
    `fence`: the account lease this run holds; LeaseLost when another run took it over."""
    work = _Run(client, ledger, run, settings, log, fence)
    blocked = work.resume()
    if apply:
        todo = []
        for batch in batches:
            held = [i for i in batch.identifiers if i in blocked or aliases.get(i) in blocked]
            for ident in held:
                work.out.results[ident] = {
                    "identifier": ident, "result": "skipped", "batch_id": None,
                    "reason": "in an earlier run's batch whose job POST got no answer yet; "
                              "left alone until its job can appear"}
            rest = [i for i in batch.identifiers if i not in set(held)]
            if rest:
                todo.append(batch if not held else batch_of(
                    rest, batch.emergency_enabled, batch.emergency_address_id, batch.id_kind,
                    batch.action_counts))
        work.submit(todo, snapshot_at, aliases)
    work.follow()
    work.out.batches = work.batch_rows()
    return work.out
