"""Results into the analytics file's history, exactly once, whoever publishes them.

A run publishes its own outcome rows at its end. A run that stopped before that (killed, or
its step failed) leaves closed ledger batches unpublished; the next apply run on the account
publishes their numbers' results to the outcomes file that run used, attributed to that
run and its source (rule 5: a run never closes another run's batches without recording
their outcomes). Rows are written with `replace_on`, so publishing twice lands them once,
and a run's own later outcome rows replace the ones published for it.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from emergency_pipeline.analytics.outcomes import COLUMNS
from emergency_pipeline.stage_files import StageRef
from emergency_pipeline.safety_store import Ledger, LedgerBatch
from emergency_pipeline.analytics.store import Store

if TYPE_CHECKING:
    from emergency_pipeline.applying.number_result import NumberResult


def orphan_outcomes(batch: LedgerBatch, results: list[NumberResult], by_run: str,
                    recorded_at: datetime, account_label: str | None = None) -> pd.DataFrame:
    """Outcome rows of a batch whose run stopped before recording them (pure)."""
    rows = []
    for r in results:
        ident = r.identifier
        by_e164 = batch.batch.id_kind == "e164"
        note = f"recorded by run {by_run} after the submitting run stopped"
        rows.append({
            "run_id": batch.run_id, "source": batch.source,
            "phone_number": ident if by_e164 else None, "number_id": None if by_e164 else ident,
            "target_enabled": batch.batch.emergency_enabled,
            "target_address_id": batch.batch.emergency_address_id,
            "result": r.result,
            "reason": "; ".join(filter(None, [r.reason, note])),
            "batch_id": batch.batch.batch_id, "job_id": r.job_id or batch.job_id,
            "job_status": r.job_status, "error_code": r.error_code,
            "error_title": r.error_title, "error_detail": r.error_detail,
            "error_pointer": r.error_pointer, "submitted_at": batch.submitted_at,
            "finished_at": pd.to_datetime(r.finished_at, utc=True, errors="coerce"),
            "recorded_at": recorded_at, "applied": True, "account": account_label,
        })
    frame = pd.DataFrame(rows, columns=COLUMNS).astype(object)
    return frame.assign(target_enabled=frame["target_enabled"].astype("boolean"))


def reachable(database: str | None) -> bool:
    """True when an outcomes file named in the ledger can be written from here: an absolute
    path whose folder exists and is writable on this host (another machine's path, or a
    relative one that older runs stored, is not)."""
    if not database:
        return False
    path = Path(database)
    return path.is_absolute() and os.access(path.parent, os.W_OK | os.X_OK) and (
        not path.exists() or os.access(path, os.W_OK))


def publish_orphans(ledger: Ledger, account: str, run_id: str, log: Any,
                    store_for_path: Any, own_db: str, account_label: str | None = None) -> int:
    """Publish the results of other runs' closed batches that never reached their outcomes
    table; returns how many numbers' results were published.

    Each lands in the outcomes file its run named when that is reachable from here, else in
    this run's own (`own_db`), still attributed to the run that submitted it; the ledger
    marks it published, so it lands once."""
    pending = ledger.unpublished(account, exclude_run=run_id)
    if not pending:
        return 0
    now = datetime.now(timezone.utc)
    published = 0
    for batch in pending:
        results = ledger.results([batch.key])
        frame = orphan_outcomes(batch, results, run_id, now, account_label)
        target = batch.outcomes_db if reachable(batch.outcomes_db) else own_db
        where = store_for_path(target).write(
            "operation_outcomes", frame, replace_on=("run_id", "batch_id"))
        moved = "" if target == batch.outcomes_db else (
            f" into {target}, since its own outcomes file {batch.outcomes_db or '(none)'} "
            "cannot be written from here")
        log.warning(f"run {batch.run_id} stopped before recording the results of batch "
                    f"{batch.batch.batch_id}: {len(frame)} recorded for it{moved} ({where})")
        ledger.mark_published([batch.key])
        published += len(frame)
    return published


def publish_run(store: Store, outcomes: StageRef, ledger: Ledger | None, run_id: str) -> str:
    """A run's own outcome rows (its outcomes stage file): all of them replace whatever was
    published for the run."""
    where = store.copy_from("operation_outcomes", outcomes.path, "SELECT * FROM src.outcomes",
                            replace_on=("run_id",), rows=outcomes.rows)
    if ledger is not None:
        ledger.mark_published(
            b.key for b in ledger.batches_of_run(run_id) if b.state in ("finished", "rejected"))
    return where
