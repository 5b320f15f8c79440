"""State files (write, load, round trip) and the `emergency-pipeline emulator` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from emergency_pipeline.emulator import DEV_API_KEY, Emulator

from _emulator_support import JOBS, allowing, client


def test_state_file_round_trip_keeps_changes(emulator_factory, tmp_path):
    emu = emulator_factory(numbers=200, seed=11)
    target = allowing(emu, 1, emergency_enabled=False, emergency_status="disabled")[0]
    addr = emu.addresses()[-1]["id"]
    with client(emu) as c:
        assert c.post(JOBS, json={"emergency_enabled": True, "emergency_address_id": addr,
                                  "phone_numbers": [target["id"]]}).status_code == 202
    emu.finish_jobs()
    path = tmp_path / "state.json"
    emu.save_state(str(path))
    doc = json.loads(path.read_text())
    assert len(doc["numbers"]) == 200 and doc["addresses"] == emu.addresses()
    row = next(r for r in doc["numbers"] if r["id"] == target["id"])
    assert row["emergency_address_id"] == addr and row["emergency_status"] == "active"

    loaded = emulator_factory(state_file=str(path), numbers=5)  # numbers ignored
    assert list(loaded.numbers()) == list(emu.numbers())
    assert loaded.addresses() == emu.addresses()
    with client(loaded) as c:
        assert c.get(f"/phone_numbers/{target['id']}").json()["data"]["emergency_address_id"] \
            == addr


def test_hand_written_state_file(tmp_path):
    path = tmp_path / "small.json"
    path.write_text(json.dumps({
        "addresses": [{"id": "77", "street_address": "600 Congress Avenue", "locality": "Austin",
                       "administrative_area": "TX", "postal_code": "78701",
                       "country_code": "US", "record_type": "address"}],
        "numbers": [
            {"id": "2", "phone_number": "+12025550123", "emergency_enabled": True,
             "emergency_address_id": "77"},
            {"id": "1", "phone_number": "+13125550188", "status": "port-pending"},
        ]}))
    emu = Emulator(state_file=str(path))
    nums = list(emu.numbers())
    assert [n["id"] for n in nums] == ["1", "2"]
    assert nums[1]["emergency_status"] == "active" and nums[0]["emergency_status"] == "disabled"
    assert emu.number("+12025550123")["emergency_address_id"] == "77"


def _cli(*args, env=None, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "emergency_pipeline.cli", "emulator", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, **kwargs)


def test_cli_serves_with_the_key_from_the_environment_and_never_prints_it(tmp_path):
    secret = "env-key-should-not-appear"
    proc = _cli("--port", "0", "--numbers", "120", "--seed", "5", "--job-seconds", "0.1",
                "--faults", "latency=0.01", env={"TELNYX_API_KEY": secret})
    try:
        line = proc.stdout.readline()
        assert "120 numbers" in line and secret not in line
        base = line.strip().rsplit(" ", 1)[-1]
        assert base.startswith("http://127.0.0.1:") and base.endswith("/v2")
        r = httpx.get(base + "/phone_numbers", headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 200 and r.json()["meta"]["total_results"] == 120
        assert httpx.get(base + "/phone_numbers", headers={
            "Authorization": f"Bearer {DEV_API_KEY}"}).status_code == 401
        root = base[:-3]
        assert httpx.get(root + "/_emulator/faults").json()["latency"] == 0.01
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert secret not in out + err


def test_cli_writes_a_state_file_that_matches_the_seed(tmp_path):
    path = tmp_path / "s.json"
    proc = _cli("--numbers", "50", "--seed", "9", "--write-state-file", str(path))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert list(Emulator(state_file=str(path)).numbers()) == \
        list(Emulator(numbers=50, seed=9).numbers())
    proc = _cli("--faults", "nonsense=1")
    assert proc.wait(timeout=30) == 2


def test_module_entry_point_writes_the_same_state(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for path, cmd in ((a, ["-m", "emergency_pipeline.emulator"]),
                      (b, ["-m", "emergency_pipeline.cli", "emulator"])):
        subprocess.run([sys.executable, *cmd, "--numbers", "30", "--seed", "2",
                        "--write-state-file", str(path)], check=True, capture_output=True,
                       timeout=60)
    assert json.loads(a.read_text()) == json.loads(b.read_text())
