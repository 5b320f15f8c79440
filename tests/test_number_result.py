"""One number's result (applying/number_result.py), the results so far, and the results table
(pure: no emulator, no store)."""

from __future__ import annotations

from datetime import datetime, timezone

import duckdb
import pytest

from emergency_pipeline.applying.batches_in_flight import ResultsSoFar
from emergency_pipeline.applying.number_result import (
    NumberResult, Origin, job_results, results_frame,
)
from emergency_pipeline.planning.batching import batch_of

BATCH = batch_of(["+12025550100", "+12025550101", "+12025550102"], True, "addr-1", "e164")
SENT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def _job(status: str) -> dict:
    return {"id": "job-1", "status": status, "updated_at": "2026-01-02T03:05:00Z",
            "successful_operations": [{"id": "n-0", "phone_number": "+12025550100"}],
            "failed_operations": [{"phone_number": "+12025550101", "errors": [
                {"code": "10015", "title": "Bad Request", "detail": "not yours",
                 "source": {"pointer": "/phone_numbers/1"}}]}]}


@pytest.mark.parametrize("status,unreported,why,finished", [
    ("completed", "failed", "the job completed without reporting this number", True),
    ("failed", "failed", "the job failed before this number was processed", True),
    ("expired", "expired", "the job expired before this number was processed", True),
    ("in_progress", "pending", "job job-1 was still in_progress when the run stopped "
                               "following it", False),
])
def test_a_number_the_job_does_not_report_takes_the_jobs_status(status, unreported, why,
                                                                finished):
    """Design rule 5: every number ends with one result, a number in neither list of the job
    with the job's status (pending while it is in flight)."""
    origin = Origin("run-1", BATCH.batch_id, SENT, BATCH)
    ok, bad, silent = job_results(BATCH, _job(status), origin)
    assert (ok.result, ok.reason, ok.error_code) == ("succeeded", None, None)
    assert (bad.result, bad.error_code, bad.error_detail, bad.error_pointer) == (
        "failed", "10015", "not yours", "/phone_numbers/1")
    assert (silent.result, silent.reason) == (unreported, why)
    assert {r.finished_at for r in (ok, bad, silent)} == (
        {"2026-01-02T03:05:00Z"} if finished else {None})
    assert {(r.job_id, r.batch_id, r.run_id, r.submitted_at, r.job_target_enabled,
             r.job_target_address_id) for r in (ok, bad, silent)} == {
        ("job-1", BATCH.batch_id, "run-1", SENT, True, "addr-1")}


def test_an_earlier_runs_batch_never_overrides_this_runs_own_result():
    results = ResultsSoFar("run-2")
    mine = NumberResult("+12025550100", "succeeded", origin=Origin("run-2", "b-2"))
    earlier = NumberResult("+12025550100", "failed", origin=Origin("run-1", "b-1"))
    results.put([mine])
    results.put([earlier])
    assert results.by_identifier["+12025550100"] is mine
    # ... while an earlier run's result gives way to this run's, and to a later word of its own.
    results.put([NumberResult("+12025550101", "pending", origin=Origin("run-1", "b-1"))])
    results.put([NumberResult("+12025550101", "expired", origin=Origin("run-1", "b-1"))])
    assert results.by_identifier["+12025550101"].result == "expired"
    results.put([NumberResult("+12025550101", "succeeded", origin=Origin("run-2", "b-3"))])
    assert results.by_identifier["+12025550101"].run_id == "run-2"


@pytest.mark.parametrize("rows", [
    [], [NumberResult("+12025550100", "skipped", "left alone")],
])
def test_the_results_table_keeps_its_types_when_a_column_holds_no_value(rows):
    """A frame column that held only None reached DuckDB untyped (NULL or DOUBLE): the
    results table is text, a time and a flag whatever its rows hold."""
    con = duckdb.connect()
    con.register("frame", results_frame(rows))
    con.execute("CREATE TABLE results AS SELECT * FROM frame")
    types = dict(con.execute("SELECT column_name, data_type FROM duckdb_columns() "
                             "WHERE table_name = 'results'").fetchall())
    assert types.pop("submitted_at") == "TIMESTAMP WITH TIME ZONE"
    assert types.pop("job_target_enabled") == "BOOLEAN"
    assert set(types.values()) == {"VARCHAR"}
    assert con.execute("SELECT count(*) FROM results").fetchone()[0] == len(rows)
