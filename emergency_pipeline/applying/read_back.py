"""The account read back after apply: the numbers whose job succeeded, at a cost known first.

A number's target is the address it should now have, or none when it was disabled. A target's
numbers can be read back two ways: its listing, the spec's `filter[emergency_address_id]`
(the string "null": the numbers with no address), which holds every number there, changed or
not, 250 a page; or one GET per changed number. The run's own tables give both costs before
any request (`target_counts`: the snapshot's numbers where they are, moved by the succeeded
jobs), and `plan_reads` takes the cheaper per target.

Reading back c changed numbers takes at least ceil(c / 250) requests: a tenth of the snapshot
at 10% changes, and about the whole account again when the targets are its busy sites. So the
check reads back now only within a share of the snapshot's requests (`within_budget`); past
it the numbers wait in the ledger (`to_verify`) for the next snapshot, which lists them
anyway, and `judge_at_snapshot` checks them there for no request at all.

A number absent from its target's complete listing is not at its target: it is fetched by id
so that the check can show what the account holds instead.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from emergency_pipeline.telnyx_contract import MAX_PAGE_SIZE
from emergency_pipeline.stage_files import StageRef, attached

if TYPE_CHECKING:
    from emergency_pipeline.applying.number_result import NumberResult

FIELDS = ("id", "emergency_enabled", "emergency_address_id")
# The spec's value of filter[emergency_address_id] for numbers with no emergency address.
NO_ADDRESS = "null"


def target_of(enabled: bool, address_id: str | None) -> str | None:
    """The filter value that lists a number once its change is done; None when unknown."""
    if not enabled:
        return NO_ADDRESS
    return address_id or None


def agrees(live: Mapping[str, Any] | None, enabled: bool, address_id: str | None) -> bool:
    """The number as read back holds the target: enabled at that address, or disabled with
    none. A number not read back does not."""
    if live is None:
        return False
    want = (address_id or None) if enabled else None
    return live.get("emergency_enabled") is enabled and \
        (live.get("emergency_address_id") or None) == want


# -- the cost, before any request ------------------------------------------------------------

# Per target: the numbers its listing holds once the run's changes are done. Each number is
# where the snapshot saw it unless its job succeeded, then at its target. `s`: the snapshot
# stage; `targets`: (id, target) of the succeeded numbers.
AFTER_SQL = f"""
WITH now_at AS (
    SELECT CASE WHEN t.id IS NOT NULL THEN t.target
                ELSE coalesce(n.emergency_address_id, '{NO_ADDRESS}') END AS target
    FROM s.numbers AS n FULL JOIN targets AS t ON t.id = n.id)
SELECT target, count(*) FROM now_at
WHERE target IN (SELECT target FROM targets) GROUP BY target
"""


def target_counts(snapshot: StageRef | str, targets: Mapping[str, str | None]
                  ) -> tuple[dict[str | None, int], dict[str | None, int]]:
    """(succeeded numbers per target, numbers its listing holds after the apply) from the
    snapshot stage file and `targets` (number id -> target_of(...))."""
    changed: dict[str | None, int] = {}
    for target in targets.values():
        changed[target] = changed.get(target, 0) + 1
    frame = pd.DataFrame({"id": list(targets), "target": list(targets.values())},
                         dtype="string")
    with attached({"targets": frame}, s=snapshot) as con:
        after = dict(con.execute(AFTER_SQL).fetchall())
    return changed, {t: after.get(t, 0) for t in changed}


@dataclass(frozen=True)
class ReadPlan:
    """Which targets to list (the others' numbers are read by id), and what that costs."""
    listed: frozenset[str]
    pages: int
    by_id: int

    @property
    def requests(self) -> int:
        return self.pages + self.by_id


def plan_reads(changed: Mapping[str | None, int], after: Mapping[str | None, int],
               page_size: int = MAX_PAGE_SIZE) -> ReadPlan:
    """Per target, its listing's pages or its changed numbers by id, whichever is fewer (by
    id on a tie: it reads no one else's numbers, and a number not there costs nothing more)."""
    listed: set[str] = set()
    pages = by_id = 0
    for target, n in changed.items():
        listing = max(1, math.ceil(after.get(target, 0) / page_size))
        if target is not None and listing < n:
            listed.add(target)
            pages += listing
        else:
            by_id += n
    return ReadPlan(frozenset(listed), pages, by_id)


def snapshot_pages(numbers: int, page_size: int = MAX_PAGE_SIZE) -> int:
    """The requests that listed the snapshot's numbers (one even for an empty account)."""
    return max(1, math.ceil(numbers / page_size))


def within_budget(requests: int, snapshot_requests: int, share: float) -> bool:
    """Reading back now costs at most `share` of the snapshot's requests, and always one
    request (a handful of changes is read at once). share <= 0: never; inf: always."""
    if share <= 0 or math.isnan(share):
        return False
    if math.isinf(share):
        return True
    return requests <= max(1.0, share * snapshot_requests)


# -- reading back now --------------------------------------------------------------------------


@dataclass
class ReadBack:
    """What the account holds for the numbers asked (those it knows), and how it was read."""
    records: dict[str, dict] = field(default_factory=dict)
    targets_listed: int = 0
    pages: int = 0
    by_id: int = 0

    @property
    def requests(self) -> int:
        return self.pages + self.by_id


def read_back(client: Any, targets: Mapping[str, str | None], listed: Collection[str],
              log: Any) -> ReadBack:
    """targets: number id -> target_of(...) of its change. Reads every one of them: those of
    the `listed` targets by their listing, the others by id."""
    groups: dict[str | None, list[str]] = {}
    for number_id, target in targets.items():
        groups.setdefault(target, []).append(number_id)
    out = ReadBack()
    by_id: list[str] = []
    for target, ids in sorted(groups.items(), key=lambda g: (g[0] is None, g[0] or "")):
        if target is None or target not in listed:
            by_id.extend(ids)
            continue
        filters = {"emergency_address_id": target}
        first = client.first_phone_numbers_page(filters, FIELDS)
        out.targets_listed += 1
        out.pages += max(1, first.total_pages)
        wanted = set(ids)
        got = client.list_phone_numbers(filters=filters, fields=FIELDS, first=first)
        out.records.update((r["id"], r) for r in got if r.get("id") in wanted)
        missing = [i for i in ids if i not in out.records]
        if missing:
            log.warning(f"{len(missing)} numbers are not at {target} after their job "
                        "succeeded: reading them by id")
        by_id.extend(missing)
    if by_id:
        out.by_id = len(by_id)
        out.records.update((r["id"], r) for r in client.get_phone_numbers(by_id))
    log.info(f"read back {len(targets)} numbers in {out.requests} requests: "
             f"{out.targets_listed} of {len(groups)} targets listed ({out.pages} pages), "
             f"{out.by_id} by id")
    return out


# -- successes of earlier runs' jobs, seen to their end by a later run -------------------------

def resumed_successes(results: Mapping[str, NumberResult], run_id: str,
                      snapshot: StageRef | str) -> dict[str, list[tuple]]:
    """The numbers whose earlier run's job this run followed to success, as defer_verification
    takes them, per earlier run: (number_id, phone_number, target_enabled, target_address_id).
    Their own run ended before it could read them back, and this run's check reads back only
    its own rows, so they wait for the next snapshot. A number the snapshot does not know is
    left out (it cannot be verified by id)."""
    done = [(ident, r) for ident, r in results.items()
            if r.run_id not in (None, run_id) and r.result == "succeeded"
            and r.job_target_enabled is not None]
    if not done:
        return {}
    frame = pd.DataFrame({"identifier": [i for i, _ in done]}, dtype="string")
    with attached({"wanted": frame}, s=snapshot) as con:
        found = con.execute(
            "SELECT w.identifier, n.id, n.phone_number FROM wanted AS w JOIN s.numbers AS n "
            "ON w.identifier IN (n.id, n.phone_number)").fetchall()
    ids = {ident: (number_id, phone) for ident, number_id, phone in found}
    out: dict[str, list[tuple]] = {}
    for ident, r in done:
        if ident in ids:
            number_id, phone = ids[ident]
            enabled = bool(r.job_target_enabled)
            out.setdefault(r.run_id, []).append(
                (number_id, phone, enabled, r.job_target_address_id if enabled else None))
    return out


# -- reading back at the next snapshot ---------------------------------------------------------

JUDGE_SQL = """
SELECT p.number_id, p.phone_number, p.target_enabled, p.target_address_id, p.run_id,
       p.recorded_at, n.id IS NOT NULL AS present, n.emergency_enabled,
       n.emergency_address_id,
       EXISTS (SELECT 1 FROM s.in_flight AS f
               WHERE f.identifier IN (p.number_id, p.phone_number)) AS in_flight
FROM pending AS p LEFT JOIN s.numbers AS n ON n.id = p.number_id
ORDER BY p.recorded_at, p.number_id
"""
VERDICTS = ("verified", "disagreeing", "missing", "in_flight")


def judge_at_snapshot(snapshot: StageRef | str, pending: list[dict[str, Any]]) -> pd.DataFrame:
    """Each pending number (ledger.to_verify rows) as the snapshot holds it, with its verdict:
    verified, disagreeing, missing (no longer in the account), or in_flight (a job in flight
    names it: its target may be about to change, so it stays pending)."""
    columns = ["number_id", "phone_number", "target_enabled", "target_address_id", "run_id",
               "recorded_at"]
    frame = pd.DataFrame(pending, columns=columns).astype(
        {"number_id": "string", "phone_number": "string", "target_enabled": "bool",
         "target_address_id": "string", "run_id": "string", "recorded_at": "float64"})
    with attached({"pending": frame}, s=snapshot) as con:
        out = con.execute(JUDGE_SQL).df()
    out = out.rename(columns={"emergency_enabled": "live_enabled",
                              "emergency_address_id": "live_address_id"})

    def verdict(r: Any) -> str:
        if r.in_flight:
            return "in_flight"
        if not r.present:
            return "missing"
        live = {"emergency_enabled": _bool_or_none(r.live_enabled),
                "emergency_address_id": None if pd.isna(r.live_address_id)
                else r.live_address_id}
        target = None if pd.isna(r.target_address_id) else r.target_address_id
        return "verified" if agrees(live, bool(r.target_enabled), target) else "disagreeing"

    out["verdict"] = [verdict(r) for r in out.itertuples()] if len(out) else []
    return out


def _bool_or_none(value: Any) -> bool | None:
    return None if value is None or pd.isna(value) else bool(value)
