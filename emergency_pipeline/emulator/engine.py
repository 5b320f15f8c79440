"""The emulator's state behind one lock: the account, the jobs, settling numbers, stats.

Every API call runs `advance()` first, which moves jobs and numbers to where the clock
says they are; nothing runs in the background.
"""

from __future__ import annotations

import heapq
import math
import random
import threading
import uuid
from collections import Counter
from typing import Any

from emergency_pipeline import telnyx_contract as contract
from emergency_pipeline.emulator import job_records as jobs_mod
from emergency_pipeline.emulator.account import Account
from emergency_pipeline.emulator.clock import EmulatorClock
from emergency_pipeline.emulator.errors import ErrorReply, not_found, unprocessable
from emergency_pipeline.emulator.faults import FaultInjector
from emergency_pipeline.emulator.shape import Shape


class RateLimiter:
    """Fixed window: `limit` requests per `window` seconds (of the emulator's clock)."""

    def __init__(self, limit: int, window: float, clock: EmulatorClock | None = None) -> None:
        self.limit, self.window = limit, window
        self.clock = clock or EmulatorClock()
        self._lock = threading.Lock()
        self._start = self.clock.monotonic()
        self._count = 0

    def hit(self) -> tuple[bool, dict[str, str]]:
        """Count one request: (allowed, the x-ratelimit-* headers)."""
        with self._lock:
            now = self.clock.monotonic()
            if now - self._start >= self.window:
                self._start += self.window * math.floor((now - self._start) / self.window)
                self._count = 0
            self._count += 1
            allowed = self._count <= self.limit
            reset = max(0.0, self._start + self.window - now)
            headers = {
                "x-ratelimit-limit": str(self.limit),
                "x-ratelimit-remaining": str(max(0, self.limit - self._count)),
                "x-ratelimit-reset": str(max(1, math.ceil(reset))),
            }
            return allowed, headers


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.by_status: Counter[int] = Counter()
            self.by_route: Counter[str] = Counter()
            self.jobs_created = 0
            self.dropped = 0
            self.lost_job_answers = 0
            self.addresses_created = 0
            self.lost_address_answers = 0

    def request(self, route: str) -> None:
        with self._lock:
            self.requests += 1
            self.by_route[route] += 1

    def add(self, name: str, status: int | None = None) -> None:
        with self._lock:
            if status is not None:
                self.by_status[status] += 1
            if name:
                setattr(self, name, getattr(self, name) + 1)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.requests, "by_status": dict(self.by_status),
                    "by_route": dict(self.by_route), "jobs_created": self.jobs_created,
                    "dropped": self.dropped, "lost_job_answers": self.lost_job_answers,
                    "addresses_created": self.addresses_created,
                    "lost_address_answers": self.lost_address_answers}


class Engine:
    def __init__(self, account: Account, *, job_seconds: float, settle_seconds: float,
                 max_jobs_in_flight: int, faults: FaultInjector, seed: int,
                 shape: Shape | None = None, clock: EmulatorClock | None = None) -> None:
        self.account = account
        self.clock = clock or EmulatorClock()
        self.shape = shape or Shape()
        self.job_seconds = job_seconds
        self.settle_seconds = settle_seconds
        self.max_jobs_in_flight = max_jobs_in_flight
        self.faults = faults
        self.lock = threading.RLock()
        self.jobs: dict[str, jobs_mod.Job] = {}
        self.job_order: list[jobs_mod.Job] = []        # by creation
        self._in_flight: list[jobs_mod.Job] = []
        self._settle: dict[int, float] = {}            # number index -> when it settles
        self._settle_heap: list[tuple[float, int]] = []
        self._ids = random.Random(seed ^ 0x5EED)
        self._filter_cache: dict[tuple, tuple[int, Any]] = {}

    # ---- time ------------------------------------------------------------------------

    def advance(self) -> None:
        """Bring jobs and settling numbers up to now. Caller holds the lock."""
        now_mono, now_wall = self.clock.monotonic(), self.clock.wall()
        if self._in_flight:
            for job in self._in_flight:
                job.advance(now_mono, now_wall, self)
            self._in_flight = [j for j in self._in_flight if j.in_flight]
        self._settle_due(now_mono, now_wall)

    def move_clock(self, seconds: Any) -> None:
        """Advance the emulator's clock and bring everything up to the new time."""
        with self.lock:
            self.clock.advance(seconds)
            self.advance()

    def _settle_due(self, until: float, now_wall: float) -> None:
        heap, acc = self._settle_heap, self.account
        while heap and heap[0][0] <= until:
            due, i = heapq.heappop(heap)
            if self._settle.get(i) != due:
                continue  # superseded by a later change
            del self._settle[i]
            acc.set_emergency_status(i, "active" if acc.enabled[i] else "disabled", now_wall)

    def finish_jobs(self, settle: bool = True) -> None:
        """Every in-flight job to its end now; with settle, every number to its end too."""
        with self.lock:
            now_wall = self.clock.wall()
            for job in self._in_flight:
                job.finish(now_wall, self)
            self._in_flight = []
            if settle:
                self._settle_due(math.inf, now_wall)

    # ---- numbers ---------------------------------------------------------------------

    def apply_number(self, job: jobs_mod.Job, pos: int, now_wall: float) -> dict | None:
        """Carry out one number of a job; returns its error or None."""
        acc, req = self.account, job.request
        i = req.indexes[pos]
        err = jobs_mod.unknown_address_error() if req.unknown_address \
            else jobs_mod.number_error(acc, i, pos)
        if err is None and self.faults.happens("number_fail_rate"):
            err = jobs_mod.provider_refusal(req.enable, pos)
        if err is not None:
            return err
        self._change(i, req.enable, req.address, now_wall)
        return None

    def _change(self, i: int, enable: bool, address: int | None, now_wall: float) -> None:
        acc = self.account
        same = (bool(acc.enabled[i]) == enable
                and (not enable or acc.address[i] == address)
                and acc.emergency_status(i) == ("active" if enable else "disabled"))
        if same:
            return  # already so: Telnyx reports success and changes nothing
        acc.set_emergency(i, enable, address, "provisioning" if enable else "deprovisioning",
                          now_wall)
        due = self.clock.monotonic() + self.settle_seconds
        self._settle[i] = due
        heapq.heappush(self._settle_heap, (due, i))

    def number_index(self, key: str) -> int:
        i = self.account.index_of(key)
        if i is None:
            raise not_found()
        return i

    def enable_emergency(self, key: str, body: Any) -> dict[str, Any]:
        """POST /phone_numbers/{id}/actions/enable_emergency."""
        i = self.number_index(key)
        if not isinstance(body, dict):
            raise unprocessable("The request body must be a JSON object.", "/base")
        if body.get("emergency_enabled") is not True:
            raise unprocessable("must be true", "/emergency_enabled")
        address_id = body.get("emergency_address_id")
        if not isinstance(address_id, str) or not address_id:
            raise unprocessable("must be present", "/emergency_address_id")
        address = self.account.address_index(address_id)
        if address is None:
            raise unprocessable("The emergency address was not found on this account",
                                "/emergency_address_id")
        err = jobs_mod.number_error(self.account, i, 0)
        if err is not None:
            err["source"] = {"pointer": "/base"}
            raise ErrorReply(422, [err])
        self._change(i, True, address, self.clock.wall())
        return self.account.voice_dict(i)

    def filtered(self, **filters: str | None) -> Any:
        """Number indexes passing the filters; cached until the account changes."""
        key = tuple(sorted(filters.items()))
        hit = self._filter_cache.get(key)
        if hit is not None and hit[0] == self.account.version:
            return hit[1]
        result = self.account.matching(**filters)
        if len(self._filter_cache) > 32:
            self._filter_cache.clear()
        self._filter_cache[key] = (self.account.version, result)
        return result

    # ---- jobs ------------------------------------------------------------------------

    def create_job(self, body: Any) -> jobs_mod.Job:
        in_flight = sum(1 for j in self._in_flight if j.in_flight)
        req = jobs_mod.validate(body, self.account, in_flight, self.max_jobs_in_flight,
                                self.shape)
        now_wall = self.clock.wall()
        job = jobs_mod.Job(
            id=str(uuid.UUID(int=self._ids.getrandbits(128), version=4)), request=req,
            created_wall=now_wall, created_mono=self.clock.monotonic(),
            seconds=self.job_seconds,
            fate=self.faults.job_fate(), updated_wall=now_wall)
        self.jobs[job.id] = job
        self.job_order.append(job)
        self._in_flight.append(job)
        return job

    def job(self, job_id: str) -> jobs_mod.Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise not_found()
        return job

    def list_jobs(self, job_type: str | None, sort: str | None) -> list[jobs_mod.Job]:
        """Newest first; `sort=created_at` (the only value the spec allows) oldest first.
        The server has checked both values against the spec's enums."""
        jobs = [] if job_type not in (None, contract.JOB_TYPE) else self.job_order
        return list(jobs) if sort == "created_at" else jobs[::-1]
