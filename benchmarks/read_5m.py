"""Read a large desired-state CSV into DuckDB with write_desired_state: wall time and peak RSS.

    .venv/bin/python benchmarks/read_5m.py [--rows 1000000 5000000] [--quoted]

Writes a realistic CSV per size (phone numbers in mixed formats, yes/no and true/false flags,
address ids, a ticket and a site column, a few bad rows, identical and conflicting duplicates),
then runs write_desired_state into a DuckDB file in a child process (a fresh interpreter, so
its ru_maxrss is the reading's own peak) and prints the wall time of the child, its peak RSS
and the counts. --quoted puts a comma into the site of 1 row in 50: the file then has quoted
cells and is parsed by pandas' C parser in chunks instead of DuckDB (csv_stream.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
AREA_CODES = np.array([201, 202, 212, 303, 305, 312, 415, 512, 617, 702, 713, 970])
CHILD = """
import json, resource, sys, duckdb
from emergency_pipeline.desired_state import write_desired_state
con = duckdb.connect(sys.argv[2])
s = write_desired_state(sys.argv[1], con, default_region="US")
tables = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
          for t in ("accepted", "rejected", "duplicates", "files")}
con.close()
print(json.dumps({"counts": s.counts(), "tables": tables,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_csv(path: Path, rows: int, quoted: bool, seed: int = 7) -> None:
    """In blocks, so that the generator itself stays small."""
    rng = np.random.default_rng(seed)
    block = 500_000
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("Phone Number,E911 Enabled,Emergency Address ID,Ticket,Site\n")
        for start in range(0, rows, block):
            k = np.arange(start, min(rows, start + block))
            n = len(k)
            npa = AREA_CODES[k % len(AREA_CODES)]
            rest = k // len(AREA_CODES)
            nxx = (200 + (rest // 10000) % 800).astype(str)
            line = np.char.zfill((rest % 10000).astype(str), 4)
            npa = npa.astype(str)
            style = k % 4                        # E.164, (970) 555-0100, 970-555-0100, 1970...
            phone = np.where(style == 0, np.char.add(np.char.add("+1", npa),
                                                     np.char.add(nxx, line)), "")
            phone = np.where(style == 1, np.char.add(np.char.add("(", npa), np.char.add(
                np.char.add(") ", nxx), np.char.add("-", line))), phone)
            phone = np.where(style == 2, np.char.add(np.char.add(npa, "-"), np.char.add(
                np.char.add(nxx, "-"), line)), phone)
            phone = np.where(style == 3, np.char.add(np.char.add("1", npa),
                                                     np.char.add(nxx, line)), phone)
            enabled = rng.random(n) < 0.9
            flag = np.where(enabled, np.where(k % 2 == 0, "yes", "true"),
                            np.where(k % 2 == 0, "no", "false"))
            addr = np.where(enabled, np.char.add("1315262044401", (589101 + rng.integers(
                0, 50, n)).astype(str)), "")
            site = np.char.add("site-", (k % 997).astype(str))
            if quoted:
                site = np.where(k % 50 == 0, np.char.add('"', np.char.add(site, ', floor 2"')),
                                site)
            lines = [",".join(r) for r in zip(phone, flag, addr, np.char.add("CHG-", k.astype(
                str)), site)]
            # A few bad rows and duplicates, at fixed places: 1 in 100,000 each.
            for i in range(0, n, 100_000):
                lines[i] = f"not a number,yes,{addr[i]},BAD,{site[i]}"
                if i + 1 < n:
                    lines[i + 1] = f"{phone[i + 2]},maybe,,BAD,{site[i]}"
                if i + 7 < n:
                    lines[i + 4] = lines[i + 3]                   # identical: collapsed
                    other = "off," if enabled[i + 7] else f"yes,{addr[i]}"
                    lines[i + 6] = f"{phone[i + 7]},{other},DUP,x"   # conflicts with i+7
            f.write("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--quoted", action="store_true")
    args = ap.parse_args()
    print(f"{'rows':>10} {'CSV MB':>7} {'wall s':>7} {'peak RSS MB':>12}  counts")
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            csv, db = Path(tmp) / "desired.csv", Path(tmp) / "desired.duckdb"
            write_csv(csv, rows, args.quoted)
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", CHILD, str(csv), str(db)], cwd=ROOT,
                                  capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            wall = time.perf_counter() - t
            if proc.returncode:
                raise SystemExit(proc.stderr)
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{rows:>10,} {csv.stat().st_size / 1e6:>7.0f} {wall:>7.1f} "
                  f"{result['maxrss_kib'] / 1024:>12.0f}  {result['counts']}", flush=True)


if __name__ == "__main__":
    main()
