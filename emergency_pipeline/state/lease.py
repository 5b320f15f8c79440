"""The account lease: at most one run that may submit jobs works on a Telnyx account at a time.

Design rule 3. Whatever launched a run (CLI, schedule, sensor, backfill, UI, tests), it takes
the lease of its account before the snapshot and holds it, heartbeating, until it has
submitted and followed its jobs. A second run waits up to a configured time, then fails
with a message naming the holder, without submitting anything.

`AccountLease` is the small interface; `SqliteLease` implements it on one machine with no
server: one row per account in a SQLite file, taken in a `BEGIN IMMEDIATE` transaction (the
SQLite write lock makes read-check-take atomic across processes). A lease in a shared
database (Postgres, as Dagster's own storage on several workers) can implement the same
four methods later.

A holder stops counting (its lease is free to take) when
- the caller says its run has finished (`is_run_finished`, from the Dagster instance), or
- its heartbeat is older than `stale_after` (a crashed run on any host), or
- it is on this host, its process is gone and its heartbeat is older than `dead_pid_grace`
  (a `kill -9` is noticed in seconds; the grace covers the gap between two steps of one run
  in different processes).
The same run id may take it again (re-entrant): a later Dagster step of the same run, in
another process, takes over the row and puts its own host and pid in it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

LEASE_DIR_ENV = "EMERGENCY_PIPELINE_LEASE_DIR"
# Separates this use of SHA-256 from any other hash of the same key.
_KEY_DOMAIN = b"emergency_pipeline/account-lease\0"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NOTICE_EVERY = 10.0  # seconds between two on_wait calls for one acquire

OnWait = Callable[["LeaseHolder"], None]
IsRunFinished = Callable[[str], bool]


def account_key(base_url: str, api_key: str) -> str:
    """`<normalised base url>#<16 hex>` naming the account: never the key, nor URL credentials."""
    key = api_key.strip()  # "k" and "k\n" (a key file's newline) are the same account
    if not key:
        raise ValueError("an empty API key names no account")
    digest = hashlib.sha256(_KEY_DOMAIN + key.encode()).hexdigest()[:16]
    return f"{_normalise_url(base_url)}#{digest}"


def _normalise_url(base_url: str) -> str:
    # Scheme and host in lower case, default port and trailing slash dropped, user:password@,
    # query and fragment dropped, so that spellings of one API give one account.
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    port = parts.port
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds an account's lease. Times are UTC."""

    account: str
    run_id: str
    host: str
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime

    def heartbeat_age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.heartbeat_at.timestamp()

    def describe(self) -> str:
        since = self.acquired_at.isoformat(timespec="seconds")
        return (f"run {self.run_id} on host {self.host}, pid {self.pid}, since {since} "
                f"(heartbeat {self.heartbeat_age():.0f} s ago)")


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
    """Our lease was taken over (another run judged it stale): submit nothing more."""


class AccountLease(Protocol):
    """The lease interface the pipeline uses; `SqliteLease` is the one-machine implementation."""

    def acquire(self, account: str, run_id: str, *, wait_seconds: float,
                on_wait: OnWait | None = None,
                is_run_finished: IsRunFinished | None = None) -> LeaseHolder: ...

    def heartbeat(self, account: str, run_id: str) -> None: ...

    def release(self, account: str, run_id: str) -> None: ...

    def holder(self, account: str) -> LeaseHolder | None: ...


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


_COLUMNS = "account, run_id, host, pid, acquired_at, heartbeat_at"


class SqliteLease:
    """`AccountLease` on one machine: a row per account in a SQLite file (WAL mode)."""

    def __init__(self, path: str | Path, *, stale_after: float = 60.0,
                 dead_pid_grace: float = 10.0, poll_seconds: float = 0.5,
                 busy_seconds: float = 30.0):
        if not 0 < dead_pid_grace <= stale_after:
            raise ValueError("need 0 < dead_pid_grace <= stale_after")
        self.path = Path(path)
        self.stale_after = stale_after
        self.dead_pid_grace = dead_pid_grace
        self.poll_seconds = poll_seconds
        self.busy_seconds = busy_seconds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            # WAL: readers (holder(), an operator's sqlite3) never block the writers.
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            # Times are time.time() seconds (one clock for every process on the machine).
            db.execute("CREATE TABLE IF NOT EXISTS lease (account TEXT PRIMARY KEY, "
                       "run_id TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, "
                       "acquired_at REAL NOT NULL, heartbeat_at REAL NOT NULL)")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per call: safe from any thread (the heartbeat thread too) and process.
        # isolation_level=None: we write BEGIN IMMEDIATE / COMMIT ourselves.
        db = sqlite3.connect(self.path, timeout=self.busy_seconds, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    def holder(self, account: str) -> LeaseHolder | None:
        with self._connect() as db:
            return self._read(db, account)

    @staticmethod
    def _read(db: sqlite3.Connection, account: str) -> LeaseHolder | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM lease WHERE account = ?",
                         (account,)).fetchone()
        if row is None:
            return None
        return LeaseHolder(row[0], row[1], row[2], row[3], _utc(row[4]), _utc(row[5]))

    def _is_stale(self, holder: LeaseHolder, now: float, finished_run: str | None) -> bool:
        age = holder.heartbeat_age(now)
        if holder.run_id == finished_run or age > self.stale_after:
            return True
        # A pid means something only on its own host; elsewhere only stale_after counts.
        # A pid reused by another process looks alive: then stale_after decides.
        return (holder.host == socket.gethostname() and age > self.dead_pid_grace
                and not _pid_alive(holder.pid))

    def _try_take(self, account: str, run_id: str,
                  finished_run: str | None) -> tuple[bool, LeaseHolder]:
        """One attempt: (True, our holder) or (False, the current other holder)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # the write lock first: no two takers read "free"
            try:
                now = time.time()
                current = self._read(db, account)
                if (current is not None and current.run_id != run_id
                        and not self._is_stale(current, now, finished_run)):
                    db.execute("ROLLBACK")
                    return False, current
                # Re-entrant: the same run keeps its acquired_at; host and pid become ours.
                ours = current is not None and current.run_id == run_id
                acquired = current.acquired_at.timestamp() if ours else now
                db.execute(f"INSERT OR REPLACE INTO lease ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                           (account, run_id, socket.gethostname(), os.getpid(), acquired, now))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return True, LeaseHolder(account, run_id, socket.gethostname(), os.getpid(),
                                 _utc(acquired), _utc(now))

    def acquire(self, account: str, run_id: str, *, wait_seconds: float,
                on_wait: OnWait | None = None,
                is_run_finished: IsRunFinished | None = None) -> LeaseHolder:
        """Take the lease (or renew ours); wait up to wait_seconds (0: try once)."""
        started = time.monotonic()
        next_notice = started
        while True:
            finished_run = None
            current = self.holder(account)
            # Ask the Dagster instance outside the write transaction (it may be slow).
            if (current is not None and current.run_id != run_id and is_run_finished is not None
                    and is_run_finished(current.run_id)):
                finished_run = current.run_id
            took, holder = self._try_take(account, run_id, finished_run)
            if took:
                return holder
            now = time.monotonic()
            if on_wait is not None and now >= next_notice:
                on_wait(holder)
                next_notice = now + _NOTICE_EVERY
            left = started + wait_seconds - now
            if left <= 0:
                raise LeaseUnavailable(holder, now - started, self._advice(account))
            time.sleep(min(self.poll_seconds, left))

    def _advice(self, account: str) -> str:
        return (f"If that run is dead, its lease expires {self.stale_after:g} s after its last "
                f"heartbeat ({self.dead_pid_grace:g} s once its process is gone, on its own "
                f"host), or remove it by hand: sqlite3 {self.path} "
                f"\"DELETE FROM lease WHERE account = '{account}'\"")

    def heartbeat(self, account: str, run_id: str) -> None:
        """Renew our lease; LeaseLost if it is no longer ours."""
        with self._connect() as db:
            changed = db.execute(
                "UPDATE lease SET heartbeat_at = ?, host = ?, pid = ? "
                "WHERE account = ? AND run_id = ?",
                (time.time(), socket.gethostname(), os.getpid(), account, run_id)).rowcount
        if changed == 0:
            now = self.holder(account)
            raise LeaseLost(f"run {run_id} no longer holds the account lease for {account}: "
                            + (f"taken over by {now.describe()}" if now else "it was removed"))

    def release(self, account: str, run_id: str) -> None:
        """Give the lease up; nothing happens if it is not ours."""
        with self._connect() as db:
            db.execute("DELETE FROM lease WHERE account = ? AND run_id = ?", (account, run_id))


class HeldLease:
    """What `held` yields: the holder, and `ensure_held()` to call right before submitting."""

    def __init__(self, lease: AccountLease, holder: LeaseHolder):
        self.lease = lease
        self.holder = holder
        self.lost: LeaseLost | None = None  # set by the heartbeat thread
        self._stop = threading.Event()

    def ensure_held(self) -> None:
        """Raise LeaseLost unless the lease is still ours now (a heartbeat, not a cached flag)."""
        if self.lost is not None:
            raise self.lost
        try:
            self.lease.heartbeat(self.holder.account, self.holder.run_id)
        except LeaseLost as exc:
            self.lost = exc
            raise

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.lease.heartbeat(self.holder.account, self.holder.run_id)
            except LeaseLost as exc:
                self.lost = exc
                return
            except Exception:  # noqa: BLE001 - a busy or briefly unreadable file: beat again.
                # Should it last, the lease goes stale, another run takes it and the next
                # beat (or ensure_held) finds it lost.
                continue


@contextmanager
def held(lease: AccountLease, account: str, run_id: str, *, wait_seconds: float,
         heartbeat_seconds: float = 5.0, on_wait: OnWait | None = None,
         is_run_finished: IsRunFinished | None = None, release_on_exit: bool = False,
         release_on_error: bool = True) -> Iterator[HeldLease]:
    """Acquire, heartbeat in a daemon thread while inside, release on error (or always).

    heartbeat_seconds must be well below the lease's dead_pid_grace and stale_after. Kept on
    a clean exit by default: a later step of the same run takes it again (re-entrant), and the
    run's last step releases it (release_on_exit=True).
    """
    if heartbeat_seconds <= 0:
        raise ValueError("heartbeat_seconds must be positive")
    holder = lease.acquire(account, run_id, wait_seconds=wait_seconds, on_wait=on_wait,
                           is_run_finished=is_run_finished)
    kept = HeldLease(lease, holder)
    beat = threading.Thread(target=kept._beat, args=(heartbeat_seconds,), daemon=True,
                            name=f"lease-heartbeat-{run_id}")
    beat.start()
    failed = True
    try:
        yield kept
        failed = False
    finally:
        kept._stop.set()
        beat.join()
        if release_on_exit or (failed and release_on_error):
            lease.release(account, run_id)


def default_lease_path() -> Path:
    """`$EMERGENCY_PIPELINE_LEASE_DIR/leases.sqlite`, else one in the machine's temp dir.

    Machine-wide on purpose: two operators with separate DuckDB files and Dagster homes on
    one machine must meet on one lease. The default directory, when we create it, is made
    like /tmp (0o1777: everyone may create files, only the owner may delete them) and the
    file 0o666 (SQLite gives its -wal and -shm files the same mode), so that other users'
    runs can take the lease too. Any local user can therefore also remove it: the lease
    coordinates honest runs, it is no security boundary. A configured directory is created
    with the process's usual permissions; its owner chooses who shares it.
    """
    configured = os.environ.get(LEASE_DIR_ENV)
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        return directory / "leases.sqlite"
    directory = Path(tempfile.gettempdir()) / "emergency_pipeline-leases"
    path = directory / "leases.sqlite"
    try:
        directory.mkdir()
    except FileExistsError:
        return path
    os.chmod(directory, 0o1777)  # chmod: mkdir's mode is cut by the umask
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:  # another process of ours got there first
        return path
    os.fchmod(fd, 0o666)  # an empty file is a valid SQLite database
    os.close(fd)
    return path
