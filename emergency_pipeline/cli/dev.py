"""`emergency-pipeline dev`: the Dagster UI and daemon with a running emulator and its key.

Starts the emulator (the demo's account, on a fixed port) unless --no-emulator, exports
TELNYX_API_KEY / TELNYX_BASE_URL for it, and runs `dg dev` (webserver + daemon, so that
launches, schedules, sensors and backfills all run) with the Dagster home of `make demo`
and its dagster.yaml. The emulator serves the account as the demo left it (the demo saves it
in the Dagster home as emulator_state.json; dev saves it there again when it stops), so the
first apply from the UI does not redo the demo's changes; --fresh-account starts from the
generated one. Ctrl-C or SIGTERM stops Dagster's whole process group, then the emulator.
With --no-emulator the key and URL come from the environment (the real API).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_EMULATOR_PORT = 8911
STOP_GRACE_SECONDS = 20.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from emergency_pipeline.cli.demo import DEMO_FAULTS
    from emergency_pipeline.samples.demo_sheet import DEMO_NUMBERS, DEMO_SEED

    p = subparsers.add_parser("dev", help="the Dagster UI and daemon with a running emulator",
                              description=__doc__)
    p.add_argument("--port", type=int, default=3000, help="the Dagster UI's port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--dagster-home", default=".dagster_home")
    p.add_argument("--no-emulator", action="store_true",
                   help="use TELNYX_API_KEY and TELNYX_BASE_URL from the environment")
    p.add_argument("--emulator-port", type=int, default=DEFAULT_EMULATOR_PORT)
    p.add_argument("--numbers", type=int, default=DEMO_NUMBERS)
    p.add_argument("--seed", type=int, default=DEMO_SEED)
    p.add_argument("--job-seconds", type=float, default=2.0)
    p.add_argument("--faults", default=DEMO_FAULTS)
    p.add_argument("--fresh-account", action="store_true",
                   help="start from the generated account, not the one the demo left")
    p.set_defaults(func=run)


def start_emulator(args: argparse.Namespace, home: Path):
    """The demo's emulator, serving the account the demo (or the last `dev`) left in `home`
    when there is one."""
    from emergency_pipeline.cli.demo import DEMO_KEY, emulator_state_path
    from emergency_pipeline.emulator import Emulator, Faults

    state = emulator_state_path(home)
    carried = state.exists() and not args.fresh_account
    emu = Emulator(numbers=args.numbers, seed=args.seed, api_key=DEMO_KEY,
                   job_seconds=args.job_seconds, faults=Faults.parse(args.faults),
                   port=args.emulator_port, state_file=str(state) if carried else None)
    where = f"the account as the demo left it ({state})" if carried else "a generated account"
    print(f"emulator: {where}", flush=True)
    return emu.start()


def dagster_command(port: int, host: str) -> list[str]:
    """`dg dev` of this project, in this venv (dg reads [tool.dg] in pyproject.toml)."""
    return [str(Path(sys.executable).parent / "dg"), "dev", "--use-active-venv",
            "--port", str(port), "--host", host]


def run(args: argparse.Namespace) -> int:
    from emergency_pipeline.cli.demo import DEMO_ACCOUNT, DEMO_KEY, prepare_dagster_home

    home = prepare_dagster_home(Path(args.dagster_home))
    emu = None
    if not args.no_emulator:
        emu = start_emulator(args, home)
        os.environ.update({"TELNYX_API_KEY": DEMO_KEY, "TELNYX_BASE_URL": emu.base_url,
                           "TELNYX_ACCOUNT": DEMO_ACCOUNT})
        print(f"emulator: {len(emu.engine.account)} numbers at {emu.base_url} "
              f"(TELNYX_API_KEY={DEMO_KEY}, the emulator's own key)", flush=True)
    elif not os.environ.get("TELNYX_API_KEY"):
        print("error: TELNYX_API_KEY is not set: export it, or drop --no-emulator",
              file=sys.stderr)
        return 1
    print(f"Dagster UI: http://{args.host}:{args.port}  (DAGSTER_HOME={home}; Ctrl-C stops "
          "it and the emulator)", flush=True)
    # Its own session: a signal reaches the webserver, the daemon and the code server at once.
    proc = subprocess.Popen(dagster_command(args.port, args.host), start_new_session=True,
                            env={**os.environ, "VIRTUAL_ENV": sys.prefix})
    stopping: list[float] = []

    def stop(signum, _frame) -> None:
        # Only signal here: waiting on the child inside a handler deadlocks Popen.wait.
        if not stopping:
            stopping.append(time.monotonic())
            _signal_group(proc, signal.SIGTERM)

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while proc.poll() is None:
            if stopping and time.monotonic() - stopping[0] > STOP_GRACE_SECONDS:
                _signal_group(proc, signal.SIGKILL)
            time.sleep(0.2)
        return 0 if stopping else proc.returncode
    finally:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
        for s, handler in old.items():
            signal.signal(s, handler)
        if emu is not None:
            emu.stop()
            from emergency_pipeline.cli.demo import emulator_state_path

            emu.save_state(str(emulator_state_path(home)))   # the next `make dev` goes on


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
