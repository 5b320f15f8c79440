"""The production path against the CLI: a run launched over GraphQL and started by the daemon
(dagster-webserver + dagster-daemon on a DAGSTER_HOME, as a deployment runs them) against
`emergency-pipeline run --apply` in a shell, on the demo's account and sheet; and a backfill of
10 sheets, launched from a shell (`dagster job backfill`, as the README shows) and from the UI
(GraphQL), against ten CLI runs one after the other.

Each measurement gets a fresh emulator of the demo's account (same seed, same port), so every
side applies the same changes. The webserver and the daemon are started once, before the
first measurement (not timed: a deployment keeps them running); a daemon run is timed from
the GraphQL launch to the run's SUCCESS as the webserver reports it. Sides alternate.

    .venv/bin/python benchmarks/daemon_path.py --repeat 2
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _deployment import Deployment, free_port  # noqa: E402

from emergency_pipeline.defs.partitions import desired_state_sources  # noqa: E402
from emergency_pipeline.defs.reconcile_job import APPLY_JOB_NAME  # noqa: E402
from emergency_pipeline.emulator import Emulator  # noqa: E402
from emergency_pipeline.samples.demo_sheet import DEMO_NUMBERS, DEMO_SEED  # noqa: E402

KEY = "KEY_benchmark_not_secret"
CLI = str(Path(sys.executable).parent / "emergency-pipeline")
DEMO_SHEET = ROOT / "data" / "desired_state.csv"
# The repo's code location has one account, `telnyx`, read from the environment.
JOB = f"telnyx__{APPLY_JOB_NAME}"
PARTITIONS = f"telnyx__{desired_state_sources.name}"
# deploy/dagster.yaml's run queue (two apply runs per account, one applying and the next
# waiting on the lease; the queue looked at every second) on the instance's default SQLite
# storage. With --one-at-a-time, one apply run per account (`limit: 1`).
# The daemon side ends when its last run recorded its end (the run's endTime), not when a poll
# saw it, and polls the webserver once a second: at 5 a second the GraphQL queries took CPU
# from the runs they timed (2 cores).
POLL_SECONDS = 1.0

_DAGSTER_YAML = """
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
    tag_concurrency_limits:
      - key: "emergency_pipeline/apply"
        value: {applyLimitPerUniqueValue: true}
        limit: LIMIT
telemetry:
  enabled: false
"""


def dagster_yaml(per_account: int = 2) -> str:
    """The instance's dagster.yaml: deploy/dagster.yaml's queue, `per_account` apply runs."""
    return _DAGSTER_YAML.replace("LIMIT", str(per_account))


def split_sheet(sheet: Path, parts: int, folder: Path) -> list[Path]:
    """The sheet's rows in `parts` sheets of about equal size (each its own partition)."""
    with sheet.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    paths = []
    for i in range(parts):
        path = folder / f"part{i:02d}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(body[i::parts])
        paths.append(path)
    return paths


class Bench:
    def __init__(self, work: Path, per_account: int) -> None:
        self.work = work
        self.dagster_yaml = dagster_yaml(per_account)
        self.port = free_port()
        self.emu: Emulator | None = None
        self.env = {**os.environ, "TELNYX_API_KEY": KEY,
                    "TELNYX_BASE_URL": f"http://127.0.0.1:{self.port}/v2",
                    "EMERGENCY_PIPELINE_DUCKDB": str(work / "outcomes.duckdb"),
                    "EMERGENCY_PIPELINE_STATE_URL": "",
                    "EMERGENCY_PIPELINE_EXECUTOR": ""}
        for name in ("EMERGENCY_PIPELINE_STATE_URL", "EMERGENCY_PIPELINE_EXECUTOR"):
            self.env.pop(name)

    def fresh_account(self) -> None:
        if self.emu is not None:
            self.emu.stop()
        self.emu = Emulator(numbers=DEMO_NUMBERS, seed=DEMO_SEED, api_key=KEY,
                            port=self.port).start()

    def cli(self, sheets: list[Path], home: Path) -> float:
        home.mkdir(exist_ok=True)
        (home / "dagster.yaml").write_text(self.dagster_yaml)
        began = time.monotonic()
        for sheet in sheets:
            done = subprocess.run([CLI, "run", str(sheet), "--apply", "--quiet"], cwd=ROOT,
                                  env={**self.env, "DAGSTER_HOME": str(home)},
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"CLI run of {sheet} failed:\n{done.stdout}{done.stderr}")
        return time.monotonic() - began

    def daemon_run(self, dep: Deployment, sheet: Path) -> float:
        dep.add_partition(PARTITIONS, str(sheet))
        began = time.time()
        run_id = dep.launch(JOB, str(sheet))
        status = dep.wait_run(run_id, every=POLL_SECONDS)
        took = dep.run_end(run_id) - began
        if status != "SUCCESS":
            raise SystemExit(f"daemon run {run_id}: {status}")
        return took

    def backfill(self, dep: Deployment, sheets: list[Path]) -> float:
        """Launched as the UI does (GraphQL): the backfill daemon makes the runs."""
        for sheet in sheets:
            dep.add_partition(PARTITIONS, str(sheet))
        began = time.time()
        backfill = dep.backfill(JOB, [str(s) for s in sheets])
        return self._backfill_runs(dep, backfill, len(sheets), began)

    def shell_backfill(self, dep: Deployment, sheets: list[Path]) -> float:
        """Launched from a shell as the README shows (`dagster job backfill`): the command
        makes the runs and queues them; the deployment's daemon starts them."""
        for sheet in sheets:
            dep.add_partition(PARTITIONS, str(sheet))
        began = time.time()
        done = subprocess.run(
            [str(Path(sys.executable).parent / "dagster"), "job", "backfill", "-w",
             str(ROOT / "workspace.yaml"), "-j", JOB, "--partitions",
             ",".join(str(s) for s in sheets), "--noprompt"],
            cwd=ROOT, env=dep.env, capture_output=True, text=True)
        launched = re.search(r"Launched backfill job `([^`]+)`", done.stdout)
        if done.returncode != 0 or launched is None:
            raise SystemExit(f"dagster job backfill failed:\n{done.stdout}{done.stderr}")
        print(f"   `dagster job backfill` returned after {time.time() - began:.1f} s",
              flush=True)
        return self._backfill_runs(dep, launched.group(1), len(sheets), began)

    def _backfill_runs(self, dep: Deployment, backfill: str, count: int, began: float) -> float:
        runs = dep.wait_backfill(backfill, count, every=POLL_SECONDS)
        took = max(r["endTime"] for r in runs) - began
        # Launched over GraphQL, the runs are made by Dagster's backfill daemon, which looks
        # for new backfills every 30 s (a constant of dagster._daemon).
        made = min(r["creationTime"] for r in runs) - began
        order = sorted(runs, key=lambda r: r["startTime"])
        handover = [b["startTime"] - a["endTime"] for a, b in zip(order, order[1:])]
        own = [r["endTime"] - r["startTime"] for r in runs]
        print(f"   the first run was made {made:.1f} s after the launch; the runs took "
              f"{took - made:.1f} s: each {sum(own) / len(own):.1f} s from its start to its end, "
              f"{sum(handover) / len(handover):.1f} s from one's end to the next's start",
              flush=True)
        bad = [r for r in runs if r["status"] != "SUCCESS"]
        if bad:
            raise SystemExit(f"backfill {backfill}: {bad}")
        return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--sheets", type=int, default=10)
    parser.add_argument("--one-at-a-time", action="store_true",
                        help="one apply run per account in the queue (limit: 1), not two")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    bench = Bench(work, 1 if args.one_at_a_time else 2)
    parts = split_sheet(DEMO_SHEET, args.sheets, work)
    home = work / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(bench.dagster_yaml)
    figures: dict[str, list[float]] = {"cli": [], "daemon": [], "cli_x10": [], "backfill": [],
                                       "shell_backfill": []}
    dep = Deployment(home, bench.env)
    try:
        bench.fresh_account()
        dep.start()
        for i in range(args.repeat):
            order = ["cli", "daemon"] if i % 2 == 0 else ["daemon", "cli"]
            for side in order:
                bench.fresh_account()
                figures[side].append(
                    bench.cli([DEMO_SHEET], work / f"cli_home{i}") if side == "cli"
                    else bench.daemon_run(dep, DEMO_SHEET))
                print(f"demo sheet, {side}: {figures[side][-1]:.1f} s", flush=True)
            sides = ["cli_x10", "shell_backfill", "backfill"]
            for side in (sides if i % 2 == 0 else sides[::-1]):
                bench.fresh_account()
                measure = {"cli_x10": lambda: bench.cli(parts, work / f"cli10_home{i}"),
                           "backfill": lambda: bench.backfill(dep, parts),
                           "shell_backfill": lambda: bench.shell_backfill(dep, parts)}[side]
                figures[side].append(measure())
                print(f"{args.sheets} sheets, {side}: {figures[side][-1]:.1f} s", flush=True)
    finally:
        dep.stop()
        if bench.emu is not None:
            bench.emu.stop()

    def span(xs: list[float]) -> str:
        return f"{min(xs):.1f}-{max(xs):.1f} s" if len(xs) > 1 else f"{xs[0]:.1f} s"

    def ratio(a: str, b: str) -> str:
        return ", ".join(f"{x / y:.2f}" for x, y in zip(figures[a], figures[b]))

    print("\n| what | CLI | daemon | ratio daemon/CLI |\n|---|---:|---:|---:|")
    print(f"| demo sheet ({DEMO_NUMBERS:,} numbers, {sum(1 for _ in DEMO_SHEET.open()) - 1} "
          f"rows), apply | {span(figures['cli'])} | {span(figures['daemon'])} | "
          f"{ratio('daemon', 'cli')} |")
    print(f"| {args.sheets} sheets (the demo sheet split), apply: ten CLI runs vs one backfill "
          f"from a shell (`dagster job backfill`) | {span(figures['cli_x10'])} | "
          f"{span(figures['shell_backfill'])} | {ratio('shell_backfill', 'cli_x10')} |")
    print(f"| the same, the backfill launched from the UI (GraphQL; Dagster's backfill daemon "
          f"makes its runs at its next look, every 30 s) | {span(figures['cli_x10'])} | "
          f"{span(figures['backfill'])} | {ratio('backfill', 'cli_x10')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
