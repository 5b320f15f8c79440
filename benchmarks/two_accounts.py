"""Two accounts applied at once against each alone, on the production path: a deployment
(dagster-webserver + dagster-daemon, deploy/dagster.yaml's run queue) whose code location has
two EmergencySettingsComponent instances, each its own emulator in its own process (as two
Telnyx accounts are two servers), each account --numbers numbers with --change-share of them
to change. Times are from the GraphQL launch to the run's end; "together" is both launched at
once, until the second ends. Each measurement starts fresh emulators (same seeds).

    .venv/bin/python benchmarks/two_accounts.py --numbers 100000 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _accounts_project import accounts_project  # noqa: E402
from _deployment import Deployment, free_port  # noqa: E402
from daemon_path import POLL_SECONDS, dagster_yaml  # noqa: E402
from end_to_end import write_desired  # noqa: E402

from emergency_pipeline.emulator import Emulator  # noqa: E402

CLI = str(Path(sys.executable).parent / "emergency-pipeline")
ACCOUNTS = {"acme": 101, "globex": 202}     # name -> seed


class Servers:
    """The two emulators, each a child process on a fixed port."""

    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work, self.args = work, args
        self.ports = {name: free_port() for name in ACCOUNTS}
        self.procs: dict[str, subprocess.Popen] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}/v2"

    def fresh(self) -> None:
        self.stop()
        for name, seed in ACCOUNTS.items():
            key = self.work / f"{name}.key"
            key.write_text(f"KEY_{name}_bench_not_secret\n")
            self.procs[name] = subprocess.Popen(
                [CLI, "emulator", "--numbers", str(self.args.numbers), "--seed", str(seed),
                 "--port", str(self.ports[name]), "--api-key-file", str(key),
                 "--job-seconds", str(self.args.job_seconds), "--rate-limit", "5000",
                 "--faults", f"latency={self.args.latency}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import httpx
        for name in ACCOUNTS:
            deadline = time.monotonic() + 600
            while True:
                try:
                    httpx.get(self.url(name) + "/phone_numbers?page[size]=1", timeout=2)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"emulator {name} did not start")
                    time.sleep(0.5)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
            proc.wait()
        self.procs.clear()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=100_000)
    parser.add_argument("--change-share", type=float, default=0.1)
    parser.add_argument("--job-seconds", type=float, default=10.0)
    parser.add_argument("--latency", type=float, default=0.03)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-two-accounts-"))
    servers = Servers(work, args)
    sheets = {}
    for name, seed in ACCOUNTS.items():      # the same account the emulator will generate
        sheets[name] = work / f"{name}.csv"
        write_desired(Emulator(numbers=args.numbers, seed=seed), sheets[name],
                      args.change_share, seed)
    project = accounts_project(work / "project", {
        name: {"base_url": servers.url(name), "duckdb": str(work / f"{name}.duckdb"),
               "inbox": None, "schedule": None, "account_name": name,
               "guard": {"max_disable_count": 100, "max_disable_share": 0.05,
                         "allow_mass_disable": True}}
        for name in ACCOUNTS})
    home = work / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(dagster_yaml())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(project), os.environ.get("PYTHONPATH")) if p),
        **{f"TELNYX_API_KEY_{n.upper()}": f"KEY_{n}_bench_not_secret" for n in ACCOUNTS}}
    env.pop("EMERGENCY_PIPELINE_STATE_URL", None)
    figures: dict[str, list[float]] = {"acme": [], "globex": [], "together": []}
    dep = Deployment(home, env, cwd=project)
    try:
        dep.start()
        for name in ACCOUNTS:
            dep.add_partition(f"{name}__desired_state_sources", str(sheets[name]))

        def apply(names: list[str]) -> float:
            servers.fresh()
            began = time.time()
            runs = {n: dep.launch(f"{n}__apply_emergency_settings", str(sheets[n]))
                    for n in names}
            for n, run_id in runs.items():
                status = dep.wait_run(run_id, timeout=3600, every=POLL_SECONDS)
                if status != "SUCCESS":
                    raise SystemExit(f"{n}: run {run_id} {status}")
            return max(dep.run_end(r) for r in runs.values()) - began

        for i in range(args.repeat):
            order = [["acme"], ["globex"], ["acme", "globex"]]
            for names in order if i % 2 == 0 else order[::-1]:
                key = names[0] if len(names) == 1 else "together"
                figures[key].append(apply(names))
                print(f"{key}: {figures[key][-1]:.1f} s", flush=True)
    finally:
        dep.stop()
        servers.stop()
    slower = [max(a, g) for a, g in zip(figures["acme"], figures["globex"])]
    print(f"\n| {args.numbers:,} numbers per account, {args.change_share:.0%} changed | "
          "acme alone | globex alone | both at once | at once / slower alone |")
    print("|---|---:|---:|---:|---:|")
    for i, together in enumerate(figures["together"]):
        print(f"| repetition {i + 1} | {figures['acme'][i]:.1f} s | {figures['globex'][i]:.1f} s "
              f"| {together:.1f} s | {together / slower[i]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
