"""`emergency-pipeline emulator`: serve an emulated Telnyx account on loopback."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time

from emergency_pipeline import telnyx_contract as contract

EMULATOR_KEY_ENV = "EMULATOR_API_KEY"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "emulator", help="serve a local Telnyx emulator",
        description="Serve a local emulator of the Telnyx endpoints the pipeline uses. The "
                    "accepted API key is read from --api-key-file, else EMULATOR_API_KEY, else "
                    "TELNYX_API_KEY, else it is a fixed development key; never from the command "
                    "line, which any user of the machine can read.")
    p.add_argument("--port", type=int, default=8765, help="TCP port (0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (loopback)")
    p.add_argument("--numbers", type=int, default=1000, help="numbers in a generated account")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated account")
    p.add_argument("--state-file", help="load the account from this JSON file instead")
    p.add_argument("--write-state-file", metavar="PATH",
                   help="write the account to PATH as a state file and exit")
    p.add_argument("--faults", default="",
                   help="e.g. error_rate=0.05,latency=0.05,throttle_rate=0.01,throttle_burst=5")
    p.add_argument("--telnyx-shape", default="spec",
                   help="answers the spec leaves open: spec (its examples), pointers, or "
                        "unowned_numbers=per_number,unknown_address=refuse_job (DEVELOPERS.md)")
    p.add_argument("--api-key-file", metavar="PATH",
                   help="file holding the bearer key to accept (surrounding whitespace ignored)")
    p.add_argument("--extra-api-key-file", metavar="PATH", action="append", default=[],
                   help="a file holding one more key of the same account (repeatable): a "
                        "Telnyx account can hold several keys")
    p.add_argument("--users-forbidden", action="store_true",
                   help="answer GET /v2/organizations/users with 403, as Telnyx may for a key "
                        "not allowed to list the organization's users")
    # Kept only to refuse it with a clear message (argparse would echo an unknown one's value).
    p.add_argument("--api-key", help=argparse.SUPPRESS)
    p.add_argument("--job-seconds", type=float, default=2.0, help="how long a job takes")
    p.add_argument("--settle-seconds", type=float, default=None,
                   help="provisioning/deprovisioning time after a change (default job/2)")
    p.add_argument("--rate-limit", type=int, default=1000, help="requests per window")
    p.add_argument("--rate-window", type=float, default=1.0, help="window in seconds")
    p.add_argument("--clock-offset", type=float, default=0.0, metavar="SECONDS",
                   help="Telnyx's clock relative to this host's (created_at, updated_at, Date); "
                        "e.g. -300 for a Telnyx clock five minutes behind")
    p.add_argument("--max-jobs-in-flight", type=int,
                   default=contract.DEFAULT_MAX_JOBS_IN_FLIGHT)
    p.set_defaults(func=run)
    return p


def api_key(args: argparse.Namespace) -> str | None:
    """The key to accept: from a file or the environment (None: the development key)."""
    if args.api_key_file:
        with open(args.api_key_file, encoding="utf-8") as fh:
            return fh.read().strip() or None
    return (os.environ.get(EMULATOR_KEY_ENV) or os.environ.get("TELNYX_API_KEY") or "").strip() \
        or None


def _read_key(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read().strip()


def run(args: argparse.Namespace) -> int:
    from emergency_pipeline.emulator import Emulator, Faults

    if args.api_key is not None:
        print("emulator: --api-key is refused (a command line is visible to every user of the "
              f"machine); use --api-key-file PATH or {EMULATOR_KEY_ENV}", file=sys.stderr)
        return 2
    try:
        key = api_key(args)
        extra = [_read_key(path) for path in args.extra_api_key_file]
    except OSError as exc:
        print(f"emulator: cannot read the key file {exc.filename}: {exc.strerror}",
              file=sys.stderr)
        return 2
    from emergency_pipeline.emulator.shape import Shape

    try:
        faults = Faults.parse(args.faults)
        Shape.parse(args.telnyx_shape)
    except (ValueError, TypeError) as exc:
        print(f"emulator: bad --faults or --telnyx-shape: {exc}", file=sys.stderr)
        return 2
    if not math.isfinite(args.clock_offset):
        print("emulator: --clock-offset must be a finite number of seconds, e.g. -300",
              file=sys.stderr)
        return 2
    started = time.monotonic()
    emu = Emulator(numbers=args.numbers, seed=args.seed, api_key=key,
                   job_seconds=args.job_seconds, rate_limit=args.rate_limit,
                   rate_window=args.rate_window, max_jobs_in_flight=args.max_jobs_in_flight,
                   faults=faults, state_file=args.state_file, host=args.host, port=args.port,
                   settle_seconds=args.settle_seconds, telnyx_shape=args.telnyx_shape,
                   clock_offset_seconds=args.clock_offset,
                   extra_api_keys=[k for k in extra if k],
                   users_listable=not args.users_forbidden)
    n = len(emu.engine.account)
    if args.write_state_file:
        emu.save_state(args.write_state_file)
        print(f"wrote {n} numbers to {args.write_state_file}", flush=True)
        return 0
    emu.start()
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
    # Scripts wait for this line; it names no key.
    print(f"emulator: {n} numbers, {len(emu.addresses())} addresses, ready in "
          f"{time.monotonic() - started:.1f}s at {emu.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
