"""The E911 coverage report's step (e911_coverage/report.py): the account read (read-only:
no lease, no sheet) into the run's snapshot stage, joined with the analytics history; the
latest coverage per account, the counts per refresh, and the one-page export."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from emergency_pipeline.e911_coverage import report as cov
from emergency_pipeline.e911_coverage.export import write_export
from emergency_pipeline.stage_files import StageRef, attach, prune
from emergency_pipeline.steps.account_snapshot import read_account
from emergency_pipeline.steps.context import RunContext, StepLog

SAMPLE_ROWS = 20   # as the other samples in the metadata


@dataclass(frozen=True)
class CoverageStep:
    ref: StageRef
    counts: dict[str, int]
    exported: tuple[Path, ...]
    samples: dict[str, pd.DataFrame] = field(compare=False)   # category -> numbers


def report_coverage(run: RunContext) -> CoverageStep:
    snapshot = _snapshot(run)
    taken_at = snapshot.info["taken_at"]
    database = str(run.analytics.database)
    with run.stages.building("coverage", rows=snapshot.rows) as con:
        attach(con, n=snapshot)
        history = _attach_history(con, database, run.log)
        cov.coverage_views(con, account=run.account_label, run_id=run.run_id,
                           taken_at=taken_at, history=history)
        con.execute(f"CREATE TABLE coverage AS {cov.COVERAGE_SQL}")
        counts = cov.counts(con)
        samples = {c: con.execute(
            "SELECT phone_number, status, emergency_enabled, address, managed_by, "
            f"last_applied_enabled, last_result FROM coverage WHERE {c} "
            f"ORDER BY phone_number LIMIT {SAMPLE_ROWS}").df() for c in cov.CATEGORIES}
        exported = write_export(con, Path(database).resolve().parent / "coverage",
                                run.account_label, taken_at, counts)
        for alias in ("n", *(["h"] if history else [])):
            con.execute(f"DETACH {alias}")
    ref = run.stages.ref("coverage", counts, info={
        "taken_at": taken_at, "account": run.account_label,
        "export": [str(p) for p in exported]})
    # The latest coverage of each account replaces the last; the counts are kept per refresh.
    run.analytics.copy_from("e911_coverage", ref.path, "SELECT * FROM src.coverage",
                            replace_on=("account",), rows=counts["numbers"])
    run.analytics.write("e911_coverage_runs", pd.DataFrame([{
        "account": run.account_label, "run_id": run.run_id,
        "taken_at": pd.Timestamp(taken_at), **counts}]))
    prune(run.storage_dir, run.keep_run_tables_days * 86400, keep={run.run_id})
    run.log.info("coverage: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return CoverageStep(ref, counts, tuple(exported), samples)


def _snapshot(run: RunContext) -> StageRef:
    """Numbers and addresses into the run's snapshot stage (no jobs: nothing is planned)."""
    with run.client() as client, run.stages.building("snapshot") as con:
        taken = datetime.now(timezone.utc)
        numbers, addresses = read_account(client, con)
    return run.stages.ref("snapshot", {"numbers": numbers, "addresses": len(addresses)},
                          info={"taken_at": taken.isoformat()})


def _attach_history(con: duckdb.DuckDBPyConnection, database: str, log: StepLog) -> bool:
    """The analytics file attached read-only as `h`; False when it is missing or held by a
    writer (the report then has no history: every number reads unmanaged, none drifts)."""
    if not Path(database).exists():
        return False
    try:
        attach(con, h=database)
        return True
    except duckdb.IOException as exc:
        log.warning(f"{database} could not be read ({exc}): coverage without the history")
        return False
