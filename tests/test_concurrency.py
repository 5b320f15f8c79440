"""Runs at once and runs cut short (issue 11): the account lease, each run's own data, the
pre-wave check, slow job POSTs, and results of a run that stopped before its outcomes.

Real processes where users run processes (the CLI), the real emulator over HTTP, real DuckDB
and SQLite files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pandas as pd
import pytest
from dagster import AssetSelection, DagsterInstance
from dagster_duckdb import DuckDBResource

from _analyst import held_open
from _emulator_support import allowing, each_number_in_one_job
from emergency_pipeline.planning.batching import batch_of
from emergency_pipeline.definitions import build_definitions
from emergency_pipeline.defs.reconcile_job import JOB_NAME, apply_tags
from emergency_pipeline.launch import run_job
from emergency_pipeline.defs.partitions import ensure_partition
from emergency_pipeline.defs.resources import PipelineStorage, TelnyxResource, state_dir_for
from emergency_pipeline.emulator import Emulator, Faults
from emergency_pipeline.safety_store import open_safety_store
from emergency_pipeline.analytics.store import Store

KEY = "KEY_concurrency_test_not_secret"
CLI = [sys.executable, "-m", "emergency_pipeline.cli", "run"]


def _sheet(path: Path, numbers: list[dict], address: str | None, on: bool = True) -> str:
    pd.DataFrame({"phone_number": [n["phone_number"] for n in numbers],
                  "emergency_enabled": "yes" if on else "no",
                  "emergency_address_id": address if on else ""}).to_csv(path, index=False)
    return str(path)


def _env(emu: Emulator, tmp_path: Path, name: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "TELNYX_API_KEY": KEY, "TELNYX_BASE_URL": emu.base_url,
            "EMERGENCY_PIPELINE_DUCKDB": str(tmp_path / f"{name}.duckdb"),
            "DAGSTER_HOME": str(_mkdir(tmp_path / f"home-{name}")),
            "EMERGENCY_PIPELINE_LEASE_DIR": str(_mkdir(tmp_path / "leases")), **extra}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(CLI + args, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _outcomes(database: str) -> pd.DataFrame:
    con = duckdb.connect(database, read_only=True)
    try:
        return con.execute("SELECT * FROM operation_outcomes").df()
    finally:
        con.close()


def test_two_apply_runs_at_once_take_turns_and_never_double_a_number(tmp_path: Path) -> None:
    # Numbers settle as their job ends (settle_seconds=0): the second run may take its
    # snapshot the moment the first lets the lease go, and a number still `provisioning`
    # then is rightly skipped ("wait until it settles"), which is not what this test is about.
    with Emulator(numbers=2000, seed=31, api_key=KEY, job_seconds=1.0, settle_seconds=0) as emu:
        targets = allowing(emu, 120, emergency_status="disabled")
        sheet = _sheet(tmp_path / "sheet.csv", targets, emu.addresses()[0]["id"])
        env = _env(emu, tmp_path, "shared")   # one file, one Dagster home, a new source
        runs = [_start([sheet, "--apply", "--max-batch-size", "50"], env) for _ in range(2)]
        outs = [r.communicate(timeout=300) for r in runs]
        assert [r.returncode for r in runs] == [0, 0], [o[1][-3000:] for o in outs]
        # One run took the lease first; the other waited for it, naming the holder (until it
        # ended: an apply run of the same Dagster home and account).
        waited = [err for _, err in outs if "for the account lease, held by" in err]
        assert all("until that run ends" in err for err in waited)
        assert len(waited) == 1 and "held by run" in waited[0] and "pid" in waited[0]
        assert len(emu.jobs()) == 3                          # 120 numbers in batches of 50
        assert each_number_in_one_job(emu)
    out = _outcomes(env["EMERGENCY_PIPELINE_DUCKDB"])
    per_run = out.groupby("run_id")["result"].agg(lambda r: set(r))
    assert sorted(map(sorted, per_run)) == [["succeeded"], ["unchanged"]]


def test_a_plan_only_run_never_waits_and_an_apply_run_gives_up_naming_the_holder(
        tmp_path: Path) -> None:
    with Emulator(numbers=300, seed=32, api_key=KEY, job_seconds=0.2) as emu:
        targets = allowing(emu, 10, emergency_status="disabled")
        sheet = _sheet(tmp_path / "sheet.csv", targets, emu.addresses()[0]["id"])
        env = _env(emu, tmp_path, "op", EMERGENCY_PIPELINE_LEASE_WAIT_SECONDS="2")
        lease = open_safety_store(
            str(Path(env["EMERGENCY_PIPELINE_LEASE_DIR"]) / "safety.sqlite")).lease
        account = TelnyxResource(api_key=KEY, base_url=emu.base_url).account()
        lease.acquire(account, "someone-elses-run", wait_seconds=0)   # held by this process
        plan = _start([sheet], env)
        assert plan.wait(timeout=120) == 2          # plan-only: changes planned
        apply = _start([sheet, "--apply"], env)
        _, err = apply.communicate(timeout=120)
        assert apply.returncode == 1
        assert "someone-elses-run" in err and f"pid {os.getpid()}" in err
        assert KEY not in err
        assert emu.stats()["jobs_created"] == 0
        # The lease is freed: the same apply goes through.
        lease.release(account, "someone-elses-run")
        again = _start([sheet, "--apply"], env)
        assert again.wait(timeout=120) == 0
        assert emu.stats()["jobs_created"] == 1


def test_two_runs_of_one_source_each_apply_their_own_plan(tmp_path: Path) -> None:
    """A applies site A's rows; B, a plan-only run of the same source (a DuckDB query for
    site B) started while A works, must not hand A its plan (rule 8)."""
    with Emulator(numbers=1500, seed=33, api_key=KEY, job_seconds=0.5,
                  faults=Faults(latency=0.05)) as emu:
        numbers = allowing(emu, 80, emergency_status="disabled")
        addresses = [a["id"] for a in emu.addresses()[:2]]
        source = tmp_path / "desired.duckdb"
        con = duckdb.connect(str(source))
        con.execute("CREATE TABLE desired (phone_number VARCHAR, emergency_enabled VARCHAR, "
                    "emergency_address_id VARCHAR, site VARCHAR)")
        con.executemany("INSERT INTO desired VALUES (?, 'yes', ?, ?)",
                        [(n["phone_number"], addresses[i % 2], "AB"[i % 2])
                         for i, n in enumerate(numbers)])
        con.close()
        env = _env(emu, tmp_path, "shared")
        query = "SELECT * FROM desired WHERE site = '{}'"
        a = _start([str(source), "--apply", "--query", query.format("A")], env)
        time.sleep(1.0)
        b = _start([str(source), "--query", query.format("B")], env)
        assert b.wait(timeout=300) == 2 and a.wait(timeout=300) == 0   # 2: changes planned
        site_a = {n["phone_number"] for n in numbers[0::2]}
        for n in numbers:
            now = emu.number(n["phone_number"])
            assert now["emergency_enabled"] == (n["phone_number"] in site_a)
            if n["phone_number"] in site_a:
                assert now["emergency_address_id"] == addresses[0]


def _setup_defs(emu: Emulator, database: str, **state):
    state.setdefault("store_url", str(Path(database).parent / "safety.sqlite"))
    return build_definitions({
        "telnyx": TelnyxResource(api_key=KEY, base_url=emu.base_url),
        "duckdb": DuckDBResource(database=database),
        "storage": PipelineStorage(directory=state_dir_for(database), **state)})


def test_results_of_a_run_that_stopped_before_its_outcomes_are_recorded_for_it(
        tmp_path: Path) -> None:
    """A run stops after its jobs ended (their results closed in the ledger) and before its
    outcomes step; the next apply run, of another sheet, records them for that run (rule 5)."""
    database = str(tmp_path / "o.duckdb")
    with Emulator(numbers=400, seed=36, api_key=KEY, job_seconds=0.2,
                  faults=Faults(number_fail_rate=0.2, seed=3)) as emu:
        numbers = allowing(emu, 40, emergency_status="disabled")
        address = emu.addresses()[0]["id"]
        first = _sheet(tmp_path / "first.csv", numbers[:30], address)
        second = _sheet(tmp_path / "second.csv", numbers[30:], address)
        defs = _setup_defs(emu, database)
        instance = DagsterInstance.ephemeral()
        ensure_partition(instance, first)
        job = defs.resolve_job_def(JOB_NAME)
        # Everything but the outcomes: as if the process died right after the jobs step.
        cut = job.get_subset(asset_selection=(
            AssetSelection.groups("emergency") - AssetSelection.assets(
                "emergency_operation_outcomes")).resolve(defs.resolve_asset_graph()))
        stopped = cut.execute_in_process(instance=instance, partition_key=first,
                                         tags={**cut.tags, **apply_tags()})
        assert stopped.success
        assert not Path(database).exists() or _outcomes(database).query(
            "run_id == @stopped.run_id and result in ('succeeded', 'failed')").empty
        later = run_job(second, True, defs=defs, instance=instance)
        assert later.success
        out = _outcomes(database)
        theirs = out[out["run_id"] == stopped.run_id]
        assert sorted(theirs["phone_number"]) == sorted(n["phone_number"] for n in numbers[:30])
        assert (theirs["source"] == first).all()
        assert set(theirs["result"]) == {"succeeded", "failed"}
        failed = theirs[theirs["result"] == "failed"]
        assert failed["error_code"].notna().all()
        for row in theirs.itertuples():
            now = emu.number(row.phone_number)
            assert now["emergency_enabled"] == (row.result == "succeeded")
        # Published once: a third run publishes nothing again.
        run_job(second, True, defs=defs, instance=instance)
        assert len(_outcomes(database).query("run_id == @stopped.run_id")) == 30


def test_the_ledger_is_resumed_while_an_analyst_holds_the_analytics_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Open batches are resumed (an unanswered one adopted) with the analytics file held
    read-write by another process: the ledger never waits on it (rule 8)."""
    monkeypatch.setenv("EMERGENCY_PIPELINE_LOCK_WAIT_SECONDS", "0.2")
    database = str(tmp_path / "o.duckdb")
    with Emulator(numbers=300, seed=37, api_key=KEY, job_seconds=0.2) as emu:
        numbers = allowing(emu, 10, emergency_status="disabled")
        address = emu.addresses()[0]["id"]
        sheet = _sheet(tmp_path / "s.csv", numbers, address)
        defs = _setup_defs(emu, database, store_url=str(tmp_path / "safety.sqlite"))
        ledger = open_safety_store(str(tmp_path / "safety.sqlite")).ledger
        account = TelnyxResource(api_key=KEY, base_url=emu.base_url).account()
        batch = batch_of([n["phone_number"] for n in numbers], True, address, "e164")
        ledger.record([batch], run_id="crashed", account=account, source=sheet,
                      outcomes_db=database)
        httpx.post(f"{emu.base_url}/phone_numbers/jobs/update_emergency_settings",
                   headers={"Authorization": f"Bearer {KEY}"},
                   json={"phone_numbers": list(batch.identifiers), "emergency_enabled": True,
                         "emergency_address_id": address}).raise_for_status()
        duckdb.connect(database).close()
        with held_open(database, read_only=False):
            result = run_job(sheet, True, defs=defs, instance=DagsterInstance.ephemeral())
            assert result.success
            (resumed,) = ledger.batches_of_run("crashed")
            assert resumed.state == "finished"
            assert emu.stats()["jobs_created"] == 1
    assert Store(database).flush() == 0   # the spooled rows land once the file is free
    out = _outcomes(database)
    assert set(out.loc[out["run_id"] == "crashed", "result"]) == {"succeeded"}
    assert len(out[out["run_id"] == result.run_id]) == 10


def test_a_run_launched_any_way_fails_a_dead_run_and_takes_its_lease(tmp_path: Path) -> None:
    """A run left STARTED by a dead worker (tagged as the UI's and the daemon's runs are by
    their first step) is failed by the next run, in-process here, and its lease is free at
    once (issue 14)."""
    import socket

    from dagster import DagsterRunStatus
    from dagster._core.storage.dagster_run import DagsterRun

    from emergency_pipeline.defs.dead_runs import HOST_TAG, PID_TAG

    database = str(tmp_path / "o.duckdb")
    home = _mkdir(tmp_path / "home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = DagsterInstance.from_config(str(home))
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    instance.add_run(DagsterRun(job_name=JOB_NAME, run_id="dead-run", status=DagsterRunStatus
                                .STARTED, tags={HOST_TAG: socket.gethostname(),
                                                PID_TAG: str(child.pid)}))
    with Emulator(numbers=300, seed=38, api_key=KEY, job_seconds=0.2) as emu:
        numbers = allowing(emu, 5, emergency_status="disabled")
        sheet = _sheet(tmp_path / "s.csv", numbers, emu.addresses()[0]["id"])
        store_path = tmp_path / "safety.sqlite"
        account = TelnyxResource(api_key=KEY, base_url=emu.base_url).account()
        open_safety_store(str(store_path), stale_after=3600).lease.acquire(
            account, "dead-run", wait_seconds=0)
        defs = _setup_defs(emu, database, store_url=str(store_path), lease_wait_seconds=5.0)
        result = run_job(sheet, True, defs=defs, instance=instance)
        assert result.success
        assert instance.get_run_by_id("dead-run").status == DagsterRunStatus.FAILURE
        ours = instance.get_run_by_id(result.run_id)
        assert ours.tags[HOST_TAG] == socket.gethostname()
        assert ours.tags[PID_TAG] == str(os.getpid())
        assert emu.stats()["jobs_created"] == 1


def test_numbers_a_job_in_flight_already_processed_are_still_left_alone(
        tmp_path: Path) -> None:
    """A job in progress reports some numbers done and others pending: it holds them all
    until it ends (rule 3), so a run planned meanwhile submits none of them."""
    database = str(tmp_path / "o.duckdb")
    with Emulator(numbers=300, seed=39, api_key=KEY, job_seconds=60.0) as emu:
        numbers = allowing(emu, 10, emergency_status="disabled")
        first, second = (a["id"] for a in emu.addresses()[:2])
        theirs = httpx.post(f"{emu.base_url}/phone_numbers/jobs/update_emergency_settings",
                            headers={"Authorization": f"Bearer {KEY}"},
                            json={"phone_numbers": [n["phone_number"] for n in numbers],
                                  "emergency_enabled": True, "emergency_address_id": first})
        job_id = theirs.json()["data"]["id"]
        # The emulator's clock past `pending` (12 s) and 1 of 10 numbers: no sleeping, and the
        # job stays in flight for 43 s more of real time, however slow the run below.
        emu.advance(17)
        deadline = time.monotonic() + 30
        while True:   # until the job reports some numbers done and some still pending
            job = next(j for j in emu.jobs() if j["id"] == job_id)
            if job["successful_operations"] and job["pending_operations"]:
                break
            assert time.monotonic() < deadline, job["status"]
            time.sleep(0.2)
        sheet = _sheet(tmp_path / "s.csv", numbers, second)
        result = run_job(sheet, True, {"ops": {
            "emergency_update_jobs": {"config": {"follow_timeout_seconds": 0.0}}}},
                         defs=_setup_defs(emu, database), instance=DagsterInstance.ephemeral())
        assert result.success
        assert [j["id"] for j in emu.jobs()] == [job_id]     # nothing else submitted
    out = _outcomes(database)
    assert (out["result"] == "skipped").all()
    assert out["reason"].str.contains("in flight").all()


@pytest.mark.parametrize("first_file_there", [True, False])
def test_a_stopped_runs_results_land_in_its_own_file_from_a_run_on_another_file(
        tmp_path: Path, first_file_there: bool) -> None:
    """The ledger is the account's, not a DuckDB file's: a run on another analytics file (another
    working folder, another operator) resumes the stopped run and records its results in the
    stopped run's own file; when that file cannot be reached from here (another machine's
    folder), in its own file, attributed to the stopped run, exactly once (rule 5)."""
    store = str(tmp_path / "shared-safety.sqlite")
    first_db = str(tmp_path / "operator-a" / "emergency.duckdb")
    second_db = str(tmp_path / "operator-b" / "emergency.duckdb")
    with Emulator(numbers=400, seed=41, api_key=KEY, job_seconds=0.2) as emu:
        numbers = allowing(emu, 20, emergency_status="disabled")
        address = emu.addresses()[0]["id"]
        first = _sheet(tmp_path / "first.csv", numbers[:12], address)
        second = _sheet(tmp_path / "second.csv", numbers[12:], address)
        defs_a = _setup_defs(emu, first_db, store_url=store)
        defs_b = _setup_defs(emu, second_db, store_url=store)
        instance = DagsterInstance.ephemeral()
        ensure_partition(instance, first)
        cut = defs_a.resolve_job_def(JOB_NAME).get_subset(asset_selection=(
            AssetSelection.groups("emergency") - AssetSelection.assets(
                "emergency_operation_outcomes")).resolve(defs_a.resolve_asset_graph()))
        stopped = cut.execute_in_process(instance=instance, partition_key=first,
                                         tags={**cut.tags, **apply_tags()})
        assert stopped.success
        if not first_file_there:
            import shutil
            shutil.rmtree(Path(first_db).parent)     # as if on another machine
        assert run_job(second, True, defs=defs_b, instance=instance).success
        theirs_in_a = (_outcomes(first_db).query("run_id == @stopped.run_id")
                       if first_file_there else pd.DataFrame())
        theirs_in_b = _outcomes(second_db).query("run_id == @stopped.run_id")
        landed = theirs_in_a if first_file_there else theirs_in_b
        assert sorted(landed["phone_number"]) == sorted(n["phone_number"] for n in numbers[:12])
        assert (landed["source"] == first).all() and set(landed["result"]) == {"succeeded"}
        assert len(theirs_in_a) + len(theirs_in_b) == 12           # in one file, once
