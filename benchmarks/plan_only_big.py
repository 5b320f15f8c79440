"""The lean data path of a plan-only run at 5,000,000 rows: read the sheet and plan it, as the
assets do (desired_state.write_desired_state into a stage file, plan.write_plan over the
stage files, the CLI's plan print), in a child process whose peak RSS is printed.

The account is not listed from the emulator here (that is benchmarks/end_to_end.py): the
snapshot stage file is written directly, as emergency_account_snapshot leaves it, so the
figure is the memory of reading and planning alone.

    .venv/bin/python benchmarks/plan_only_big.py --rows 5000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

MEASURE_CHILD = Path(__file__).with_name("measure_child.py")
AREAS = "[201, 202, 212, 303, 305, 312, 415, 512, 617, 702, 713, 970]"
# Number i: area code AREAS[i % 12], exchange 200 + (i // 12) // 10000, line (i // 12) % 10000.
PHONE = (f"'+1' || {AREAS}[(i % 12) + 1]::VARCHAR || (200 + (i // 12) // 10000)::VARCHAR "
         "|| lpad(((i // 12) % 10000)::VARCHAR, 4, '0')")

CHILD = r"""
import json, resource, sys, time
import duckdb
from emergency_pipeline.desired_state import write_desired_state
from emergency_pipeline.planning.plan import plan_views, write_plan
from emergency_pipeline.stage_files import file_connection, stage_config

csv, snapshot, work = sys.argv[1:4]
out = {}
t = time.perf_counter()
with file_connection(f"{work}/desired.duckdb", stage_config()) as con:
    counts = write_desired_state(csv, con, default_region="US").counts()
out["read_s"] = round(time.perf_counter() - t, 1)
out["read_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
t = time.perf_counter()
with file_connection(f"{work}/plan.duckdb", stage_config()) as con:
    con.execute(f"ATTACH '{work}/desired.duckdb' AS r (READ_ONLY)")
    con.execute(f"ATTACH '{snapshot}' AS s (READ_ONLY)")
    plan_views(con, "r.accepted", "s.numbers", "s.addresses", "s.in_flight")
    write_plan(con, "plan")
    out["actions"] = dict(con.execute("SELECT action, count(*) FROM plan GROUP BY ALL")
                          .fetchall())
out["plan_s"] = round(time.perf_counter() - t, 1)
out["accepted"] = counts["accepted"]
out["rejected_rows"] = counts["rejected_rows"]
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(json.dumps(out))
"""


def build(rows: int, folder: Path) -> tuple[Path, Path]:
    """A sheet of `rows` numbers (10% changed) and the account's snapshot stage file."""
    snapshot = folder / "snapshot.duckdb"
    con = duckdb.connect(str(snapshot))
    con.execute(f"""
        CREATE TABLE numbers AS SELECT (1300000000000000000 + i)::VARCHAR AS id,
            {PHONE} AS phone_number, 'active' AS status, i % 3 <> 0 AS emergency_enabled,
            CASE WHEN i % 3 <> 0 THEN 'A' || (i % 50)::VARCHAR END AS emergency_address_id,
            CASE WHEN i % 3 <> 0 THEN 'active' ELSE 'disabled' END AS emergency_status
        FROM range({rows}) AS t(i)""")
    con.execute("CREATE TABLE addresses AS SELECT 'A' || i::VARCHAR AS id FROM range(50) t(i)")
    con.execute("CREATE TABLE in_flight (identifier VARCHAR, job_id VARCHAR)")
    sheet = folder / "desired.csv"
    # 10% changed: half enabled or moved to another address, a quarter disabled, a quarter
    # moved; the rest as they are. A ticket column rides along as an extra.
    con.execute(f"""
        COPY (SELECT phone_number,
                     CASE WHEN i % 40 = 1 THEN 'no' WHEN i % 3 <> 0 OR i % 10 = 0 THEN 'yes'
                          ELSE 'no' END AS emergency_enabled,
                     CASE WHEN i % 40 = 1 THEN ''
                          WHEN i % 10 = 0 THEN 'A' || ((i + 7) % 50)::VARCHAR
                          WHEN i % 3 <> 0 THEN 'A' || (i % 50)::VARCHAR ELSE '' END
                          AS emergency_address_id,
                     'CHG-' || i::VARCHAR AS ticket
              FROM (SELECT *, row_number() OVER () - 1 AS i FROM numbers))
        TO '{sheet}' (HEADER, DELIMITER ',')""")
    con.close()
    return sheet, snapshot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="*", default=[1_000_000, 5_000_000])
    args = ap.parse_args()
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            sheet, snapshot = build(rows, Path(tmp))
            print(f"{rows:,} rows: sheet {sheet.stat().st_size / 1e6:.0f} MB written in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
            started = time.perf_counter()
            # Through measure_child.py: a child forked straight from this process would count
            # this process's memory (the sheet's writer) in its own peak.
            done = subprocess.run([sys.executable, "-S", "-E", str(MEASURE_CHILD),
                                   f"{tmp}/measured.json", sys.executable, "-c", CHILD,
                                   str(sheet), str(snapshot), tmp],
                                  capture_output=True, text=True, check=True)
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  read + plan in a child: {time.perf_counter() - started:.1f} s wall "
                  f"(read {figures['read_s']} s, plan {figures['plan_s']} s); peak RSS "
                  f"{figures['peak_rss_mb']} MB (after reading: {figures['read_rss_mb']} MB)")
            print(f"  accepted {figures['accepted']:,}, rejected {figures['rejected_rows']:,}; "
                  f"actions {figures['actions']}", flush=True)


if __name__ == "__main__":
    main()
