"""One number's result of the apply step, where it came from, and the rows made of them.

A `NumberResult` is made once per number and crosses modules as it is: the ledger records
the result fields when its batch closes (safety_store/ledger.py, rule 5), the orphan
publisher turns a stopped run's into outcome rows (analytics/publish.py), the read-back
looks for earlier runs' successes (applying/read_back.py), and the step writes them as the
`results` table OUTCOMES_SQL reads (analytics/outcomes.py), only there as a frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from emergency_pipeline.analytics.outcomes import RESULT_FIELDS
from emergency_pipeline.client.errors import ApiError
from emergency_pipeline.planning.batching import Batch
from emergency_pipeline.telnyx_contract import JOB_TERMINAL_STATUSES

Key = tuple[str, str]   # (run_id, batch_id): a batch as the ledger knows it


@dataclass(frozen=True, slots=True)
class Origin:
    """The batch that speaks for a number's result: its run, when it was sent, and what it
    asked for (`target`: None when not known, such as a result read back from the ledger)."""

    run_id: str
    batch_id: str
    submitted_at: datetime | None = None
    target: Batch | None = None


@dataclass(frozen=True, slots=True)
class NumberResult:
    """What happened to one identifier: succeeded, failed (with Telnyx's error), pending,
    expired or skipped (with the reason). `origin` is None for a number no batch sent (taken
    out before its wave, or left to another's job). `finished_at` is Telnyx's text, as the
    job gave it."""

    identifier: str
    result: str
    reason: str | None = None
    job_id: str | None = None
    job_status: str | None = None
    error_code: str | None = None
    error_title: str | None = None
    error_detail: str | None = None
    error_pointer: str | None = None
    finished_at: str | None = None
    origin: Origin | None = None

    @property
    def run_id(self) -> str | None:
        return None if self.origin is None else self.origin.run_id

    @property
    def batch_id(self) -> str | None:
        return None if self.origin is None else self.origin.batch_id

    @property
    def submitted_at(self) -> datetime | None:
        return None if self.origin is None else self.origin.submitted_at

    # The batch's own target goes with each result: a number of this run's plan that was in
    # an earlier run's job takes that job's result only if the job had its target.
    @property
    def job_target_enabled(self) -> bool | None:
        target = None if self.origin is None else self.origin.target
        return None if target is None else target.emergency_enabled

    @property
    def job_target_address_id(self) -> str | None:
        target = None if self.origin is None else self.origin.target
        return None if target is None else target.emergency_address_id


_SUCCEEDED = ("succeeded", None, None, None, None)


def job_results(batch: Batch, job: Mapping[str, Any], origin: Origin) -> list[NumberResult]:
    """One result per identifier of the batch, from its job (pure)."""
    status = job.get("status")
    job_id = job.get("id")
    finished = job.get("updated_at") if status in JOB_TERMINAL_STATUSES else None
    # identifier -> (result, error_code, error_title, error_detail, error_pointer)
    found: dict[str, tuple[str, Any, Any, Any, Any]] = {}
    for op in job.get("successful_operations") or []:
        for key in (op.get("id"), op.get("phone_number")):
            if key:
                found[str(key)] = _SUCCEEDED
    for op in job.get("failed_operations") or []:
        err = (op.get("errors") or [{}])[0]
        failed = ("failed", err.get("code"), err.get("title"), err.get("detail"),
                  (err.get("source") or {}).get("pointer"))
        for key in (op.get("id"), op.get("phone_number")):
            if key:
                found[str(key)] = failed
    result, reason = {
        "expired": ("expired", "the job expired before this number was processed"),
        "failed": ("failed", "the job failed before this number was processed"),
        "completed": ("failed", "the job completed without reporting this number"),
    }.get(status, ("pending", f"job {job_id} was still {status or 'in flight'} when the run "
                   "stopped following it"))
    # Positional, once per number: a million of them are made in a big run.
    out = []
    for ident in batch.identifiers:
        settled = found.get(ident)
        if settled is None:
            out.append(NumberResult(ident, result, reason, job_id, status, None, None, None,
                                    None, finished, origin))
        else:
            out.append(NumberResult(ident, settled[0], None, job_id, status, *settled[1:],
                                    finished, origin))
    return out


def batch_results(batch: Batch, result: str, reason: str,
                  origin: Origin | None) -> list[NumberResult]:
    """The same result for every identifier of a batch (never sent, or its job gone)."""
    return [NumberResult(i, result, reason, origin=origin) for i in batch.identifiers]


def refused_results(refused: Mapping[str, ApiError | None], origin: Origin, *,
                    status: int | None, message: str) -> list[NumberResult]:
    """The numbers Telnyx refused when the job was submitted, each with its own error
    (`refused`: identifier -> ApiError, or None when the refusal named none: then the
    answer's HTTP status and text)."""
    return [NumberResult(
        ident, "failed", "refused by Telnyx when submitted",
        error_code=err.code if err is not None else None,
        error_title=err.title if err is not None else f"HTTP {status}",
        error_detail=err.detail if err is not None else message,
        error_pointer=err.pointer if err is not None else None, origin=origin)
        for ident, err in refused.items()]


def left_alone(identifier: str, reason: str) -> NumberResult:
    """A number no batch of this run sends (another job holds it): skipped, with why."""
    return NumberResult(identifier, "skipped", reason)


_TIMES = {"submitted_at"}
_FLAGS = {"job_target_enabled"}


def results_frame(results: Iterable[NumberResult]) -> pd.DataFrame:
    """The `results` table (identifier and outcomes.RESULT_FIELDS), typed by column: a
    column with no value is still text, a time or a flag, whatever the rows hold."""
    rows = list(results)
    columns: dict[str, Any] = {}
    for name in ("identifier", *RESULT_FIELDS):
        values = [getattr(r, name) for r in rows]
        if name in _TIMES:
            columns[name] = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
        elif name in _FLAGS:
            columns[name] = pd.array(values, dtype="boolean")
        else:
            columns[name] = pd.array([None if v is None else str(v) for v in values],
                                     dtype="string")
    return pd.DataFrame(columns)
