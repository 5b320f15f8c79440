"""History that survives the run's machine (issue 25, item 6): each run writes its rows as
Parquet files to a shared location, whatever analytics file it had; one DuckDB file of views
answers for every account."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
from dagster import DagsterInstance
from dagster_duckdb import DuckDBResource

from emergency_pipeline.definitions import build_definitions
from emergency_pipeline.launch import run_job
from emergency_pipeline.defs.resources import PipelineStorage, TelnyxResource, state_dir_for
from emergency_pipeline.emulator import Emulator
from emergency_pipeline.samples.demo_sheet import write_sample

CLI = str(Path(sys.executable).parent / "emergency-pipeline")


def _run(tmp: Path, emu: Emulator, key: str, account: str, seed: int, history: Path) -> str:
    # Each account's run on its own "machine": its own analytics file and state folder.
    database = str(tmp / account / "emergency.duckdb")
    defs = build_definitions({
        "telnyx": TelnyxResource(api_key=key, base_url=emu.base_url, account_name=account),
        "duckdb": DuckDBResource(database=database),
        "storage": PipelineStorage(directory=state_dir_for(database),
                               store_url=str(tmp / "safety.sqlite"),
                               history_url=str(history))})
    sheet = str(write_sample(tmp / f"{account}.csv", 200, seed, rows=25))
    result = run_job(sheet, True, defs=defs, instance=DagsterInstance.ephemeral())
    assert result.success
    return result.run_id


def test_two_accounts_history_in_parquet_and_one_session_over_both(tmp_path: Path) -> None:
    history = tmp_path / "shared-history"
    with Emulator(numbers=200, seed=1, api_key="KEY_h1_not_secret", job_seconds=0.2) as a, \
            Emulator(numbers=200, seed=2, api_key="KEY_h2_not_secret", job_seconds=0.2) as b:
        runs = {"acme": _run(tmp_path, a, "KEY_h1_not_secret", "acme", 1, history),
                "globex": _run(tmp_path, b, "KEY_h2_not_secret", "globex", 2, history)}
    files = sorted(p.relative_to(history).as_posix() for p in history.rglob("*")
                   if p.is_file())
    assert not [f for f in files if f.endswith(".tmp")]
    for account, run_id in runs.items():
        assert f"operation_outcomes/account={account}/{run_id}--{run_id}.parquet" in files
        assert f"emergency_plan/account={account}/{run_id}--{run_id}.parquet" in files

    out = tmp_path / "views.duckdb"
    made = subprocess.run([CLI, "history", "views", "--url", str(history), "--out", str(out)],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    con = duckdb.connect(str(out), read_only=True)
    by_account = dict(con.execute("SELECT account, count(DISTINCT run_id) FROM run_summary "
                                  "GROUP BY account").fetchall())
    assert by_account == {"acme": 1, "globex": 1}
    # Every row a run's own analytics file holds is in the shared history too.
    for account, run_id in runs.items():
        own = duckdb.connect(str(tmp_path / account / "emergency.duckdb"), read_only=True)
        expected = own.execute("SELECT count(*) FROM operation_outcomes WHERE run_id = ?",
                               [run_id]).fetchone()[0]
        own.close()
        got = con.execute("SELECT count(*) FROM operation_outcomes WHERE run_id = ? AND "
                          "account = ?", [run_id, account]).fetchone()[0]
        assert got == expected > 0
    con.close()


def test_without_a_history_location_nothing_is_written(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("EMERGENCY_PIPELINE_HISTORY_URL", raising=False)
    made = subprocess.run([CLI, "history", "views", "--out", str(tmp_path / "v.duckdb")],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert made.returncode == 1
    assert "EMERGENCY_PIPELINE_HISTORY_URL" in made.stderr and len(made.stderr) < 200
