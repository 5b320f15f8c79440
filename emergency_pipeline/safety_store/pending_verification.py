"""Numbers left to verify at the next snapshot (the `to_verify` table of the safety store).

A run whose jobs succeeded but that did not read its numbers back (too dear then: see
applying/read_back.py) leaves one row per number, the latest run's target; the next snapshot
verifies them (steps/verification.py) and an apply run deletes the rows it checked. Recording
a new job for a number deletes its row (`supersede`): the older target is no longer wanted.
`recorded_at` is the caller's epoch seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from emergency_pipeline.planning.batching import Batch

_CHUNK = 500  # values in one IN (...) list: under every SQLite's variable limit


class PendingVerifications:
    """The to_verify rows of a safety store; part of the Ledger (`self.backend`)."""

    backend: Any

    def defer_verification(self, account: str, run_id: str, recorded_at: float,
                           rows: Iterable[tuple[str, str | None, bool, str | None]]) -> int:
        """(number_id, phone_number, target_enabled, target_address_id) of a run whose
        outcomes were recorded at `recorded_at` (epoch seconds). A number's row of a newer
        run replaces an older one, never the other way (a re-executed check of an old run)."""
        with self.backend.transaction() as con:
            return con.executemany(
                "INSERT INTO to_verify VALUES (?,?,?,?,?,?,?) ON CONFLICT (account, number_id) "
                "DO UPDATE SET phone_number=excluded.phone_number, "
                "target_enabled=excluded.target_enabled, "
                "target_address_id=excluded.target_address_id, run_id=excluded.run_id, "
                "recorded_at=excluded.recorded_at "
                "WHERE excluded.recorded_at >= to_verify.recorded_at",
                [(account, str(i), phone, int(bool(on)), address, run_id, recorded_at)
                 for i, phone, on, address in rows]).rowcount

    def to_verify(self, account: str, recorded_before: float) -> list[dict[str, Any]]:
        """This account's numbers left to verify, of runs recorded before a time (a snapshot
        taken earlier cannot show them)."""
        cols = ("number_id", "phone_number", "target_enabled", "target_address_id", "run_id",
                "recorded_at")
        with self.backend.transaction(write=False) as con:
            rows = con.execute(f"SELECT {', '.join(cols)} FROM to_verify WHERE account = ? "
                               "AND recorded_at < ? ORDER BY recorded_at, number_id",
                               (account, recorded_before)).fetchall()
        return [{**dict(zip(cols, r)), "target_enabled": bool(r[2])} for r in rows]

    def verified(self, account: str, rows: Iterable[tuple[str, float]]) -> int:
        """Forget (number_id, recorded_at) rows, checked: a row a newer run replaced stays."""
        with self.backend.transaction() as con:
            return con.executemany(
                "DELETE FROM to_verify WHERE account = ? AND number_id = ? AND recorded_at <= ?",
                [(account, str(i), at) for i, at in rows]).rowcount


def supersede(con: Any, account: str, batches: Sequence[Batch]) -> None:
    """A new job for a number supersedes the target an earlier run left it to verify: that
    target is no longer wanted, and the new job's success is its own run's to verify. Kept, the
    row would warn once the new job lands (a job still in flight when its run ended)."""
    if not batches or con.execute("SELECT 1 FROM to_verify WHERE account = ? LIMIT 1",
                                  (account,)).fetchone() is None:
        return
    for kind, column in (("id", "number_id"), ("e164", "phone_number")):
        values = [i for b in batches if b.id_kind == kind for i in b.identifiers]
        for start in range(0, len(values), _CHUNK):
            chunk = values[start:start + _CHUNK]
            con.execute(f"DELETE FROM to_verify WHERE account = ? AND {column} IN ("
                        + ",".join("?" * len(chunk)) + ")", (account, *chunk))
