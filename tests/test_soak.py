"""A small soak, `make soak` (reliability/soak.py; the long run is its --pairs 50): two
pairs of concurrent `run --apply` child processes against a faulty emulator whose job POSTs
answer after the children's read timeout, one child of each killed with SIGKILL (inside the
outcomes step; right after the update step's POSTs), each followed by resume runs. Then the
checks themselves, on a real emulator: each must see the fault it is there for (those stay
in `make test`: they start no process)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from emergency_pipeline.emulator import Emulator
from _reliability import load



@pytest.mark.soak
def test_concurrent_killed_and_slow_pairs_keep_the_promises(tmp_path: Path) -> None:
    soak = load("soak")
    lines: list[str] = []
    reports = soak.soak(
        2, seed=11, numbers=400, rows=80, job_seconds=0.4, kill_share=1.0, slow_share=1.0,
        kinds=("overlap", "same"),
        kill_points=("operation_outcomes:inside", "update_jobs:posted"),
        follow_choices=(0.0, 30.0), workdir=tmp_path, echo=lines.append,
        # No dropped connections: each dropped job POST costs a 60 s look-up window.
        fault_overrides={"drop_rate": 0.0, "slow_job_post_rate": 0.5,
                         "slow_job_post_seconds": 3.0})
    text = "\n".join(lines)
    assert [r.kind for r in reports] == ["overlap", "same"], text
    assert reports[0].killed.endswith("at operation_outcomes:inside"), text
    assert reports[1].killed.endswith("at update_jobs:posted"), text
    for r in reports:
        assert r.resume_rc == 0, text
        assert (r.dup_in_flight, r.crossed, r.lost, r.bad_results, r.wrong_state) == (
            0, 0, 0, 0, 0), text
        assert sum(r.results.values()) == r.desired, text
    assert sum(r.jobs_created for r in reports) > 0, text   # the pairs did change something
    log = (tmp_path / "runs.log").read_text(errors="replace")
    assert "ReadTimeout" in log, "no job POST outlived the read timeout"
    assert "for the account lease, held by" in log, "the concurrent runs never met at the lease"


CALM = {f: 0.0 for f in ("error_rate", "throttle_rate", "drop_rate", "lose_job_post_rate",
                         "slow_job_post_rate", "expire_rate", "fail_job_rate",
                         "number_fail_rate")}


@pytest.mark.soak
def test_a_run_following_another_sheets_job_records_no_success_for_its_target(
        tmp_path: Path) -> None:
    soak = load("soak")
    lines: list[str] = []
    # No faults, no kill: run A (follow 0) leaves 15 s jobs in flight; run H of a sheet
    # with conflicting targets on the same file finds them in flight and follows them.
    reports = soak.soak(1, seed=5, numbers=300, rows=60, job_seconds=0.4, kill_share=0.0,
                        slow_share=0.0, kinds=("handover",), follow_choices=(0.0,),
                        handover_job_seconds=15.0, fault_overrides=CALM, workdir=tmp_path,
                        echo=lines.append)
    text = "\n".join(lines)
    assert reports[0].crossed == 0, text
    # H must not submit numbers of A's job while it is in flight, even ones it has already
    # processed (the 50-pair soak found H doing so once the first jobs took 20 s).
    assert reports[0].dup_in_flight == 0, text


@pytest.mark.soak
def test_a_lost_post_answer_adopts_the_job_that_post_made(tmp_path: Path) -> None:
    import os
    import sqlite3
    import subprocess

    from emergency_pipeline.emulator import Faults

    key = "KEY_soak_adopt_not_secret"
    # Every job expires before touching its number (so the second run plans it again) and
    # every job POST's answer is lost after the job is made.
    with Emulator(numbers=50, seed=2, api_key=key, job_seconds=0.3,
                  faults=Faults(expire_rate=1.0, lose_job_post_rate=1.0, seed=1)) as emu:
        n = next(x for x in emu.numbers() if x["emergency_enabled"])
        sheet = _sheet(tmp_path / "s.csv", [(n["phone_number"], "no", "")])
        env = {**os.environ, "TELNYX_API_KEY": key, "TELNYX_BASE_URL": emu.base_url,
               "EMERGENCY_PIPELINE_DUCKDB": str(tmp_path / "o.duckdb"),
               "DAGSTER_HOME": str(tmp_path), "EMERGENCY_PIPELINE_LEASE_DIR": str(tmp_path)}
        cmd = [sys.executable, "-m", "emergency_pipeline.cli", "run", sheet, "--apply",
               "--quiet", "--follow-timeout", "0"]
        # Two at once: the second takes the lease when the first ends and POSTs ~2 s after it.
        runs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL) for _ in range(2)]
        assert [r.wait(timeout=300) for r in runs] == [0, 0]
        made = {j["id"] for j in emu.jobs()}
    with sqlite3.connect(tmp_path / "safety.sqlite") as con:   # the store in LEASE_DIR
        recorded = {r[0] for r in con.execute("SELECT job_id FROM batches")}
    assert len(made) == 2
    assert made == recorded, f"jobs made {sorted(made)}, recorded {sorted(recorded)}"


@pytest.fixture(scope="module")
def emu():
    with Emulator(numbers=20, seed=3, job_seconds=0.2) as e:
        yield e


def _sheet(path: Path, rows: list[tuple[str, str, str]]) -> str:
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["phone_number", "emergency_enabled", "emergency_address_id"])
        out.writerows(rows)
    return str(path)


def test_the_checks_see_crossed_lost_and_duplicate(emu: Emulator, tmp_path: Path) -> None:
    checks = load("soak_checks")
    n = next(emu.numbers())
    a1, a2 = (a["id"] for a in emu.addresses()[:2])
    sheet = _sheet(tmp_path / "s.csv", [(n["phone_number"], "yes", a1)])

    def row(target, job_id="J1", result="succeeded"):
        return checks.Row("db", "run-1", sheet, n["id"], target, result, "", job_id, "b1",
                          None)

    sheets = checks.Sheets(emu)
    assert checks.crossed([row((True, a1))], sheets, {"J1": (True, a1)}) == []
    # The row records the sheet's target but its job applied another run's: crossed.
    assert len(checks.crossed([row((True, a1))], sheets, {"J1": (True, a2)})) == 1
    # The row itself records a target the sheet did not ask: crossed.
    assert len(checks.crossed([row((True, a2))], sheets, {"J1": (True, a2)})) == 1
    assert checks.bad_results([row((True, a1))] * 2, "run-1", sheets.targets(sheet)) == 1

    op = {"id": n["id"], "phone_number": n["phone_number"]}
    ended = {"id": "J1", "status": "completed", "successful_operations": [op],
             "failed_operations": [], "pending_operations": [],
             "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:05Z"}
    assert checks.LostResults().check([ended], [row((True, a1))]) == ([], 0)
    lost, _ = checks.LostResults().check([ended], [row((True, a1), result="failed")])
    assert len(lost) == 1                       # recorded, but not with the job's result
    lost, _ = checks.LostResults().check([ended], [])
    assert len(lost) == 1
    # A row still saying pending in that job: a later run records it; not lost yet.
    assert checks.LostResults().check([ended], [row((True, a1), result="pending")]) == ([], 1)

    overlapping = {**ended, "id": "J2", "created_at": "2026-01-01T00:00:03Z"}
    assert checks.duplicate_in_flight([ended, overlapping]) == [(n["id"], "J1", "J2")]
    assert checks.duplicate_in_flight([ended, overlapping], new={"J3"}) == []
    later = {**overlapping, "created_at": "2026-01-01T00:00:06Z"}
    assert checks.duplicate_in_flight([ended, later]) == []
