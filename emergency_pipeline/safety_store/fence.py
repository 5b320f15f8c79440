"""Holding the lease through a step: heartbeats, and the fence checked before every POST.

`held(...)` takes the lease and heartbeats it from a thread. `HeldLease.confirm()` is called
right before EVERY job POST (from several POST threads at once): one statement in the store
renews our hold only if our token is still current, and the last confirmed heartbeat must be
younger than `fence_seconds`, a bound well under the takeover time (`stale_after`). A process
paused (SIGSTOP, a VM pause, a stalled disk) therefore finds out, when it resumes, that it
lost the lease before it sends anything more; once lost, every later confirm raises at once.

`fresh()` is the local half alone (no store call): cheap enough for an httpx request hook
right before the bytes go out. What remains is the pause between that check and the bytes on
the wire, which no check on this side can close.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from emergency_pipeline.safety_store.lease import (
    AccountLease, IsRunFinished, KeepWaiting, LeaseHolder, LeaseLost, OnWait, clock,
)

_CONFIRM_TRIES = 3


class HeldLease:
    """What `held` yields: the holder, confirm() before each POST, fresh() in a hook."""

    def __init__(self, lease: AccountLease, holder: LeaseHolder, fence_seconds: float,
                 confirmed_at: float) -> None:
        self.lease = lease
        self.holder = holder
        self.fence_seconds = fence_seconds
        self._confirmed = confirmed_at      # clock() before the last good store call
        self._lost: LeaseLost | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def token(self) -> int:
        return self.holder.token

    @property
    def lost(self) -> LeaseLost | None:
        return self._lost

    def _mark(self, started: float) -> None:
        with self._lock:
            self._confirmed = max(self._confirmed, started)

    def _lose(self, exc: LeaseLost) -> LeaseLost:
        with self._lock:
            if self._lost is None:
                self._lost = exc
            return self._lost

    def age(self) -> float:
        """Seconds since the start of the last store call that confirmed our token."""
        with self._lock:
            return clock() - self._confirmed

    def fresh(self) -> bool:
        """Not lost, and our token was confirmed less than fence_seconds ago (no store call)."""
        return self._lost is None and self.age() < self.fence_seconds

    def confirm(self) -> None:
        """Right before a POST: our token is current in the store (renewed now), and that
        confirmation is younger than fence_seconds; else LeaseLost (sticky)."""
        if self._lost is not None:
            raise self._lost
        h = self.holder
        for _ in range(_CONFIRM_TRIES):
            started = clock()
            try:
                self.lease.heartbeat(h.account, h.run_id, h.token)
            except LeaseLost as exc:
                raise self._lose(exc) from None
            self._mark(started)
            # Paused inside the call, past the fence? Our renewal may be older than a
            # takeover: confirm again (a takeover then shows as LeaseLost).
            if clock() - started < self.fence_seconds:
                return
        raise self._lose(LeaseLost(
            f"run {h.run_id} (token {h.token}) could not confirm its account lease for "
            f"{h.account} within {self.fence_seconds:g} s, {_CONFIRM_TRIES} times: the safety "
            f"store {self.lease.backend.describe()} is too slow; nothing more is sent"))

    ensure_held = confirm  # the name callers used before the fence

    def confirm_in(self, con: Any) -> float:
        """The fence inside another transaction (the ledger's record): renew our hold in it or
        raise LeaseLost, which rolls that transaction back. Returns the monotonic start, to
        pass to confirmed() once the transaction committed."""
        if self._lost is not None:
            raise self._lost
        started = clock()
        h = self.holder
        try:
            self.lease.renew_in(con, h.account, h.run_id, h.token)
        except LeaseLost as exc:
            raise self._lose(exc) from None
        return started

    def confirmed(self, started: float) -> None:
        self._mark(started)

    def _beat(self, every: float) -> None:
        session = self.lease.backend.session()
        h = self.holder
        try:
            while not self._stop.wait(every):
                started = clock()
                try:
                    self.lease.heartbeat(h.account, h.run_id, h.token, via=session)
                except LeaseLost as exc:
                    self._lose(exc)
                    return
                except Exception:  # noqa: BLE001 - a busy file, a dropped connection: again.
                    # Should it last, confirm() finds the heartbeat too old and checks itself.
                    continue
                self._mark(started)
        finally:
            if session is not self.lease.backend:
                session.close()


@contextmanager
def held(lease: AccountLease, account: str, run_id: str, *, wait_seconds: float,
         heartbeat_seconds: float = 5.0, fence_seconds: float = 20.0,
         on_wait: OnWait | None = None, is_run_finished: IsRunFinished | None = None,
         keep_waiting: KeepWaiting | None = None,
         reenter: bool = False, release_on_exit: bool = False,
         release_on_error: bool = True, confirm_on_exit: bool = False
         ) -> Iterator[HeldLease]:
    """Acquire, heartbeat in a daemon thread while inside, release on error (or always).
    `confirm_on_exit`: a clean exit confirms the hold (LeaseLost if another run took it over
    meanwhile), so that a step which lost its lease never ends as if it had not.

    Kept on a clean exit by default: a later step of the same run re-enters it
    (reenter=True keeps the token, or fails if another run held it meanwhile) and the run's
    last step releases it (release_on_exit=True).
    """
    if not 0 < heartbeat_seconds < fence_seconds:
        raise ValueError("need 0 < heartbeat_seconds < fence_seconds")
    if fence_seconds > lease.stale_after / 3:
        raise ValueError(f"fence_seconds ({fence_seconds:g}) must be at most a third of the "
                         f"lease's stale_after ({lease.stale_after:g})")
    holder, before = lease.take(account, run_id, wait_seconds=wait_seconds, on_wait=on_wait,
                                is_run_finished=is_run_finished, reenter=reenter,
                                keep_waiting=keep_waiting)
    kept = HeldLease(lease, holder, fence_seconds, before)  # the take confirmed our token
    beat = threading.Thread(target=kept._beat, args=(heartbeat_seconds,), daemon=True,
                            name=f"lease-heartbeat-{run_id}")
    beat.start()
    failed = True
    try:
        yield kept
        if confirm_on_exit:
            # A step ends well only while it still holds the lease: one that lost it meanwhile
            # (paused past the takeover, nothing left to send) fails, naming the holder.
            kept.confirm()
        failed = False
    finally:
        kept._stop.set()
        beat.join()
        if release_on_exit or (failed and release_on_error):
            lease.release(account, run_id, holder.token)
