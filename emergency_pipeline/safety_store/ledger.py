"""The ledgers: every job batch and address creation, recorded before its POST.

Per account, in the safety store beside the lease (not per DuckDB file): the next apply run on
the account resumes a killed run wherever that run's outcomes were to go (`outcomes_db`, stored
exactly as given: callers pass absolute paths). Not in the analytics DuckDB file either: an
analyst holding that file never blocks a run from recording what it submits (design rule 8).

A batch row moves through states (each move also appended to `batch_events`, the audit):
  recorded    written before the POST (the job may or may not exist afterwards)
  unanswered  the POST got no answer and no job was found in the look-up window
  submitted   the job id is known (created or adopted)
  rejected    Telnyx answered 422 (its numbers' results are recorded with it)
  finished    the job reached a terminal status (its numbers' results are recorded with it)
  abandoned   no job was ever made for it: nothing to follow, its numbers are planned afresh
`recorded`, `unanswered` and `submitted` are open. A batch is closed only in the same
transaction that records its numbers' results (`number_results`), so a result is never lost
between a job's end and its outcome rows (rule 5). `published_at` says when those results
reached an analytics file's `operation_outcomes`. Times are the store's clock
(`SafetyStore.now()`), except `telnyx_recorded_at` (Telnyx's clock, as the client estimates it).

The Ledger also holds the numbers left to verify at the next snapshot
(pending_verification.py) and the address creations (address_intents.py): one store, one
object for the callers.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emergency_pipeline.applying.number_result import Key, NumberResult, Origin
from emergency_pipeline.planning.batching import Batch
from emergency_pipeline.safety_store.address_intents import AddressIntents
from emergency_pipeline.safety_store.lease import utc
from emergency_pipeline.safety_store.pending_verification import PendingVerifications, supersede

if TYPE_CHECKING:
    from emergency_pipeline.safety_store.fence import HeldLease

OPEN_STATES = ("recorded", "unanswered", "submitted")
RESULT_FIELDS = ("result", "reason", "job_id", "job_status", "error_code", "error_title",
                 "error_detail", "error_pointer", "finished_at")


@dataclass(frozen=True)
class BatchClose:
    """A batch closed with its numbers' results (rule 5): `finished` (its job reached a
    terminal status: job_id and job_status from it) or `rejected` (Telnyx refused its POST)."""

    key: Key
    state: str
    job_id: str | None
    job_status: str | None
    results: Sequence[NumberResult]


@dataclass(frozen=True)
class LedgerBatch:
    """A batch as the ledger holds it: what was (or will be) sent, by which run, and where."""

    batch: Batch
    run_id: str
    account: str
    source: str | None
    outcomes_db: str | None
    state: str
    job_id: str | None
    job_status: str | None
    recorded_at: datetime
    submitted_at: datetime | None
    telnyx_recorded_at: datetime | None = None
    # The latest moment its POST may have gone out, when later than recorded_at: a run that
    # took the lease over from this batch's run while it was possibly alive writes down the
    # takeover (that run's fence stopped it sending after it).
    sent_by: datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.run_id, self.batch.batch_id


class Ledger(PendingVerifications, AddressIntents):
    """The job and address ledgers of one safety store (any backend)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def __repr__(self) -> str:
        return f"Ledger({self.backend.describe()!r})"

    @property
    def path(self) -> Path | None:
        """The SQLite file (None on PostgreSQL)."""
        return getattr(self.backend, "path", None)

    def _now(self, con: Any) -> float:
        return con.execute(f"SELECT {self.backend.now_sql}").fetchone()[0]

    def now(self) -> datetime:
        """The store's clock, the one recorded_at and sent_by are on."""
        with self.backend.transaction(write=False) as con:
            return utc(self._now(con))

    # -- job batches -----------------------------------------------------------------------

    def record(self, batches: Sequence[Batch], *, run_id: str, account: str,
               source: str | None, outcomes_db: str | None, detail: str | None = None,
               fence: HeldLease | None = None,
               telnyx_recorded_at: datetime | None = None) -> None:
        """Record a wave of batches, in one transaction, before any of their POSTs. With a
        fence, the lease token is checked (and renewed) in that transaction: LeaseLost, and
        nothing written, if it is no longer current."""
        if fence is not None and fence.holder.account != account:
            raise ValueError(f"the fence holds the lease of {fence.holder.account}, not of "
                             f"{account}: record a wave under its own account's lease")
        telnyx_at = None if telnyx_recorded_at is None else telnyx_recorded_at.timestamp()
        started = None
        with self.backend.transaction() as con:
            if fence is not None:
                started = fence.confirm_in(con)
            now = self._now(con)
            con.executemany(
                "INSERT INTO batches (run_id, batch_id, account, source, outcomes_db, "
                "emergency_enabled, emergency_address_id, id_kind, identifiers, number_count, "
                "state, detail, recorded_at, telnyx_recorded_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,'recorded',?,?,?) "
                "ON CONFLICT (run_id, batch_id) DO UPDATE SET state='recorded', "
                "recorded_at=excluded.recorded_at, detail=excluded.detail, "
                "telnyx_recorded_at=excluded.telnyx_recorded_at",
                [(run_id, b.batch_id, account, source, outcomes_db, int(b.emergency_enabled),
                  b.emergency_address_id, b.id_kind, json.dumps(list(b.identifiers)),
                  len(b.identifiers), detail, now, telnyx_at) for b in batches])
            _events(con, [(run_id, b.batch_id) for b in batches], run_id, "recorded",
                    detail=detail, at=now)
            supersede(con, account, batches)
        if fence is not None and started is not None:
            fence.confirmed(started)

    def move(self, keys: Iterable[tuple[str, str]], state: str, *, by_run: str,
             job_id: str | None = None, job_status: str | None = None,
             detail: str | None = None, sent_by: datetime | None = None) -> None:
        """Move open batches to `state` (submitted, unanswered, abandoned): no results.
        `sent_by` (store clock): their POST may have gone out until then."""
        keys = list(keys)
        if state in ("finished", "rejected"):
            raise ValueError("closing a batch records its results: use close()")
        with self.backend.transaction() as con:
            now = self._now(con)
            submitted_at = now if state == "submitted" else None
            closed_at = now if state == "abandoned" else None
            con.executemany(
                "UPDATE batches SET state=?, job_id=coalesce(?, job_id), "
                "job_status=coalesce(?, job_status), detail=?, "
                "submitted_at=coalesce(submitted_at, ?), closed_at=?, "
                "sent_by=coalesce(?, sent_by) WHERE run_id=? AND batch_id=?",
                [(state, job_id, job_status, detail, submitted_at, closed_at,
                  None if sent_by is None else sent_by.timestamp(), r, b)
                 for r, b in keys])
            _events(con, keys, by_run, state, job_id=job_id, job_status=job_status,
                    detail=detail, at=now)

    def submitted(self, items: Sequence[tuple[tuple[str, str], str, str | None, str | None]],
                  *, by_run: str) -> None:
        """A wave's job ids, in one transaction: ((run_id, batch_id), job_id, job_status,
        detail) per batch."""
        if not items:
            return
        with self.backend.transaction() as con:
            now = self._now(con)
            con.executemany(
                "UPDATE batches SET state='submitted', job_id=?, job_status=?, detail=?, "
                "submitted_at=coalesce(submitted_at, ?) WHERE run_id=? AND batch_id=?",
                [(job, status, detail, now, r, b) for (r, b), job, status, detail in items])
            con.executemany(
                "INSERT INTO batch_events VALUES (?,?,?,?,?,?,?,?)",
                [(r, b, by_run, "submitted", job, status, detail, now)
                 for (r, b), job, status, detail in items])

    def close(self, closing: Sequence[BatchClose], *, by_run: str) -> None:
        """Close batches together with their numbers' results, in one transaction."""
        if not closing:
            return
        with self.backend.transaction() as con:
            now = self._now(con)
            self.backend.insert_text_rows(
                con, "number_results", ("run_id", "batch_id", "identifier", *RESULT_FIELDS),
                [(c.key[0], c.key[1], str(r.identifier),
                  *[None if (v := getattr(r, f)) is None else str(v) for f in RESULT_FIELDS])
                 for c in closing for r in c.results],
                "ON CONFLICT (run_id, batch_id, identifier) DO UPDATE SET "
                + ", ".join(f"{f}=excluded.{f}" for f in RESULT_FIELDS))
            con.executemany(
                "UPDATE batches SET state=?, job_id=coalesce(?, job_id), "
                "job_status=coalesce(?, job_status), closed_at=? "
                "WHERE run_id=? AND batch_id=?",
                [(c.state, c.job_id, c.job_status, now, *c.key) for c in closing])
            con.executemany(
                "INSERT INTO batch_events VALUES (?,?,?,?,?,?,?,?)",
                [(*c.key, by_run, c.state, c.job_id, c.job_status,
                  f"{len(c.results)} results", now) for c in closing])

    def mark_published(self, keys: Iterable[tuple[str, str]]) -> None:
        keys = list(keys)
        if not keys:
            return
        with self.backend.transaction() as con:
            now = self._now(con)
            con.executemany("UPDATE batches SET published_at=? WHERE run_id=? AND batch_id=?",
                            [(now, r, b) for r, b in keys])

    def import_legacy(self, path: str | Path, address_account: str,
                      legacy_keys: Collection[str] = ()) -> int | None:
        """Bring an old `<database>.state/ledger.sqlite` in, once (legacy.py): its open
        batches are then resumed like any other. The number of batches, or None."""
        from emergency_pipeline.safety_store.legacy import import_legacy_ledger
        return import_legacy_ledger(self.backend, path, address_account, legacy_keys)

    # -- reads -----------------------------------------------------------------------------

    def _select(self, where: str, params: Sequence[Any]) -> list[LedgerBatch]:
        with self.backend.transaction(write=False) as con:
            rows = con.execute(
                "SELECT run_id, batch_id, account, source, outcomes_db, emergency_enabled, "
                "emergency_address_id, id_kind, identifiers, state, job_id, job_status, "
                "recorded_at, submitted_at, telnyx_recorded_at, sent_by FROM batches WHERE "
                + where
                + " ORDER BY recorded_at, batch_id", list(params)).fetchall()
        return [LedgerBatch(
            batch=Batch(batch_id=r[1], emergency_enabled=bool(r[5]), emergency_address_id=r[6],
                        id_kind=r[7], identifiers=tuple(json.loads(r[8]))),
            run_id=r[0], account=r[2], source=r[3], outcomes_db=r[4], state=r[9],
            job_id=r[10], job_status=r[11], recorded_at=utc(r[12]),
            submitted_at=utc(r[13]), telnyx_recorded_at=utc(r[14]), sent_by=utc(r[15]))
            for r in rows]

    def open_batches(self, account: str) -> list[LedgerBatch]:
        """Batches of this account that no run has seen to the end."""
        marks = ",".join("?" * len(OPEN_STATES))
        return self._select(f"account = ? AND state IN ({marks})", [account, *OPEN_STATES])

    def job_ids(self, account: str) -> set[str]:
        """Every job id the ledger holds for this account (none of them is a new POST's)."""
        with self.backend.transaction(write=False) as con:
            return {r[0] for r in con.execute(
                "SELECT DISTINCT job_id FROM batches WHERE account = ? AND job_id IS NOT NULL",
                [account]).fetchall()}

    def batches_of_run(self, run_id: str) -> list[LedgerBatch]:
        return self._select("run_id = ?", [run_id])

    def unpublished(self, account: str, exclude_run: str) -> list[LedgerBatch]:
        """Closed batches of other runs whose results never reached the outcomes table
        (their run stopped before its outcomes step)."""
        return self._select("account = ? AND run_id <> ? AND state IN ('finished', 'rejected') "
                            "AND published_at IS NULL", [account, exclude_run])

    def results(self, keys: Iterable[Key]) -> list[NumberResult]:
        """The recorded number results of these batches (their origin: run and batch only)."""
        out: list[NumberResult] = []
        with self.backend.transaction(write=False) as con:
            for run_id, batch_id in keys:
                origin = Origin(run_id, batch_id)
                out += [NumberResult(row[0], **dict(zip(RESULT_FIELDS, row[1:])), origin=origin)
                        for row in con.execute(
                            f"SELECT identifier, {', '.join(RESULT_FIELDS)} FROM number_results "
                            "WHERE run_id=? AND batch_id=? ORDER BY identifier",
                            (run_id, batch_id)).fetchall()]
        return out


def _events(con: Any, keys: Iterable[tuple[str, str]], by_run: str, event: str, *,
            job_id: str | None = None, job_status: str | None = None,
            detail: str | None = None, at: float) -> None:
    con.executemany("INSERT INTO batch_events VALUES (?,?,?,?,?,?,?,?)",
                    [(r, b, by_run, event, job_id, job_status, detail, at) for r, b in keys])

