"""Pure retry decisions: which failures are retried, how long to wait (no I/O here)."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone

import httpx


@dataclass(frozen=True)
class Failure:
    """Why one attempt did not succeed, in the terms the retry loop needs."""

    reason: str                     # for the log line, e.g. "HTTP 503" or "ReadTimeout"
    retryable: bool
    ambiguous: bool                 # the server may have acted on it (matters for POST)
    hint: float | None = None       # server-given wait (Retry-After / x-ratelimit-reset)
    status: int | None = None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def parse_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def wait_hint(headers: Mapping[str, str]) -> float | None:
    """The server's own idea of when to come back: Retry-After first, then x-ratelimit-reset."""
    hint = parse_retry_after(headers.get("retry-after"))
    if hint is None:
        hint = parse_seconds(headers.get("x-ratelimit-reset"))
    return hint


def classify_response(response: httpx.Response) -> Failure | None:
    """None for success; otherwise whether (and how) to retry."""
    status = response.status_code
    if status < 400:
        return None
    if status == 429:
        # Nothing was done: a throttled request is safe to send again, POST included.
        return Failure("HTTP 429", True, False, wait_hint(response.headers), status)
    if status >= 500:
        return Failure(f"HTTP {status}", True, True,
                       parse_retry_after(response.headers.get("retry-after")), status)
    return Failure(f"HTTP {status}", False, False, None, status)


# Raised before any byte of the request left: the server cannot have acted on it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Our own request is malformed (an illegal header, a bad URL): sending it again fails again.
_LOCAL = (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL)


def classify_exception(exc: Exception) -> Failure:
    name = type(exc).__name__
    if isinstance(exc, _LOCAL):
        return Failure(name, False, False)
    if isinstance(exc, _NOT_SENT):
        return Failure(name, True, False)
    if isinstance(exc, httpx.TransportError):   # timeouts, resets, dropped connections
        return Failure(name, True, True)
    return Failure(name, False, True)


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    hint: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Wait before retry number `attempt` (1 = first retry).

    Exponential with "equal jitter" (half fixed, half random) so that concurrent clients spread
    out; a server hint is honoured as a floor, with a little jitter on top so that every thread
    released by the same reset does not arrive in the same instant.
    """
    rng = rng or random
    exp = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = exp / 2 + rng.uniform(0, exp / 2)
    if hint is not None:
        delay = max(hint + rng.uniform(0, min(1.0, 0.1 * hint + base / 4)), min(delay, hint))
    return min(max(delay, 0.0), max(cap, hint or 0.0))


@dataclass
class RetryBudget:
    """How long one request may keep trying. Failures (5xx, timeouts, dropped connections)
    count against `max_attempts`; a 429 is the API saying "wait", not a fault, so it counts
    against its own, larger `max_throttled`; everything against `max_seconds`. (Counting
    429s as failures gave up on a request that a burst of 429s met at every retry although
    each wait honoured the reset.)"""

    max_attempts: int
    max_throttled: int
    max_seconds: float
    failures: int = 0
    throttled: int = 0
    started: float = field(default_factory=time.monotonic)

    def allows_another(self, failure: Failure, delay: float) -> bool:
        """Count this failed attempt; may the request be sent again after `delay`?"""
        if failure.status == 429:
            self.throttled += 1
        else:
            self.failures += 1
        return (self.failures < self.max_attempts and self.throttled < self.max_throttled
                and self.elapsed + delay <= self.max_seconds)

    @property
    def tries(self) -> int:
        """Attempts that have failed so far."""
        return self.failures + self.throttled

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started
