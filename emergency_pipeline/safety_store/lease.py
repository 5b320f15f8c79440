"""The account lease, fenced: at most one run that may submit jobs works on an account.

Design rule 3. One row per account holds the run, its host and pid, a token and the times
(store clock). Each take by a different run gives a token greater than any ever given for
that account: the row is kept after release (released_at set), so tokens never go back.
Re-entry by the same run while the row is still its own and unreleased keeps the token (a
later Dagster step, maybe in another process, continues the hold with its own host and pid).

A holder stops counting (its lease may be taken over) when
- the caller says its Dagster run has finished (`is_run_finished`: the UI's terminate marks a
  run CANCELED while its process may still be posting), or
- its heartbeat is older than `stale_after` (a crashed or paused run on any host), or
- it is on this host, its process is gone and its heartbeat is older than `dead_pid_grace`
  (a `kill -9` noticed in seconds; the grace covers the gap between two steps of one run).
Only the last is *proven dead*; any other taker must treat the old holder's recorded batches
as possibly still being posted (TakeOver.proven_dead=False), and the old holder finds out at
its next confirm (fence.py) that its token is no longer current.

Backend-neutral: the same statements run on SQLite (BEGIN IMMEDIATE serialises writers) and
PostgreSQL (`SELECT ... FOR UPDATE` on the account's row, created first if missing).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

_NOTICE_EVERY = 10.0  # seconds between two on_wait calls for one acquire
_COLUMNS = "run_id, host, pid, token, acquired_at, heartbeat_at, released_at, took_over"

OnWait = Callable[["LeaseHolder"], None]
IsRunFinished = Callable[[str], bool]
# Past wait_seconds, whether to wait on for this holder (a run the same queue started just
# ahead of ours: the deployment's run queue lets the next apply run start and wait here).
KeepWaiting = Callable[["LeaseHolder"], bool]


def clock() -> float:
    """Local seconds for the fence's ages: CLOCK_BOOTTIME also counts a suspended machine,
    which time.monotonic() (CLOCK_MONOTONIC) skips."""
    return time.clock_gettime(_CLOCK)


_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


@dataclass(frozen=True)
class TakeOver:
    """The unreleased holder a take replaced, and why it no longer counted."""

    run_id: str
    host: str
    pid: int
    token: int
    heartbeat_at: datetime
    at: datetime          # store clock of the takeover
    proven_dead: bool     # on this host and its process gone: nothing of it can still post
    why: str


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds an account's lease. Times are UTC, on the store's clock; `seen_at` is the
    store's time when this was read (None when unknown)."""

    account: str
    run_id: str
    host: str
    pid: int
    token: int
    acquired_at: datetime
    heartbeat_at: datetime
    took_over: TakeOver | None = None
    seen_at: datetime | None = None

    def heartbeat_age(self, now: datetime | None = None) -> float | None:
        at = now or self.seen_at
        return None if at is None else (at - self.heartbeat_at).total_seconds()

    def describe(self) -> str:
        since = self.acquired_at.isoformat(timespec="seconds")
        age = self.heartbeat_age()
        beat = "" if age is None else f" (heartbeat {age:.0f} s ago)"
        return (f"run {self.run_id} on host {self.host}, pid {self.pid}, token {self.token}, "
                f"since {since}{beat}")


def _released_by(last: LeaseHolder, run_id: str) -> str:
    """Why a lease that is free now is no longer ours: the run that held it after us and
    has finished since (what the lost run's ERROR must name), or our own release."""
    if last.run_id in ("", run_id):
        return "it was released"
    return (f"taken over by run {last.run_id} on host {last.host} (token {last.token}), "
            "which has since released it")


def _took_over_text(took: TakeOver | None) -> str | None:
    if took is None:
        return None
    return json.dumps({"run_id": took.run_id, "host": took.host, "pid": took.pid,
                       "token": took.token, "heartbeat_at": took.heartbeat_at.timestamp(),
                       "at": took.at.timestamp(), "proven_dead": took.proven_dead,
                       "why": took.why})


def _took_over(text: str | None) -> TakeOver | None:
    if not text:
        return None
    d = json.loads(text)
    return TakeOver(d["run_id"], d["host"], d["pid"], d["token"], utc(d["heartbeat_at"]),
                    utc(d["at"]), d["proven_dead"], d["why"])


class LeaseUnavailable(RuntimeError):
    """Another run held the account's lease for longer than we could wait."""

    def __init__(self, holder: LeaseHolder, waited: float, advice: str):
        self.holder = holder
        self.waited = waited
        super().__init__(
            f"the account lease for {holder.account} is held by {holder.describe()}; "
            f"waited {waited:.1f} s for it. Wait for that run to finish and start again "
            f"(or allow a longer wait). {advice}")


class LeaseLost(RuntimeError):
    """Our lease is no longer ours (taken over, or released): submit nothing more.
    `.holder` is the current holder (None when nobody holds it)."""

    def __init__(self, message: str, holder: LeaseHolder | None = None):
        super().__init__(message)
        self.holder = holder


def _pid_alive(pid: int) -> bool:
    if pid <= 0:  # os.kill(0, ...) would mean our own process group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class AccountLease:
    """The fenced lease on a store backend (sqlite_backend / postgres_backend)."""

    def __init__(self, backend: Any, *, stale_after: float = 120.0,
                 dead_pid_grace: float = 10.0, poll_seconds: float = 0.5) -> None:
        if not 0 < dead_pid_grace <= stale_after:
            raise ValueError("need 0 < dead_pid_grace <= stale_after")
        self.backend = backend
        self.stale_after = stale_after
        self.dead_pid_grace = dead_pid_grace
        self.poll_seconds = poll_seconds

    def _read(self, con: Any, account: str, lock: bool = False) -> tuple | None:
        return con.execute(
            f"SELECT {_COLUMNS}, {self.backend.now_sql} FROM lease WHERE account = ?"
            + (self.backend.for_update if lock else ""), (account,)).fetchone()

    @staticmethod
    def _holder(account: str, row: tuple) -> LeaseHolder:
        run_id, host, pid, token, acquired, beat, _released, took, now = row
        return LeaseHolder(account, run_id, host, pid, token, utc(acquired), utc(beat),
                           took_over=_took_over(took), seen_at=utc(now))

    def holder(self, account: str) -> LeaseHolder | None:
        """The current holder, None when the lease is free (released, or never taken)."""
        with self.backend.transaction(write=False) as con:
            row = self._read(con, account)
        return None if row is None or row[6] is not None else self._holder(account, row)

    def _judge(self, current: LeaseHolder, finished_run: str | None) -> tuple[str | None, bool]:
        """(why it no longer counts, proven dead) or (None, False) while it counts."""
        age = current.heartbeat_age() or 0.0
        gone = (current.host == socket.gethostname() and age > self.dead_pid_grace
                and not _pid_alive(current.pid))  # a reused pid looks alive: age decides
        if current.run_id == finished_run:
            return f"its Dagster run {current.run_id} has finished", gone
        if age > self.stale_after:
            return f"its heartbeat is {age:.0f} s old (stale after {self.stale_after:g} s)", gone
        if gone:
            return f"its process {current.pid} on this host is gone", True
        return None, False

    def _try_take(self, account: str, run_id: str, finished_run: str | None,
                  reenter: bool) -> tuple[bool, LeaseHolder]:
        """One attempt: (True, our holder) or (False, the current other holder)."""
        host, pid = socket.gethostname(), os.getpid()
        with self.backend.transaction() as con:
            # The row first (token 0, released), so that FOR UPDATE has a row to lock: two
            # first takers of an account then queue on it instead of racing to insert.
            con.execute(f"INSERT INTO lease (account, run_id, host, pid, token, acquired_at, "
                        f"heartbeat_at, released_at) VALUES (?, '', '', 0, 0, "
                        f"{self.backend.now_sql}, {self.backend.now_sql}, "
                        f"{self.backend.now_sql}) ON CONFLICT (account) DO NOTHING",
                        (account,))
            row = self._read(con, account, lock=True)
            current = self._holder(account, row)
            now, live = row[8], row[6] is None
            if live and current.run_id == run_id:  # re-entry: same token, our host and pid
                con.execute("UPDATE lease SET host = ?, pid = ?, heartbeat_at = ? "
                            "WHERE account = ?", (host, pid, now, account))
                # The takeover the first take made is the re-entering step's to know too
                # (the update step waits out a live holder's late POSTs).
                return True, LeaseHolder(account, run_id, host, pid, current.token,
                                         current.acquired_at, utc(now),
                                         took_over=current.took_over, seen_at=utc(now))
            if reenter:
                # Our own token is the first step's, unknown here: the row shows the holder's.
                raise self.lost(account, run_id, None, current if live else None,
                                None if live else _released_by(current, run_id))
            took_over = None
            if live:
                why, dead = self._judge(current, finished_run)
                if why is None:
                    return False, current
                took_over = TakeOver(current.run_id, current.host, current.pid, current.token,
                                     current.heartbeat_at, utc(now), dead, why)
            token = current.token + 1
            con.execute("UPDATE lease SET run_id = ?, host = ?, pid = ?, token = ?, "
                        "acquired_at = ?, heartbeat_at = ?, released_at = NULL, took_over = ? "
                        "WHERE account = ?", (run_id, host, pid, token, now, now,
                                              _took_over_text(took_over), account))
        return True, LeaseHolder(account, run_id, host, pid, token, utc(now), utc(now),
                                 took_over=took_over, seen_at=utc(now))

    def acquire(self, account: str, run_id: str, *, wait_seconds: float,
                on_wait: OnWait | None = None, is_run_finished: IsRunFinished | None = None,
                reenter: bool = False, keep_waiting: KeepWaiting | None = None) -> LeaseHolder:
        return self.take(account, run_id, wait_seconds=wait_seconds, on_wait=on_wait,
                         is_run_finished=is_run_finished, reenter=reenter,
                         keep_waiting=keep_waiting)[0]

    def take(self, account: str, run_id: str, *, wait_seconds: float,
             on_wait: OnWait | None = None, is_run_finished: IsRunFinished | None = None,
             reenter: bool = False, keep_waiting: KeepWaiting | None = None
             ) -> tuple[LeaseHolder, float]:
        """acquire(), and the clock() reading taken just before the store call that took it.

        Take the lease (or continue ours); wait up to wait_seconds (0: try once).

        reenter=True (a later step of a run that holds it): continue our unreleased hold,
        else LeaseLost at once, never a fresh token after someone else may have held it.
        """
        started = time.monotonic()
        next_notice = started
        while True:
            finished_run = None
            current = None if reenter else self.holder(account)
            # Ask the Dagster instance outside the write transaction (it may be slow).
            if (current is not None and current.run_id != run_id and is_run_finished is not None
                    and is_run_finished(current.run_id)):
                finished_run = current.run_id
            before = clock()
            took, holder = self._try_take(account, run_id, finished_run, reenter)
            if took:
                return holder, before
            now = time.monotonic()
            if on_wait is not None and now >= next_notice:
                on_wait(holder)
                next_notice = now + _NOTICE_EVERY
            left = started + wait_seconds - now
            if left <= 0:
                if keep_waiting is None or not keep_waiting(holder):
                    raise LeaseUnavailable(holder, now - started, self._advice(account))
                left = self.poll_seconds
            time.sleep(min(self.poll_seconds, left))

    def _advice(self, account: str) -> str:
        return (f"If that run is dead, its lease expires {self.stale_after:g} s after its last "
                f"heartbeat ({self.dead_pid_grace:g} s once its process is gone, on its own "
                f"host), or release it by hand in the safety store {self.backend.describe()}: "
                f"UPDATE lease SET released_at = heartbeat_at WHERE account = '{account}' "
                "(never DELETE the row: its token must keep growing)")

    def lost(self, account: str, run_id: str, token: int | None, current: LeaseHolder | None,
             why: str | None = None) -> LeaseLost:
        """The LeaseLost of run_id's hold with `token`, naming who holds the lease now."""
        now = (f"taken over by {current.describe()}" if current is not None
               else why or "it was released")
        ours = f"run {run_id}" + ("" if token is None else f" (token {token})")
        return LeaseLost(f"{ours} no longer holds the account lease for {account}: {now}",
                         current)

    def renew_in(self, con: Any, account: str, run_id: str, token: int) -> None:
        """In an open transaction (or autocommit): renew our hold on the store's clock, or
        raise LeaseLost naming the current holder. One statement: one round trip."""
        changed = con.execute(
            f"UPDATE lease SET heartbeat_at = {self.backend.now_sql}, host = ?, pid = ? "
            "WHERE account = ? AND run_id = ? AND token = ? AND released_at IS NULL",
            (socket.gethostname(), os.getpid(), account, run_id, token)).rowcount
        if changed == 0:
            row = self._read(con, account)
            live = row is not None and row[6] is None
            last = self._holder(account, row) if row is not None else None
            raise self.lost(account, run_id, token, last if live else None,
                            None if live or last is None else _released_by(last, run_id))

    def heartbeat(self, account: str, run_id: str, token: int, *, via: Any = None) -> None:
        """Renew our hold; LeaseLost (with `.holder`) if this run and token no longer hold it.
        `via`: a backend session (the heartbeat thread's own connection)."""
        with (via or self.backend).statement() as con:
            self.renew_in(con, account, run_id, token)

    def release(self, account: str, run_id: str, token: int | None = None) -> None:
        """Give the lease up (the row and its token stay); nothing happens if not ours."""
        with self.backend.transaction() as con:
            con.execute(f"UPDATE lease SET released_at = {self.backend.now_sql} "
                        "WHERE account = ? AND run_id = ? AND released_at IS NULL"
                        + ("" if token is None else " AND token = ?"),
                        (account, run_id) if token is None else (account, run_id, token))
