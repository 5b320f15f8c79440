"""Issue 11, deliverable 6: does an analyst holding the analytics DuckDB file slow an apply run?

A 6-batch `emergency-pipeline run --apply` (6,000 numbers moved to an address none of them
uses, 1,000 per batch; jobs of --job-seconds) is timed as a child process twice per round:
once alone, once while another process holds the analytics file read-write
(`duckdb.connect(path)` kept open, as an analyst's notebook does). Each run gets a fresh
emulator (same seed) and fresh files, so both do the same work. Prints each wall time, the
medians and their ratio (the issue wants <= 1.2), and whether the held run's outcomes
landed once the file was free.

    .venv/bin/python reliability/analyst_hold.py              # 2 rounds
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from emergency_pipeline.emulator import Emulator
from emergency_pipeline.analytics.store import Store

KEY = "KEY_analyst_hold_not_secret"
# The analyst: opens the file read-write, says so, and keeps it open until killed.
ANALYST = ("import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
           "con.execute('CREATE TABLE IF NOT EXISTS analyst_notes (x INTEGER)'); "
           "print('held', flush=True); time.sleep(3600)")


def write_sheet(emu: Emulator, path: Path) -> int:
    """Every number enabled with the account's last address (a spare none of them uses)."""
    spare = emu.addresses()[-1]["id"]
    numbers = list(emu.numbers())
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["phone_number", "emergency_enabled", "emergency_address_id"])
        out.writerows([n["phone_number"], "yes", spare] for n in numbers)
    return len(numbers)


def one_run(work: Path, tag: str, args: argparse.Namespace, hold: bool) -> dict:
    with Emulator(numbers=args.numbers, seed=args.seed, api_key=KEY,
                  job_seconds=args.job_seconds, rate_limit=5000) as emu:
        sheet = work / f"desired_{tag}.csv"
        write_sheet(emu, sheet)
        db = work / f"analytics_{tag}.duckdb"
        home = work / f"home_{tag}"
        home.mkdir()
        env = {**os.environ, "TELNYX_API_KEY": KEY, "TELNYX_BASE_URL": emu.base_url,
               "EMERGENCY_PIPELINE_DUCKDB": str(db), "DAGSTER_HOME": str(home),
               "EMERGENCY_PIPELINE_LEASE_DIR": str(work / "lease")}
        analyst = None
        if hold:
            analyst = subprocess.Popen([sys.executable, "-c", ANALYST, str(db)],
                                       stdout=subprocess.PIPE)
            assert analyst.stdout.readline().strip() == b"held"
        began = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "emergency_pipeline.cli", "run", str(sheet), "--apply",
             "--max-batch-size", "1000", "--allow-mass-disable", "--quiet"],
            env=env, capture_output=True, text=True, timeout=1800)
        seconds = time.monotonic() - began
        if analyst is not None:
            analyst.kill()
            analyst.wait()
        run_id = run.stdout.split()[1].rstrip(":") if run.stdout.startswith("run ") else None
        jobs = emu.stats()["jobs_created"]
    return {"seconds": seconds, "rc": run.returncode, "run_id": run_id, "jobs": jobs,
            "db": db, "stderr": run.stderr}


def landed(db: Path, run_id: str | None) -> int:
    """Outcome rows of the run in the file, once the spool (writes made while the file was
    held) is applied, as the next run's first write would."""
    Store(str(db), lock_wait_seconds=0).flush()
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM operation_outcomes WHERE run_id = ?",
                           [run_id]).fetchone()[0]
    except duckdb.CatalogException:
        return 0
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--numbers", type=int, default=6000)
    p.add_argument("--job-seconds", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=5)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="analyst-hold-"))
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(args.rounds):
        for hold in (False, True):   # alternated, so machine load falls on both alike
            tag = f"{r}{'_held' if hold else ''}"
            out = one_run(work, tag, args, hold)
            times[hold].append(out["seconds"])
            print(f"round {r + 1} {'held by an analyst' if hold else 'alone             '}: "
                  f"{out['seconds']:6.1f}s exit {out['rc']} jobs {out['jobs']} "
                  f"outcome rows in the file {landed(out['db'], out['run_id'])}", flush=True)
            if out["rc"] != 0:
                print(out["stderr"][-2000:], file=sys.stderr)
    alone, held = statistics.median(times[False]), statistics.median(times[True])
    ratio = held / alone
    print(f"median alone {alone:.1f}s, held {held:.1f}s, ratio {ratio:.2f} (wanted <= 1.2)")
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    sys.exit(main())
