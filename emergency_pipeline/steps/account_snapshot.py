"""Step 2, `emergency_account_snapshot`: the live account (the jobs in flight, every
number's emergency fields, the addresses) into the run's stage file. The coverage report
reads the account the same way, without the jobs (read_account)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
import pandas as pd

from emergency_pipeline.number_pages import list_numbers_into
from emergency_pipeline.client import TelnyxClient, job_numbers
from emergency_pipeline.stage_files import StageRef
from emergency_pipeline.steps.context import RunContext
from emergency_pipeline.telnyx_contract import JOB_IN_FLIGHT_STATUSES


@dataclass(frozen=True)
class SnapshotStep:
    ref: StageRef
    counts: dict[str, int]
    taken_at: datetime


def take_snapshot(run: RunContext) -> SnapshotStep:
    """Read after the desired state (a missing sheet fails before the account is listed)
    and, on an apply run, under the account lease (the asset holds it: rule 3)."""
    with run.client() as client, run.stages.building("snapshot") as con:
        taken = datetime.now(timezone.utc)
        # Jobs first: a number still pending when the jobs are read is treated as in flight
        # even if its job finishes while the numbers are read. The other order would miss
        # a number whose job finished in between and show its old settings as current.
        in_flight = [j for j in client.list_jobs() if j.get("status") in JOB_IN_FLIGHT_STATUSES]
        numbers, addresses = read_account(client, con)
        _create_table(con, "in_flight", _in_flight_rows(in_flight))
        # fetchall: DuckDB 2 refuses further work while a result is left half-read.
        enabled = con.execute("SELECT count(*) FILTER (emergency_enabled) FROM numbers"
                              ).fetchall()[0][0]
    counts = {"numbers": numbers, "addresses": len(addresses),
              "jobs_in_flight": len(in_flight), "emergency_enabled": int(enabled)}
    ref = run.stages.ref("snapshot", counts, info={"taken_at": taken.isoformat()})
    run.analytics.write("account_addresses", addresses.assign(snapshot_at=taken),
                        mode="replace")
    return SnapshotStep(ref, counts, taken)


def read_account(client: TelnyxClient, con: duckdb.DuckDBPyConnection) -> tuple[int, pd.DataFrame]:
    """Every number (streamed page by page into `numbers`) and the addresses (`addresses`);
    returns the numbers listed and the addresses."""
    listed = list_numbers_into(client, con, "numbers")
    addresses = pd.DataFrame(client.list_addresses())
    if addresses.empty:
        addresses = pd.DataFrame(columns=["id"])
    addresses = addresses.astype(str).where(addresses.notna(), None)
    _create_table(con, "addresses", addresses)
    return listed["numbers"], addresses


def _create_table(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> None:
    con.register("frame", frame)
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
    con.unregister("frame")


def _in_flight_rows(jobs: list[dict]) -> pd.DataFrame:
    """(identifier, job_id) for every number a job in flight names, by id and by E.164."""
    rows = [{"identifier": n, "job_id": str(job.get("id"))}
            for job in jobs for n in sorted(job_numbers(job))]
    return pd.DataFrame(rows, columns=["identifier", "job_id"])
