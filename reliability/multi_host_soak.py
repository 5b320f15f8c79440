"""Multi-host soak: two hosts on this machine share one PostgreSQL safety store and Telnyx.

Each child run (`emergency-pipeline run SHEET --apply`) starts under `unshare --uts` with its
host's name (host-a, host-b), and its host's own TMPDIR, HOME, DAGSTER_HOME, working folder
and DuckDB file (the default relative data/emergency.duckdb). The hosts share only
EMERGENCY_PIPELINE_STATE_URL (a real PostgreSQL, tests/pg_server.py) and the emulated
account, which each reaches with its own API key (two keys of one account: one lease). The
takeover time is short (EMERGENCY_PIPELINE_LEASE_STALE_SECONDS 15, fence 4 s). Every third
pair talks to an account whose clock is 30 s behind the host's.

A pair is one run per host (started together, or a moment apart), then a resume run on each
host; the kinds, in turn:

  overlap   two sheets sharing half their numbers with conflicting targets
  pause     as overlap; the first run to reach a point while holding the lease is stopped
            (SIGSTOP) until the other host's run has taken the lease over, then continued
  same      one sheet on both hosts
  handover  host X's run (20 s jobs, not followed), then host Y's run of an overlapping sheet

Pairs other than pause kill one first run with SIGKILL at the next point of a cycle through
every step boundary (soak_children.py). After each pair, the soak's checks (soak_checks.py:
dup_in_flight, crossed, lost, bad_results, wrong_state), twice (a run with two outcome rows
for one number, killed and failed runs included) and, for every run whose lease was
taken over while it lived (the store's lease row, watched): lease_exit0 (it exited 0),
lease_silent (no ERROR naming the new holder), posts_after (job POSTs from its host's key
after the takeover, before it ended). All must be 0.

    .venv/bin/python reliability/multi_host_soak.py --pairs 30
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))                        # soak's helpers, run by path
sys.path.insert(0, str(HERE.parent / "tests"))       # pg_server

from soak import random_faults, write_desired  # noqa: E402
from multi_host_parts import (  # noqa: E402
    HOSTS, Host, LeaseWatch, Report, Telnyx, summarise,
)
from soak_checks import check_runs, outcome_rows, twice  # noqa: E402
from soak_children import (  # noqa: E402
    KILL_POINT_NAMES, Child, KillPoint, OneKill, kill_point,
)

from emergency_pipeline.emulator import Emulator, Faults  # noqa: E402

KINDS = ("overlap", "pause", "same", "handover")
# Points where the first run to get there holds the lease (the snapshot takes it).
PAUSE_POINTS = ("update_jobs:created", "random", "account_snapshot:success",
                "address_resolution:start", "settings_plan:start", "update_jobs:posted",
                "operation_outcomes:inside", "update_jobs:start", "update_jobs:success",
                "settings_plan:success")
# Pause only: mid-wave, 0-50 ms after a job POST's answer, other POSTs of the wave going on.
MID_WAVE = KillPoint("update_jobs:created", ": created job ", (0.0, 0.05))


def point_named(name: str) -> KillPoint:
    return MID_WAVE if name == MID_WAVE.name else kill_point(name)


class MultiSoak:
    """The two hosts, the store, the accounts, and the pairs."""

    def __init__(self, workdir: Path, state_url: str, accounts: list[Telnyx],
                 rng: random.Random, rows: int, numbers: int, stale: float, fence: float,
                 handover_job_seconds: float, echo: Any) -> None:
        self.workdir, self.state_url, self.accounts = workdir, state_url, accounts
        self.rng, self.rows, self.stale, self.fence, self.echo = rng, rows, stale, fence, echo
        self.max_disable = min(60, numbers // 25)
        self.handover_job_seconds = handover_job_seconds
        self.hosts = [Host(name, f"KEY_soak_{name.replace('-', '_')}_not_secret",
                           workdir / name) for name in HOSTS]
        for host in self.hosts:
            for sub in ("tmp", "home", "dagster_home", "work"):
                (host.root / sub).mkdir(parents=True, exist_ok=True)
        self.log = workdir / "runs.log"
        self.watch = LeaseWatch(state_url)

    def env(self, host: Host, telnyx: Telnyx) -> dict[str, str]:
        return host.env(telnyx.emu.base_url, self.state_url, self.stale, self.fence)

    def sheet(self, telnyx: Telnyx, pair: int, host: Host, tag: str,
              conflict_with: Path | None = None, copy_of: Path | None = None) -> Path:
        """A new sheet in the host's working folder (or a copy of another host's)."""
        path = host.work / f"desired_{pair:03d}{tag}.csv"
        if copy_of is not None:
            shutil.copyfile(copy_of, path)
        else:
            write_desired(telnyx.emu, path, self.rng, self.rows, self.max_disable,
                          conflict_with)
        return path

    def child(self, label: str, host: Host, telnyx: Telnyx, source: Path, follow: float,
              **kw: Any) -> Child:
        child = Child(label, source, self.env(host, telnyx), follow, self.log,
                      wrap=host.wrap(), cwd=host.work, **kw)
        child.host = host.name                        # type: ignore[attr-defined]
        child.key_number = self.hosts.index(host)     # the emulator's key order
        return child

    def resume(self, label: str, host: Host, telnyx: Telnyx, source: Path) -> Child:
        # A resume run that gives up (retries exhausted by a long 429/5xx spell) runs again.
        for tries in range(1, 4):
            child = self.child(f"{label}{tries}", host, telnyx, source, 120.0)
            if child.wait() == 0:
                break
        return child

    def pauser(self, resume_after: float, note: dict[str, Any]):
        """The act at a pause point: SIGSTOP the run's group until another run took its
        lease (the store shows it), then `resume_after` s more, then SIGCONT."""
        limit = self.stale + 60.0

        def act(child: Child) -> None:
            if not child.signal(signal.SIGSTOP):
                return
            stopped = time.time()
            note.update(child=child, at=stopped)

            def later() -> None:
                while time.time() - stopped < limit and child.proc.poll() is None:
                    take = self.watch.took_from(child.run_id)
                    if take is not None:
                        note["take"] = take
                        time.sleep(resume_after)
                        break
                    time.sleep(0.2)
                child.signal(signal.SIGCONT)
                note["resumed"] = time.time()

            threading.Thread(target=later, daemon=True).start()
        return act

    def pause_at_random(self, children: list[Child], delay: float, act: Any) -> None:
        """From `delay` s on, pause the first child seen holding the lease (none may yet:
        the runs take several seconds to start)."""
        def fire() -> None:
            while any(c.proc.poll() is None for c in children):
                held = self.watch.holder_pids()
                for c in children:
                    if c.proc.pid in held and c.proc.poll() is None:
                        act(c)
                        return
                time.sleep(0.2)
        threading.Timer(delay, fire).start()

    def run_pair(self, pair: int, kind: str, point_name: str | None, telnyx: Telnyx,
                 slow: bool, calm: bool = False) -> Report:
        """`point_name`: where to pause (pause pairs) or kill (the others), or None."""
        rng, emu = self.rng, telnyx.emu
        began, began_at = time.monotonic(), time.time()
        emu.set_faults(Faults() if calm else random_faults(rng, slow))
        jobs_before = emu.stats()["jobs_created"]
        first, second = rng.sample(self.hosts, 2)     # host-b goes first in some pairs
        a = self.sheet(telnyx, pair, first, "a")
        b = (self.sheet(telnyx, pair, second, "b", copy_of=a) if kind == "same"
             else self.sheet(telnyx, pair, second, "b", conflict_with=a))
        note: dict[str, Any] = {}
        event = "no kill"
        kw: list[dict[str, Any]] = [{}, {}]
        kill = point_name if kind != "pause" else None
        if kind == "pause":
            point = point_named(point_name)
            act = self.pauser(rng.uniform(0.2, 3.0), note)
            if point.marker:
                shared = OneKill()
                kw = [dict(kill=point, one_kill=shared, act=act) for _ in range(2)]
        elif kill is not None:
            point = kill_point(kill)
            victim = rng.randrange(2)
            shared = OneKill() if point.marker else None
            kw = [dict(kill=point, one_kill=shared) if (shared or i == victim) else {}
                  for i in range(2)]
            if not point.marker:
                kw[victim]["rng"] = rng
        follows = [rng.choice((0.0, 2.0, 60.0)) for _ in range(2)]
        if kind == "handover":
            follows[0] = 0.0
            emu.engine.job_seconds = self.handover_job_seconds
        children = [self.child("A", first, telnyx, a, follows[0], **kw[0])]
        if kind != "handover":
            time.sleep(rng.choice((0.0, 0.0, 0.3, 1.5)))
            children.append(self.child("B", second, telnyx, b, follows[1], **kw[1]))
        if kind == "pause" and not point.marker:
            self.pause_at_random(children, rng.uniform(3.0, 12.0), act)
        rcs = [c.wait() for c in children]
        emu.engine.job_seconds = telnyx.job_seconds
        if kind == "handover":
            children.append(self.child("B", second, telnyx, b, follows[1], **kw[1]))
            rcs.append(children[-1].wait())
        for c in children:
            if c.killed_at:
                event = f"killed {c.label} ({c.host}) at {c.killed_at}"
        if kind == "pause":
            p = note.get("child")
            take = note.get("take")
            event = (f"paused {p.label} ({p.host}) at {point.name} for "
                     f"{note.get('resumed', time.time()) - note['at']:.0f}s, "
                     + (f"taken over {take.at - note['at']:.0f}s in" if take else "no takeover")
                     if p else f"pause at {point.name} not reached")
        elif kill is not None and event == "no kill":
            event = f"kill at {kill} not reached"
        resumes = [self.resume("RA", first, telnyx, a), self.resume("RB", second, telnyx, b)]
        runs = children + resumes
        found = check_runs(emu, [h.database for h in self.hosts], runs, resumes,
                           telnyx.lost, telnyx.known_jobs)
        counts = {"dup_in_flight": len(found.dup_in_flight), "crossed": len(found.crossed),
                  "lost": len(found.lost), "bad_results": found.bad_results,
                  "wrong_state": len(found.wrong_state)}
        # Every run's rows, killed and failed runs' too: once per number.
        doubled = twice(outcome_rows(emu, [h.database for h in self.hosts]),
                        {c.run_id for c in runs if c.run_id})
        counts["twice"] = len(doubled)
        lease, details, takes, checked = self.lease_checks(telnyx, runs, began_at)
        counts.update(lease)
        for c in runs:
            if c.proc.returncode not in (0, None) and not c.killed_at:
                details.append(f"run {c.label} on {c.host} ({c.run_id}) exit "
                               f"{c.proc.returncode}: "
                               + "; ".join(c.failure_lines[:2]))
        return Report(pair, kind, telnyx.name, event,
                      [None if c.killed_at else rc for c, rc in zip(children, rcs)],
                      max(c.proc.returncode for c in resumes),
                      emu.stats()["jobs_created"] - jobs_before, takes, found.results,
                      counts, time.monotonic() - began,
                      found.details() + [f"TWICE {x}" for x in doubled] + details,
                      lease_checked=checked)

    def lease_checks(self, telnyx: Telnyx, runs: list[Child], since: float
                     ) -> tuple[dict[str, int], list[str], list[str], int]:
        """For each run whose lease was taken over while it lived (not killed): it exited
        non-zero, logged an ERROR naming the new holder, and its host's key sent no job POST
        between the takeover and its end."""
        posts = telnyx.emu.job_posts()
        counts = {"lease_exit0": 0, "lease_silent": 0, "posts_after": 0}
        details, takes, checked = [], [], 0
        by_run = {c.run_id: c for c in runs if c.run_id}
        for take in self.watch.since(since - 1.0):
            old = by_run.get(take.old_run)
            takes.append(f"{take.run_id[:8]} on {take.host} from "
                         f"{old.label if old else take.old_run[:8]} ({take.why})")
            if old is None or old.killed_at:
                continue
            checked += 1
            if old.proc.returncode == 0:
                counts["lease_exit0"] += 1
                details.append(f"LEASE run {old.label} ({old.run_id}) exited 0 after run "
                               f"{take.run_id} took its lease over ({take.why})")
            if not any(take.run_id in line for line in old.lease_lost_lines):
                counts["lease_silent"] += 1
                details.append(f"LEASE run {old.label} ({old.run_id}) logged no ERROR naming "
                               f"{take.run_id}: {old.lease_lost_lines[:1]}")
            after = [p for p in posts if p.key == old.key_number
                     and take.at < p.received_at <= (old.ended_at or time.time())]
            counts["posts_after"] += len(after)
            if after:
                details.append(f"LEASE run {old.label} ({old.run_id}): {len(after)} job "
                               f"POSTs after the takeover, the first "
                               f"{after[0].received_at - take.at:.3f} s after it")
        return counts, details, takes, checked


def soak(pairs: int, *, seed: int = 2026, numbers: int = 600, rows: int = 120,
         job_seconds: float = 0.5, kinds: tuple[str, ...] = KINDS, kill_share: float = 1.0,
         slow_share: float = 0.2, skew_every: int = 3, skew: float = -30.0,
         stale: float = 15.0, fence: float = 4.0, handover_job_seconds: float = 20.0,
         kill_points: tuple[str, ...] = KILL_POINT_NAMES,
         pause_points: tuple[str, ...] = PAUSE_POINTS, calm: bool = False,
         workdir: Path | None = None, state_url: str | None = None,
         first_pair: int = 1, echo: Any = print) -> list[Report]:
    """Pair i is kinds[i % len]; every `skew_every`-th pair talks to the account whose clock
    is `skew` s off; pause pairs pause at the next pause point, the others kill (a
    `kill_share` of them) at the next kill point. `calm`: no faults from the emulator.
    `first_pair`: number the pairs from there, the kinds and points going on as if the
    earlier pairs had run (several soak processes at once share out one long run)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        raise SystemExit("the multi-host soak needs root and unshare(1) (util-linux): "
                         "it gives each host its own host name with `unshare --uts`")
    rng = random.Random(seed)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="multi-host-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    next_kill, next_pause = itertools.cycle(kill_points), itertools.cycle(pause_points)
    reports: list[Report] = []
    with ExitStack() as stack:
        if state_url is None:
            from pg_server import PgServer
            server = PgServer().start()
            stack.callback(server.stop)
            state_url = server.new_database()
        from emergency_pipeline.safety_store import open_safety_store
        open_safety_store(state_url).close()          # the tables, before the watch reads
        keys = [f"KEY_soak_{name.replace('-', '_')}_not_secret" for name in HOSTS]
        accounts = []
        for i, (name, offset) in enumerate((("in-step", 0.0), (f"skew{skew:+.0f}s", skew))):
            emu = stack.enter_context(Emulator(
                numbers=numbers, seed=seed + i, api_key=keys[0], extra_api_keys=keys[1:],
                job_seconds=job_seconds, settle_seconds=job_seconds / 2, rate_limit=2000,
                clock_offset_seconds=offset))
            accounts.append(Telnyx(name, emu, offset, job_seconds))
        state = MultiSoak(workdir, state_url, accounts, rng, rows, numbers, stale, fence,
                          handover_job_seconds, echo)
        stack.callback(state.watch.close)
        echo(f"multi-host soak: {pairs} pairs, hosts {', '.join(HOSTS)}, {numbers} numbers, "
             f"{rows} rows, takeover {stale:g} s, fence {fence:g} s, seed {seed}, "
             f"work dir {workdir}")
        for pair, kind in zip(range(1, first_pair + pairs), itertools.cycle(kinds)):
            if kind == "pause":
                point = next(next_pause)
            else:
                point = next(next_kill) if rng.random() < kill_share else None
            if pair < first_pair:
                continue
            telnyx = accounts[1 if skew_every and pair % skew_every == 0 else 0]
            report = state.run_pair(pair, kind, point, telnyx, rng.random() < slow_share,
                                    calm)
            reports.append(report)
            echo(report.line())
            for line in report.takes:
                echo(f"  takeover: {line}")
            for d in report.details[:10]:
                echo(f"  {d}")
        stats = [t.emu.stats() for t in accounts]
    summarise(reports, stats, echo)
    return reports


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=30)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--numbers", type=int, default=600)
    p.add_argument("--rows", type=int, default=120)
    p.add_argument("--kinds", default=",".join(KINDS), help="pair kinds, cycled through")
    p.add_argument("--pause-points", default=",".join(PAUSE_POINTS),
                   help="where pause pairs stop the holder, cycled through")
    p.add_argument("--first-pair", type=int, default=1, help="number pairs from here (the "
                   "kinds and the pause and kill points go on from there)")
    p.add_argument("--workdir", type=Path)
    p.add_argument("--state-url", help="a PostgreSQL database to use (default: a new "
                   "server from Debian's binaries in a temporary folder)")
    args = p.parse_args(argv)
    reports = soak(args.pairs, seed=args.seed, numbers=args.numbers, rows=args.rows,
                   kinds=tuple(args.kinds.split(",")), workdir=args.workdir,
                   state_url=args.state_url, first_pair=args.first_pair,
                   pause_points=tuple(args.pause_points.split(",")))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
