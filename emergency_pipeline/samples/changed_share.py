"""A desired state of a whole account with a share of its numbers changed: the workload of
the side-by-side benchmark (issue 12) and of the read-back tests.

Every number is listed as it is, except `share` of all numbers: half of those enabled (at an
address of the account), a quarter disabled, a quarter moved to another address. Only numbers
whose status allows emergency service and whose service is not in transition are changed.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from emergency_pipeline import telnyx_contract as contract

HEADER = ["phone_number", "emergency_enabled", "emergency_address_id"]


@dataclass
class Changes:
    """Number id -> its target (an address id, or None when disabled)."""
    targets: dict[str, str | None] = field(default_factory=dict)

    def per_target(self) -> dict[str | None, int]:
        out: dict[str | None, int] = {}
        for target in self.targets.values():
            out[target] = out.get(target, 0) + 1
        return out


def _changeable(n: dict) -> bool:
    return (n["status"] in contract.NUMBER_STATUSES_ALLOWING_EMERGENCY
            and n["emergency_status"] not in contract.EMERGENCY_STATUSES_IN_TRANSITION)


def choose_changes(numbers: list[dict], address_ids: list[str], share: float,
                   seed: int) -> Changes:
    rng = random.Random(seed)
    want = int(len(numbers) * share)
    off = [n for n in numbers if _changeable(n) and not n["emergency_enabled"]]
    on = [n for n in numbers if _changeable(n) and n["emergency_enabled"]]
    enable = rng.sample(off, min(want // 2, len(off)))
    moved = rng.sample(on, min(want - len(enable), len(on)))
    disable, relocate = moved[:len(moved) // 2], moved[len(moved) // 2:]
    out = Changes()
    for n in enable:
        out.targets[n["id"]] = rng.choice(address_ids)
    for n in disable:
        out.targets[n["id"]] = None
    for n in relocate:
        others = [a for a in address_ids if a != n["emergency_address_id"]]
        out.targets[n["id"]] = rng.choice(others)
    return out


def write_changed_state(numbers: Iterable[dict], address_ids: list[str], path: Path,
                        share: float, seed: int) -> Changes:
    """The CSV at `path` (phone_number, emergency_enabled, emergency_address_id), every number
    of `numbers`; returns the changes made."""
    numbers = list(numbers)
    changes = choose_changes(numbers, address_ids, share, seed)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for n in numbers:
            if n["id"] in changes.targets:
                target = changes.targets[n["id"]]
                on, addr = target is not None, target or ""
            else:
                on, addr = bool(n["emergency_enabled"]), n["emergency_address_id"] or ""
                if not on:
                    addr = ""   # a disabled number's row names no address (the spec's rule)
            w.writerow([n["phone_number"], "true" if on else "false", addr])
    return changes
