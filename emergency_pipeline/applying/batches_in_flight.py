"""The batches one apply step follows, with their jobs, and the results it has so far.

`BatchesInFlight`: each open batch with a job (this run's or an earlier run's, resumed),
what each batch asked for, and when it was sent. `ResultsSoFar`: one result per number,
recorded in the ledger together with the batch that closes (rule 5).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from emergency_pipeline.applying.number_result import Key, NumberResult, Origin, left_alone
from emergency_pipeline.planning.batching import Batch
from emergency_pipeline.safety_store import BatchClose, Ledger


class BatchesInFlight:
    """The open batches with a job that this step follows to their end."""

    def __init__(self) -> None:
        self.batch_of: dict[Key, Batch] = {}                  # open batches with a job
        self.job_of: dict[Key, str] = {}                      # ... and their jobs
        self.submitted_at: dict[Key, datetime] = {}
        self.targets: dict[Key, Batch] = {}                   # what each batch asked for
        self.ours: set[str] = set()                           # job ids this step follows
        self.last_seen: dict[Key, dict[str, Any]] = {}        # in-flight jobs, last read

    def __len__(self) -> int:
        return len(self.job_of)

    def aimed(self, key: Key, batch: Batch, submitted_at: datetime | None = None) -> None:
        """A batch of this step's, recorded (sent at `submitted_at`, when it was)."""
        self.targets[key] = batch
        if submitted_at is not None:
            self.submitted_at[key] = submitted_at

    def follow(self, key: Key, batch: Batch, job_id: str) -> None:
        self.batch_of[key], self.job_of[key] = batch, str(job_id)
        self.ours.add(str(job_id))

    def done(self, key: Key) -> Batch:
        """The batch's job ended (or is gone): no longer followed."""
        del self.job_of[key]
        return self.batch_of.pop(key)

    def origin(self, key: Key) -> Origin:
        return Origin(key[0], key[1], self.submitted_at.get(key), self.targets.get(key))

    def oldest_submission(self, default: datetime) -> datetime:
        return min((self.submitted_at.get(k) or default for k in self.job_of), default=default)


class ResultsSoFar:
    """One result per identifier: the latest word of the batch that speaks for it."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.by_identifier: dict[str, NumberResult] = {}

    def put(self, rows: Iterable[NumberResult]) -> None:
        run_id, kept = self.run_id, self.by_identifier
        for row in rows:
            if row.origin is None or row.origin.run_id != run_id:
                had = kept.get(row.identifier)
                if had is not None and had.run_id == run_id:
                    continue   # this run's own batch speaks for the number, not an earlier one's
            kept[row.identifier] = row

    def leave_alone(self, identifier: str, reason: str) -> None:
        """A number no batch of this run sends: skipped, with why (whatever was said before)."""
        self.by_identifier[identifier] = left_alone(identifier, reason)

    def set_aside(self, batch: Batch, reasons: dict[str, str]) -> Batch | None:
        """The batch without the identifiers in `reasons` (each left alone with its reason),
        or None when none is left."""
        if not reasons:
            return batch
        for ident, reason in reasons.items():
            self.leave_alone(ident, reason)
        rest = [i for i in batch.identifiers if i not in reasons]
        return batch.narrowed(rest) if rest else None

    def close(self, ledger: Ledger, closing: Sequence[BatchClose]) -> None:
        """Close batches in the ledger with their numbers' results, in one transaction, then
        keep those results here."""
        ledger.close(closing, by_run=self.run_id)
        for item in closing:
            self.put(item.results)
