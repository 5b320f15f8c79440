"""Plan 1,000,000 desired rows against a 1,000,000-number snapshot with 10% changes.

    .venv/bin/python benchmarks/plan_1m.py [--rows 1000000]

Writes the desired-state CSV to a temp dir, builds the snapshot in memory, and prints the wall
time of each stage (read and validate the CSV, plan, batch) and the process's peak resident memory after
it (resource.getrusage ru_maxrss: a high-water mark, so a stage shows the growth it caused beyond
every earlier stage). tracemalloc is not used: it slows pandas several-fold.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emergency_pipeline.planning.batching import make_batches  # noqa: E402
from emergency_pipeline.desired_state import read_desired_state  # noqa: E402
from emergency_pipeline.planning.plan import build_plan, plan_summary  # noqa: E402

AREA_CODES = np.array([201, 202, 212, 303, 305, 312, 415, 512, 617, 702, 713, 970])


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def generate(rows: int, folder: Path, seed: int = 7) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    k = np.arange(rows)
    npa = AREA_CODES[k % len(AREA_CODES)]
    rest = k // len(AREA_CODES)
    nxx = 200 + (rest // 10000) % 800
    line = rest % 10000
    phones = pd.Series([f"+1{a}{b}{c:04d}" for a, b, c in zip(npa, nxx, line)], dtype=object)
    ids = pd.Series((10**18 + k).astype(str), dtype=object)
    addresses = pd.DataFrame({"id": [str(10**15 + i) for i in range(50)]})
    addr_of = addresses["id"].to_numpy()[rng.integers(0, 50, rows)]
    enabled = rng.random(rows) < 0.9
    numbers = pd.DataFrame({
        "id": ids, "phone_number": phones, "status": "active",
        "emergency_enabled": enabled,
        "emergency_address_id": np.where(enabled, addr_of, None),
        "emergency_status": np.where(enabled, "active", "disabled"),
    })
    # Desired = current, except 10% of the rows: flip enabled/disabled or move the address.
    change = rng.random(rows) < 0.10
    want_enabled = enabled.copy()
    flip = change & (rng.random(rows) < 0.5)
    want_enabled[flip] = ~enabled[flip]
    want_addr = np.where(want_enabled, addr_of, "").astype(object)
    move = change & ~flip & want_enabled
    want_addr[move] = addresses["id"].to_numpy()[(rng.integers(1, 50, int(move.sum())))]
    turned_on = flip & want_enabled
    want_addr[turned_on] = addresses["id"].to_numpy()[0]
    desired = pd.DataFrame({
        "phone_number": phones,
        "emergency_enabled": np.where(want_enabled, "true", "false"),
        "emergency_address_id": want_addr,
        "ticket": [f"CHG-{i}" for i in range(rows)],
    })
    path = folder / "desired.csv"
    desired.to_csv(path, index=False)
    return path, numbers, addresses


def stage(name: str, fn):
    t = time.perf_counter()
    out = fn()
    print(f"{name:<28} {time.perf_counter() - t:7.2f} s   peak RSS {maxrss_mb():8.0f} MB",
          flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        path, numbers, addresses = generate(args.rows, Path(tmp))
        print(f"generated {args.rows} rows + snapshot in {time.perf_counter() - t:.1f} s "
              f"(CSV {path.stat().st_size / 1e6:.0f} MB); peak RSS {maxrss_mb():.0f} MB")
        total = time.perf_counter()
        ds = stage("read + validate CSV", lambda: read_desired_state(path, default_region="US"))
        plan = stage("plan", lambda: build_plan(ds.accepted, numbers, addresses))
        batches = stage("batch", lambda: make_batches(plan, 1000))
        print(f"{'total':<28} {time.perf_counter() - total:7.2f} s")
        print(f"accounting: {ds.counts()}")
        print(f"plan actions: {plan['action'].value_counts().to_dict()}")
        print(f"batches: {len(batches)} (largest {max((len(b.identifiers) for b in batches), default=0)})")
        print(plan_summary(plan).groupby("action")["numbers"].sum().to_string())


if __name__ == "__main__":
    main()
