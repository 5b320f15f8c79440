"""The baseline: what a Telnyx customer would write in an afternoon with the official SDK.

Sequential and straightforward, on purpose (issue 12): list every number (the SDK pages on
by itself), diff against the desired CSV with pandas, one update_emergency_settings job per
1,000 numbers of a target, retrieve each job every second until it ends, outcomes into
DuckDB. Needs the benchmark-only extra: `make bench-install` (telnyx 4.x).

    TELNYX_API_KEY=... TELNYX_BASE_URL=http://127.0.0.1:8911/v2 \
        .venv/bin/python benchmarks/sdk_script.py desired.csv --duckdb sdk.duckdb
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import duckdb
import pandas as pd
import telnyx

IN_FLIGHT = ("pending", "in_progress")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("desired")
    p.add_argument("--duckdb", default="sdk_outcomes.duckdb")
    args = p.parse_args(argv)
    client = telnyx.Telnyx(api_key=os.environ["TELNYX_API_KEY"],
                           base_url=os.environ["TELNYX_BASE_URL"])

    # 1. The account, every number (auto-pagination).
    rows = []
    for n in client.phone_numbers.list(page_size=250):
        rows.append({"id": n.id, "phone_number": n.phone_number,
                     "emergency_enabled": bool(n.emergency_enabled),
                     "emergency_address_id": n.emergency_address_id})
    live = pd.DataFrame(rows)

    # 2. The diff.
    desired = pd.read_csv(args.desired, dtype=str, keep_default_na=False)
    desired["want_enabled"] = desired["emergency_enabled"].str.lower().isin(["true", "yes", "1"])
    desired["want_address"] = desired["emergency_address_id"].where(desired["want_enabled"], "")
    df = desired[["phone_number", "want_enabled", "want_address"]].merge(
        live, on="phone_number", how="inner")
    df["emergency_address_id"] = df["emergency_address_id"].fillna("")
    todo = df[(df["want_enabled"] != df["emergency_enabled"])
              | (df["want_enabled"] & (df["want_address"] != df["emergency_address_id"]))]

    # 3. One job per 1,000 numbers of the same target.
    job_ids = []
    for (enabled, address), group in todo.groupby(["want_enabled", "want_address"]):
        ids = group["id"].tolist()
        for start in range(0, len(ids), 1000):
            job = client.phone_numbers.jobs.update_emergency_settings_batch(
                emergency_enabled=bool(enabled), emergency_address_id=address or None,
                phone_numbers=ids[start:start + 1000])
            job_ids.append(job.data.id)

    # 4. Each job every second until it ends; its numbers' results.
    outcomes = []
    for job_id in job_ids:
        job = client.phone_numbers.jobs.retrieve(job_id).data
        while job.status in IN_FLIGHT:
            time.sleep(1)
            job = client.phone_numbers.jobs.retrieve(job_id).data
        for op in job.successful_operations or []:
            outcomes.append({"job_id": job_id, "job_status": job.status, "number_id": op.id,
                             "phone_number": op.phone_number, "result": "succeeded",
                             "error": None})
        for op in job.failed_operations or []:
            outcomes.append({"job_id": job_id, "job_status": job.status, "number_id": op.id,
                             "phone_number": op.phone_number, "result": "failed",
                             "error": op.errors[0].title if op.errors else None})

    # 5. Into DuckDB.
    result = pd.DataFrame(outcomes, columns=["job_id", "job_status", "number_id",
                                             "phone_number", "result", "error"])
    with duckdb.connect(args.duckdb) as con:
        con.execute("CREATE TABLE IF NOT EXISTS outcomes AS SELECT * FROM result LIMIT 0")
        con.execute("INSERT INTO outcomes SELECT * FROM result")
    print(json.dumps({"numbers": len(live), "changes": len(todo), "jobs": len(job_ids),
                      "succeeded": int((result["result"] == "succeeded").sum()),
                      "failed": int((result["result"] == "failed").sum())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
