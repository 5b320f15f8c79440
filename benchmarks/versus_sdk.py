"""Side by side: the pipeline (`emergency-pipeline run --apply`) against the SDK script a
customer would write (benchmarks/sdk_script.py), in one run, alternating.

For each size: one desired CSV (every number; 10% changed: half enabled, a quarter disabled,
a quarter moved to another address), then each side in a child process against a fresh
emulator (in this process) with the same seed: every answer delayed 30 ms, jobs of 10 s, a
rate limit it does not reach. Wall is the child from exec to exit, peak RSS its ru_maxrss,
requests the emulator's by-route counts; polls are the GETs of jobs (by id and the jobs
list), the rest "requests without polls". Needs `make bench-install` (the SDK).

    .venv/bin/python benchmarks/versus_sdk.py --sizes 10000 100000 [--repeat 2]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from end_to_end import KEY, add_settings, run_child, spawn

from emergency_pipeline import telnyx_contract as contract
from emergency_pipeline.samples.changed_share import Changes, write_changed_state
from emergency_pipeline.emulator import Emulator, Faults

SDK_SCRIPT = Path(__file__).with_name("sdk_script.py")
POLL_ROUTES = ("GET /v2/phone_numbers/jobs/{id}", "GET /v2/phone_numbers/jobs")


def emulator(size: int, args: argparse.Namespace) -> Emulator:
    return Emulator(numbers=size, seed=args.seed, api_key=KEY, job_seconds=args.job_seconds,
                    rate_limit=args.rate_limit, faults=Faults(latency=args.latency))


def run_sdk(source: Path, emu: Emulator, workdir: Path) -> dict:
    env = {**os.environ, "TELNYX_API_KEY": KEY, "TELNYX_BASE_URL": emu.base_url}
    cmd = [sys.executable, str(SDK_SCRIPT), str(source), "--duckdb",
           str(workdir / "sdk.duckdb")]
    res = spawn(cmd, env, workdir / "sdk.log")
    res.pop("stdout")
    return res


def side(name: str, size: int, source: Path, changes: Changes,
         args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"vs-{name}-{size}-"))
    with emulator(size, args) as emu:
        emu.reset_stats()
        res = (run_sdk(source, emu, workdir) if name == "sdk"
               else run_child(source, emu, workdir, follow=args.follow))
        stats = emu.stats()
        emu.finish_jobs()
        wrong = sum(1 for i, t in changes.targets.items()
                    if emu.number(i)["emergency_address_id"] != t)
    routes = stats["by_route"]
    polls = sum(routes.get(r, 0) for r in POLL_ROUTES)
    return {**res, "routes": routes, "requests": stats["requests"], "polls": polls,
            "without_polls": stats["requests"] - polls, "not_at_target": wrong,
            "workdir": str(workdir)}


def minimum(size: int, changes: Changes) -> int:
    """The account's listing pages plus one job per 1,000 numbers of a target (the SDK script
    needs no more; the pipeline also lists the addresses and the jobs in flight)."""
    return math.ceil(size / contract.MAX_PAGE_SIZE) + sum(
        math.ceil(c / contract.MAX_NUMBERS_PER_JOB) for c in changes.per_target().values())


def compare(size: int, args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"vs-{size}-"))
    source = workdir / "desired.csv"
    t = time.monotonic()
    with emulator(size, args) as emu:
        addresses = [a["id"] for a in emu.addresses()]
        changes = write_changed_state(emu.numbers(), addresses, source, args.change_share,
                                      args.seed)
    prep = time.monotonic() - t
    runs: dict[str, list[dict]] = {"sdk": [], "pipeline": []}
    for rep in range(args.repeat):
        order = ("sdk", "pipeline") if rep % 2 == 0 else ("pipeline", "sdk")
        for name in order:
            r = side(name, size, source, changes, args)
            runs[name].append(r)
            print(f"  {size:,} {name:8s} {'ok' if r['ok'] else 'FAILED'} {r['wall']:6.1f}s "
                  f"RSS {r['peak_rss_mb']:5.0f} MB, {r['requests']:,} requests "
                  f"({r['polls']} polls), {r['not_at_target']} changes not at target; "
                  f"{r['routes']}", flush=True)
    return {"size": size, "changes": len(changes.targets), "prep": prep, "runs": runs,
            "minimum": minimum(size, changes),
            "targets": len(changes.per_target())}


def _span(values: list[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else \
        f"{fmt.format(lo)}-{fmt.format(hi)}"


def print_table(results: list[dict], job_seconds: float) -> None:
    print("\n| numbers | SDK script wall | pipeline wall | pipeline faster by | "
          "time above the job wait SDK / pipeline | peak RSS SDK / pipeline | "
          "requests without polls SDK / pipeline (minimum) | polls SDK / pipeline |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        sdk, pipe = r["runs"]["sdk"], r["runs"]["pipeline"]
        sw, pw = [x["wall"] for x in sdk], [x["wall"] for x in pipe]
        faster = (sum(sw) / len(sw)) / (sum(pw) / len(pw))
        above = (f"{_span([w - job_seconds for w in sw], '{:.1f} s')} / "
                 f"{_span([w - job_seconds for w in pw], '{:.1f} s')}")
        rss = (f"{_span([x['peak_rss_mb'] for x in sdk], '{:,.0f}')} / "
               f"{_span([x['peak_rss_mb'] for x in pipe], '{:,.0f}')} MB")
        req = (f"{_span([x['without_polls'] for x in sdk], '{:,}')} / "
               f"{_span([x['without_polls'] for x in pipe], '{:,}')} ({r['minimum']:,})")
        polls = (f"{_span([x['polls'] for x in sdk], '{:,}')} / "
                 f"{_span([x['polls'] for x in pipe], '{:,}')}")
        print(f"| {r['size']:,} | {_span(sw, '{:.1f} s')} | {_span(pw, '{:.1f} s')} | "
              f"{faster:.2f}x | {above} | {rss} | {req} | {polls} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per side; the order alternates (SDK first, then pipeline first)")
    add_settings(p)
    args = p.parse_args(argv)
    print(f"settings: latency {args.latency}s, job_seconds {args.job_seconds}, rate limit "
          f"{args.rate_limit}/s, {args.change_share:.0%} changed (half enable, a quarter "
          f"disable, a quarter change address); {os.cpu_count()} CPUs; "
          f"load average before {os.getloadavg()[0]:.2f}")
    results = []
    for size in args.sizes:
        r = compare(size, args)
        results.append(r)
        print(f"{size:,} numbers: {r['changes']:,} changes to {r['targets']} targets "
              f"(desired CSV written in {r['prep']:.1f}s); minimum requests {r['minimum']:,}",
              flush=True)
    print_table(results, args.job_seconds)
    print(f"load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
