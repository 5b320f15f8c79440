"""The multi-host soak (reliability/multi_host_soak.py; the long run is its --pairs 30): two
pairs of runs on two 'hosts' (their own host names via `unshare --uts`, their own TMPDIR,
HOME, DAGSTER_HOME, working folder and DuckDB file, two API keys of one account) sharing a
real PostgreSQL store; and the bugs it found, as regression tests."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from emergency_pipeline.emulator import Emulator, Faults
from emergency_pipeline.safety_store import LeaseLost, held, open_safety_store
from _reliability import load



def test_a_step_whose_lease_was_taken_over_while_it_ran_fails_naming_the_holder(
        store_url: str) -> None:
    """The soak's first pause pair: a run stopped inside its outcomes step (no POST left to
    send) past the takeover, then continued, ended that step and exited 0 without a word.
    A clean exit from a hold now confirms it: LeaseLost names the new holder."""
    store = open_safety_store(store_url)
    with pytest.raises(LeaseLost, match="taken over by run newcomer"):
        with held(store.lease, "acct", "paused", wait_seconds=0, release_on_exit=True,
                  confirm_on_exit=True):   # as every step of an apply run holds it
            store.lease.acquire("acct", "newcomer", wait_seconds=0,
                                is_run_finished=lambda run: run == "paused")
    assert store.lease.holder("acct").run_id == "newcomer"   # and its hold is left alone
    with held(store.lease, "acct", "newcomer", wait_seconds=0, reenter=True,
              release_on_exit=True, confirm_on_exit=True):
        pass                                                 # a hold kept exits cleanly
    assert store.lease.holder("acct") is None
    store.close()


def test_twice_sees_a_run_with_two_rows_for_one_number() -> None:
    checks = load("soak_checks")

    def row(run: str, result: str = "succeeded"):
        return checks.Row("db", run, "s.csv", "n1", (True, "a1"), result, "", "J1", "b1", None)

    assert checks.twice([row("r1"), row("r2")], {"r1", "r2"}) == []
    assert len(checks.twice([row("r1"), row("r1", "failed")], {"r1"})) == 1
    assert checks.twice([row("r1"), row("r1")], {"r2"}) == []     # another pair's run


def test_the_emulator_tells_which_key_sent_each_job_post() -> None:
    """The soak's posts_after check: job POSTs as they arrive, on the host's clock, by key
    (answered or not: the one whose answer is lost counts too)."""
    with Emulator(numbers=20, seed=4, api_key="KEY_first_not_secret",
                  extra_api_keys=["KEY_second_not_secret"], job_seconds=0.2,
                  clock_offset_seconds=-30, faults=Faults(lose_job_post_rate=1.0)) as emu:
        n = next(emu.numbers())
        before = time.time()
        for key in ("KEY_second_not_secret", "KEY_first_not_secret", "KEY_wrong"):
            try:
                httpx.post(emu.base_url + "/phone_numbers/jobs/update_emergency_settings",
                           json={"phone_numbers": [n["phone_number"]],
                                 "emergency_enabled": False},
                           headers={"Authorization": f"Bearer {key}"}, timeout=5)
            except httpx.HTTPError:
                pass                               # the lost answer
        posts = emu.job_posts()
    assert [p.key for p in posts] == [1, 0, None]
    assert all(before <= p.received_at <= time.time() for p in posts)   # not the skewed clock


def test_lease_timing_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from emergency_pipeline.defs.resources import lease_timing_from_env
    monkeypatch.delenv("EMERGENCY_PIPELINE_FENCE_SECONDS", raising=False)
    monkeypatch.delenv("EMERGENCY_PIPELINE_LEASE_STALE_SECONDS", raising=False)
    assert lease_timing_from_env() == {}
    monkeypatch.setenv("EMERGENCY_PIPELINE_LEASE_STALE_SECONDS", "15")
    assert lease_timing_from_env() == {"lease_stale_seconds": 15.0, "fence_seconds": 5.0}
    monkeypatch.setenv("EMERGENCY_PIPELINE_FENCE_SECONDS", "4")
    assert lease_timing_from_env() == {"lease_stale_seconds": 15.0, "fence_seconds": 4.0}
    monkeypatch.setenv("EMERGENCY_PIPELINE_FENCE_SECONDS", "four")
    with pytest.raises(ValueError, match="EMERGENCY_PIPELINE_FENCE_SECONDS='four'"):
        lease_timing_from_env()


def _can_run_hosts() -> str | None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return "needs root and unshare(1) for the hosts' own host names"
    return None


@pytest.mark.soak
@pytest.mark.skipif(_can_run_hosts() is not None, reason=str(_can_run_hosts()))
def test_a_paused_holder_and_a_killed_run_on_two_hosts_keep_the_promises(
        tmp_path: Path, pg_server) -> None:
    """A pause pair on the account whose clock is 30 s behind (the first run to reach the
    plan step is stopped until the other host's run took the lease over, then continued),
    and an overlap pair whose first run is killed right after its POSTs."""
    soak = load("multi_host_soak")
    lines: list[str] = []
    reports = soak.soak(2, seed=7, numbers=300, rows=60, job_seconds=0.4,
                        kinds=("pause", "overlap"), skew_every=1, slow_share=0.0,
                        pause_points=("settings_plan:start",),
                        kill_points=("update_jobs:posted",), calm=True,
                        workdir=tmp_path, state_url=pg_server.new_database(),
                        echo=lines.append)
    text = "\n".join(lines)
    assert [r.kind for r in reports] == ["pause", "overlap"], text
    assert all(r.telnyx.startswith("skew-30") for r in reports), text
    paused, killed = reports
    assert paused.event.startswith("paused") and "taken over" in paused.event, text
    assert killed.event.startswith("killed") and "update_jobs:posted" in killed.event, text
    for r in reports:
        assert r.resume_rc == 0, text
        assert not any(r.counts.values()), text
    # The paused run was taken over, failed with the ERROR, and sent nothing after.
    assert paused.lease_checked >= 1, text
    assert 1 in paused.first_rcs, text
    log = (tmp_path / "runs.log").read_text(errors="replace")
    assert "lost the account lease" in log, "the paused run never said it lost the lease"
    hosts = {line.split("on host ")[1].split(",")[0] for line in log.splitlines()
             if "held by run" in line and "on host " in line}
    assert hosts <= {"host-a", "host-b"} and hosts, f"lease holders' hosts: {hosts}"
