"""Secret audit (design rule 6): a distinctive API key, the whole job on a persistent Dagster
instance with faults on, a run the safety guard stops, a 401 from a wrong key, a run of the
`emergency-pipeline run` command, and the DuckDB file held so that outcomes are spooled;
then a byte search of everything written and captured. The key must appear nowhere."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
from dagster import DagsterInstance, EnvVar
from dagster_duckdb import DuckDBResource

from _analyst import held_open
from emergency_pipeline.definitions import build_definitions
from emergency_pipeline.launch import run_job
from emergency_pipeline.defs.resources import TelnyxResource
from emergency_pipeline.emulator import Emulator, Faults
from emergency_pipeline.samples.demo_sheet import write_sample

NUMBERS, SEED = 500, 21


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(text + repr(record.__dict__))


def _hits(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {n!r}" for n in needles if n in data]
    return found


def _duckdb_hits(path: Path, needle: str) -> list[str]:
    """DuckDB compresses strings, so a byte search is not enough: ask it for every text cell."""
    found = []
    con = duckdb.connect(str(path), read_only=True)
    try:
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
            cols = con.execute(f'SELECT * FROM "{table}" LIMIT 0').description
            expr = " || ".join(f'coalesce(CAST("{c[0]}" AS VARCHAR), \'\')' for c in cols) or "''"
            n = con.execute(f'SELECT count(*) FROM "{table}" WHERE position(? IN {expr}) > 0',
                            [needle]).fetchall()[0][0]
            if n:
                found.append(f"{path}:{table}: {n} rows")
    finally:
        con.close()
    return found


def test_the_key_appears_nowhere(tmp_path: Path, monkeypatch, capfd, caplog) -> None:
    key = "KEY_audit_" + secrets.token_hex(12)
    wrong = "KEY_audit_wrong_" + secrets.token_hex(12)
    home, data = tmp_path / "dagster_home", tmp_path / "data"
    home.mkdir()
    data.mkdir()
    database = data / "emergency.duckdb"
    handler = _Everything()
    logging.getLogger().addHandler(handler)
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TELNYX_API_KEY", key)
    monkeypatch.setenv("EMERGENCY_PIPELINE_LOCK_WAIT_SECONDS", "0.3")
    faults = Faults(error_rate=0.1, throttle_rate=0.03, throttle_burst=3, drop_rate=0.03,
                    lose_job_post_rate=0.3, expire_rate=0.2, fail_job_rate=0.05, seed=5)
    try:
        with Emulator(numbers=NUMBERS, seed=SEED, api_key=key, job_seconds=0.3,
                      faults=faults) as emu, \
                DagsterInstance.local_temp(str(home)) as instance:
            defs = build_definitions({
                "telnyx": TelnyxResource(api_key=EnvVar("TELNYX_API_KEY"), base_url=emu.base_url),
                "duckdb": DuckDBResource(database=str(database))})
            desired = str(write_sample(data / "desired.csv", NUMBERS, SEED, rows=120))
            # 1. Apply with faults: retries, lost answers, adoption, expired jobs are logged.
            first = run_job(desired, True, defs=defs, instance=instance)
            assert first.success
            # 2. The same, while an analyst holds the file: outcomes go to the spool.
            with held_open(database):
                run_job(desired, True, defs=defs, instance=instance)
            # 3. A run the safety guard stops.
            enabled = [n["phone_number"] for n in emu.numbers() if n["emergency_enabled"]][:80]
            mass = data / "mass_disable.csv"
            pd.DataFrame({"number": enabled, "enabled": "no"}).to_csv(mass, index=False)
            config = {"ops": {"emergency_update_jobs": {"config": {"max_disable_count": 10}}}}
            assert not run_job(str(mass), True, config, defs=defs, instance=instance).success
            # 4. A wrong key: 401 on the first request.
            monkeypatch.setenv("TELNYX_API_KEY", wrong)
            assert not run_job(desired, True, defs=defs, instance=instance).success
            assert emu.stats()["by_status"].get(401, 0) >= 1
            # 5. The command users run, in a child process with the key in its environment.
            env = {**os.environ, "TELNYX_API_KEY": key, "TELNYX_BASE_URL": emu.base_url,
                   "EMERGENCY_PIPELINE_DUCKDB": str(database), "DAGSTER_HOME": str(home)}
            child = subprocess.run(
                [sys.executable, "-m", "emergency_pipeline.cli", "run", desired, "--apply",
                 "--quiet", "--log-level", "debug"], env=env, capture_output=True, timeout=300)
            assert child.returncode == 0, child.stderr[-2000:]
            events = [repr(e) for r in instance.get_runs() for e in instance.all_logs(r.run_id)]
    finally:
        logging.getLogger().removeHandler(handler)
    out, err = capfd.readouterr()
    assert "WARNING" in err or "warning" in (err + out).lower() or handler.lines  # logs flowed
    needles = [key.encode(), key.split("_")[-1].encode(), wrong.encode(),
               key.encode("utf-16-le")]
    leaks = _hits(tmp_path, needles)
    for db in [database, *(data / "emergency.duckdb.spool").glob("*.duckdb")]:
        if db.exists():
            leaks += _duckdb_hits(db, key) + _duckdb_hits(db, wrong)
    captured = [out, err, child.stdout.decode(errors="replace"),
                child.stderr.decode(errors="replace"), caplog.text, *handler.lines, *events]
    leaks += [f"captured output #{i}" for i, text in enumerate(captured)
              if key in text or wrong in text or key.split("_")[-1] in text]
    assert not leaks, leaks
    # The audit looked at something: Dagster wrote its files, DuckDB its tables.
    assert (home / "history" / "runs.db").exists() and database.exists()
    assert any(home.rglob("*.db"))
