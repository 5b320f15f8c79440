"""update_emergency_settings jobs: submitting without duplicates, adopting, and following."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from emergency_pipeline.telnyx_contract import JOB_PATH, JOB_TERMINAL_STATUSES, JOB_TYPE

from .errors import JobRejected, JobUnanswered, TelnyxAPIError
from .transport import Transport

JOBS_PATH = "/phone_numbers/jobs"

# follow(): a job the API says does not exist (404) is not waited for.
_GONE = object()


@dataclass(frozen=True)
class JobSubmission:
    """The job Telnyx created for one batch; `adopted` when found by listing after a lost answer."""

    job: dict
    adopted: bool

    @property
    def job_id(self) -> str:
        return str(self.job.get("id"))


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def job_numbers(job: dict) -> set[str]:
    """Every number a job names (by id and by E.164): the ones it was sent and the ones its
    operations report. A job in flight holds all of them, done or not (rule 3: never two
    jobs in flight for one number, even one the first job has already processed)."""
    names: set[str] = set()
    entries = list(job.get("phone_numbers") or [])
    for key in ("pending_operations", "successful_operations", "failed_operations"):
        entries += job.get(key) or []
    for entry in entries:
        if isinstance(entry, str):
            names.add(entry)
        elif isinstance(entry, dict):
            names.update(str(v) for k, v in entry.items() if k in ("id", "phone_number") and v)
    return names


def job_matches(job: dict, identifiers: frozenset[str]) -> bool:
    """True if the job was created for exactly this set of identifiers.

    The job echoes what was sent in `phone_numbers` (each entry an {"id"} or {"phone_number"};
    possibly both), so every entry must name one of ours, and together they must name all.
    """
    if job.get("type") not in (None, JOB_TYPE):
        return False
    entries = job.get("phone_numbers")
    if not isinstance(entries, list) or len(entries) != len(identifiers):
        return False
    covered: set[str] = set()
    for entry in entries:
        if isinstance(entry, str):
            names = {entry}
        elif isinstance(entry, dict):
            names = {str(v) for k, v in entry.items() if k in ("id", "phone_number") and v}
        else:
            return False
        hit = names & identifiers
        if not hit:
            return False
        covered |= hit
    return covered == identifiers


class JobOps:
    def __init__(self, transport: Transport) -> None:
        self.t = transport
        self.config = transport.config
        self.log = transport.log
        self._claimed: set[str] = set()   # jobs already handed to a caller by this client
        self._lock = threading.Lock()

    # -- listing and reading --------------------------------------------------------------

    def list_jobs(self, created_after: datetime | None = None) -> list[dict]:
        # No `sort`: the spec's only value is "created_at" (oldest first), and its default
        # order is already newest first, which lets recent-job checks stop early.
        params = {"filter[type]": JOB_TYPE}
        if created_after is None:
            from .listing import list_all
            return list_all(self.t, JOBS_PATH, what="jobs", params=params)
        from .listing import list_recent
        if created_after.tzinfo is None:
            created_after = created_after.replace(tzinfo=timezone.utc)

        def newer(job: dict) -> bool:
            when = parse_time(job.get("created_at"))
            return when is None or when >= created_after

        return list_recent(self.t, JOBS_PATH, what="recent jobs", params=params, newer_than=newer)

    def get_job(self, job_id: str) -> dict:
        body = self.t.get(f"{JOBS_PATH}/{job_id}", what=f"job {job_id}")
        return body["data"] if isinstance(body, dict) and "data" in body else body

    def server_since(self, local: datetime) -> datetime:
        """A moment of this host as a `created_at` bound on Telnyx's clock (rule 3): the
        server's clock measured from its Date headers (one small job listing first if no
        answer was seen yet), less its uncertainty and clock_margin_seconds. Only when no
        answer carried a Date header, our time less clock_skew_seconds."""
        if local.tzinfo is None:
            local = local.replace(tzinfo=timezone.utc)
        if self.t.server_clock.estimate() is None:
            self.t.get(JOBS_PATH, {"filter[type]": JOB_TYPE, "page[size]": 1},
                       what="the server's clock (a job listing of one)")
        est = self.t.server_clock.estimate()
        if est is None:
            return local - timedelta(seconds=self.config.clock_skew_seconds)
        return local + timedelta(seconds=est.offset - est.uncertainty
                                 - self.config.clock_margin_seconds)

    # -- submitting -----------------------------------------------------------------------

    def _claim(self, job: dict) -> bool:
        with self._lock:
            job_id = str(job.get("id"))
            if job_id in self._claimed:
                return False
            self._claimed.add(job_id)
            return True

    def _find_submitted(self, identifiers: frozenset[str], started: datetime,
                        what: str, window: float,
                        existing: frozenset[str] = frozenset()) -> dict | None:
        """After an ambiguous POST: the job it may have created, looked for until `window`
        seconds after the POST was sent (None when none appeared: proof that none was made,
        as far as the window covers the server's delay)."""
        deadline = time.monotonic() + window
        check = 0
        while True:
            check += 1
            # Short waits first (a dropped answer's job is visible at once), then every few
            # seconds until the window ends (a slow server may create it late).
            wait = self.config.adopt_wait_seconds * min(2 ** (check - 1), 8)
            time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
            cutoff = self.server_since(started)
            # A job that existed before the POST (another run's, with the same numbers, made
            # seconds earlier) is never this POST's job, however close its created_at.
            candidates = [j for j in self.list_jobs(created_after=cutoff)
                          if job_matches(j, identifiers) and str(j.get("id")) not in existing]
            candidates.sort(key=lambda j: j.get("created_at") or "")   # oldest first
            for job in candidates:
                if self._claim(job):
                    self.log.warning(f"{what}: adopted job {job.get('id')} "
                                     f"({job.get('status')}) created by the unanswered POST")
                    return job
            left = deadline - time.monotonic()
            if left <= 0 and check >= self.config.adopt_checks:
                return None
            self.log.info(f"{what}: no job with these numbers yet (check {check}, "
                          f"looking {max(left, 0):.0f}s more)")

    def submit(self, phone_numbers: Sequence[str], emergency_enabled: bool,
               emergency_address_id: str | None,
               existing: frozenset[str] = frozenset(),
               before_post: Callable[[], None] | None = None) -> JobSubmission:
        numbers = [str(n) for n in phone_numbers]
        identifiers = frozenset(numbers)
        body: dict[str, Any] = {"phone_numbers": numbers,
                                "emergency_enabled": bool(emergency_enabled)}
        if emergency_address_id is not None:
            body["emergency_address_id"] = str(emergency_address_id)
        what = (f"job for {len(numbers)} numbers ({numbers[0] if numbers else '-'}...) "
                f"emergency_enabled={bool(emergency_enabled)}")
        started_wall = datetime.now(timezone.utc)
        budget = self.t.budget()
        ambiguous_seen = False
        while True:
            attempt_no = budget.tries + 1
            sent_at = time.monotonic()
            attempt = self.t.send("POST", JOB_PATH, json_body=body, before=before_post)
            failure = attempt.failure
            if failure is None:
                job = attempt.body.get("data", attempt.body)
                self._claim(job)
                self.log.debug(f"{what}: created job {job.get('id')}")
                return JobSubmission(job=job, adopted=False)
            if failure.status == 422:
                raise self.t.error_for(attempt, "POST", JOB_PATH, attempts=attempt_no,
                                       cls=JobRejected, phone_numbers=numbers)
            if not failure.retryable:
                raise self.t.error_for(attempt, "POST", JOB_PATH, attempts=attempt_no)
            if failure.ambiguous:
                # Telnyx has no idempotency key: the job may exist. Look before sending again.
                ambiguous_seen = True
                self.log.warning(f"{what}: {failure.reason}; the job may have been created, "
                                 "looking for it before submitting again")
                # No answer at all: the server may still be creating the job, so look for
                # it over the late-job window (at least the read timeout) from the POST.
                # An answered 5xx was finished server-side: a short look suffices.
                window = (self.config.late_job_window - (time.monotonic() - sent_at)
                          if failure.status is None else 0.0)
                try:
                    job = self._find_submitted(identifiers, started_wall, what, window,
                                               existing)
                except TelnyxAPIError as exc:
                    # Not knowing whether the job exists, sending it again could double it.
                    self.log.warning(f"{what}: could not list recent jobs to check; "
                                     "not submitting again")
                    raise JobUnanswered(None, method="POST", path=JOB_PATH,
                                        reason=f"{failure.reason}; the job list could not be "
                                        f"read to check ({exc.reason or exc.status})",
                                        attempts=attempt_no) from None
                if job is not None:
                    return JobSubmission(job=job, adopted=True)
            delay = self.t.delay_for(attempt_no, failure)
            if not budget.allows_another(failure, delay):
                err = self.t.error_for(attempt, "POST", JOB_PATH, attempts=attempt_no)
                self.log.warning(f"{what}: giving up: {err}"
                                 + ("; no job with these numbers was found"
                                    if ambiguous_seen else ""))
                raise err
            self.log.warning(f"{what}: {failure.reason}; submitting again "
                             f"(attempt {attempt_no + 1}) in {delay:.2f}s")
            time.sleep(delay)

    # -- following ------------------------------------------------------------------------

    def follow(self, job_ids: Iterable[str], deadline_seconds: float,
               on_update: Callable[[dict], None] | None = None) -> dict[str, dict]:
        ids = list(dict.fromkeys(str(j) for j in job_ids))
        latest: dict[str, dict] = {}
        pending = set(ids)
        deadline = time.monotonic() + deadline_seconds
        interval = self.config.poll_interval
        if not ids:
            return {}
        workers = min(self.config.max_concurrency, len(ids))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="telnyx-job") as pool:
            while pending:
                order = [j for j in ids if j in pending]
                results = list(pool.map(self._get_quietly, order))
                for job_id, job in zip(order, results):
                    if job is _GONE:
                        pending.discard(job_id)   # not on this account: nothing to wait for
                        continue
                    if job is None:
                        continue
                    before = latest.get(job_id)
                    latest[job_id] = job
                    if before is None or before.get("status") != job.get("status"):
                        if on_update:
                            on_update(job)
                    if job.get("status") in JOB_TERMINAL_STATUSES:
                        pending.discard(job_id)
                done = len(ids) - len(pending)
                self.log.info(f"jobs: {done} of {len(ids)} done"
                              + (f", {len(pending)} in flight" if pending else ""))
                if not pending:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    # deadline_seconds=0 is a one-round status check, not a missed deadline.
                    say = self.log.warning if deadline_seconds > 0 else self.log.debug
                    say(f"jobs: deadline passed with {len(pending)} of {len(ids)} "
                        "not finished; returning their latest status")
                    break
                time.sleep(min(interval, left))
                interval = min(interval * 1.5, self.config.poll_interval_max)
        missing = [j for j in ids if j not in latest]
        if missing:
            self.log.warning(f"jobs: {len(missing)} could not be read at all, e.g. {missing[0]}")
        return {j: latest[j] for j in ids if j in latest}

    def _get_quietly(self, job_id: str) -> dict | object | None:
        try:
            return self.get_job(job_id)
        except TelnyxAPIError as exc:   # one unreadable job must not stop following the others
            self.log.warning(f"job {job_id}: {exc}")
            return _GONE if exc.status == 404 else None
