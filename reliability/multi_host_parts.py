"""The multi-host soak's pieces (multi_host_soak.py): the hosts, the watch on the store's lease
rows, the emulated accounts, and a pair's report."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak_checks import LostResults

from emergency_pipeline.emulator import Emulator

HOSTS = ("host-a", "host-b")
PROMISES = ("dup_in_flight", "crossed", "lost", "bad_results", "wrong_state", "twice",
            "lease_exit0", "lease_silent", "posts_after")
READ_TIMEOUT = 2.0          # the children's


@dataclass(frozen=True)
class Host:
    """One 'host': its name (a UTS namespace), key, and folders."""

    name: str
    key: str
    root: Path

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def database(self) -> Path:      # the default relative path, from the working folder
        return self.work / "data" / "emergency.duckdb"

    def wrap(self) -> list[str]:
        return ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.name]

    def env(self, base_url: str, state_url: str, stale: float, fence: float) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("EMERGENCY_PIPELINE_", "TELNYX_", "DAGSTER_"))
                and k not in ("TMPDIR", "HOME", "PWD")}
        return {**base, "TELNYX_API_KEY": self.key, "TELNYX_BASE_URL": base_url,
                "TMPDIR": str(self.root / "tmp"), "HOME": str(self.root / "home"),
                "DAGSTER_HOME": str(self.root / "dagster_home"),
                "EMERGENCY_PIPELINE_STATE_URL": state_url,
                "EMERGENCY_PIPELINE_LEASE_STALE_SECONDS": str(stale),
                "EMERGENCY_PIPELINE_FENCE_SECONDS": str(fence),
                "EMERGENCY_PIPELINE_LOCK_WAIT_SECONDS": "5",
                "TELNYX_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT)}


@dataclass(frozen=True)
class Take:
    """A takeover, as the lease row showed it (times on the store's clock: this machine's)."""

    account: str
    token: int
    run_id: str          # the new holder
    host: str
    old_run: str
    at: float
    proven_dead: bool
    why: str


class LeaseWatch:
    """Polls the store's lease rows: every takeover, and who holds each account now."""

    def __init__(self, state_url: str, every: float = 0.1) -> None:
        import psycopg
        self._con = psycopg.connect(state_url, autocommit=True)
        self.takes: dict[tuple[str, int], Take] = {}
        self.rows: list[tuple] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._every = every
        self._thread = threading.Thread(target=self._poll, daemon=True, name="lease-watch")
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self._every):
            rows = self._con.execute("SELECT account, run_id, host, pid, token, released_at, "
                                     "took_over FROM lease").fetchall()
            with self._lock:
                self.rows = rows
                for account, run_id, host, _pid, token, _rel, took in rows:
                    if took and (account, token) not in self.takes:
                        d = json.loads(took)
                        self.takes[(account, token)] = Take(
                            account, token, run_id, host, d["run_id"], d["at"],
                            d["proven_dead"], d["why"])

    def holder_pids(self) -> set[int]:
        with self._lock:
            return {pid for _a, _r, _h, pid, _t, released, _to in self.rows if released is None}

    def took_from(self, run_id: str | None) -> Take | None:
        with self._lock:
            return next((t for t in self.takes.values() if t.old_run == run_id), None)

    def since(self, moment: float) -> list[Take]:
        with self._lock:
            return sorted((t for t in self.takes.values() if t.at >= moment),
                          key=lambda t: t.at)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._con.close()


@dataclass
class Telnyx:
    """One emulated account (its clock `offset` s from the host's) and what was checked."""

    name: str
    emu: Emulator
    offset: float
    job_seconds: float
    lost: LostResults = field(default_factory=LostResults)
    known_jobs: set[str] = field(default_factory=set)


@dataclass
class Report:
    pair: int
    kind: str
    telnyx: str
    event: str
    first_rcs: list[int | None]
    resume_rc: int
    jobs: int
    takes: list[str]
    results: dict[str, int]
    counts: dict[str, int]
    seconds: float
    details: list[str] = field(default_factory=list)
    lease_checked: int = 0          # takeovers of runs still alive, checked

    @property
    def ok(self) -> bool:
        return self.resume_rc == 0 and not any(self.counts.values())

    def line(self) -> str:
        firsts = ",".join("k" if rc is None else str(rc) for rc in self.first_rcs)
        res = " ".join(f"{k}={v}" for k, v in sorted(self.results.items()))
        return (f"pair {self.pair:3d} {self.kind:8} {self.telnyx:10} {self.event} "
                f"first_rc={firsts} resume_rc={self.resume_rc} jobs+={self.jobs} "
                f"takeovers={len(self.takes)} | {res} | "
                + " ".join(f"{p}={self.counts[p]}" for p in PROMISES)
                + f" ({self.seconds:.0f}s)")


def summarise(reports: list[Report], stats: list[dict[str, Any]], echo: Any) -> None:
    totals: Counter = Counter()
    for r in reports:
        totals.update(r.results)
    runs = sum(len(r.first_rcs) + 2 for r in reports)
    echo(f"multi-host soak done: {len(reports)} pairs, {runs} runs, kinds "
         f"{dict(Counter(r.kind for r in reports))}, "
         f"{sum(r.telnyx != 'in-step' for r in reports)} pairs on the skewed clock, "
         f"{sum(r.event.startswith('killed') for r in reports)} runs killed, "
         f"{sum(r.event.startswith('paused') and 'no takeover' not in r.event for r in reports)}"
         f" paused runs taken over, {sum(len(r.takes) for r in reports)} takeovers, "
         f"{sum(s['jobs_created'] for s in stats)} jobs, "
         f"{sum(s['requests'] for s in stats)} requests, "
         f"{sum(s['lost_job_answers'] for s in stats)} lost job answers, "
         f"{sum(r.seconds for r in reports) / 60:.0f} min")
    echo(f"  events: {dict(Counter(r.event.split(' at ')[-1].split(' for ')[0] for r in reports))}")
    echo(f"  results over resume runs: {dict(sorted(totals.items()))}")
    echo("  " + " ".join(f"{p}={sum(r.counts[p] for r in reports)}" for p in PROMISES)
         + f" failed_resume_runs={sum(r.resume_rc != 0 for r in reports)} "
         f"taken_over_alive_checked={sum(r.lease_checked for r in reports)}")
