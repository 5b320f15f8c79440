"""The fenced account lease on both stores (a SQLite file, a real PostgreSQL), with real
processes (spawned, as Dagster's executor does), real signals and real clocks."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time

import pytest

from emergency_pipeline.planning.batching import Batch
from emergency_pipeline.safety_store import (
    HeldLease, LeaseLost, LeaseUnavailable, held, open_safety_store,
)
from emergency_pipeline.safety_store.lease import clock

SPAWN = multiprocessing.get_context("spawn")
ACCOUNT = "http://127.0.0.1:8080/v2#0123456789abcdef"


# Children (top level: spawn imports them by name).

def _hold_loop(url, run_id, rounds, log_path, go):
    lease = open_safety_store(url, poll_seconds=0.01).lease
    go.wait(30)
    for _ in range(rounds):
        holder = lease.acquire(ACCOUNT, run_id, wait_seconds=60)
        start = time.time()
        time.sleep(0.2)
        end = time.time()
        with open(log_path, "a") as log:
            log.write(f"{run_id} {start!r} {end!r} {holder.token}\n")
        lease.release(ACCOUNT, run_id, holder.token)


def _hold(url, run_id, ready, hold_seconds, lease_kwargs):
    lease = open_safety_store(url, **lease_kwargs).lease
    holder = lease.acquire(ACCOUNT, run_id, wait_seconds=0)
    ready.set()
    time.sleep(hold_seconds)
    lease.release(ACCOUNT, run_id, holder.token)


def _acquire_once(url, run_id, results):
    try:
        holder = open_safety_store(url).lease.acquire(ACCOUNT, run_id, wait_seconds=0)
        results.put(("ok", holder.pid, holder.acquired_at, holder.token))
    except LeaseUnavailable as exc:
        results.put(("unavailable", str(exc), None, None))


def _paused_holder(url, ready, go, results):
    """Holds with a fence; once resumed and told to go, tries what a run does before a POST."""
    store = open_safety_store(url, stale_after=1.5, dead_pid_grace=0.5)
    with held(store.lease, ACCOUNT, "paused-run", wait_seconds=0, heartbeat_seconds=0.1,
              fence_seconds=0.5, release_on_error=False) as fence:
        ready.set()
        go.wait(60)
        seen = {}
        try:
            store.ledger.record([Batch("b1", True, "addr-1", "id", ("1", "2"))],
                                run_id="paused-run", account=ACCOUNT, source=None,
                                outcomes_db="/abs/out.duckdb", fence=fence)
            seen["record"] = "written"
        except LeaseLost as exc:
            seen["record"] = str(exc)
        try:
            fence.confirm()
            seen["confirm"] = "confirmed"
        except LeaseLost as exc:
            seen["confirm"] = str(exc)
            seen["holder"] = exc.holder.run_id if exc.holder else None
        seen["fresh"] = fence.fresh()
        results.put(seen)


def _eventually(predicate, timeout=20.0):
    """Polls: a loaded machine may run a heartbeat thread late, never not at all."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.02)


def _start_holder(url, run_id, hold_seconds=30.0, **lease_kwargs):
    ready = SPAWN.Event()
    child = SPAWN.Process(target=_hold, args=(url, run_id, ready, hold_seconds, lease_kwargs))
    child.start()
    assert ready.wait(60), "the child never took the lease"
    return child


@pytest.fixture
def children():
    started = []
    yield started
    for child in started:
        if child.is_alive():
            os.kill(child.pid, signal.SIGCONT)
        child.kill()
        child.join()


def test_exclusive_across_processes_and_tokens_grow(tmp_path, store_url):
    log_path = tmp_path / "holds.log"
    go = SPAWN.Event()
    procs = [SPAWN.Process(target=_hold_loop, args=(store_url, f"run-{i}", 5, log_path, go))
             for i in range(4)]
    for p in procs:  # every child opens the fresh store at once: creation races too
        p.start()
    go.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    holds = sorted((float(s), float(e), run, int(t)) for run, s, e, t in
                   (line.split() for line in log_path.read_text().splitlines()))
    assert len(holds) == 20
    assert [(a, b) for a, b in zip(holds, holds[1:]) if b[0] < a[1]] == []
    assert [h[3] for h in holds] == list(range(1, 21))  # each take a greater token


def test_second_acquirer_waits_and_gets_it_on_release(store_url, children):
    children.append(_start_holder(store_url, "first", hold_seconds=1.0))
    seen = []
    holder = open_safety_store(store_url, poll_seconds=0.05).lease.acquire(
        ACCOUNT, "second", wait_seconds=30, on_wait=seen.append)
    assert holder.run_id == "second" and holder.pid == os.getpid() and holder.token == 2
    assert holder.took_over is None  # released, not taken over
    assert [h.run_id for h in seen] == ["first"]  # told once, at the start of the wait


def test_wait_exceeded_names_the_holder(store_url, children):
    child = _start_holder(store_url, "run-holding-1a2b")
    children.append(child)
    store = open_safety_store(store_url, poll_seconds=0.05)
    with pytest.raises(LeaseUnavailable) as caught:
        store.lease.acquire(ACCOUNT, "run-waiting", wait_seconds=0.5)
    message = str(caught.value)
    holder = caught.value.holder
    assert (holder.run_id, holder.pid, holder.token) == ("run-holding-1a2b", child.pid, 1)
    for part in ("run-holding-1a2b", socket.gethostname(), f"pid {child.pid}", "token 1",
                 holder.acquired_at.isoformat(timespec="seconds"), "expires",
                 # the wait as measured: 0.5 s, or more on a loaded machine
                 f"waited {caught.value.waited:.1f} s",
                 store.describe(), "never DELETE"):
        assert part in message
    assert "\n" not in message
    with pytest.raises(LeaseUnavailable):
        store.lease.acquire(ACCOUNT, "run-waiting", wait_seconds=0)  # tries once


def test_past_the_wait_it_waits_on_only_while_keep_waiting_says_so(store_url, children):
    """The run queue's second apply run of an account waits for the one ahead however long
    it takes (run_scope.account_lease); any other holder is waited for wait_seconds."""
    children.append(_start_holder(store_url, "run-ahead", hold_seconds=2.0))
    store = open_safety_store(store_url, poll_seconds=0.05)
    asked = []

    def ahead(holder) -> bool:
        asked.append(holder.run_id)
        return holder.run_id == "run-ahead"

    began = time.monotonic()
    took = store.lease.acquire(ACCOUNT, "run-next", wait_seconds=0.2, keep_waiting=ahead)
    assert took.run_id == "run-next" and took.took_over is None    # released, then taken
    assert time.monotonic() - began > 0.5 and set(asked) == {"run-ahead"}
    store.lease.release(ACCOUNT, "run-next")
    children.append(_start_holder(store_url, "someone-else"))
    with pytest.raises(LeaseUnavailable):
        store.lease.acquire(ACCOUNT, "run-third", wait_seconds=0.2, keep_waiting=ahead)


def test_reentry_keeps_the_token_from_another_process(store_url):
    lease = open_safety_store(store_url).lease
    mine = lease.acquire(ACCOUNT, "run-7", wait_seconds=0)
    results = SPAWN.Queue()
    for run_id in ("run-7", "run-8"):
        child = SPAWN.Process(target=_acquire_once, args=(store_url, run_id, results))
        child.start()
        outcome, detail, acquired_at, token = results.get(timeout=60)
        child.join()
        if run_id == "run-7":  # a later step of the same run: same token, same acquired_at
            assert (outcome, detail, acquired_at, token) == ("ok", child.pid,
                                                             mine.acquired_at, mine.token)
        else:
            assert outcome == "unavailable" and "run-7" in detail
    assert lease.holder(ACCOUNT).pid != os.getpid()  # the step's process is the holder now
    assert lease.holder(ACCOUNT).token == mine.token


def test_tokens_only_grow_across_release_takeover_and_reentry(store_url):
    lease = open_safety_store(store_url, stale_after=0.3, dead_pid_grace=0.1).lease
    tokens = [lease.acquire(ACCOUNT, "a", wait_seconds=0).token]
    tokens.append(lease.acquire(ACCOUNT, "a", wait_seconds=0, reenter=True).token)
    lease.release(ACCOUNT, "a", tokens[-1])
    assert lease.holder(ACCOUNT) is None
    tokens.append(lease.acquire(ACCOUNT, "a", wait_seconds=0).token)  # own release: fresh
    time.sleep(0.4)
    taken = lease.acquire(ACCOUNT, "b", wait_seconds=0)  # a takeover of a stale holder
    tokens.append(taken.token)
    lease.release(ACCOUNT, "b", taken.token)
    tokens.append(lease.acquire(ACCOUNT, "c", wait_seconds=0).token)
    assert tokens == [1, 1, 2, 3, 4]
    assert open_safety_store(store_url).lease.acquire(ACCOUNT, "c", wait_seconds=0).token == 4


def test_reenter_after_another_run_held_it_is_lost(store_url):
    lease = open_safety_store(store_url, stale_after=0.3, dead_pid_grace=0.1).lease
    first = lease.acquire(ACCOUNT, "step-run", wait_seconds=0)
    time.sleep(0.4)
    other = lease.acquire(ACCOUNT, "other-run", wait_seconds=0)
    lease.release(ACCOUNT, "other-run", other.token)  # even once it is free again
    with pytest.raises(LeaseLost, match="no longer holds"):
        lease.acquire(ACCOUNT, "step-run", wait_seconds=0, reenter=True)
    lease.acquire(ACCOUNT, "other-run", wait_seconds=0)
    with pytest.raises(LeaseLost, match="taken over by run other-run") as caught:
        lease.acquire(ACCOUNT, "step-run", wait_seconds=10, reenter=True)
    assert caught.value.holder.run_id == "other-run" and caught.value.holder.token > first.token


def test_stale_by_heartbeat_age_is_not_proven_dead(store_url):
    lease = open_safety_store(store_url, stale_after=1.5, dead_pid_grace=0.1,
                              poll_seconds=0.05).lease
    old = lease.acquire(ACCOUNT, "old", wait_seconds=0)  # our own pid: alive, only age counts
    with pytest.raises(LeaseUnavailable):
        lease.acquire(ACCOUNT, "new", wait_seconds=0)
    time.sleep(1.6)
    new = lease.acquire(ACCOUNT, "new", wait_seconds=0)
    over = new.took_over
    assert (over.run_id, over.token, over.pid, over.proven_dead) == ("old", old.token,
                                                                     os.getpid(), False)
    assert "heartbeat" in over.why and over.at >= over.heartbeat_at


def test_a_killed_holder_on_this_host_is_proven_dead(store_url, children):
    child = _start_holder(store_url, "killed", dead_pid_grace=0.5)
    lease = open_safety_store(store_url, stale_after=60, dead_pid_grace=0.5,
                              poll_seconds=0.05).lease
    with pytest.raises(LeaseUnavailable):  # alive: its lease stands past the grace
        lease.acquire(ACCOUNT, "next", wait_seconds=0.7)
    os.kill(child.pid, signal.SIGKILL)
    child.join()  # reaped: a zombie would still answer kill(pid, 0)
    holder = lease.acquire(ACCOUNT, "next", wait_seconds=30)
    assert holder.took_over.proven_dead and holder.took_over.run_id == "killed"
    assert f"process {child.pid}" in holder.took_over.why


def test_a_dead_pid_on_another_host_means_nothing(store_url):
    store = open_safety_store(store_url, stale_after=60, dead_pid_grace=0.1)
    gone = SPAWN.Process(target=time.sleep, args=(0,))
    gone.start()
    gone.join()
    with store.backend.transaction() as con:
        con.execute("INSERT INTO lease (account, run_id, host, pid, token, acquired_at, "
                    "heartbeat_at, released_at) VALUES (?, 'elsewhere-run', 'another-host', "
                    f"?, 5, {store.backend.now_sql} - 5, {store.backend.now_sql} - 5, NULL)",
                    (ACCOUNT, gone.pid))
    with pytest.raises(LeaseUnavailable):
        store.lease.acquire(ACCOUNT, "here", wait_seconds=0)


def test_a_finished_run_frees_it_not_proven_dead(store_url, children):
    children.append(_start_holder(store_url, "ended-run"))
    lease = open_safety_store(store_url).lease
    with pytest.raises(LeaseUnavailable):
        lease.acquire(ACCOUNT, "next", wait_seconds=0, is_run_finished=lambda run: False)
    asked = []
    holder = lease.acquire(ACCOUNT, "next", wait_seconds=0,
                           is_run_finished=lambda run: asked.append(run) or True)
    assert holder.run_id == "next" and asked == ["ended-run"]
    assert holder.took_over.proven_dead is False and "finished" in holder.took_over.why


def test_heartbeat_after_takeover_names_the_new_holder(store_url):
    lease = open_safety_store(store_url, stale_after=0.2, dead_pid_grace=0.1).lease
    slow = lease.acquire(ACCOUNT, "slow", wait_seconds=0)
    lease.heartbeat(ACCOUNT, "slow", slow.token)
    time.sleep(0.3)
    fast = lease.acquire(ACCOUNT, "fast", wait_seconds=0)
    with pytest.raises(LeaseLost, match="taken over by run fast") as caught:
        lease.heartbeat(ACCOUNT, "slow", slow.token)
    held_now = caught.value.holder
    assert (held_now.run_id, held_now.token, held_now.pid) == ("fast", fast.token, os.getpid())
    assert f"token {fast.token}" in str(caught.value) and socket.gethostname() in str(caught.value)
    lease.release(ACCOUNT, "slow", slow.token)  # not ours: nothing happens
    assert lease.holder(ACCOUNT).run_id == "fast"
    # The new holder finished before the paused one woke: its ERROR still names who took it.
    lease.release(ACCOUNT, "fast", fast.token)
    for lost in (lambda: lease.heartbeat(ACCOUNT, "slow", slow.token),
                 lambda: lease.acquire(ACCOUNT, "slow", wait_seconds=0, reenter=True)):
        with pytest.raises(LeaseLost, match="taken over by run fast .*since released it"):
            lost()


def test_held_releases_on_error_and_keeps_on_a_clean_exit(store_url):
    lease = open_safety_store(store_url).lease
    with pytest.raises(ZeroDivisionError):
        with held(lease, ACCOUNT, "r1", wait_seconds=0):
            assert lease.holder(ACCOUNT).run_id == "r1"
            1 / 0
    assert lease.holder(ACCOUNT) is None
    with held(lease, ACCOUNT, "r2", wait_seconds=0) as kept:
        assert kept.holder.run_id == "r2"
    assert lease.holder(ACCOUNT).run_id == "r2"  # the run's next step takes it again
    with held(lease, ACCOUNT, "r2", wait_seconds=0, reenter=True, release_on_exit=True) as again:
        assert again.token == kept.token
    assert lease.holder(ACCOUNT) is None


def test_held_heartbeats_and_stops_on_exit(store_url):
    lease = open_safety_store(store_url).lease
    with held(lease, ACCOUNT, "beating", wait_seconds=0, heartbeat_seconds=0.05,
              fence_seconds=1.0) as kept:
        first = lease.holder(ACCOUNT).heartbeat_at
        _eventually(lambda: lease.holder(ACCOUNT).heartbeat_at > first)
        kept.confirm()
        assert kept.fresh()
    assert not [t for t in threading.enumerate() if t.name == "lease-heartbeat-beating"]
    last = lease.holder(ACCOUNT).heartbeat_at
    time.sleep(0.2)
    assert lease.holder(ACCOUNT).heartbeat_at == last


def test_held_notices_a_takeover_and_stays_lost(store_url):
    lease = open_safety_store(store_url).lease
    with pytest.raises(LeaseLost):
        with held(lease, ACCOUNT, "ours", wait_seconds=0, heartbeat_seconds=0.05) as kept:
            # Another run, told by Dagster that ours has ended, takes the lease.
            lease.acquire(ACCOUNT, "theirs", wait_seconds=0, is_run_finished=lambda run: True)
            _eventually(lambda: isinstance(kept.lost, LeaseLost))  # found by the heartbeat
            assert not kept.fresh()
            kept.confirm()  # what the caller does before each POST
    assert lease.holder(ACCOUNT).run_id == "theirs"  # our error did not release theirs


def test_held_refuses_a_fence_near_the_takeover_time(store_url):
    lease = open_safety_store(store_url, stale_after=30).lease
    with pytest.raises(ValueError, match="third"):
        with held(lease, ACCOUNT, "r", wait_seconds=0, fence_seconds=20):
            pass
    assert lease.holder(ACCOUNT) is None


def test_confirm_from_eight_threads(store_url):
    store = open_safety_store(store_url, stale_after=3, dead_pid_grace=1)
    with held(store.lease, ACCOUNT, "posting", wait_seconds=0, heartbeat_seconds=0.2,
              fence_seconds=1.0) as fence:
        def post_many(outcomes):
            for _ in range(10):
                try:
                    fence.confirm()
                    outcomes.append("ok")
                except LeaseLost as exc:
                    outcomes.append(exc)
        rounds = []
        for take_over in (False, True):
            if take_over:
                store.lease.acquire(ACCOUNT, "intruder", wait_seconds=0,
                                    is_run_finished=lambda run: True)
            outcomes: list = []
            threads = [threading.Thread(target=post_many, args=(outcomes,)) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rounds.append(outcomes)
        assert rounds[0] == ["ok"] * 80
        assert len(rounds[1]) == 80 and all(isinstance(o, LeaseLost) for o in rounds[1])
        assert len({id(o) for o in rounds[1]}) == 1  # sticky: one loss, raised again
        assert rounds[1][0].holder.run_id == "intruder"


def test_fresh_turns_false_without_a_confirmed_heartbeat(store_url):
    lease = open_safety_store(store_url, stale_after=3, dead_pid_grace=1).lease
    holder = lease.acquire(ACCOUNT, "quiet", wait_seconds=0)
    fence = HeldLease(lease, holder, fence_seconds=1.0, confirmed_at=clock())  # no thread
    assert fence.fresh()
    time.sleep(1.1)
    assert not fence.fresh()
    fence.confirm()  # still ours: confirming makes it fresh again
    assert fence.fresh()


def test_a_paused_holder_is_taken_over_and_sends_nothing(store_url, children):
    ready, go, results = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    child = SPAWN.Process(target=_paused_holder, args=(store_url, ready, go, results))
    child.start()
    children.append(child)
    assert ready.wait(60)
    os.kill(child.pid, signal.SIGSTOP)  # a paused process: alive, silent
    store = open_safety_store(store_url, stale_after=1.5, dead_pid_grace=0.5,
                              poll_seconds=0.05)
    new = store.lease.acquire(ACCOUNT, "new-run", wait_seconds=30)
    assert new.took_over.run_id == "paused-run" and new.took_over.proven_dead is False
    assert "heartbeat" in new.took_over.why
    os.kill(child.pid, signal.SIGCONT)
    go.set()
    seen = results.get(timeout=60)
    assert "new-run" in seen["record"] and "new-run" in seen["confirm"]
    assert seen["holder"] == "new-run" and seen["fresh"] is False
    assert store.ledger.batches_of_run("paused-run") == []  # its wave was never recorded
    assert store.lease.holder(ACCOUNT).run_id == "new-run"
