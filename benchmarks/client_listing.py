"""Listing 100,000 numbers: a plain sequential page loop versus the concurrent client.

Runs the emulator in-process with realistic latency and prints time and request count of each,
and the ratio. Usage: python benchmarks/client_listing.py [--numbers N] [--latency S]
"""

from __future__ import annotations

import argparse
import logging
import time

import httpx

from emergency_pipeline.client import ClientConfig, TelnyxClient
from emergency_pipeline.telnyx_contract import MAX_PAGE_SIZE
from emergency_pipeline.emulator import Emulator, Faults

KEY = "bench-key"


def sequential(base_url: str) -> int:
    """What a one-off script does: one page after another."""
    ids: set[str] = set()
    with httpx.Client(base_url=base_url + "/", timeout=30,
                      headers={"Authorization": f"Bearer {KEY}"}) as http:
        page = 1
        while True:
            r = http.get("phone_numbers", params={"page[number]": page,
                                                  "page[size]": MAX_PAGE_SIZE})
            r.raise_for_status()
            body = r.json()
            ids.update(n["id"] for n in body["data"])
            if page >= body["meta"]["total_pages"]:
                return len(ids)
            page += 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--numbers", type=int, default=100_000)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    emu = Emulator(numbers=args.numbers, seed=1, api_key=KEY, rate_limit=1_000_000,
                   faults=Faults(latency=args.latency))
    emu.start()
    try:
        emu.reset_stats()
        t0 = time.perf_counter()
        n_seq = sequential(emu.base_url)
        t_seq = time.perf_counter() - t0
        r_seq = emu.stats()["requests"]

        emu.reset_stats()
        cfg = ClientConfig(api_key=KEY, base_url=emu.base_url,
                           max_concurrency=args.concurrency)
        with TelnyxClient(cfg, log=logging.getLogger("bench")) as client:
            t0 = time.perf_counter()
            n_conc = len(client.list_phone_numbers())
            t_conc = time.perf_counter() - t0
        r_conc = emu.stats()["requests"]
    finally:
        emu.stop()

    print(f"numbers={args.numbers} latency={args.latency}s page_size={MAX_PAGE_SIZE}")
    print(f"sequential loop:   {n_seq} numbers in {t_seq:6.2f}s, {r_seq} requests")
    print(f"client (x{args.concurrency}):      {n_conc} numbers in {t_conc:6.2f}s, "
          f"{r_conc} requests")
    print(f"speed-up: {t_seq / t_conc:.1f}x")


if __name__ == "__main__":
    main()
