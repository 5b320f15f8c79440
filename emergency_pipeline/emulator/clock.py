"""The emulator's one source of time: host time, shifted by a skew and by test advances.

`offset_seconds` is Telnyx's clock relative to the host: what the emulator reports
(created_at, updated_at, the `Date` header) is host time + offset + advanced. It never
changes how long anything takes, since durations are measured on `monotonic()`.
`advance(seconds)` moves the emulator's time forward for both, so a test finishes a
12-second job (or waits out a rate-limit window) without sleeping.
"""

from __future__ import annotations

import math
import threading
import time


def _finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, not {value!r}")
    return float(value)


class EmulatorClock:
    def __init__(self, offset_seconds: float = 0.0) -> None:
        self._lock = threading.Lock()
        self.offset_seconds = _finite("offset_seconds", offset_seconds)
        self.advanced_seconds = 0.0

    def __repr__(self) -> str:
        return (f"EmulatorClock(offset_seconds={self.offset_seconds}, "
                f"advanced_seconds={self.advanced_seconds})")

    def monotonic(self) -> float:
        """For durations: jobs, settling, rate-limit windows (skew does not count)."""
        return time.monotonic() + self.advanced_seconds

    def wall(self) -> float:
        """Epoch seconds as Telnyx's clock reads them (for reported timestamps)."""
        return time.time() + self.offset_seconds + self.advanced_seconds

    def set_offset(self, seconds: float) -> None:
        self.offset_seconds = _finite("offset_seconds", seconds)

    def advance(self, seconds: float) -> None:
        seconds = _finite("seconds", seconds)
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0 (time does not go back), not {seconds}")
        with self._lock:
            self.advanced_seconds += seconds

    def to_dict(self) -> dict[str, float]:
        return {"offset_seconds": self.offset_seconds,
                "advanced_seconds": self.advanced_seconds}
