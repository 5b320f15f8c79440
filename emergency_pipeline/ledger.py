"""The job ledger: what was submitted, recorded before each POST and after its answer.

Append-only events in the `job_ledger` table; a batch's state is its latest event:
  recorded   written before the POST (the job may or may not exist afterwards)
  submitted  the job id is known (submitted or adopted)
  rejected   Telnyx answered 422; the errors are in `detail`
  finished   the job reached a terminal status (job_status says which)
  abandoned  recorded, but no job was found for it on resume: nothing to follow
A batch whose latest event is `recorded` or `submitted` is open: a re-run follows it (or
looks for its job) instead of submitting it again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from emergency_pipeline.batching import Batch
from emergency_pipeline.store import Store

TABLE = "job_ledger"
OPEN_EVENTS = ("recorded", "submitted")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _rows(batches: Iterable[Batch], run_id: str, event: str, job_id: str | None = None,
          job_status: str | None = None, detail: str | None = None) -> pd.DataFrame:
    at = _now()
    return pd.DataFrame(
        [
            {
                "batch_id": b.batch_id, "run_id": run_id, "event": event, "job_id": job_id,
                "job_status": job_status, "emergency_enabled": b.emergency_enabled,
                "emergency_address_id": b.emergency_address_id, "id_kind": b.id_kind,
                "identifiers": list(b.identifiers), "number_count": len(b.identifiers),
                "detail": detail, "recorded_at": at,
            }
            for b in batches
        ],
        columns=["batch_id", "run_id", "event", "job_id", "job_status", "emergency_enabled",
                 "emergency_address_id", "id_kind", "identifiers", "number_count", "detail",
                 "recorded_at"],
    )


def record(store: Store, batches: list[Batch], run_id: str, event: str, *,
           job_id: str | None = None, job_status: str | None = None,
           detail: dict | list | str | None = None) -> None:
    if not batches:
        return
    text = detail if detail is None or isinstance(detail, str) else json.dumps(detail)
    store.write(TABLE, _rows(batches, run_id, event, job_id, job_status, text))


@dataclass(frozen=True)
class OpenBatch:
    batch: Batch
    job_id: str | None       # None: recorded, but the POST's answer was never recorded
    recorded_at: datetime    # when it was last recorded (before its POST)


def open_batches(store: Store) -> list[OpenBatch]:
    """Batches whose latest event is `recorded` or `submitted`."""
    events = store.read(TABLE)
    if events.empty:
        return []
    events = events.sort_values("recorded_at", kind="stable")
    # The job id, once known, is carried by later events; keep the last one seen.
    job_ids = events.dropna(subset=["job_id"]).groupby("batch_id")["job_id"].last()
    recorded = events[events["event"] == "recorded"].groupby("batch_id")["recorded_at"].last()
    latest = events.groupby("batch_id").tail(1)
    out = []
    for row in latest[latest["event"].isin(OPEN_EVENTS)].itertuples(index=False):
        batch = Batch(
            batch_id=row.batch_id,
            emergency_enabled=bool(row.emergency_enabled),
            emergency_address_id=None if pd.isna(row.emergency_address_id)
            else row.emergency_address_id,
            id_kind=row.id_kind,
            identifiers=tuple(row.identifiers),
        )
        job_id = job_ids.get(row.batch_id) if row.event == "submitted" else None
        out.append(OpenBatch(batch, job_id, recorded.get(row.batch_id, row.recorded_at)))
    return out
