"""End to end: `emergency-pipeline run --apply` in a child process against the emulator.

For each account size: a desired state covering every number, 10% of them to change
(address changes and enables on numbers that allow them, the rest as they are); the
emulator (in this process) with latency, a raised rate limit and jobs that take
--job-seconds. Prints wall time per Dagster step (from the run's step events), the child's
peak RSS, and requests by route against the minimum (listing pages + ceil(changes/1000)
job POSTs; polls counted apart).

With --compare N: the same emulator settings, N disabled numbers to enable, the pipeline
against one POST /phone_numbers/{id}/actions/enable_emergency per number, sequentially.

    .venv/bin/python benchmarks/end_to_end.py --sizes 10000 100000 1000000 --compare 10000

With --stores sqlite postgresql (and --repeat N): each size is applied with the safety store
on SQLite (under the run's DAGSTER_HOME) and on a real PostgreSQL (tests/pg_server.py),
alternately, N times each, on a fresh emulator each time: the fence's and the ledger's cost.

    .venv/bin/python benchmarks/end_to_end.py --sizes 100000 --compare 0 \
        --stores sqlite postgresql --repeat 3
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from emergency_pipeline import telnyx_contract as contract
from emergency_pipeline.emulator import Emulator, Faults

KEY = "KEY_benchmark_not_secret"
MEASURE_CHILD = Path(__file__).with_name("measure_child.py")
STEPS = ["desired_emergency_settings", "emergency_account_snapshot", "emergency_settings_plan",
         "emergency_update_jobs", "emergency_operation_outcomes"]


def _changeable(n: dict) -> bool:
    return (n["status"] in contract.NUMBER_STATUSES_ALLOWING_EMERGENCY
            and n["emergency_status"] not in contract.EMERGENCY_STATUSES_IN_TRANSITION)


def write_desired(emu: Emulator, path: Path, share: float, seed: int) -> dict[str, int]:
    """Every number as it is, except `share` of all numbers changed. Returns the changes
    per target address."""
    rng = random.Random(seed)
    addresses = [a["id"] for a in emu.addresses()]
    total = len(emu.engine.account)
    want = int(total * share)
    changeable = [n["id"] for n in emu.numbers() if _changeable(n)]
    chosen = set(rng.sample(changeable, min(want, len(changeable))))
    per_target: dict[str, int] = {}
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone_number", "emergency_enabled", "emergency_address_id"])
        for n in emu.numbers():
            on, addr = bool(n["emergency_enabled"]), n["emergency_address_id"] or ""
            if n["id"] in chosen:
                others = [a for a in addresses if a != addr]
                on, addr = True, rng.choice(others)
                per_target[addr] = per_target.get(addr, 0) + 1
            w.writerow([n["phone_number"], "yes" if on else "no", addr if on else ""])
    return per_target


def run_child(source: Path, emu: Emulator, workdir: Path, follow: float,
              state_url: str | None = None) -> dict:
    home = workdir / "dagster_home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "TELNYX_API_KEY": KEY, "TELNYX_BASE_URL": emu.base_url,
           "EMERGENCY_PIPELINE_DUCKDB": str(workdir / "outcomes.duckdb"),
           "DAGSTER_HOME": str(home)}
    env.pop("EMERGENCY_PIPELINE_STATE_URL", None)
    env.pop("EMERGENCY_PIPELINE_LEASE_DIR", None)
    if state_url:
        env["EMERGENCY_PIPELINE_STATE_URL"] = state_url
    cmd = [sys.executable, "-m", "emergency_pipeline.cli", "run", str(source), "--apply",
           "--follow-timeout", str(follow), "--allow-mass-disable", "--quiet",
           "--log-level", "warning"]
    res = spawn(cmd, env, workdir / "run.log")
    text = res.pop("stdout")
    run_id = text.split()[1].rstrip(":") if text.startswith("run ") else None
    return {**res, "run_id": run_id, "steps": step_times(home, run_id) if run_id else {}}


def spawn(cmd: list[str], env: dict, log_path: Path) -> dict:
    """Run cmd as a child process (through measure_child.py, whose docstring says why): its
    wall time from exec to exit, its own peak RSS (ru_maxrss), whether it exited 0, and its
    stdout (stderr goes to log_path)."""
    figures = log_path.with_suffix(".measured.json")
    launcher = [sys.executable, "-S", "-E", str(MEASURE_CHILD), str(figures)]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(launcher + cmd, env=env, stdout=subprocess.PIPE, stderr=log)
        out = proc.stdout.read()
        proc.wait()
    measured = json.loads(figures.read_text())
    return {"wall": measured["wall"], "peak_rss_mb": measured["peak_rss_mb"],
            "ok": measured["exit"] == 0, "stdout": out.decode()}


def step_times(home: Path, run_id: str) -> dict[str, float]:
    from dagster import DagsterEventType, DagsterInstance

    os.environ["DAGSTER_HOME"] = str(home)
    with DagsterInstance.get() as instance:
        start, end = {}, {}
        for e in instance.all_logs(run_id):
            if e.dagster_event is None or not e.step_key:
                continue
            t = e.dagster_event.event_type
            if t == DagsterEventType.STEP_START:
                start[e.step_key] = e.timestamp
            elif t in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                end[e.step_key] = e.timestamp
    # Step keys carry the account (telnyx__emergency_update_jobs): the step's own name counts.
    times = {k.split("__")[-1]: end[k] - start[k] for k in start if k in end}
    times["checks"] = sum(v for k, v in times.items() if k not in STEPS)
    return times


def minimum_requests(numbers: int, per_target: dict[str, int], addresses: int
                     ) -> tuple[int, int]:
    """(listing pages + ceil(changes / 1000), the same with one job per target at least:
    a job has one target, so changes to k addresses need k jobs at least)."""
    per = contract.MAX_PAGE_SIZE
    pages = math.ceil(numbers / per) + max(1, math.ceil(addresses / per)) + 1  # + jobs list
    job = contract.MAX_NUMBERS_PER_JOB
    return (pages + math.ceil(sum(per_target.values()) / job),
            pages + sum(math.ceil(c / job) for c in per_target.values()))


def end_to_end(size: int, args: argparse.Namespace, state_url: str | None = None) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"e2e-{size}-"))
    with Emulator(numbers=size, seed=args.seed, api_key=KEY, job_seconds=args.job_seconds,
                  rate_limit=args.rate_limit, faults=Faults(latency=args.latency)) as emu:
        t = time.monotonic()
        source = workdir / "desired.csv"
        per_target = write_desired(emu, source, args.change_share, args.seed)
        changes = sum(per_target.values())
        prep = time.monotonic() - t
        emu.reset_stats()
        res = run_child(source, emu, workdir, follow=args.follow, state_url=state_url)
        stats = emu.stats()
        n_addr = len(emu.addresses())
    routes = stats["by_route"]
    res.update(size=size, changes=changes, prep=prep, routes=routes,
               requests=stats["requests"], jobs=stats["jobs_created"],
               minimum=minimum_requests(size, per_target, n_addr), targets=len(per_target), by_status=stats["by_status"])
    return res


def compare(n: int, args: argparse.Namespace) -> dict:
    """Enable E911 on n disabled numbers: the pipeline vs one call per number, sequentially."""
    size = n * 8
    out: dict = {"numbers": n}
    picked: list[dict] = []
    for mode in ("pipeline", "per_number"):
        with Emulator(numbers=size, seed=args.seed, api_key=KEY, job_seconds=args.job_seconds,
                      rate_limit=args.rate_limit, faults=Faults(latency=args.latency)) as emu:
            if not picked:
                picked = [x for x in emu.numbers() if _changeable(x)
                          and not x["emergency_enabled"]][:n]
                assert len(picked) == n, f"only {len(picked)} disabled numbers in {size}"
            address = emu.addresses()[0]["id"]
            emu.reset_stats()
            workdir = Path(tempfile.mkdtemp(prefix=f"cmp-{mode}-"))
            if mode == "pipeline":
                source = workdir / "enable.csv"
                with source.open("w", newline="") as fh:
                    w = csv.writer(fh)
                    w.writerow(["phone_number", "emergency_enabled", "emergency_address_id"])
                    w.writerows([x["phone_number"], "yes", address] for x in picked)
                res = run_child(source, emu, workdir, follow=args.follow)
                out[mode] = {"wall": res["wall"], "requests": emu.stats()["requests"],
                             "steps": res["steps"], "ok": res["ok"]}
            else:
                began = time.monotonic()
                ok = 0
                with httpx.Client(base_url=emu.base_url, timeout=30,
                                  headers={"Authorization": f"Bearer {KEY}"}) as client:
                    for x in picked:
                        r = client.post(f"/phone_numbers/{x['id']}/actions/enable_emergency",
                                        json={"emergency_enabled": True,
                                              "emergency_address_id": address})
                        ok += r.status_code == 200
                out[mode] = {"wall": time.monotonic() - began,
                             "requests": emu.stats()["requests"], "ok": ok == n}
            enabled = sum(1 for x in picked if emu.number(x["id"])["emergency_enabled"])
            out[mode]["enabled_after"] = enabled
    out["ratio"] = out["per_number"]["wall"] / out["pipeline"]["wall"]
    return out


def compare_stores(args: argparse.Namespace) -> int:
    """Each size applied on each safety store, alternately (so a busy moment of the machine
    falls on both), `repeat` times."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from pg_server import PgServer

    pg = PgServer(fsync=True).start() if "postgresql" in args.stores else None
    try:
        for size in args.sizes:
            walls: dict[str, list[float]] = {s: [] for s in args.stores}
            steps: dict[str, list[float]] = {s: [] for s in args.stores}
            for _ in range(args.repeat):
                for kind in args.stores:
                    url = pg.new_database() if kind == "postgresql" else None
                    r = end_to_end(size, args, state_url=url)
                    assert r["ok"], f"the {kind} run failed"
                    walls[kind].append(r["wall"])
                    steps[kind].append(r["steps"].get("emergency_update_jobs", 0.0))
                    print(f"{size:,} numbers, {r['changes']:,} changes, {kind:10s}: "
                          f"{r['wall']:.1f}s wall, update step "
                          f"{steps[kind][-1]:.1f}s, {r['jobs']} jobs", flush=True)
            for kind in args.stores:
                w = sorted(walls[kind])
                print(f"  {kind:10s} median {w[len(w) // 2]:.1f}s (runs: "
                      + ", ".join(f"{x:.1f}" for x in walls[kind]) + "), update step median "
                      f"{sorted(steps[kind])[len(w) // 2]:.1f}s")
            if len(args.stores) == 2:
                a, b = (sorted(walls[k])[args.repeat // 2] for k in args.stores)
                print(f"  {args.stores[1]} / {args.stores[0]}: {b / a:.3f}")
    finally:
        if pg is not None:
            pg.stop()
    return 0


def add_settings(p: argparse.ArgumentParser) -> None:
    """The emulator's and the run's settings, shared with versus_sdk.py."""
    p.add_argument("--change-share", type=float, default=0.10)
    p.add_argument("--latency", type=float, default=0.03, help="seconds added to every answer")
    p.add_argument("--job-seconds", type=float, default=10.0)
    p.add_argument("--rate-limit", type=int, default=5000, help="requests per second")
    p.add_argument("--follow", type=float, default=1800.0)
    p.add_argument("--seed", type=int, default=2026)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--compare", type=int, default=10_000, help="0 to skip")
    p.add_argument("--stores", nargs="*", choices=["sqlite", "postgresql"], default=[],
                   help="apply each size on these safety stores, alternately")
    p.add_argument("--repeat", type=int, default=1, help="runs per store (with --stores)")
    add_settings(p)
    args = p.parse_args(argv)
    if args.stores:
        return compare_stores(args)
    print(f"settings: latency {args.latency}s, job_seconds {args.job_seconds}, rate limit "
          f"{args.rate_limit}/s, {args.change_share:.0%} to change; {os.cpu_count()} CPUs")
    for size in args.sizes:
        r = end_to_end(size, args)
        steps = r["steps"]
        polls = sum(v for k, v in r["routes"].items() if "jobs/{id}" in k or "jobs/:id" in k)
        print(f"\n{size:,} numbers, {r['changes']:,} to change: run {'ok' if r['ok'] else 'FAILED'}"
              f" in {r['wall']:.1f}s wall (child process), peak RSS {r['peak_rss_mb']:.0f} MB"
              f" (desired CSV written in {r['prep']:.1f}s)")
        print("  steps: " + ", ".join(f"{k.replace('emergency_', '')} {steps.get(k, 0):.1f}s"
                                      for k in STEPS) + f", checks {steps.get('checks', 0):.1f}s")
        print(f"  requests {r['requests']:,} (jobs created {r['jobs']}); minimum "
              f"{r['minimum'][0]:,} (pages + ceil(changes/1000)), {r['minimum'][1]:,} with one "
              f"job per target ({r['targets']} targets); by route {r['routes']}; "
              f"by status {r['by_status']}")
        print(f"  polls (GET job by id): {polls}")
        sys.stdout.flush()
    if args.compare:
        c = compare(args.compare, args)
        print(f"\nenable E911 on {c['numbers']:,} numbers:")
        for mode in ("pipeline", "per_number"):
            m = c[mode]
            print(f"  {mode:10s} {m['wall']:8.1f}s  {m['requests']:6,} requests  "
                  f"enabled after: {m['enabled_after']:,}")
        print(f"  ratio (per-number wall / pipeline wall): {c['ratio']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
