"""The account lease: real SQLite files, real processes (spawned, as Dagster's executor does)."""

from __future__ import annotations

import multiprocessing
import os
import socket
import sqlite3
import tempfile
import threading
import time
from contextlib import closing

import pytest

from emergency_pipeline.state.lease import (
    LEASE_DIR_ENV, LeaseLost, LeaseUnavailable, SqliteLease, account_key, default_lease_path,
    held,
)

SPAWN = multiprocessing.get_context("spawn")
API_KEY = "KEY0123-not-in-any-message"
ACCOUNT = account_key("http://127.0.0.1:8080/v2", API_KEY)


# Children (top level: spawn imports them by name).

def _hold_loop(path, run_id, rounds, log_path, go):
    lease = SqliteLease(path, poll_seconds=0.01)
    go.wait(30)
    for _ in range(rounds):
        lease.acquire(ACCOUNT, run_id, wait_seconds=60)
        start = time.time()
        time.sleep(0.2)
        end = time.time()
        with open(log_path, "a") as log:
            log.write(f"{run_id} {start!r} {end!r}\n")
        lease.release(ACCOUNT, run_id)


def _hold(path, run_id, ready, hold_seconds, lease_kwargs):
    lease = SqliteLease(path, **lease_kwargs)
    lease.acquire(ACCOUNT, run_id, wait_seconds=0)
    ready.set()
    time.sleep(hold_seconds)
    lease.release(ACCOUNT, run_id)


def _acquire_once(path, run_id, results):
    try:
        holder = SqliteLease(path).acquire(ACCOUNT, run_id, wait_seconds=0)
        results.put(("ok", holder.pid, holder.acquired_at))
    except LeaseUnavailable as exc:
        results.put(("unavailable", str(exc), None))


def _start_holder(path, run_id, hold_seconds=30.0, **lease_kwargs):
    ready = SPAWN.Event()
    child = SPAWN.Process(target=_hold, args=(path, run_id, ready, hold_seconds, lease_kwargs))
    child.start()
    assert ready.wait(30), "the child never took the lease"
    return child


@pytest.fixture
def path(tmp_path):
    return tmp_path / "leases.sqlite"


@pytest.fixture
def children():
    started = []
    yield started
    for child in started:
        child.kill()
        child.join()


def test_exclusive_across_processes(tmp_path, path):
    log_path = tmp_path / "holds.log"
    go = SPAWN.Event()
    procs = [SPAWN.Process(target=_hold_loop, args=(path, f"run-{i}", 5, log_path, go))
             for i in range(4)]
    for p in procs:  # every child opens the fresh file at once: creation races too
        p.start()
    go.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    holds = sorted((float(s), float(e), run) for run, s, e in
                   (line.split() for line in log_path.read_text().splitlines()))
    assert len(holds) == 20
    overlaps = [(a, b) for a, b in zip(holds, holds[1:]) if b[0] < a[1]]
    assert overlaps == []


def test_second_acquirer_waits_and_gets_it_on_release(path, children):
    children.append(_start_holder(path, "first", hold_seconds=1.0))
    seen = []
    started = time.monotonic()
    holder = SqliteLease(path, poll_seconds=0.05).acquire(
        ACCOUNT, "second", wait_seconds=20, on_wait=seen.append)
    assert holder.run_id == "second" and holder.pid == os.getpid()
    assert time.monotonic() - started > 0.3
    assert [h.run_id for h in seen] == ["first"]  # told once, at the start of the wait


def test_wait_exceeded_names_the_holder_not_the_key(path, children):
    child = _start_holder(path, "run-holding-1a2b")
    children.append(child)
    lease = SqliteLease(path, poll_seconds=0.05)
    with pytest.raises(LeaseUnavailable) as caught:
        lease.acquire(ACCOUNT, "run-waiting", wait_seconds=0.5)
    message = str(caught.value)
    holder = caught.value.holder
    assert (holder.run_id, holder.pid) == ("run-holding-1a2b", child.pid)
    for part in ("run-holding-1a2b", socket.gethostname(), f"pid {child.pid}",
                 holder.acquired_at.isoformat(timespec="seconds"),
                 # the wait as measured: 0.5 s, or more on a loaded machine
                 f"waited {caught.value.waited:.1f} s", "expires"):
        assert part in message
    assert API_KEY not in message and "KEY0123" not in message
    assert caught.value.waited >= 0.5
    started = time.monotonic()
    with pytest.raises(LeaseUnavailable):
        lease.acquire(ACCOUNT, "run-waiting", wait_seconds=0)  # tries once
    assert time.monotonic() - started < 0.3


def test_reentrant_for_the_same_run_from_another_process(path):
    lease = SqliteLease(path)
    mine = lease.acquire(ACCOUNT, "run-7", wait_seconds=0)
    results = SPAWN.Queue()
    for run_id in ("run-7", "run-8"):
        child = SPAWN.Process(target=_acquire_once, args=(path, run_id, results))
        child.start()
        outcome, detail, acquired_at = results.get(timeout=30)
        child.join()
        if run_id == "run-7":  # a later step of the same run: takes it, keeps acquired_at
            assert (outcome, detail, acquired_at) == ("ok", child.pid, mine.acquired_at)
        else:
            assert outcome == "unavailable" and "run-7" in detail
    assert lease.holder(ACCOUNT).pid != os.getpid()  # the step's process is the holder now


def test_stale_by_heartbeat_age(path):
    lease = SqliteLease(path, stale_after=0.5, dead_pid_grace=0.1, poll_seconds=0.05)
    lease.acquire(ACCOUNT, "old", wait_seconds=0)  # our own pid: alive, only age counts
    with pytest.raises(LeaseUnavailable):
        lease.acquire(ACCOUNT, "new", wait_seconds=0)
    time.sleep(0.6)
    assert lease.acquire(ACCOUNT, "new", wait_seconds=0).run_id == "new"


def test_dead_pid_frees_it_after_the_grace_not_stale_after(path, children):
    child = _start_holder(path, "killed", dead_pid_grace=0.5)
    lease = SqliteLease(path, stale_after=60, dead_pid_grace=0.5, poll_seconds=0.05)
    with pytest.raises(LeaseUnavailable):  # alive: its lease stands past the grace
        lease.acquire(ACCOUNT, "next", wait_seconds=0.7)
    child.kill()  # SIGKILL while holding
    child.join()  # reaped: a zombie would still answer kill(pid, 0)
    started = time.monotonic()
    assert lease.acquire(ACCOUNT, "next", wait_seconds=10).run_id == "next"
    assert time.monotonic() - started < 5


def test_a_dead_pid_on_another_host_means_nothing(path):
    lease = SqliteLease(path, stale_after=60, dead_pid_grace=0.1)
    gone = SPAWN.Process(target=time.sleep, args=(0,))
    gone.start()
    gone.join()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO lease VALUES (?, 'elsewhere-run', 'another-host', ?, ?, ?)",
                   (ACCOUNT, gone.pid, time.time() - 5, time.time() - 5))
    with pytest.raises(LeaseUnavailable):
        lease.acquire(ACCOUNT, "here", wait_seconds=0)


def test_a_finished_run_frees_it(path, children):
    children.append(_start_holder(path, "ended-run"))
    lease = SqliteLease(path)
    with pytest.raises(LeaseUnavailable):
        lease.acquire(ACCOUNT, "next", wait_seconds=0, is_run_finished=lambda run: False)
    asked = []
    holder = lease.acquire(ACCOUNT, "next", wait_seconds=0,
                           is_run_finished=lambda run: asked.append(run) or True)
    assert holder.run_id == "next" and asked == ["ended-run"]


def test_heartbeat_after_takeover_raises_lease_lost(path):
    lease = SqliteLease(path, stale_after=0.2, dead_pid_grace=0.1)
    lease.acquire(ACCOUNT, "slow", wait_seconds=0)
    lease.heartbeat(ACCOUNT, "slow")
    time.sleep(0.3)
    lease.acquire(ACCOUNT, "fast", wait_seconds=0)
    with pytest.raises(LeaseLost, match="taken over by run fast"):
        lease.heartbeat(ACCOUNT, "slow")
    lease.release(ACCOUNT, "slow")  # not ours: nothing happens
    assert lease.holder(ACCOUNT).run_id == "fast"


def test_account_key_hides_the_key_and_strips_whitespace():
    url = "https://api.telnyx.com/v2"
    key = account_key(url, "KEYsecret123")
    assert "KEYsecret123" not in key and "secret" not in key
    assert key.startswith(url + "#") and len(key.split("#")[1]) == 16
    assert account_key(url, "  KEYsecret123\n") == key
    assert account_key(" HTTPS://user:pw@API.Telnyx.com:443/v2/ ", "KEYsecret123") == key
    assert account_key(url, "KEYother") != key
    assert account_key("http://127.0.0.1:8080/v2", "KEYsecret123") != key
    with pytest.raises(ValueError):
        account_key(url, " \n")


def test_held_releases_on_error_and_keeps_on_a_clean_exit(path):
    lease = SqliteLease(path)
    with pytest.raises(ZeroDivisionError):
        with held(lease, ACCOUNT, "r1", wait_seconds=0):
            assert lease.holder(ACCOUNT).run_id == "r1"
            1 / 0
    assert lease.holder(ACCOUNT) is None
    with held(lease, ACCOUNT, "r2", wait_seconds=0) as kept:
        assert kept.holder.run_id == "r2"
    assert lease.holder(ACCOUNT).run_id == "r2"  # the run's next step takes it again
    with held(lease, ACCOUNT, "r2", wait_seconds=0, release_on_exit=True):
        pass
    assert lease.holder(ACCOUNT) is None


def test_held_heartbeats_and_stops_on_exit(path):
    lease = SqliteLease(path)
    with held(lease, ACCOUNT, "beating", wait_seconds=0, heartbeat_seconds=0.05) as kept:
        first = lease.holder(ACCOUNT).heartbeat_at
        time.sleep(0.3)
        assert lease.holder(ACCOUNT).heartbeat_at > first
        kept.ensure_held()
    assert not [t for t in threading.enumerate() if t.name == "lease-heartbeat-beating"]
    last = lease.holder(ACCOUNT).heartbeat_at
    time.sleep(0.2)
    assert lease.holder(ACCOUNT).heartbeat_at == last


def test_held_notices_a_takeover(path):
    lease = SqliteLease(path)
    with pytest.raises(LeaseLost):
        with held(lease, ACCOUNT, "ours", wait_seconds=0, heartbeat_seconds=0.05) as kept:
            # Another run, told by Dagster that ours has ended, takes the lease.
            lease.acquire(ACCOUNT, "theirs", wait_seconds=0, is_run_finished=lambda run: True)
            time.sleep(0.3)
            assert isinstance(kept.lost, LeaseLost)  # found by the heartbeat thread
            kept.ensure_held()  # what the caller does before each submission
    assert lease.holder(ACCOUNT).run_id == "theirs"  # our error did not release theirs


def test_default_lease_path(tmp_path, monkeypatch):
    monkeypatch.setenv(LEASE_DIR_ENV, str(tmp_path / "configured"))
    assert default_lease_path() == tmp_path / "configured" / "leases.sqlite"
    assert (tmp_path / "configured").is_dir()

    monkeypatch.delenv(LEASE_DIR_ENV)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    path = default_lease_path()
    assert path == tmp_path / "tmp" / "emergency_pipeline-leases" / "leases.sqlite"
    assert path.parent.stat().st_mode & 0o7777 == 0o1777
    SqliteLease(path).acquire(ACCOUNT, "r", wait_seconds=0)
    with closing(sqlite3.connect(path)) as db:  # while open, the -wal and -shm files exist
        db.execute("SELECT count(*) FROM lease").fetchone()
        for name in ("leases.sqlite", "leases.sqlite-wal", "leases.sqlite-shm"):
            assert (path.parent / name).stat().st_mode & 0o777 == 0o666  # others may write
    assert default_lease_path() == path
