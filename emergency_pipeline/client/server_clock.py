"""Telnyx's clock, as its `Date` headers show it (design rule 3: compare with Telnyx's clock).

Every job has a `created_at` written by Telnyx's clock. Comparing it with this host's clock
breaks when the two disagree: with Telnyx 30 s behind, a job another operator created just
after our snapshot looked older than the snapshot, and the pre-POST recheck missed it. So
every comparison with a Telnyx timestamp goes through this estimate of the server's clock.

A `Date` header has whole seconds (RFC 7231), written at some moment between our send and our
receipt. Each answer therefore bounds the offset (server minus ours):

    date - received  <=  offset  <  date + 1 - sent

Intersecting the bounds of every answer narrows the estimate below a second within a few
requests. Should they stop overlapping (one of the clocks was set), the latest answer alone
starts a fresh estimate.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class ClockEstimate:
    """The server's clock minus ours, in seconds, within [low, high]."""

    low: float
    high: float

    @property
    def offset(self) -> float:
        return (self.low + self.high) / 2

    @property
    def uncertainty(self) -> float:
        return (self.high - self.low) / 2


class ServerClock:
    """The running estimate of Telnyx's clock; thread-safe (every answer updates it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._estimate: ClockEstimate | None = None

    def note(self, date_header: str | None, sent: float, received: float) -> None:
        """One answer's `Date`, with our time.time() when its request was sent and received."""
        if not date_header:
            return
        try:
            server = parsedate_to_datetime(date_header)
        except (TypeError, ValueError):
            return
        if server.tzinfo is None:
            server = server.replace(tzinfo=timezone.utc)
        at = server.timestamp()
        low, high = at - received, at + 1.0 - sent
        with self._lock:
            old = self._estimate
            if old is not None and max(low, old.low) <= min(high, old.high):
                low, high = max(low, old.low), min(high, old.high)
            self._estimate = ClockEstimate(low, high)

    def estimate(self) -> ClockEstimate | None:
        with self._lock:
            return self._estimate

    def to_server(self, local: datetime) -> datetime | None:
        """A moment of ours on the server's clock (None before any answer)."""
        est = self.estimate()
        if est is None:
            return None
        if local.tzinfo is None:
            local = local.replace(tzinfo=timezone.utc)
        return local + timedelta(seconds=est.offset)

    def now(self) -> datetime | None:
        return self.to_server(datetime.fromtimestamp(time.time(), timezone.utc))
