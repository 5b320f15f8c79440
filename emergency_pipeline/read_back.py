"""The account read back after apply: the numbers whose job succeeded, by few requests.

A number's target is the address it should now have, or none when it was disabled. For each
target the spec's `filter[emergency_address_id]` lists the numbers the account holds there
(the string "null": those with no emergency address). The listing's first page tells how many
pages remain; if that is no more than the target's numbers not yet seen, the listing is paged
on, else those numbers are fetched by id. A target of one number is fetched by id at once.

A number absent from its target's complete listing is not at its target. It is fetched by id
so that the check can show what the account holds instead: a few requests when the account
disagrees, none when it agrees.

Every read request returns at most one page of 250 numbers, so reading back c changed numbers
takes at least ceil(c / 250) requests; a target's listing also holds the numbers that were
there before the run, which is what makes a crowded target cheaper by id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FIELDS = ("id", "emergency_enabled", "emergency_address_id")
# The spec's value of filter[emergency_address_id] for numbers with no emergency address.
NO_ADDRESS = "null"


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


def target_of(enabled: bool, address_id: str | None) -> str | None:
    """The filter value that lists a number once its change is done; None when unknown."""
    if not enabled:
        return NO_ADDRESS
    return address_id or None


def read_back(client: Any, targets: Mapping[str, str | None], log: Any) -> ReadBack:
    """targets: number id -> target_of(...) of its change. Reads every one of them."""
    groups: dict[str | None, list[str]] = {}
    for number_id, target in targets.items():
        groups.setdefault(target, []).append(number_id)
    out = ReadBack()
    by_id = groups.pop(None, [])
    for target, ids in sorted(groups.items()):
        if len(ids) == 1:
            by_id.extend(ids)
            continue
        filters = {"emergency_address_id": target}
        first = client.first_phone_numbers_page(filters, FIELDS)
        out.pages += 1
        wanted = set(ids)
        seen = {r["id"]: r for r in first.records if r.get("id") in wanted}
        rest = [i for i in ids if i not in seen]
        if first.total_pages - 1 <= len(rest):
            out.targets_listed += 1
            out.pages += first.total_pages - 1
            listed = client.list_phone_numbers(filters=filters, fields=FIELDS, first=first)
            out.records.update((r["id"], r) for r in listed if r.get("id") in wanted)
            missing = [i for i in ids if i not in out.records]
            if missing:
                log.warning(f"{len(missing)} numbers are not at {target} after their job "
                            "succeeded: reading them by id")
            by_id.extend(missing)
        else:
            out.records.update(seen)
            by_id.extend(rest)
    if by_id:
        out.by_id = len(by_id)
        out.records.update((r["id"], r) for r in client.get_phone_numbers(by_id))
    log.info(f"read back {len(targets)} numbers in {out.requests} requests: "
             f"{out.targets_listed} of {len(groups)} targets listed ({out.pages} pages), "
             f"{out.by_id} by id")
    return out
