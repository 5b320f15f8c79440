"""The emulator's clock: a skew (Telnyx's clock against the host's) shows in every timestamp
it reports and in no duration; `advance` moves jobs, settling and rate-limit windows on
without sleeping."""

from __future__ import annotations

import email.utils
import json
import subprocess
import sys
import time
import urllib.request

import httpx
import pytest

from emergency_pipeline.emulator.account import parse_iso

from _emulator_support import JOBS, allowing, client


def _post_job(c: httpx.Client, numbers: list[dict], enable: bool = False) -> dict:
    body = {"emergency_enabled": enable, "phone_numbers": [n["phone_number"] for n in numbers]}
    r = c.post(JOBS, json=body)
    assert r.status_code == 202, r.text
    return r.json()["data"]


def _date_of(response: httpx.Response) -> float:
    return email.utils.parsedate_to_datetime(response.headers["Date"]).timestamp()


def test_a_skewed_clock_shows_in_created_at_and_the_date_header(emulator_factory):
    emu = emulator_factory(clock_offset_seconds=-300.0, job_seconds=0.2)
    nums = allowing(emu, 2, emergency_enabled=True)
    with client(emu) as c:
        before = time.time()
        r = c.post(JOBS, json={"emergency_enabled": False,
                               "phone_numbers": [n["phone_number"] for n in nums]})
        after = time.time()
        assert r.status_code == 202, r.text
        created = parse_iso(r.json()["data"]["created_at"])
        assert before - 300 - 0.01 <= created <= after - 300 + 0.01
        # RFC 7231 (IMF-fixdate), whole seconds, from the same clock.
        assert r.headers["Date"].endswith(" GMT")
        assert before - 300 - 1 <= _date_of(r) <= after - 300 + 1
        job = r.json()["data"]
        assert job["status"] == "pending"
        # The skew moves timestamps, not durations: the 0.2 s job is done in about 0.2 s.
        time.sleep(0.3)
        done = c.get(f"/phone_numbers/jobs/{job['id']}").json()["data"]
        assert done["status"] == "completed"
        assert parse_iso(done["updated_at"]) < time.time() - 299


def test_no_skew_reports_host_time_in_the_date_header(emulator):
    with client(emulator) as c:
        r = c.get("/phone_numbers", params={"page[size]": 1})
    assert abs(_date_of(r) - time.time()) <= 2


def test_set_clock_offset_changes_what_a_running_emulator_reports(emulator):
    emulator.set_clock_offset(3600)
    with client(emulator) as c:
        r = c.get("/phone_numbers", params={"page[size]": 1})
    assert 3600 - 2 <= _date_of(r) - time.time() <= 3600 + 2


def test_advance_finishes_a_long_job_without_sleeping(emulator_factory):
    emu = emulator_factory(job_seconds=12.0)
    nums = allowing(emu, 3, emergency_enabled=True)
    started = time.monotonic()
    with client(emu) as c:
        job = _post_job(c, nums)
        emu.advance(5)   # past pending (the first fifth), not yet done
        mid = c.get(f"/phone_numbers/jobs/{job['id']}").json()["data"]
        assert mid["status"] == "in_progress"
        emu.advance(7.5)
        done = c.get(f"/phone_numbers/jobs/{job['id']}").json()["data"]
    assert done["status"] == "completed"
    assert len(done["successful_operations"]) == 3
    # Reported times follow the advanced clock: the job ended about 12 s after it began.
    assert 12 <= parse_iso(done["updated_at"]) - parse_iso(done["created_at"]) < 14
    assert time.monotonic() - started < 6   # far less than the job's 12 s
    # The numbers deprovision (settle: job_seconds / 2 = 6 s) once their time has passed too.
    assert {emu.number(n["id"])["emergency_status"] for n in nums} == {"deprovisioning"}
    emu.advance(6)
    assert {emu.number(n["id"])["emergency_status"] for n in nums} == {"disabled"}


def test_advance_opens_a_new_rate_limit_window(emulator_factory):
    emu = emulator_factory(rate_limit=2, rate_window=60.0)
    with client(emu) as c:
        codes = [c.get("/phone_numbers", params={"page[size]": 1}).status_code
                 for _ in range(3)]
        assert codes == [200, 200, 429]
        emu.advance(60)
        assert c.get("/phone_numbers", params={"page[size]": 1}).status_code == 200


def test_advance_refuses_going_back(emulator):
    with pytest.raises(ValueError, match="time does not go back"):
        emulator.advance(-1)


def _admin(emu, method: str, path: str, body: object | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(emu.root_url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_admin_routes_read_set_and_advance_the_clock(emulator_factory):
    emu = emulator_factory(job_seconds=15.0)
    assert _admin(emu, "GET", "/_emulator/clock") == (
        200, {"offset_seconds": 0.0, "advanced_seconds": 0.0})
    assert _admin(emu, "PUT", "/_emulator/clock", {"offset_seconds": -300})[1][
        "offset_seconds"] == -300.0
    nums = allowing(emu, 2, emergency_enabled=True)
    with client(emu) as c:
        job = _post_job(c, nums)
        assert _admin(emu, "POST", "/_emulator/advance", {"seconds": 15}) == (
            200, {"offset_seconds": -300.0, "advanced_seconds": 15.0})
        assert c.get(f"/phone_numbers/jobs/{job['id']}").json()["data"]["status"] == \
            "completed"
    status, body = _admin(emu, "POST", "/_emulator/advance", {"seconds": "soon"})
    assert status == 400 and "finite number of seconds" in body["errors"][0]["detail"]
    status, body = _admin(emu, "PUT", "/_emulator/clock", {"offset_seconds": float("inf")})
    assert status == 400


def test_the_cli_takes_a_clock_offset(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "emergency_pipeline.emulator", "--port", "0",
         "--numbers", "20", "--clock-offset", "-300"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.rsplit(" at ", 1)[1].strip()
        root = url.removesuffix("/v2")
        with urllib.request.urlopen(root + "/_emulator/clock", timeout=5) as resp:
            assert json.loads(resp.read())["offset_seconds"] == -300.0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bad = subprocess.run([sys.executable, "-m", "emergency_pipeline.emulator",
                          "--clock-offset", "nan"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--clock-offset must be a finite number" in bad.stderr
