"""The ledgers: every job batch and address creation, recorded before its POST (SQLite).

Safety state lives in its own small SQLite file (`<state dir>/ledger.sqlite`), not in the
analytics DuckDB file: an analyst holding that file never blocks a run from reading or
writing what it submitted (design rule 8). SQLite in WAL mode lets several processes read
while one writes, with no server to run.

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
reached the analytics file's `operation_outcomes`.

`to_verify` holds the numbers whose job succeeded but whose run did not read them back (too
dear then: see read_back.py), one row per number of an account, the latest run's target; the
next snapshot verifies them and an apply run deletes the rows it checked. Recording a new
job for a number deletes its row: the older target is no longer wanted.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from emergency_pipeline.batching import Batch

OPEN_STATES = ("recorded", "unanswered", "submitted")
RESULT_FIELDS = ("result", "reason", "job_id", "job_status", "error_code", "error_title",
                 "error_detail", "error_pointer", "finished_at")

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    run_id TEXT NOT NULL, batch_id TEXT NOT NULL, account TEXT NOT NULL, source TEXT,
    outcomes_db TEXT, emergency_enabled INTEGER, emergency_address_id TEXT, id_kind TEXT,
    identifiers TEXT, number_count INTEGER, state TEXT NOT NULL, job_id TEXT,
    job_status TEXT, detail TEXT, recorded_at REAL, submitted_at REAL, closed_at REAL,
    published_at REAL, PRIMARY KEY (run_id, batch_id)
);
CREATE INDEX IF NOT EXISTS batches_open ON batches (account, state);
CREATE TABLE IF NOT EXISTS batch_events (
    run_id TEXT, batch_id TEXT, by_run TEXT, event TEXT, job_id TEXT, job_status TEXT,
    detail TEXT, at REAL
);
CREATE TABLE IF NOT EXISTS number_results (
    run_id TEXT NOT NULL, batch_id TEXT NOT NULL, identifier TEXT NOT NULL, result TEXT,
    reason TEXT, job_id TEXT, job_status TEXT, error_code TEXT, error_title TEXT,
    error_detail TEXT, error_pointer TEXT, finished_at TEXT,
    PRIMARY KEY (run_id, batch_id, identifier)
);
CREATE TABLE IF NOT EXISTS to_verify (
    account TEXT NOT NULL, number_id TEXT NOT NULL, phone_number TEXT,
    target_enabled INTEGER NOT NULL, target_address_id TEXT, run_id TEXT NOT NULL,
    recorded_at REAL NOT NULL, PRIMARY KEY (account, number_id)
);
CREATE TABLE IF NOT EXISTS address_events (
    address_key TEXT, run_id TEXT, event TEXT, address_id TEXT, fields TEXT, detail TEXT,
    at REAL
);
"""


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

    @property
    def key(self) -> tuple[str, str]:
        return self.run_id, self.batch.batch_id


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


class Ledger:
    """The job and address ledgers of one deployment, in one SQLite file."""

    def __init__(self, path: str | Path, busy_timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout = busy_timeout
        con = sqlite3.connect(self.path, timeout=busy_timeout)
        try:
            con.execute("PRAGMA journal_mode=WAL")   # readers never wait on the writer
            con.executescript(SCHEMA)                # commits by itself
        finally:
            con.close()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction: committed on success, rolled back on error; the file is opened
        per transaction so that a ledger object is safe to share between threads."""
        con = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            con.execute("PRAGMA synchronous=FULL")   # a recorded batch survives a power cut
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()

    # -- job batches -----------------------------------------------------------------------

    def record(self, batches: Sequence[Batch], *, run_id: str, account: str,
               source: str | None, outcomes_db: str | None, detail: str | None = None) -> None:
        """Record a wave of batches, in one transaction, before any of their POSTs."""
        now = time.time()
        with self._tx() as con:
            con.executemany(
                "INSERT INTO batches (run_id, batch_id, account, source, outcomes_db, "
                "emergency_enabled, emergency_address_id, id_kind, identifiers, number_count, "
                "state, detail, recorded_at) VALUES (?,?,?,?,?,?,?,?,?,?,'recorded',?,?) "
                "ON CONFLICT (run_id, batch_id) DO UPDATE SET state='recorded', "
                "recorded_at=excluded.recorded_at, detail=excluded.detail",
                [(run_id, b.batch_id, account, source, outcomes_db, int(b.emergency_enabled),
                  b.emergency_address_id, b.id_kind, json.dumps(list(b.identifiers)),
                  len(b.identifiers), detail, now) for b in batches])
            self._events(con, [(run_id, b.batch_id) for b in batches], run_id, "recorded",
                         detail=detail, at=now)
            _supersede_verification(con, account, batches)

    def move(self, keys: Iterable[tuple[str, str]], state: str, *, by_run: str,
             job_id: str | None = None, job_status: str | None = None,
             detail: str | None = None) -> None:
        """Move open batches to `state` (submitted, unanswered, abandoned): no results."""
        keys = list(keys)
        if state in ("finished", "rejected"):
            raise ValueError("closing a batch records its results: use close()")
        now = time.time()
        with self._tx() as con:
            for run_id, batch_id in keys:
                con.execute(
                    "UPDATE batches SET state=?, job_id=coalesce(?, job_id), "
                    "job_status=coalesce(?, job_status), detail=?, "
                    "submitted_at=CASE WHEN ? = 'submitted' THEN coalesce(submitted_at, ?) "
                    "ELSE submitted_at END, closed_at=CASE WHEN ? = 'abandoned' THEN ? END "
                    "WHERE run_id=? AND batch_id=?",
                    (state, job_id, job_status, detail, state, now, state, now, run_id,
                     batch_id))
            self._events(con, keys, by_run, state, job_id=job_id, job_status=job_status,
                         detail=detail, at=now)

    def submitted(self, items: Sequence[tuple[tuple[str, str], str, str | None, str | None]],
                  *, by_run: str) -> None:
        """A wave's job ids, in one transaction: ((run_id, batch_id), job_id, job_status,
        detail) per batch."""
        if not items:
            return
        now = time.time()
        with self._tx() as con:
            con.executemany(
                "UPDATE batches SET state='submitted', job_id=?, job_status=?, detail=?, "
                "submitted_at=coalesce(submitted_at, ?) WHERE run_id=? AND batch_id=?",
                [(job, status, detail, now, r, b) for (r, b), job, status, detail in items])
            for key, job, status, detail in items:
                self._events(con, [key], by_run, "submitted", job_id=job, job_status=status,
                             detail=detail, at=now)

    def close(self, closing: Sequence[tuple[tuple[str, str], str, str | None, str | None,
                                             list[dict[str, Any]]]], *, by_run: str) -> None:
        """Close batches together with their numbers' results, in one transaction.

        closing: ((run_id, batch_id), state 'finished' | 'rejected', job_id, job_status,
        results: [{identifier, result, reason, error_..., finished_at}]).
        """
        if not closing:
            return
        now = time.time()
        with self._tx() as con:
            for (run_id, batch_id), state, job_id, job_status, results in closing:
                con.executemany(
                    "INSERT OR REPLACE INTO number_results (run_id, batch_id, identifier, "
                    + ", ".join(RESULT_FIELDS) + ") VALUES (?,?,?" + ",?" * len(RESULT_FIELDS)
                    + ")",
                    [(run_id, batch_id, r["identifier"],
                      *[None if r.get(f) is None else str(r[f]) for f in RESULT_FIELDS])
                     for r in results])
                con.execute(
                    "UPDATE batches SET state=?, job_id=coalesce(?, job_id), "
                    "job_status=coalesce(?, job_status), closed_at=? "
                    "WHERE run_id=? AND batch_id=?",
                    (state, job_id, job_status, now, run_id, batch_id))
                self._events(con, [(run_id, batch_id)], by_run, state, job_id=job_id,
                             job_status=job_status, detail=f"{len(results)} results", at=now)

    def mark_published(self, keys: Iterable[tuple[str, str]]) -> None:
        keys = list(keys)
        if not keys:
            return
        now = time.time()
        with self._tx() as con:
            con.executemany("UPDATE batches SET published_at=? WHERE run_id=? AND batch_id=?",
                            [(now, r, b) for r, b in keys])

    @staticmethod
    def _events(con: sqlite3.Connection, keys: Iterable[tuple[str, str]], by_run: str,
                event: str, *, job_id: str | None = None, job_status: str | None = None,
                detail: str | None = None, at: float) -> None:
        con.executemany(
            "INSERT INTO batch_events VALUES (?,?,?,?,?,?,?,?)",
            [(r, b, by_run, event, job_id, job_status, detail, at) for r, b in keys])

    # -- reads -----------------------------------------------------------------------------

    def _select(self, where: str, params: Sequence[Any]) -> list[LedgerBatch]:
        with self._tx() as con:
            rows = con.execute(
                "SELECT run_id, batch_id, account, source, outcomes_db, emergency_enabled, "
                "emergency_address_id, id_kind, identifiers, state, job_id, job_status, "
                "recorded_at, submitted_at FROM batches WHERE " + where
                + " ORDER BY recorded_at, batch_id", list(params)).fetchall()
        return [LedgerBatch(
            batch=Batch(batch_id=r[1], emergency_enabled=bool(r[5]), emergency_address_id=r[6],
                        id_kind=r[7], identifiers=tuple(json.loads(r[8]))),
            run_id=r[0], account=r[2], source=r[3], outcomes_db=r[4], state=r[9],
            job_id=r[10], job_status=r[11], recorded_at=_ts(r[12]),
            submitted_at=_ts(r[13])) for r in rows]

    def open_batches(self, account: str) -> list[LedgerBatch]:
        """Batches of this account that no run has seen to the end."""
        marks = ",".join("?" * len(OPEN_STATES))
        return self._select(f"account = ? AND state IN ({marks})", [account, *OPEN_STATES])

    def job_ids(self, account: str) -> set[str]:
        """Every job id the ledger holds for this account (none of them is a new POST's)."""
        with self._tx() as con:
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

    def results(self, keys: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
        """The recorded number results of these batches."""
        out: list[dict[str, Any]] = []
        cols = ("run_id", "batch_id", "identifier", *RESULT_FIELDS)
        with self._tx() as con:
            for run_id, batch_id in keys:
                out += [dict(zip(cols, row)) for row in con.execute(
                    f"SELECT {', '.join(cols)} FROM number_results WHERE run_id=? AND "
                    "batch_id=?", (run_id, batch_id))]
        return out

    # -- numbers left to verify at the next snapshot --------------------------------------

    def defer_verification(self, account: str, run_id: str, recorded_at: float,
                           rows: Iterable[tuple[str, str | None, bool, str | None]]) -> int:
        """(number_id, phone_number, target_enabled, target_address_id) of a run whose
        outcomes were recorded at `recorded_at` (epoch seconds). A number's row of a newer
        run replaces an older one, never the other way (a re-executed check of an old run)."""
        with self._tx() as con:
            cur = con.executemany(
                "INSERT INTO to_verify VALUES (?,?,?,?,?,?,?) ON CONFLICT (account, number_id) "
                "DO UPDATE SET phone_number=excluded.phone_number, "
                "target_enabled=excluded.target_enabled, "
                "target_address_id=excluded.target_address_id, run_id=excluded.run_id, "
                "recorded_at=excluded.recorded_at "
                "WHERE excluded.recorded_at >= to_verify.recorded_at",
                [(account, str(i), phone, int(bool(on)), address, run_id, recorded_at)
                 for i, phone, on, address in rows])
            return cur.rowcount

    def to_verify(self, account: str, recorded_before: float) -> list[dict[str, Any]]:
        """This account's numbers left to verify, of runs recorded before a time (a snapshot
        taken earlier cannot show them)."""
        cols = ("number_id", "phone_number", "target_enabled", "target_address_id", "run_id",
                "recorded_at")
        with self._tx() as con:
            rows = con.execute(f"SELECT {', '.join(cols)} FROM to_verify WHERE account = ? "
                               "AND recorded_at < ? ORDER BY recorded_at, number_id",
                               (account, recorded_before)).fetchall()
        return [{**dict(zip(cols, r)), "target_enabled": bool(r[2])} for r in rows]

    def verified(self, account: str, rows: Iterable[tuple[str, float]]) -> int:
        """Forget (number_id, recorded_at) rows, checked: a row a newer run replaced stays."""
        with self._tx() as con:
            return con.executemany(
                "DELETE FROM to_verify WHERE account = ? AND number_id = ? AND recorded_at <= ?",
                [(account, str(i), at) for i, at in rows]).rowcount

    # -- addresses -------------------------------------------------------------------------

    def record_address(self, key: str, run_id: str, event: str, fields: dict,
                       address_id: str | None = None, detail: str | None = None) -> None:
        with self._tx() as con:
            con.execute("INSERT INTO address_events VALUES (?,?,?,?,?,?,?)",
                        (key, run_id, event, address_id, json.dumps(fields, sort_keys=True),
                         detail, time.time()))

    def open_address_intents(self) -> set[str]:
        """Place keys whose latest event is `recorded` (a creation that may have happened)."""
        with self._tx() as con:
            rows = con.execute(
                "SELECT address_key, event FROM address_events AS e WHERE rowid = ("
                "SELECT max(rowid) FROM address_events WHERE address_key = e.address_key)"
            ).fetchall()
        return {k for k, event in rows if event == "recorded"}


def _supersede_verification(con: sqlite3.Connection, account: str,
                            batches: Sequence[Batch]) -> None:
    """A new job for a number supersedes the target an earlier run left it to verify: that
    target is no longer wanted, and the new job's success is its own run's to verify. Kept, the
    row would warn once the new job lands (a job still in flight when its run ended)."""
    if not batches or con.execute("SELECT 1 FROM to_verify WHERE account = ? LIMIT 1",
                                  (account,)).fetchone() is None:
        return
    con.execute("CREATE TEMP TABLE IF NOT EXISTS submitted_numbers (kind TEXT, identifier TEXT)")
    con.execute("DELETE FROM submitted_numbers")
    con.executemany("INSERT INTO submitted_numbers VALUES (?, ?)",
                    [(b.id_kind, i) for b in batches for i in b.identifiers])
    con.execute(
        "DELETE FROM to_verify WHERE account = ? AND ("
        "number_id IN (SELECT identifier FROM submitted_numbers WHERE kind = 'id') OR "
        "phone_number IN (SELECT identifier FROM submitted_numbers WHERE kind = 'e164'))",
        (account,))
