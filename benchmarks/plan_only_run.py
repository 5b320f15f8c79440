"""A plan-only run through the CLI, listing included: `emergency-pipeline run SHEET` (no
--apply) against an emulator of N numbers (30 ms per answer) with a desired state of every
number, 10% changed. The emulator and the sheet live in this process; the run is a child
measured by measure_child.py (wall, peak RSS).

    .venv/bin/python benchmarks/plan_only_run.py --numbers 5000000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from end_to_end import KEY, spawn, write_desired

from emergency_pipeline.emulator import Emulator, Faults


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--numbers", type=int, default=5_000_000)
    p.add_argument("--latency", type=float, default=0.03)
    p.add_argument("--seed", type=int, default=2026)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix=f"plan-{args.numbers}-"))
    (work / "dagster_home").mkdir()
    began = time.monotonic()
    with Emulator(numbers=args.numbers, seed=args.seed, api_key=KEY,
                  faults=Faults(latency=args.latency)) as emu:
        write_desired(emu, work / "desired.csv", 0.10, args.seed)
        print(f"emulator and sheet ready in {time.monotonic() - began:.1f} s", flush=True)
        env = {**os.environ, "TELNYX_API_KEY": KEY, "TELNYX_BASE_URL": emu.base_url,
               "EMERGENCY_PIPELINE_DUCKDB": str(work / "outcomes.duckdb"),
               "DAGSTER_HOME": str(work / "dagster_home")}
        cmd = [sys.executable, "-m", "emergency_pipeline.cli", "run", str(work / "desired.csv"),
               "--quiet", "--log-level", "warning"]
        r = spawn(cmd, env, work / "run.log")
    # Exit 2: a plan-only run with changes planned (the CLI's contract), not a failure.
    print(f"{args.numbers:,} numbers, plan only: wall {r['wall']:.1f} s, peak RSS "
          f"{r['peak_rss_mb']:,.0f} MB; run files in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
