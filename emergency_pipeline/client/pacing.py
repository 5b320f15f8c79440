"""Proactive pacing shared by every thread of a client: stay under the rate limit.

Two independent brakes:
- `max_rate` (requests/second): requests are spaced evenly.
- The API's x-ratelimit-remaining / x-ratelimit-reset: the pacer keeps a budget of requests left
  in the current window (the last answer's remaining, minus requests still in flight) and, when
  it is spent, holds every thread until the window resets, instead of letting them earn 429s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from .retry import parse_seconds


class Pacer:
    def __init__(
        self,
        max_rate: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        min_reset_wait: float = 0.05,
        new_window_tolerance: float = 0.5,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._interval = 1.0 / max_rate if max_rate else 0.0
        self._next_slot = 0.0
        self._budget: int | None = None      # None: unknown (no answer yet in this window)
        self._reset_at = 0.0
        self._in_flight = 0
        self._min_reset_wait = min_reset_wait
        # A reset this much later than the one we hold means the answer is from a new window.
        self._new_window_tolerance = new_window_tolerance
        self.waited_seconds = 0.0            # total time threads were held (for reports)
        self.holds = 0

    def acquire(self) -> float:
        """Block until a request may be sent; returns the seconds waited. Pair with release()."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                if self._budget is not None and now >= self._reset_at:
                    self._budget = None      # the window has passed; the next answer tells
                wait = 0.0
                if self._budget is not None and self._budget <= 0:
                    wait = self._reset_at - now
                elif self._interval and self._next_slot > now:
                    wait = self._next_slot - now
                if wait <= 0:
                    if self._budget is not None:
                        self._budget -= 1
                    if self._interval:
                        self._next_slot = max(now, self._next_slot) + self._interval
                    self._in_flight += 1
                    if waited:
                        self.waited_seconds += waited
                        self.holds += 1
                    return waited
            wait = min(wait, 1.0)            # re-check: another answer may change the picture
            self._sleep(wait)
            waited += wait

    def release(
        self, headers: Mapping[str, str] | None, *, throttled: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Record an answer (or its absence, headers=None) of a request started by acquire()."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            now = self._clock()
            if throttled:
                # Everyone stops until the server's window resets.
                self._budget = 0
                wait = retry_after if retry_after is not None else self._min_reset_wait
                self._reset_at = now + max(wait, self._min_reset_wait)   # the server knows best
                return
            if not headers:
                return
            remaining = parse_seconds(headers.get("x-ratelimit-remaining"))
            reset = parse_seconds(headers.get("x-ratelimit-reset"))
            if remaining is None or reset is None:
                return
            # Requests sent but not answered yet are likely not counted in this answer.
            budget = int(remaining) - self._in_flight
            reset_at = now + max(reset, self._min_reset_wait)
            if (self._budget is None or now >= self._reset_at
                    or reset_at > self._reset_at + self._new_window_tolerance):
                self._budget, self._reset_at = budget, reset_at
            else:                            # same window, answers out of order: be cautious
                self._budget = min(self._budget, budget)
                self._reset_at = max(self._reset_at, reset_at)
