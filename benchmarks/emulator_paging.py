"""Figures: page through every number of an emulated account with a plain httpx loop.

    python benchmarks/emulator_paging.py [--numbers 100000]

Starts `emergency-pipeline emulator` (or, with --module, `python -m
emergency_pipeline.emulator`) as a subprocess, pages with page[size]=250, and prints
the start-up time, the paging wall time, pages, numbers seen (must equal N) and the
emulator process's resident memory (VmRSS).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import secrets
import subprocess
import sys
import time

import httpx


def _command(module: bool) -> list[str]:
    if module:  # the emulator alone, without the dispatcher's other sub-commands' imports
        return [sys.executable, "-m", "emergency_pipeline.emulator"]
    script = pathlib.Path(sys.executable).with_name("emergency-pipeline")
    if script.exists():
        return [str(script), "emulator"]
    return [sys.executable, "-m", "emergency_pipeline.cli", "emulator"]


def _rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--numbers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--module", action="store_true",
                        help="start `python -m emergency_pipeline.emulator` instead")
    args = parser.parse_args()

    key = secrets.token_hex(16)  # a throwaway key; never printed
    started = time.monotonic()
    proc = subprocess.Popen(
        _command(args.module) + ["--port", "0", "--numbers", str(args.numbers),
                      "--seed", str(args.seed), "--rate-limit", "100000000"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "TELNYX_API_KEY": key})
    try:
        line = proc.stdout.readline()
        if not line:
            print("emulator did not start", file=sys.stderr)
            return 1
        startup = time.monotonic() - started
        base = line.strip().rsplit(" ", 1)[-1]
        rss_start = _rss_mib(proc.pid)
        seen: set[str] = set()
        pages = 0
        t0 = time.monotonic()
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"},
                          timeout=60) as client:
            page, total_pages = 1, 1
            while page <= total_pages:
                r = client.get("/phone_numbers", params={"page[number]": page,
                                                         "page[size]": 250})
                r.raise_for_status()
                body = r.json()
                total_pages = body["meta"]["total_pages"]
                seen.update(n["id"] for n in body["data"])
                pages += 1
                page += 1
        wall = time.monotonic() - t0
        rss_end = _rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"numbers={args.numbers} startup={startup:.1f}s pages={pages} seen={len(seen)} "
          f"wall={wall:.1f}s ({pages / wall:.0f} pages/s, {len(seen) / wall:,.0f} numbers/s) "
          f"rss_after_start={rss_start:.0f}MiB rss_after_paging={rss_end:.0f}MiB "
          f"ok={len(seen) == args.numbers}")
    return 0 if len(seen) == args.numbers else 1


if __name__ == "__main__":
    sys.exit(main())
