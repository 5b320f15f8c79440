"""The two checks that verify applied targets against the account, as steps: right after
apply (`account_agrees_after_apply`: read back within a budget, else left to the next
snapshot in the ledger's to_verify) and at the next snapshot (`earlier_successes_hold`: what
earlier runs left, judged in SQL over the snapshot, no request).

Each returns a CheckOutcome; defs/checks.py turns it into Dagster's check result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from emergency_pipeline.applying.read_back import (
    VERDICTS, agrees, judge_at_snapshot, plan_reads, read_back, snapshot_pages, target_counts,
    target_of, within_budget,
)
from emergency_pipeline.client import TelnyxAPIError, TelnyxClient
from emergency_pipeline.safety_store import Ledger
from emergency_pipeline.stage_files import StageRef
from emergency_pipeline.stage_files import query as run_query
from emergency_pipeline.steps.context import StepLog

DISAGREEING_COLUMNS = ["phone_number", "number_id", "target_enabled", "target_address_id",
                       "live_enabled", "live_address_id"]


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    metadata: dict[str, Any]           # counts; `sample`, when present, is a frame
    description: str | None = None
    warn_only: bool = False            # a warning, not an error, when it does not pass
    sample: pd.DataFrame | None = field(default=None, compare=False)


def verify_after_apply(outcomes: StageRef, snapshot: StageRef, *,
                       open_client: Callable[[], TelnyxClient], ledger: Callable[[], Ledger],
                       account: Callable[[], str], max_share: float,
                       log: StepLog) -> CheckOutcome:
    """The numbers whose job succeeded in this run hold their target: read back now when that
    costs at most `max_share` of the snapshot's requests, else left to the next snapshot."""
    # Only the succeeded rows leave the stage file (a tenth of a million-row run at most).
    done = run_query("SELECT number_id, phone_number, target_enabled, target_address_id, "
                     "epoch(recorded_at) FROM o.outcomes WHERE result = 'succeeded'",
                     o=outcomes)
    if not done:
        return CheckOutcome(True, {"checked": 0},
                            "no number succeeded in this run: nothing to read back")
    # A number without an id cannot be read back: it stays unmatched below, so it disagrees.
    # (The plan submits only numbers the snapshot knows, so none should lack one.)
    targets = {str(i): target_of(bool(on), a or None)
               for i, _, on, a, _ in done if i is not None}
    reads = plan_reads(*target_counts(snapshot, targets))
    pages = snapshot_pages(snapshot.counts["numbers"])
    key, recorded_at = account(), float(done[0][4])
    rows = [(i, phone, bool(on), a or None) for i, phone, on, a, _ in done if i is not None]
    cost = {"estimated_requests": reads.requests, "snapshot_requests": pages,
            "limit": max_share}
    if not within_budget(reads.requests, pages, max_share):
        ledger().defer_verification(key, outcomes.run_id, recorded_at, rows)
        log.info(f"{len(rows)} numbers left to verify at the next snapshot "
                 f"({reads.requests} requests now would be over the budget)")
        wrong = _disagreeing([d for d in done if d[0] is None], {})
        return CheckOutcome(
            not wrong, {"checked": 0, "deferred": len(rows), **cost, "disagreeing": len(wrong)},
            f"{len(rows)} numbers left to verify at the next snapshot: reading them back now "
            f"would take {reads.requests} requests, {reads.requests / pages:.0%} of the "
            f"snapshot's (limit {max_share:.0%})" + (f"; {_named(wrong)}" if wrong else ""))
    try:
        with open_client() as client:
            got = read_back(client, targets, reads.listed, log)
    except TelnyxAPIError as exc:
        # The outcomes are recorded; a read-back the API refuses now is a failed check to
        # look at, not a failed run.
        return CheckOutcome(False, {"checked": 0, "succeeded": len(done)},
                            f"could not read the account back: {exc}", warn_only=True)
    # Verified now against this run's target: an earlier run's pending row for the same
    # number is moot.
    ledger().verified(key, [(r[0], recorded_at) for r in rows])
    wrong = _disagreeing(done, got.records)
    return CheckOutcome(
        not wrong,
        {"checked": len(done), "deferred": 0, "disagreeing": len(wrong),
         "read_back_requests": got.requests, "targets_listed": got.targets_listed,
         "read_by_id": got.by_id, **cost},
        None if not wrong else
        f"{len(wrong)} numbers whose job succeeded do not hold their target, {_named(wrong)}",
        sample=pd.DataFrame(wrong, columns=DISAGREEING_COLUMNS))


def verify_earlier_successes(snapshot: StageRef, *, ledger: Ledger, account: str,
                             applies: bool) -> CheckOutcome:
    """Numbers earlier runs left to verify hold their target in this snapshot."""
    # Only the rows recorded before this snapshot began: it cannot show later changes.
    taken = datetime.fromisoformat(snapshot.info["taken_at"]).timestamp()
    judged = judge_at_snapshot(snapshot, ledger.to_verify(account, taken))
    counts = {v: int((judged["verdict"] == v).sum()) for v in VERDICTS}
    checked = judged[judged["verdict"] != "in_flight"]
    # A plan-only run only reports: the apply runs own the ledger (they hold the lease).
    forgotten = ledger.verified(account, zip(checked["number_id"], checked["recorded_at"])) \
        if applies and len(checked) else 0
    wrong = judged[judged["verdict"] == "disagreeing"]
    return CheckOutcome(wrong.empty, {"pending": len(judged), **counts, "forgotten": forgotten},
                        _hold_description(counts, wrong), warn_only=True,
                        sample=wrong[DISAGREEING_COLUMNS])


def _disagreeing(done: list[tuple], records: dict[str, dict]) -> list[tuple]:
    """The rows of `done` whose number, as read back, does not hold its target."""
    wrong = []
    for i, phone, on, a, *_ in done:
        live = records.get(str(i)) if i is not None else None
        if not agrees(live, bool(on), a):
            live = live or {}
            wrong.append((phone, i, bool(on), a, live.get("emergency_enabled"),
                          live.get("emergency_address_id")))
    return wrong


def _named(wrong: list[tuple]) -> str:
    return "e.g. " + ", ".join(str(w[0]) for w in wrong[:3])


def _hold_description(counts: dict[str, int], wrong: pd.DataFrame) -> str:
    pending = sum(counts.values())
    if not pending:
        return "no earlier success left to verify"
    said = ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in counts.items() if n)
    if wrong.empty:
        return f"{pending} numbers earlier runs left to verify: {said}"
    return (f"{len(wrong)} of {pending} numbers whose job succeeded in an earlier run do not "
            "hold their target now, e.g. " + ", ".join(wrong["phone_number"].head(3).astype(str))
            + f" ({said})")
