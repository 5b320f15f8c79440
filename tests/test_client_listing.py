"""Listing against the emulator over real HTTP: complete, exactly once, bounded retries, paced."""

from __future__ import annotations

import logging

from emergency_pipeline.client import TelnyxClient
from emergency_pipeline.emulator import Faults

from _client_support import fast_config, running_emulator

log = logging.getLogger("test.client")


def test_listing_20000_numbers_exactly_once_under_faults():
    with running_emulator(numbers=20_000, seed=11, rate_limit=100_000) as emu:
        with TelnyxClient(fast_config(emu), log=log) as client:
            clean = client.list_phone_numbers()
        expected = {n["id"] for n in clean}
        assert len(expected) == 20_000
        pages = 20_000 // 250

        emu.set_faults(Faults(error_rate=0.1, throttle_rate=0.03, throttle_burst=4,
                              drop_rate=0.05, seed=5))
        emu.reset_stats()
        seen_pages = []
        with TelnyxClient(fast_config(emu), log=log) as client:
            numbers = client.list_phone_numbers(
                on_page=lambda done, total, records: seen_pages.append((done, total)))
            retries = client.stats["retries"]
        stats = emu.stats()

    ids = [n["id"] for n in numbers]
    assert len(ids) == len(set(ids)) == 20_000
    assert set(ids) == expected
    assert all("emergency_enabled" in n and "emergency_address_id" in n for n in numbers)
    assert sorted(d for d, _ in seen_pages) == list(range(1, pages + 1))
    # The faults happened, and were retried, but boundedly.
    assert retries > 0
    failed = sum(n for code, n in stats["by_status"].items() if int(code) >= 429) \
        + stats["dropped"]
    assert failed > 0
    assert stats["requests"] == pages + retries
    assert stats["requests"] < 2 * pages


def test_addresses_and_jobs_are_listed():
    with running_emulator(numbers=300, seed=3) as emu:
        with TelnyxClient(fast_config(emu), log=log) as client:
            addresses = client.list_addresses()
            assert addresses and len({a["id"] for a in addresses}) == len(addresses)
            assert client.list_jobs() == []


def test_pacing_keeps_429s_rare_under_a_low_rate_limit():
    with running_emulator(numbers=5_000, seed=4, rate_limit=8, rate_window=1.0) as emu:
        emu.reset_stats()
        with TelnyxClient(fast_config(emu, max_concurrency=4), log=log) as client:
            numbers = client.list_phone_numbers()
            paced = client.stats["paced_holds"]
        stats = emu.stats()
    assert len({n["id"] for n in numbers}) == 5_000
    throttled = stats["by_status"].get(429, 0) + stats["by_status"].get("429", 0)
    assert throttled <= 2, stats
    assert paced > 0          # the client, not the server, did the slowing down


def test_max_rate_spaces_requests():
    import time

    with running_emulator(numbers=250 * 6, seed=5) as emu:
        with TelnyxClient(fast_config(emu, max_rate=10.0), log=log) as client:
            t0 = time.monotonic()
            assert len(client.list_phone_numbers()) == 1500
            elapsed = time.monotonic() - t0
    assert elapsed >= 0.45      # 6 requests at 10/s: at least 5 intervals


def test_count_and_get_each_by_id_under_faults():
    with running_emulator(numbers=1_000, seed=4, rate_limit=100_000) as emu:
        wanted = [n["id"] for n in list(emu.engine.account.iter_numbers())[::50]]
        emu.set_faults(Faults(error_rate=0.2, drop_rate=0.1, seed=2))
        with TelnyxClient(fast_config(emu), log=log) as client:
            assert client.count_phone_numbers() == 1_000
            got = client.get_phone_numbers([wanted[0], "999", *wanted[1:]])
    # In the order asked, each once; the id the account does not know (404) is left out.
    assert [n["id"] for n in got] == wanted
    assert all("emergency_enabled" in n for n in got)


def test_listing_keeps_only_the_fields_asked_for():
    with running_emulator(numbers=600, seed=4, rate_limit=100_000) as emu:
        with TelnyxClient(fast_config(emu), log=log) as client:
            full = client.list_phone_numbers()
            slim = client.list_phone_numbers(fields=["phone_number", "emergency_enabled"])
    assert len(full[0]) > 10
    assert [set(n) for n in slim] == [{"id", "phone_number", "emergency_enabled"}] * 600
    assert [(n["id"], n["emergency_enabled"]) for n in slim] == \
        [(n["id"], n["emergency_enabled"]) for n in full]


def test_429s_are_waited_out_but_failures_are_bounded_by_attempts():
    import pytest

    from emergency_pipeline.client import TelnyxAPIError

    with running_emulator(numbers=750, seed=4, rate_limit=100_000) as emu:
        # Bursts of three 429s against one request at a time: each burst meets a single
        # request three times in a row, more than max_attempts.
        emu.set_faults(Faults(throttle_rate=0.5, throttle_burst=3, seed=8))
        with TelnyxClient(fast_config(emu, max_attempts=2, max_concurrency=1),
                          log=log) as client:
            assert len(client.list_phone_numbers()) == 750
        by_status = {int(k): v for k, v in emu.stats()["by_status"].items()}
        assert by_status[429] >= 3 and by_status[429] % 3 == 0   # whole bursts, waited out
        # 5xx are failures: two of them in a row and the request gives up.
        emu.set_faults(Faults(error_rate=1.0, seed=8))
        emu.reset_stats()
        with TelnyxClient(fast_config(emu, max_attempts=2), log=log) as client:
            with pytest.raises(TelnyxAPIError, match="after 2 attempts"):
                client.list_phone_numbers()
        assert emu.stats()["requests"] == 2
