"""Soak: pairs of runs of the Dagster job against a faulty emulator, some killed with SIGKILL.

Each pair: a new desired state (random targets, sometimes an earlier pair's sheet again, so
identical batches recur), random faults (5xx, 429 bursts, dropped connections, lost job-POST
answers, latency, expired and failed jobs, numbers the provider refuses), a first run of
`emergency-pipeline run --apply` in a child process that is killed with SIGKILL at a random
moment in some pairs, then a resume run. The emulator lives in this process, so its state
persists across the pair.
After each pair it checks and prints:

  dup_in_flight   two jobs holding the same number whose in-flight periods overlap   (0)
  bad_results     desired numbers without exactly one outcome in the resume run      (0)
  wrong_state     numbers whose job succeeded but whose settings differ from desired (0)

    .venv/bin/python reliability/soak.py --pairs 50          # the long run (100 runs)
    .venv/bin/python reliability/soak.py --pairs 3 --fast    # what `make test` runs
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from emergency_pipeline.emulator import Emulator, Faults

KEY = "KEY_soak_not_secret"
PYTHON = sys.executable


@dataclass
class PairReport:
    pair: int
    killed_at: float | None
    first_rc: int | None
    resume_rc: int
    resume_run_id: str | None
    desired: int
    jobs_created: int
    results: dict[str, int] = field(default_factory=dict)
    dup_in_flight: int = 0
    bad_results: int = 0
    wrong_state: int = 0
    seconds: float = 0.0
    faults: dict[str, Any] = field(default_factory=dict)
    resumes: int = 1

    @property
    def ok(self) -> bool:
        return (self.resume_rc == 0 and self.dup_in_flight == 0 and self.bad_results == 0
                and self.wrong_state == 0)

    def line(self) -> str:
        kill = f"killed@{self.killed_at:.1f}s" if self.killed_at is not None \
            else f"rc={self.first_rc}"
        res = " ".join(f"{k}={v}" for k, v in sorted(self.results.items()))
        return (f"pair {self.pair:3d} {kill:>13} resume_rc={self.resume_rc}"
                f"{'' if self.resumes == 1 else f' (after {self.resumes} resume runs)'} "
                f"desired={self.desired} jobs+={self.jobs_created} | {res} | "
                f"dup_in_flight={self.dup_in_flight} bad_results={self.bad_results} "
                f"wrong_state={self.wrong_state} ({self.seconds:.0f}s)")


def random_faults(rng: random.Random) -> Faults:
    return Faults(error_rate=rng.choice([0, 0.02, 0.05, 0.1]),
                  throttle_rate=rng.choice([0, 0.01, 0.03]), throttle_burst=rng.randint(1, 6),
                  latency=rng.choice([0, 0.005, 0.02]),
                  drop_rate=rng.choice([0, 0.01, 0.03]),
                  lose_job_post_rate=rng.choice([0, 0.2, 0.5]),
                  expire_rate=rng.choice([0, 0.1, 0.2]), fail_job_rate=rng.choice([0, 0.05]),
                  number_fail_rate=rng.choice([0, 0.03]), seed=rng.randrange(1 << 30))


def write_desired(emu: Emulator, path: Path, rng: random.Random, rows: int,
                  max_disable: int) -> None:
    """Random targets for `rows` numbers of the account as it is now: a share enabled with
    a random address, a few disabled (under the guard), the rest kept as they are."""
    numbers = list(emu.numbers())
    addresses = [a["id"] for a in emu.addresses()]
    disabled = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["phone_number", "emergency_enabled", "emergency_address_id", "ticket"])
        for i, n in enumerate(rng.sample(numbers, min(rows, len(numbers)))):
            ident = n["id"] if rng.random() < 0.1 else n["phone_number"]
            roll = rng.random()
            if roll < 0.1 and n["emergency_enabled"] and disabled < max_disable:
                disabled += 1
                out.writerow([ident, "no", "", f"SOAK-{i}"])
            elif roll < 0.7 or not n["emergency_enabled"]:
                out.writerow([ident, "yes", rng.choice(addresses), f"SOAK-{i}"])
            else:   # as it is (noop, unless it is changing right now)
                out.writerow([ident, "yes", n["emergency_address_id"], f"SOAK-{i}"])


def _parse(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def duplicate_in_flight(jobs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(number id, job a, job b) for every pair of jobs holding one number whose in-flight
    periods overlap. A job's period runs from created_at to the updated_at of its terminal
    status (the moment the emulator first saw it end), or on for ever while in flight."""
    spans: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for job in jobs:
        start = _parse(job["created_at"])
        end = _parse(job["updated_at"]) if job["status"] not in ("pending", "in_progress") \
            else float("inf")
        ids = {op["id"] for key in ("successful_operations", "failed_operations",
                                    "pending_operations") for op in job.get(key, [])}
        for number_id in ids:
            spans[number_id].append((start, end, job["id"]))
    found = []
    for number_id, periods in spans.items():
        periods.sort()
        for (s1, e1, j1), (s2, e2, j2) in zip(periods, periods[1:]):
            if s2 < e1:
                found.append((number_id, j1, j2))
    return found


def _child(source: Path, env: dict[str, str], follow: float, log: Path) -> subprocess.Popen:
    cmd = [PYTHON, "-m", "emergency_pipeline.cli", "run", str(source), "--apply",
           "--follow-timeout", str(follow), "--quiet", "--log-level", "warning"]
    with log.open("ab") as fh:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=fh,
                                start_new_session=True)


def _run_id(out: bytes) -> str | None:
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("run ") and ":" in line:
            return line.split()[1].rstrip(":")
    return None


def check_pair(emu: Emulator, database: str, run_id: str | None, desired: Path
               ) -> tuple[int, int, dict[str, int]]:
    """(numbers without exactly one outcome, numbers succeeded but not as desired, results)."""
    with open(desired, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    want: dict[str, tuple[bool, str | None]] = {}
    for row in rows:
        n = emu.number(row["phone_number"])
        on = row["emergency_enabled"] == "yes"
        want[n["id"]] = (on, row["emergency_address_id"] if on else None)
    if run_id is None:
        return len(want), 0, {}
    con = duckdb.connect(database, read_only=True)
    try:
        out = con.execute("SELECT number_id, result FROM operation_outcomes WHERE run_id = ?",
                          [run_id]).fetchall()
    finally:
        con.close()
    per_number = Counter(n for n, _ in out)
    bad = sum(1 for n in want if per_number.get(n, 0) != 1)
    bad += sum(c for n, c in per_number.items() if n not in want)   # rows for strangers
    wrong = 0
    for number_id, result in out:
        if result == "succeeded" and number_id in want:
            now = emu.number(number_id)
            if (now["emergency_enabled"], now["emergency_address_id"]) != want[number_id]:
                wrong += 1
    return bad, wrong, dict(Counter(r for _, r in out))


def soak(pairs: int, *, seed: int = 0, numbers: int = 1500, rows: int = 300,
         job_seconds: float = 1.0, kill_share: float = 0.5, kill_window: tuple[float, float]
         = (3.0, 12.0), follow_choices: tuple[float, ...] = (0.0, 2.0, 60.0),
         workdir: Path | None = None, echo=print) -> list[PairReport]:
    rng = random.Random(seed)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    database = str(workdir / "outcomes.duckdb")
    home = workdir / "dagster_home"
    home.mkdir(exist_ok=True)
    log = workdir / "runs.log"
    reports: list[PairReport] = []
    sheets: list[Path] = []
    with Emulator(numbers=numbers, seed=seed, api_key=KEY, job_seconds=job_seconds,
                  settle_seconds=job_seconds / 2, rate_limit=2000) as emu:
        env = {**os.environ, "TELNYX_API_KEY": KEY, "TELNYX_BASE_URL": emu.base_url,
               "EMERGENCY_PIPELINE_DUCKDB": database, "DAGSTER_HOME": str(home),
               "EMERGENCY_PIPELINE_LOCK_WAIT_SECONDS": "5"}
        echo(f"soak: {pairs} pairs, {numbers} numbers, {rows} desired rows, seed {seed}, "
             f"work dir {workdir}")
        for pair in range(1, pairs + 1):
            began = time.monotonic()
            if sheets and rng.random() < 0.3:
                source = rng.choice(sheets)          # an earlier sheet: identical batches recur
            else:
                source = workdir / f"desired_{pair:03d}.csv"
                write_desired(emu, source, rng, rows, max_disable=min(60, numbers // 25))
                sheets.append(source)
            faults = random_faults(rng)
            emu.set_faults(faults)
            jobs_before = emu.stats()["jobs_created"]
            kill = rng.random() < kill_share
            follow = rng.choice(follow_choices)
            first = _child(source, env, follow, log)
            killed_at = first_rc = None
            if kill:
                delay = rng.uniform(*kill_window)
                try:
                    first.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    os.killpg(first.pid, signal.SIGKILL)
                    killed_at = delay
                first.wait()
                first.stdout.close()
            else:
                first.communicate(timeout=600)
            if killed_at is None:
                first_rc = first.returncode
            # A resume run that gives up (its retries exhausted by a long 429/5xx spell, as an
            # operator would see) is run again, up to three times; the checks use the last.
            for resumes in range(1, 4):
                resume = _child(source, env, 120.0, log)
                out, _ = resume.communicate(timeout=900)
                run_id = _run_id(out)
                if resume.returncode == 0:
                    break
            bad, wrong, results = check_pair(emu, database, run_id, source)
            dups = duplicate_in_flight(emu.jobs())
            report = PairReport(pair, killed_at, first_rc, resume.returncode, run_id,
                                desired=sum(1 for _ in open(source)) - 1,
                                jobs_created=emu.stats()["jobs_created"] - jobs_before,
                                results=results, dup_in_flight=len(dups), bad_results=bad,
                                wrong_state=wrong, seconds=time.monotonic() - began,
                                faults=faults.to_dict(), resumes=resumes)
            reports.append(report)
            echo(report.line())
            for d in dups[:5]:
                echo(f"  DUPLICATE number {d[0]}: jobs {d[1]} and {d[2]}")
        stats = emu.stats()
    totals = Counter()
    for r in reports:
        totals.update(r.results)
    echo(f"soak done: {len(reports)} pairs ({2 * len(reports)} runs), "
         f"{sum(r.killed_at is not None for r in reports)} first runs killed, "
         f"{stats['jobs_created']} jobs, {stats['requests']} requests, "
         f"{stats['dropped']} dropped, {stats['lost_job_answers']} lost job answers, "
         f"status {dict(sorted(stats['by_status'].items()))}")
    echo(f"  results over resume runs: {dict(sorted(totals.items()))}")
    echo(f"  dup_in_flight={sum(r.dup_in_flight for r in reports)} "
         f"bad_results={sum(r.bad_results for r in reports)} "
         f"wrong_state={sum(r.wrong_state for r in reports)} "
         f"pairs_needing_a_second_resume={sum(r.resumes > 1 for r in reports)} "
         f"failed_resume_runs={sum(r.resume_rc != 0 for r in reports)}")
    return reports


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=50, help="pairs of runs (default 50: 100 runs)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--numbers", type=int, default=1500)
    p.add_argument("--rows", type=int, default=300)
    p.add_argument("--job-seconds", type=float, default=1.0)
    p.add_argument("--kill-share", type=float, default=0.5)
    p.add_argument("--workdir", type=Path)
    p.add_argument("--fast", action="store_true", help="small account, short jobs (make test)")
    args = p.parse_args(argv)
    kw = dict(numbers=args.numbers, rows=args.rows, job_seconds=args.job_seconds)
    if args.fast:
        kw = dict(numbers=600, rows=120, job_seconds=0.5)
    reports = soak(args.pairs, seed=args.seed, kill_share=args.kill_share,
                   workdir=args.workdir, **kw)
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
