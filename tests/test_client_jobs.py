"""Job submission and following against the emulator: no duplicates, typed 422s, outcomes."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from emergency_pipeline.client import JobRejected, TelnyxAPIError, TelnyxClient
from emergency_pipeline.telnyx_contract import JOB_TERMINAL_STATUSES
from emergency_pipeline.emulator import Faults

from _client_support import fast_config, running_emulator

log = logging.getLogger("test.client")


def _account(client):
    numbers = [n for n in client.list_phone_numbers() if n.get("status") == "active"]
    address = client.list_addresses()[0]["id"]
    return numbers, address


def test_lost_post_answers_create_each_job_exactly_once():
    with running_emulator(numbers=1_000, seed=21, job_seconds=30.0) as emu:
        with TelnyxClient(fast_config(emu), log=log) as client:
            numbers, address = _account(client)
            batches = [[n["phone_number"] for n in numbers[i * 5:(i + 1) * 5]]
                       for i in range(50)]
            assert all(len(b) == 5 for b in batches)
            emu.set_faults(Faults(lose_job_post_rate=0.5, seed=3))
            emu.reset_stats()
            with ThreadPoolExecutor(8) as pool:
                subs = list(pool.map(
                    lambda b: client.submit_update_emergency_settings(b, True, address),
                    batches))
        stats = emu.stats()

    assert stats["lost_job_answers"] > 0
    assert stats["jobs_created"] == 50
    assert any(s.adopted for s in subs) and not all(s.adopted for s in subs)
    assert len({s.job["id"] for s in subs}) == 50
    for batch, sub in zip(batches, subs):
        echoed = {p.get("phone_number") or p.get("id") for p in sub.job["phone_numbers"]}
        assert echoed == set(batch)


def test_throttled_and_failing_posts_still_create_each_job_once():
    with running_emulator(numbers=400, seed=22, job_seconds=30.0) as emu:
        with TelnyxClient(fast_config(emu), log=log) as client:
            numbers, address = _account(client)
            batches = [[n["id"] for n in numbers[i * 10:(i + 1) * 10]] for i in range(10)]
            emu.set_faults(Faults(throttle_rate=0.05, throttle_burst=2, error_rate=0.15,
                                  drop_rate=0.05, seed=8))
            emu.reset_stats()
            subs = [client.submit_update_emergency_settings(b, True, address)
                    for b in batches]
        stats = emu.stats()
    assert stats["jobs_created"] == 10
    assert len({s.job["id"] for s in subs}) == 10


def test_422_names_the_failing_numbers():
    # The shape with one error per unowned number (emulator/shape.py); the spec's example
    # shape is in test_422_without_pointers_is_a_general_error.
    with running_emulator(numbers=200, seed=23, telnyx_shape="pointers") as emu:
        with TelnyxClient(fast_config(emu), log=log) as client:
            numbers, address = _account(client)
            mine = [n["phone_number"] for n in numbers[:3]]
            foreign = "+19995550123"
            with pytest.raises(JobRejected) as info:
                client.submit_update_emergency_settings(mine[:2] + [foreign] + mine[2:],
                                                        True, address)
            err = info.value
            assert err.status == 422 and "10015" in err.codes
            assert foreign in err.failing_numbers
            assert set(err.failing_numbers) <= {foreign}
            assert foreign in str(err)

            # Mixed ids and E.164: concerns the whole list, so a general error.
            with pytest.raises(JobRejected) as info:
                client.submit_update_emergency_settings([mine[0], numbers[5]["id"]], True,
                                                        address)
            assert info.value.general_errors and isinstance(info.value, TelnyxAPIError)
        assert emu.stats()["jobs_created"] == 0


def test_follow_jobs_reaches_terminal_statuses_with_outcomes():
    with running_emulator(numbers=300, seed=24, job_seconds=0.3) as emu:
        with TelnyxClient(fast_config(emu), log=log) as client:
            numbers, address = _account(client)
            batches = [[n["phone_number"] for n in numbers[i * 20:(i + 1) * 20]]
                       for i in range(4)]
            subs = [client.submit_update_emergency_settings(b, True, address)
                    for b in batches]
            updates = []
            result = client.follow_jobs([s.job["id"] for s in subs], deadline_seconds=20,
                                        on_update=updates.append)
            after = {n["phone_number"]: n for n in client.list_phone_numbers()}
    assert set(result) == {s.job["id"] for s in subs}
    assert len(updates) >= len(subs)
    for batch, sub in zip(batches, subs):
        job = result[sub.job["id"]]
        assert job["status"] in JOB_TERMINAL_STATUSES
        done = {op.get("phone_number") or op.get("id") for op in
                job.get("successful_operations", []) + job.get("failed_operations", [])}
        assert done == set(batch)
        for op in job.get("successful_operations", []):
            assert after[op["phone_number"]]["emergency_enabled"] is True
            assert after[op["phone_number"]]["emergency_address_id"] == address


def test_follow_jobs_returns_latest_status_at_the_deadline():
    with running_emulator(numbers=100, seed=25, job_seconds=60.0) as emu:
        with TelnyxClient(fast_config(emu), log=log) as client:
            numbers, address = _account(client)
            sub = client.submit_update_emergency_settings(
                [n["phone_number"] for n in numbers[:3]], True, address)
            result = client.follow_jobs([sub.job["id"]], deadline_seconds=0.3)
            assert result[sub.job["id"]]["status"] in {"pending", "in_progress"}
            emu.finish_jobs()
            result = client.follow_jobs([sub.job["id"]], deadline_seconds=5)
            assert result[sub.job["id"]]["status"] in JOB_TERMINAL_STATUSES


def test_422_without_pointers_is_a_general_error():
    with running_emulator(numbers=200, seed=23) as emu:   # the spec's example shape
        with TelnyxClient(fast_config(emu), log=log) as client:
            numbers, address = _account(client)
            mine = [n["phone_number"] for n in numbers[:3]]
            with pytest.raises(JobRejected) as info:
                client.submit_update_emergency_settings(mine + ["+19995550123"], True, address)
            err = info.value
            assert err.failing_numbers == ()
            assert [e.pointer for e in err.general_errors] == ["/phone_numbers"]
