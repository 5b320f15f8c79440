"""Switchable faults: what can go wrong between a client and Telnyx, on demand.

`Faults` is the setting (frozen, all off by default); `FaultInjector` rolls the dice for
each request and job. Both are safe to replace while the server runs.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Faults:
    error_rate: float = 0.0          # share of requests answered 500 or 503
    throttle_rate: float = 0.0       # chance that a request starts a 429 burst
    throttle_burst: int = 1          # consecutive requests answered 429 in a burst
    latency: float = 0.0             # seconds added to every answer
    drop_rate: float = 0.0           # share of connections closed without an answer
    lose_job_post_rate: float = 0.0  # share of job POSTs whose job is created, answer dropped
    lose_address_post_rate: float = 0.0  # same for POST /addresses: created, answer dropped
    slow_job_post_rate: float = 0.0  # share of job POSTs the server works on for a long time:
    slow_job_post_seconds: float = 0.0   # ...this long before it creates the job and answers
    expire_rate: float = 0.0         # share of jobs that end `expired`
    fail_job_rate: float = 0.0       # share of jobs that end `failed`
    number_fail_rate: float = 0.0    # share of numbers in jobs the provider refuses (unchanged)
    seed: int | None = None          # seeds the dice (None: unpredictable)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_rate") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be between 0 and 1, not {value!r}")
        if self.throttle_burst < 1:
            raise ValueError("throttle_burst must be at least 1")
        if self.slow_job_post_seconds < 0:
            raise ValueError("slow_job_post_seconds must not be negative")
        if self.latency < 0:
            raise ValueError("latency must not be negative")

    @classmethod
    def parse(cls, text: str | None) -> Faults:
        """`error_rate=0.05,latency=0.05` -> Faults (the CLI's --faults)."""
        values: dict[str, Any] = {}
        for part in (text or "").split(","):
            if not part.strip():
                continue
            name, sep, raw = part.partition("=")
            if not sep:
                raise ValueError(f"expected name=value, got {part!r}")
            values[name.strip()] = raw.strip()
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Faults:
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = set(values) - set(types)
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        out: dict[str, Any] = {}
        for name, raw in values.items():
            if name == "seed":
                out[name] = None if raw in (None, "", "none", "None") else int(raw)
            elif name == "throttle_burst":
                out[name] = int(raw)
            else:
                out[name] = float(raw)
        return cls(**out)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Decision:
    """What to do with one request."""

    latency: float = 0.0
    drop: bool = False
    status: int | None = None        # 429, 500 or 503 to answer instead of the real thing


class FaultInjector:
    def __init__(self, faults: Faults | None = None) -> None:
        self._lock = threading.Lock()
        self.set(faults or Faults())

    def set(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            self._rng = random.Random(faults.seed)
            self._burst_left = 0

    def for_request(self) -> Decision:
        with self._lock:
            f, rnd = self.faults, self._rng.random
            if self._burst_left > 0:
                self._burst_left -= 1
                return Decision(latency=f.latency, status=429)
            if f.drop_rate and rnd() < f.drop_rate:
                return Decision(latency=f.latency, drop=True)
            if f.throttle_rate and rnd() < f.throttle_rate:
                self._burst_left = f.throttle_burst - 1
                return Decision(latency=f.latency, status=429)
            if f.error_rate and rnd() < f.error_rate:
                return Decision(latency=f.latency, status=500 if rnd() < 0.5 else 503)
            return Decision(latency=f.latency)

    def happens(self, rate: str) -> bool:
        """Roll for one event of a per-event fault: `lose_job_post_rate`,
        `lose_address_post_rate`, `slow_job_post_rate` or `number_fail_rate`."""
        with self._lock:
            share = getattr(self.faults, rate)
            return bool(share) and self._rng.random() < share

    def job_fate(self) -> str:
        """'completed', 'expired' or 'failed', decided when a job is created."""
        with self._lock:
            f = self.faults
            r = self._rng.random() if (f.expire_rate or f.fail_job_rate) else 1.0
            if r < f.expire_rate:
                return "expired"
            if r < f.expire_rate + f.fail_job_rate:
                return "failed"
            return "completed"
