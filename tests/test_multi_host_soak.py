"""What the multi-host soak needs and found: the bugs, as regression tests."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from emergency_pipeline.emulator import Emulator, Faults
from emergency_pipeline.safety_store import LeaseLost, held, open_safety_store

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
