"""The fence and Telnyx's clock in submission (rule 3): a run that lost its lease sends nothing
more, a takeover waits out a live holder's late POSTs, and jobs are compared on Telnyx's clock.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from _emulator_support import allowing, each_number_in_one_job
from _safety_support import fenced
from emergency_pipeline.planning.batching import batch_of
from emergency_pipeline.client import ClientConfig, TelnyxClient
from emergency_pipeline.emulator import Emulator, Faults
from emergency_pipeline.safety_store import LeaseLost, held, open_safety_store
from emergency_pipeline.applying.submission import RunIdentity, Settings, submit_and_follow

KEY = "test-key-not-secret"
log = logging.getLogger("test_fence")


def test_a_run_whose_lease_is_taken_over_sends_nothing_more(tmp_path: Path) -> None:
    """Another run takes the lease mid-submission (what the UI's terminate allows: the
    holder's Dagster run is finished while its process still posts). The holder's next POST
    is refused by its fence: every job made is in the ledger, the unsent batches stay open
    for the new holder, and the holder's run ends with LeaseLost naming it."""
    with Emulator(numbers=400, seed=61, api_key=KEY, job_seconds=0.2,
                  faults=Faults(latency=0.03)) as emu:
        numbers = [n["phone_number"] for n in allowing(emu, 40, emergency_status="disabled")]
        address = emu.addresses()[0]["id"]
        batches = [batch_of(numbers[i:i + 2], True, address, "e164") for i in range(0, 40, 2)]
        store = open_safety_store(str(tmp_path / "safety.sqlite"))
        config = ClientConfig(api_key=KEY, base_url=emu.base_url, max_concurrency=1,
                              poll_interval=0.1)
        taken = threading.Event()

        def take_over() -> None:
            while emu.stats()["jobs_created"] < 4:
                time.sleep(0.005)
            store.lease.acquire("acct", "newcomer", wait_seconds=5,
                                is_run_finished=lambda run: run == "ours")
            taken.set()

        thief = threading.Thread(target=take_over, daemon=True)
        with TelnyxClient(config, log=log) as client, \
                held(store.lease, "acct", "ours", wait_seconds=0) as hold:
            thief.start()
            with pytest.raises(LeaseLost, match="newcomer"):
                submit_and_follow(
                    client, store.ledger,
                    RunIdentity("ours", "acct", "s.csv", str(tmp_path / "o.duckdb")),
                    batches, snapshot_at=datetime.now(timezone.utc), aliases={}, log=log,
                    settings=Settings(wave_size=5, follow_timeout_seconds=10,
                                      poll_seconds=0.1), fence=hold)
        thief.join()
        assert taken.is_set()
        made = {j["id"] for j in emu.jobs()}
        ledger = {b.job_id for b in store.ledger.batches_of_run("ours") if b.job_id}
        assert made == ledger                       # every job it made, known to the holder
        assert 4 <= len(made) < len(batches)        # and nothing after the takeover's wave
        states = {b.state for b in store.ledger.batches_of_run("ours")}
        assert states <= {"submitted", "recorded"}  # open for the holder, none closed by it
        assert store.lease.holder("acct").run_id == "newcomer"


def test_a_takeover_from_a_live_holder_waits_out_its_late_posts(tmp_path: Path) -> None:
    """A holder taken over while possibly alive (not proven dead) may have a POST on the wire
    when it lost the lease: its recorded, unanswered batch holds its numbers until the late-job
    window after the takeover, however old the record, and a later run is told the same."""
    with Emulator(numbers=300, seed=62, api_key=KEY, job_seconds=0.2) as emu:
        numbers = [n["phone_number"] for n in allowing(emu, 6, emergency_status="disabled")]
        address = emu.addresses()[0]["id"]
        store = open_safety_store(str(tmp_path / "safety.sqlite"), stale_after=1.0,
                                  dead_pid_grace=1.0)
        old = batch_of(numbers[:3], True, address, "e164")
        store.lease.acquire("acct", "paused", wait_seconds=0)
        store.ledger.record([old], run_id="paused", account="acct", source="s.csv",
                            outcomes_db=str(tmp_path / "o.duckdb"))
        con = store.backend  # recorded long ago, as by a process paused for minutes
        with con.transaction() as tx:
            tx.execute("UPDATE batches SET recorded_at = recorded_at - 600")
        time.sleep(1.2)                             # its heartbeat goes stale
        config = ClientConfig(api_key=KEY, base_url=emu.base_url, poll_interval=0.1,
                              late_job_window_seconds=60)
        with TelnyxClient(config, log=log) as client, \
                held(store.lease, "acct", "newcomer", wait_seconds=0,
                     heartbeat_seconds=0.1, fence_seconds=0.3) as hold:
            took = hold.holder.took_over
            assert took is not None and took.run_id == "paused" and not took.proven_dead
            done = submit_and_follow(
                client, store.ledger,
                RunIdentity("newcomer", "acct", "s.csv", str(tmp_path / "o.duckdb")),
                [batch_of(numbers, True, address, "e164")],
                snapshot_at=datetime.now(timezone.utc), aliases={}, log=log,
                settings=Settings(follow_timeout_seconds=10, poll_seconds=0.1), fence=hold)
        # The paused holder's numbers are left alone; the rest went through.
        assert {done.results[n].result for n in numbers[:3]} == {"skipped"}
        assert {done.results[n].result for n in numbers[3:]} == {"succeeded"}
        (kept,) = store.ledger.batches_of_run("paused")
        assert kept.state == "unanswered" and kept.sent_by is not None
        assert abs((kept.sent_by - took.at).total_seconds()) < 1e-3


@pytest.mark.parametrize("skew", [0.0, -300.0, -30.0, 30.0, 300.0])
def test_the_pre_wave_check_uses_telnyx_clock(tmp_path: Path, skew: float) -> None:
    """Two operators with separate files: a job made after our snapshot holds some of our
    numbers; they end skipped, naming that job, and the others go through (rule 3), however
    far Telnyx's clock is from ours (with Telnyx 30 s behind, the host's snapshot time
    missed it)."""
    with Emulator(numbers=300, seed=63, api_key=KEY, job_seconds=5.0,
                  clock_offset_seconds=skew) as emu:
        numbers = [n["phone_number"] for n in allowing(emu, 12, emergency_status="disabled")]
        address = emu.addresses()[0]["id"]
        snapshot_at = datetime.now(timezone.utc)
        theirs = httpx.post(f"{emu.base_url}/phone_numbers/jobs/update_emergency_settings",
                            headers={"Authorization": f"Bearer {KEY}"},
                            json={"phone_numbers": numbers[:4], "emergency_enabled": True,
                                  "emergency_address_id": emu.addresses()[1]["id"]})
        their_job = theirs.json()["data"]["id"]
        config = ClientConfig(api_key=KEY, base_url=emu.base_url, poll_interval=0.1)
        with TelnyxClient(config, log=log) as client, \
                fenced(tmp_path / "safety.sqlite") as (ledger, hold):
            done = submit_and_follow(
                client, ledger, RunIdentity("ours", "acct", "s.csv", str(tmp_path / "o.duckdb")),
                [batch_of(numbers, True, address, "e164")], snapshot_at=snapshot_at,
                aliases={}, settings=Settings(follow_timeout_seconds=0), log=log, fence=hold)
        assert done.taken_out == 4
        for n in numbers[:4]:
            assert done.results[n].result == "skipped"
            assert their_job in done.results[n].reason
        assert {done.results[n].result for n in numbers[4:]} == {"pending"}
        assert each_number_in_one_job(emu)


@pytest.mark.parametrize("skew", [-300.0, -30.0, 30.0, 300.0])
def test_a_killed_runs_job_is_adopted_on_resume_whatever_telnyx_clock(
        tmp_path: Path, skew: float) -> None:
    """A run recorded a batch and its POST made a job, then died before writing the job id.
    The next run finds that job by Telnyx's created_at on Telnyx's clock and adopts it: it is
    never sent again, with the clocks 5 minutes apart either way."""
    with Emulator(numbers=300, seed=64, api_key=KEY, job_seconds=0.2,
                  clock_offset_seconds=skew) as emu:
        numbers = [n["phone_number"] for n in allowing(emu, 5, emergency_status="disabled")]
        batch = batch_of(numbers, True, emu.addresses()[0]["id"], "e164")
        config = ClientConfig(api_key=KEY, base_url=emu.base_url, poll_interval=0.1)
        with TelnyxClient(config, log=log) as client:
            since = client.server_since(datetime.now(timezone.utc))
        with fenced(tmp_path / "safety.sqlite", run_id="killed") as (ledger, _):
            ledger.record([batch], run_id="killed", account="acct", source="s.csv",
                          outcomes_db=str(tmp_path / "o.duckdb"), telnyx_recorded_at=since)
            httpx.post(f"{emu.base_url}/phone_numbers/jobs/update_emergency_settings",
                       headers={"Authorization": f"Bearer {KEY}"},
                       json={"phone_numbers": numbers, "emergency_enabled": True,
                             "emergency_address_id": batch.emergency_address_id}
                       ).raise_for_status()
        with TelnyxClient(config, log=log) as client, \
                fenced(tmp_path / "safety.sqlite") as (ledger, hold):
            done = submit_and_follow(
                client, ledger, RunIdentity("ours", "acct", "s.csv", str(tmp_path / "o.duckdb")),
                [batch], snapshot_at=datetime.now(timezone.utc) - timedelta(seconds=1),
                aliases={}, settings=Settings(follow_timeout_seconds=10, poll_seconds=0.1),
                log=log, fence=hold, apply=False)
        assert done.adopted == 1 and emu.stats()["jobs_created"] == 1
        (resumed,) = ledger.batches_of_run("killed")
        assert resumed.state == "finished"


@pytest.mark.parametrize("skew", [0.0, -300.0, 300.0])
def test_a_late_job_is_adopted_not_sent_again_whatever_telnyx_clock(
        tmp_path: Path, skew: float) -> None:
    """A job POST answered after the read timeout made its job anyway: the look-up over the
    late-job window finds it by Telnyx's created_at on Telnyx's clock (5 minutes off ours
    too), adopts it, and closes the batch with its results; nothing is sent twice."""
    with Emulator(numbers=300, seed=65, api_key=KEY, job_seconds=0.3, clock_offset_seconds=skew,
                  faults=Faults(slow_job_post_rate=1.0, slow_job_post_seconds=1.5)) as emu:
        numbers = [n["phone_number"] for n in allowing(emu, 6, emergency_status="disabled")]
        config = ClientConfig(api_key=KEY, base_url=emu.base_url, read_timeout=0.5,
                              late_job_window_seconds=4.0, adopt_wait_seconds=0.2,
                              poll_interval=0.1)
        with TelnyxClient(config, log=log) as client, \
                fenced(tmp_path / "safety.sqlite") as (ledger, hold):
            done = submit_and_follow(
                client, ledger, RunIdentity("ours", "acct", "s.csv", str(tmp_path / "o.duckdb")),
                [batch_of(numbers, True, emu.addresses()[0]["id"], "e164")],
                snapshot_at=datetime.now(timezone.utc), aliases={}, log=log,
                settings=Settings(follow_timeout_seconds=20, poll_seconds=0.1), fence=hold)
        assert emu.stats()["jobs_created"] == 1 and done.adopted == 1
        assert {done.results[n].result for n in numbers} == {"succeeded"}
        (closed,) = ledger.batches_of_run("ours")
        assert closed.state == "finished"
