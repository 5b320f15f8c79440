"""Soak: pairs of runs of the Dagster job against a faulty emulator, some killed with SIGKILL.

Each pair gets a new desired state (random targets, sometimes an earlier pair's sheet again,
so identical batches recur), random faults (5xx, 429 bursts, dropped connections, lost and
slow job-POST answers, latency, expired and failed jobs, numbers the provider refuses), and
is one of four kinds, in turn:

  single    one `run --apply`, then a resume run of the same sheet
  same      two `run --apply` started at the same moment on the same sheet, same DuckDB
            file and DAGSTER_HOME; then a resume run
  overlap   two `run --apply` started at the same moment on two sheets sharing numbers with
            conflicting targets, with separate DuckDB files and DAGSTER_HOMEs (two
            operators on one machine: one lease dir); then a resume run of each
  handover  one `run --apply` whose jobs take 20 s, then a run of an overlapping sheet on
            the same DuckDB file (it resumes and follows the first run's jobs still in
            flight), then a resume run of the first sheet

In a share of the pairs one first run is killed with SIGKILL at the next point of a cycle
through every stage boundary (STEP_START / STEP_SUCCESS of each step, read from the child's
`--log-level debug` stderr), right after the update step's POSTs, inside the outcomes step,
and at a random moment (soak_children.py): the first run of the pair to reach the point is
the one killed (at a random moment, one chosen at random). Children run with a 2 s read
timeout, and some pairs have job POSTs the server answers 3-5 s late (after creating the
job). The emulator lives in this process, so its state persists across pairs. After each pair it checks
(soak_checks.py) and prints:

  dup_in_flight   two jobs holding the same number whose in-flight periods overlap   (0)
  crossed         succeeded rows whose target is not the run's sheet's, or not what
                  their job applied (a run that applied another run's targets)       (0)
  lost            numbers an ended job reports with no outcome row of that job and
                  result, in any of the pair's DuckDB files                          (0)
  bad_results     desired numbers of a run that ended by itself (exit 0) without
                  exactly one outcome row of that run                                (0)
  wrong_state     numbers whose latest successful job's row says succeeded but whose
                  settings differ from the run's sheet                               (0)

    .venv/bin/python reliability/soak.py --pairs 50          # the long run
    .venv/bin/python reliability/soak.py --pairs 4 --fast    # a quick look
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The helpers sit beside this script, which is run by path (and loaded by path in the tests).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak_checks import LostResults, Sheets, check_runs, outcome_rows  # noqa: E402
from soak_children import KILL_POINT_NAMES, Child, OneKill, kill_point  # noqa: E402

from emergency_pipeline.emulator import Emulator, Faults  # noqa: E402

KEY = "KEY_soak_not_secret"
KINDS = ("single", "same", "overlap", "handover")
READ_TIMEOUT = 2.0            # the children's; slow job POSTs answer after 3-5 s
PROMISES = ("dup_in_flight", "crossed", "lost", "bad_results", "wrong_state")


@dataclass
class PairReport:
    pair: int
    kind: str
    killed: str | None                # "<label> at <kill point>"
    first_rcs: list[int | None]       # None for a killed run
    resume_rc: int                    # the worst (highest) of the pair's resume runs
    desired: int
    jobs_created: int
    slow_posts: bool
    results: dict[str, int] = field(default_factory=dict)
    dup_in_flight: int = 0
    crossed: int = 0
    lost: int = 0
    bad_results: int = 0
    wrong_state: int = 0
    seconds: float = 0.0
    faults: dict[str, Any] = field(default_factory=dict)
    resumes: int = 1
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.resume_rc == 0 and not any(getattr(self, p) for p in PROMISES)

    def line(self) -> str:
        kill = f"killed {self.killed}" if self.killed else "no kill"
        res = " ".join(f"{k}={v}" for k, v in sorted(self.results.items()))
        firsts = ",".join("k" if rc is None else str(rc) for rc in self.first_rcs)
        return (f"pair {self.pair:3d} {self.kind:8} {kill} first_rc={firsts} "
                f"resume_rc={self.resume_rc}"
                f"{'' if self.resumes == 1 else f' (after {self.resumes} resume runs)'}"
                f"{' slow-posts' if self.slow_posts else ''} desired={self.desired} "
                f"jobs+={self.jobs_created} | {res} | "
                + " ".join(f"{p}={getattr(self, p)}" for p in PROMISES)
                + f" ({self.seconds:.0f}s)")


def random_faults(rng: random.Random, slow: bool, overrides: dict[str, Any] | None = None
                  ) -> Faults:
    faults = Faults(error_rate=rng.choice([0, 0.02, 0.05, 0.1]),
                  throttle_rate=rng.choice([0, 0.01, 0.03]), throttle_burst=rng.randint(1, 6),
                  latency=rng.choice([0, 0.005, 0.02]),
                  drop_rate=rng.choice([0, 0.01, 0.03]),
                  lose_job_post_rate=rng.choice([0, 0.2, 0.5]),
                  slow_job_post_rate=rng.choice([0.2, 0.5]) if slow else 0.0,
                  slow_job_post_seconds=round(rng.uniform(3.0, 5.0), 1) if slow else 0.0,
                  expire_rate=rng.choice([0, 0.1, 0.2]), fail_job_rate=rng.choice([0, 0.05]),
                  number_fail_rate=rng.choice([0, 0.03]), seed=rng.randrange(1 << 30))
    return dataclasses.replace(faults, **(overrides or {}))


def _row(rng: random.Random, n: dict, addresses: list[str], i: int, disabled: list[int],
         max_disable: int, avoid: tuple[bool, str | None] | None = None) -> list[str]:
    """A random target for number n (one `avoid`ed when given: a conflicting target)."""
    ident = n["id"] if rng.random() < 0.1 else n["phone_number"]
    roll = rng.random()
    can_disable = n["emergency_enabled"] and disabled[0] < max_disable and avoid != (False, None)
    if roll < 0.1 and can_disable:
        disabled[0] += 1
        return [ident, "no", "", f"SOAK-{i}"]
    if avoid is None and roll >= 0.7 and n["emergency_enabled"]:
        return [ident, "yes", n["emergency_address_id"], f"SOAK-{i}"]   # as it is (noop)
    choices = [a for a in addresses if avoid is None or (True, a) != avoid]
    return [ident, "yes", rng.choice(choices), f"SOAK-{i}"]


def write_desired(emu: Emulator, path: Path, rng: random.Random, rows: int, max_disable: int,
                  conflict_with: Path | None = None) -> None:
    """Random targets for `rows` numbers of the account as it is now: a share enabled with a
    random address, a few disabled (under the guard), the rest kept as they are. With
    `conflict_with`, half the rows are that sheet's numbers with other targets."""
    numbers = {n["id"]: n for n in emu.numbers()}
    addresses = [a["id"] for a in emu.addresses()]
    disabled = [0]
    picked: list[tuple[dict, tuple[bool, str | None] | None]] = []
    if conflict_with is not None:
        theirs = Sheets(emu).targets(str(conflict_with))
        shared = rng.sample(sorted(theirs), min(len(theirs), rows // 2))
        picked = [(numbers[n], theirs[n]) for n in shared]
    rest = [n for n in numbers if n not in {p["id"] for p, _ in picked}]
    picked += [(numbers[n], None) for n in rng.sample(rest, min(rows - len(picked), len(rest)))]
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["phone_number", "emergency_enabled", "emergency_address_id", "ticket"])
        for i, (n, avoid) in enumerate(picked):
            out.writerow(_row(rng, n, addresses, i, disabled, max_disable, avoid))


class Soak:
    """The soak's places (work dir, two operators' files, one lease dir) and its pairs."""

    def __init__(self, emu: Emulator, workdir: Path, rng: random.Random, rows: int,
                 numbers: int, echo: Any, handover_job_seconds: float) -> None:
        self.emu, self.workdir, self.rng, self.rows, self.echo = emu, workdir, rng, rows, echo
        self.job_seconds = emu.engine.job_seconds
        self.handover_job_seconds = handover_job_seconds
        self.max_disable = min(60, numbers // 25)
        self.log = workdir / "runs.log"
        self.sheets: list[Path] = []
        self.lost = LostResults()
        self.known_jobs: set[str] = set()
        self.databases = [workdir / "outcomes.duckdb", workdir / "operator_b.duckdb"]
        lease_dir = workdir / "lease"        # one machine: both operators share it
        lease_dir.mkdir(exist_ok=True)
        self.envs = []
        for db in self.databases:
            home = workdir / f"dagster_home_{db.stem}"
            home.mkdir(exist_ok=True)
            self.envs.append({
                **os.environ, "TELNYX_API_KEY": KEY, "TELNYX_BASE_URL": emu.base_url,
                "EMERGENCY_PIPELINE_DUCKDB": str(db), "DAGSTER_HOME": str(home),
                "EMERGENCY_PIPELINE_LEASE_DIR": str(lease_dir),
                "EMERGENCY_PIPELINE_LOCK_WAIT_SECONDS": "5",
                "TELNYX_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT)})

    def sheet(self, pair: int, tag: str = "", conflict_with: Path | None = None,
              reuse: bool = True) -> Path:
        if reuse and conflict_with is None and self.sheets and self.rng.random() < 0.3:
            return self.rng.choice(self.sheets)   # an earlier sheet: identical batches recur
        path = self.workdir / f"desired_{pair:03d}{tag}.csv"
        write_desired(self.emu, path, self.rng, self.rows, self.max_disable, conflict_with)
        self.sheets.append(path)
        return path

    def resume(self, label: str, source: Path, env: dict[str, str]) -> tuple[Child, int]:
        # A resume run that gives up (its retries exhausted by a long 429/5xx spell, as an
        # operator would see) is run again, up to three times; the checks use them all.
        for tries in range(1, 4):
            child = Child(f"{label}{tries}", source, env, 120.0, self.log)
            if child.wait() == 0:
                break
        return child, tries


def run_pair(soak: Soak, pair: int, kind: str, kill: str | None, slow: bool,
             follow_choices: Sequence[float], overrides: dict[str, Any] | None) -> PairReport:
    emu, rng = soak.emu, soak.rng
    began = time.monotonic()
    faults = random_faults(rng, slow, overrides)
    emu.set_faults(faults)
    jobs_before = emu.stats()["jobs_created"]
    a = soak.sheet(pair)
    # (label, sheet, env) of the first runs, started at the same moment
    firsts = [("A", a, soak.envs[0])]
    if kind == "same":
        firsts.append(("B", a, soak.envs[0]))
    elif kind == "overlap":
        firsts.append(("B", soak.sheet(pair, "b", conflict_with=a), soak.envs[1]))
    victim = rng.randrange(len(firsts)) if kill else None
    if kind == "handover":
        # The first run's jobs outlive the lease's dead-pid grace, so that the other sheet's
        # run finds them in flight, resumes and follows them (its numbers there are skipped).
        emu.engine.job_seconds = soak.handover_job_seconds
    point = kill_point(kill) if kill else None
    # A marker kill point goes to every first run, and the first to get there is killed; a
    # timed one ("random") to the victim alone. (Only the victim's delay is drawn from rng.)
    one_kill = OneKill() if point is not None and point.marker else None
    children = [Child(label, src, env, rng.choice(follow_choices), soak.log,
                      point if (one_kill or i == victim) else None,
                      rng if i == victim else None, one_kill)
                for i, (label, src, env) in enumerate(firsts)]
    first_rcs = [c.wait() for c in children]
    emu.engine.job_seconds = soak.job_seconds
    killed = next((f"{c.label} at {c.killed_at}" for c in children if c.killed_at), None)
    if kill and killed is None:
        killed = f"none ({kill} not reached)"
    first_rcs = [None if c.killed_at else rc for c, rc in zip(children, first_rcs)]
    later: list[Child] = []
    if kind == "handover":   # another sheet on the same file, before the first one resumes
        child = Child("H", soak.sheet(pair, "h", conflict_with=a), soak.envs[0], 120.0,
                      soak.log)
        child.wait()
        later.append(child)
    resumes, worst, tries_max = [], 0, 1
    for label, src, env in firsts if kind != "same" else firsts[:1]:
        child, tries = soak.resume(f"R{label}", src, env)
        resumes.append(child)
        worst, tries_max = max(worst, child.proc.returncode), max(tries_max, tries)
    return check_pair(soak, pair, kind, children + later + resumes, resumes, killed,
                      first_rcs, worst, tries_max, jobs_before, faults, slow, began)


def check_pair(soak: Soak, pair: int, kind: str, runs: list[Child], resumes: list[Child],
               killed: str | None, first_rcs: list[int | None], resume_rc: int, tries: int,
               jobs_before: int, faults: Faults, slow: bool, began: float) -> PairReport:
    emu = soak.emu
    for c in runs:
        if c.proc.returncode not in (0, None) and not c.killed_at:
            soak.echo(f"  run {c.label} ({c.run_id}) exit {c.proc.returncode}: "
                      + "; ".join(c.failure_lines[:3]))
    found = check_runs(emu, soak.databases, runs, resumes, soak.lost, soak.known_jobs)
    sheets = Sheets(emu)
    return PairReport(pair, kind, killed, first_rcs, resume_rc,
                      desired=sum(len(sheets.targets(str(c.source))) for c in resumes),
                      jobs_created=emu.stats()["jobs_created"] - jobs_before, slow_posts=slow,
                      results=found.results, dup_in_flight=len(found.dup_in_flight),
                      crossed=len(found.crossed), lost=len(found.lost),
                      bad_results=found.bad_results, wrong_state=len(found.wrong_state),
                      seconds=time.monotonic() - began, faults=faults.to_dict(),
                      resumes=tries, details=found.details())


def soak(pairs: int, *, seed: int = 0, numbers: int = 1500, rows: int = 300,
         job_seconds: float = 1.0, kill_share: float = 0.6, slow_share: float = 0.3,
         kinds: Sequence[str] = KINDS, kill_points: Sequence[str] = KILL_POINT_NAMES,
         follow_choices: Sequence[float] = (0.0, 2.0, 60.0), workdir: Path | None = None,
         fault_overrides: dict[str, Any] | None = None, handover_job_seconds: float = 20.0,
         echo=print) -> list[PairReport]:
    """`kinds` and `kill_points` are cycled through: pair i is kinds[i % len], and each pair
    that kills (a `kill_share` of them) takes the next kill point. `fault_overrides` fixes
    some of the random faults (e.g. drop_rate=0: a dropped job POST costs a 60 s look-up)."""
    rng = random.Random(seed)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    reports: list[PairReport] = []
    next_kill = itertools.cycle(kill_points)
    with Emulator(numbers=numbers, seed=seed, api_key=KEY, job_seconds=job_seconds,
                  settle_seconds=job_seconds / 2, rate_limit=2000) as emu:
        state = Soak(emu, workdir, rng, rows, numbers, echo, handover_job_seconds)
        echo(f"soak: {pairs} pairs, {numbers} numbers, {rows} desired rows, seed {seed}, "
             f"work dir {workdir}")
        for pair, kind in zip(range(1, pairs + 1), itertools.cycle(kinds)):
            kill = next(next_kill) if rng.random() < kill_share else None
            report = run_pair(state, pair, kind, kill, rng.random() < slow_share,
                              follow_choices, fault_overrides)
            reports.append(report)
            echo(report.line())
            for d in report.details[:10]:
                echo(f"  {d}")
        # Jobs still in flight now are not counted (no run could have recorded their end).
        lost, waiting = state.lost.check(emu.jobs(), outcome_rows(emu, state.databases))
        stats = emu.stats()
    summarise(reports, stats, lost, waiting, echo)
    return reports


def summarise(reports: list[PairReport], stats: dict[str, Any], lost_at_end: list[str],
              waiting: int, echo: Any) -> None:
    totals = Counter()
    for r in reports:
        totals.update(r.results)
    runs = sum(len(r.first_rcs) + r.resumes + (r.kind in ("overlap", "handover"))
               for r in reports)
    echo(f"soak done: {len(reports)} pairs ({runs} runs; kinds "
         f"{dict(Counter(r.kind for r in reports))}), "
         f"{sum(bool(r.killed) and not r.killed.startswith('none') for r in reports)} runs "
         f"killed, {sum(r.slow_posts for r in reports)} pairs with slow job POSTs, "
         f"{stats['jobs_created']} jobs, {stats['requests']} requests, "
         f"{stats['dropped']} dropped, {stats['lost_job_answers']} lost job answers, "
         f"status {dict(sorted(stats['by_status'].items()))}")
    echo(f"  kill points reached: {dict(Counter(r.killed.split(' at ')[-1] for r in reports if r.killed))}")
    echo(f"  results over resume runs: {dict(sorted(totals.items()))}")
    echo("  " + " ".join(f"{p}={sum(getattr(r, p) for r in reports)}" for p in PROMISES)
         + f" lost_after_the_last_pair={len(lost_at_end)} jobs_never_settled={waiting} "
         f"pairs_needing_a_second_resume={sum(r.resumes > 1 for r in reports)} "
         f"failed_resume_runs={sum(r.resume_rc != 0 for r in reports)} "
         f"failed_first_runs={sum(rc not in (0, None) for r in reports for rc in r.first_rcs)}")
    for line in lost_at_end[:10]:
        echo(f"  LOST (after the last pair) {line}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=50, help="pairs of runs (default 50)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--numbers", type=int, default=1500)
    p.add_argument("--rows", type=int, default=300)
    p.add_argument("--job-seconds", type=float, default=1.0)
    p.add_argument("--kill-share", type=float, default=0.6)
    p.add_argument("--slow-share", type=float, default=0.3,
                   help="share of pairs whose job POSTs may answer after the read timeout")
    p.add_argument("--kinds", default=",".join(KINDS), help="pair kinds, cycled through")
    p.add_argument("--workdir", type=Path)
    p.add_argument("--fast", action="store_true", help="small account, short jobs")
    args = p.parse_args(argv)
    kw = dict(numbers=args.numbers, rows=args.rows, job_seconds=args.job_seconds)
    if args.fast:
        kw = dict(numbers=600, rows=120, job_seconds=0.5)
    reports = soak(args.pairs, seed=args.seed, kill_share=args.kill_share,
                   slow_share=args.slow_share, kinds=args.kinds.split(","),
                   workdir=args.workdir, **kw)
    # Non-zero when any pair broke a promise (or its resume run could not finish).
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
