"""Auth, rate limiting, switchable faults, counters and the admin routes."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from emergency_pipeline.emulator import Faults

from _emulator_support import JOBS, allowing, client, error_of

RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "test-key-not-secret"},
                                     {"Authorization": "Basic test-key-not-secret"}])
def test_401_without_the_right_bearer_key(emulator, headers):
    with httpx.Client(base_url=emulator.base_url, headers=headers) as c:
        for path in ("/phone_numbers", "/addresses", "/phone_numbers/jobs"):
            r = c.get(path)
            assert r.status_code == 401
            err = error_of(r)
            assert err["code"] == "10009" and err["title"] == "Authentication failed"
            assert "test-key-not-secret" not in r.text
            assert all(h in r.headers for h in RATE_HEADERS)
        body = {"emergency_enabled": False, "phone_numbers": ["1"]}   # valid, but no key
        assert c.post(JOBS, json=body).status_code == 401


def test_rate_limit_headers_and_429(emulator_factory):
    emu = emulator_factory(rate_limit=5, rate_window=1.0)
    with client(emu) as c:
        seen = []
        for _ in range(7):
            r = c.get("/addresses")
            seen.append(r.status_code)
            assert r.headers["x-ratelimit-limit"] == "5"
            assert 0 < int(r.headers["x-ratelimit-reset"]) <= 1
        assert seen == [200] * 5 + [429] * 2
        assert error_of(r)["code"] == "10011"
        assert r.headers["x-ratelimit-remaining"] == "0"
        assert r.headers["retry-after"] == r.headers["x-ratelimit-reset"]
        time.sleep(1.05)  # the window resets
        r = c.get("/addresses")
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining"] == "4"
        # Errors carry the headers too.
        r = c.get("/phone_numbers/1")
        assert r.status_code == 404 and r.headers["x-ratelimit-remaining"] == "3"


def test_error_rate_answers_5xx_with_telnyx_bodies(emulator):
    emulator.set_faults(Faults(error_rate=1.0, seed=3))
    with client(emulator) as c:
        codes = set()
        for _ in range(20):
            r = c.get("/phone_numbers")
            codes.add(r.status_code)
            assert error_of(r)["code"] in ("10007", "10008")
        assert codes == {500, 503}
        emulator.set_faults(Faults(error_rate=0.3, seed=3))
        got = [c.get("/addresses").status_code for _ in range(200)]
        assert 30 < sum(s >= 500 for s in got) < 90
        emulator.set_faults(Faults())
        assert c.get("/phone_numbers").status_code == 200
    assert emulator.stats()["by_status"][200] >= 100


def test_throttle_bursts(emulator):
    emulator.set_faults(Faults(throttle_rate=0.1, throttle_burst=4, seed=5))
    with client(emulator) as c:
        got = []
        for _ in range(200):
            r = c.get("/addresses")
            got.append(r.status_code)
            if r.status_code == 429:
                assert error_of(r)["code"] == "10011"
                assert r.headers["x-ratelimit-remaining"] == "0"
    runs, run = [], 0
    for s in got + [200]:
        if s == 429:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    assert runs and all(r >= 4 for r in runs[:-1]), runs


def test_latency_is_added_without_serialising_requests(emulator):
    latency, requests = 0.5, 6
    emulator.set_faults(Faults(latency=latency))
    with client(emulator) as c:
        started = time.monotonic()
        assert c.get("/addresses").status_code == 200
        assert time.monotonic() - started >= latency
    results = []

    def one():
        with client(emulator) as c:
            results.append(c.get("/phone_numbers").status_code)

    threads = [threading.Thread(target=one) for _ in range(requests)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * requests
    # Served one after another they would take requests x latency (3 s); at once, about one
    # latency. Half the serial time leaves a loaded machine 2 s of slack for the threads.
    assert time.monotonic() - started < requests * latency / 2


def test_dropped_connections(emulator):
    emulator.set_faults(Faults(drop_rate=1.0))
    with client(emulator) as c:
        for _ in range(3):
            with pytest.raises(httpx.RemoteProtocolError):
                c.get("/phone_numbers")
    stats = emulator.stats()
    assert stats["dropped"] == 3 and stats["requests"] == 3 and stats["by_status"] == {}
    emulator.set_faults(Faults())
    with client(emulator) as c:
        assert c.get("/phone_numbers").status_code == 200


def test_lost_job_answer_still_creates_the_job(emulator):
    nums = allowing(emulator, 2)
    emulator.set_faults(Faults(lose_job_post_rate=1.0))
    with client(emulator) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            c.post(JOBS, json={"emergency_enabled": False,
                               "phone_numbers": [n["id"] for n in nums]})
        jobs = c.get("/phone_numbers/jobs").json()["data"]  # other routes still answer
    assert len(jobs) == 1 and jobs[0]["phone_numbers"] == [{"id": n["id"]} for n in nums]
    assert emulator.jobs()[0]["id"] == jobs[0]["id"]
    stats = emulator.stats()
    assert stats["jobs_created"] == 1 and stats["lost_job_answers"] == 1


@pytest.mark.spec_violations   # GET /nowhere, on purpose
def test_stats_count_requests_statuses_routes(emulator):
    nums = allowing(emulator, 1)
    with client(emulator) as c:
        c.get("/phone_numbers")
        c.get("/phone_numbers")
        c.get(f"/phone_numbers/{nums[0]['id']}")
        c.get("/phone_numbers/1")
        c.post(JOBS, json={"emergency_enabled": False, "phone_numbers": [nums[0]["id"]]})
        c.post(JOBS, json={"emergency_enabled": False, "phone_numbers": []})
        c.get("/nowhere")
    with client(emulator, key="bad") as c:
        c.get("/addresses")
    stats = emulator.stats()
    assert stats["requests"] == 8
    assert stats["by_status"] == {200: 3, 404: 2, 202: 1, 422: 1, 401: 1}
    assert stats["by_route"]["GET /v2/phone_numbers"] == 2
    assert stats["by_route"]["GET /v2/phone_numbers/{id}"] == 2
    assert stats["by_route"]["POST /v2/phone_numbers/jobs/update_emergency_settings"] == 2
    assert stats["jobs_created"] == 1
    emulator.reset_stats()
    assert emulator.stats() == {"requests": 0, "by_status": {}, "by_route": {},
                                "jobs_created": 0, "dropped": 0, "lost_job_answers": 0,
                                "addresses_created": 0, "lost_address_answers": 0}


def test_admin_routes_need_no_key_and_drive_the_emulator(emulator_factory):
    emu = emulator_factory(job_seconds=60)
    nums = allowing(emu, 1)
    with httpx.Client(base_url=emu.root_url) as admin, client(emu) as c:
        r = admin.put("/_emulator/faults", json={"error_rate": 1.0, "seed": 1})
        assert r.status_code == 200 and r.json()["error_rate"] == 1.0
        assert emu.faults == Faults(error_rate=1.0, seed=1)
        assert admin.get("/_emulator/faults").json()["error_rate"] == 1.0
        assert c.get("/addresses").status_code >= 500
        assert admin.put("/_emulator/faults", json={"bogus": 1}).status_code == 400
        assert admin.put("/_emulator/faults", json={}).status_code == 200
        job = c.post(JOBS, json={"emergency_enabled": False,
                                 "phone_numbers": [nums[0]["id"]]}).json()["data"]
        assert admin.post("/_emulator/finish_jobs").status_code == 200
        assert emu.job(job["id"])["status"] == "completed"
        stats = admin.get("/_emulator/stats").json()
        assert stats["requests"] == 2 and stats["jobs_created"] == 1
        assert stats["by_status"] == {"503": 1, "202": 1} or stats["by_status"] == {
            "500": 1, "202": 1}


def test_faults_parse_from_cli_text():
    f = Faults.parse("error_rate=0.05, latency=0.01,throttle_burst=3,seed=9")
    assert f == Faults(error_rate=0.05, latency=0.01, throttle_burst=3, seed=9)
    assert Faults.parse("") == Faults()
    for bad in ("error_rate=2", "nope=1", "error_rate"):
        with pytest.raises(ValueError):
            Faults.parse(bad)


def test_stop_closes_kept_alive_connections(emulator_factory):
    emu = emulator_factory()
    with client(emu) as c:
        assert c.get("/addresses").status_code == 200  # the connection stays open
        emu.stop()
        with pytest.raises(httpx.TransportError):
            c.get("/addresses")
