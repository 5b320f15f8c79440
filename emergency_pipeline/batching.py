"""Batches for update_emergency_settings jobs (pure).

A batch holds at most max_size identifiers that share one target (emergency_enabled +
emergency_address_id) and one identifier kind (Telnyx refuses a job mixing ids and E.164).
Identifiers are sorted and chunked in order, and batch_id is a hash of the target, the kind and the
identifiers, so planning the same work twice gives the same batches with the same ids (the job
runner uses that to recognise a batch it has submitted before).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pandas as pd

from emergency_pipeline import contract
from emergency_pipeline.plan import ACTIONABLE


@dataclass(frozen=True)
class Batch:
    batch_id: str
    emergency_enabled: bool
    emergency_address_id: str | None
    id_kind: str                      # "id" | "e164"
    identifiers: tuple[str, ...]      # sorted, unique
    # (action, count) pairs, for reports; not part of the batch's identity.
    action_counts: tuple[tuple[str, int], ...] = field(default=(), compare=False)


def batch_id_for(emergency_enabled: bool, emergency_address_id: str | None, id_kind: str,
                 identifiers: tuple[str, ...]) -> str:
    payload = json.dumps([bool(emergency_enabled), emergency_address_id, id_kind,
                          list(identifiers)], separators=(",", ":"))
    return "b-" + hashlib.sha256(payload.encode()).hexdigest()[:20]


def batch_of(identifiers, emergency_enabled: bool, emergency_address_id: str | None,
             id_kind: str, action_counts: tuple[tuple[str, int], ...] = ()) -> Batch:
    """A batch of exactly these identifiers (sorted, deduplicated), with its stable id."""
    idents = tuple(sorted(set(map(str, identifiers))))
    address = None if not emergency_enabled else emergency_address_id
    return Batch(batch_id_for(emergency_enabled, address, id_kind, idents),
                 bool(emergency_enabled), address, id_kind, idents, action_counts)


def _check_size(max_size: int) -> None:
    if isinstance(max_size, bool) or not isinstance(max_size, int) \
            or not 1 <= max_size <= contract.MAX_NUMBERS_PER_JOB:
        raise ValueError(f"max_size must be an integer from 1 to {contract.MAX_NUMBERS_PER_JOB} "
                         f"(Telnyx's limit per job), not {max_size!r}")


def make_batches(plan: pd.DataFrame, max_size: int = contract.MAX_NUMBERS_PER_JOB) -> list[Batch]:
    _check_size(max_size)
    work = plan.loc[plan["action"].isin(ACTIONABLE),
                    ["identifier", "id_kind", "target_enabled", "target_address_id", "action"]]
    if work.empty:
        return []
    work = work.assign(
        target_enabled=work["target_enabled"].astype(bool),
        # A disable job carries no address, whatever the row said.
        target_address_id=work["target_address_id"].astype(object)
        .where(work["target_enabled"].astype(bool) & work["target_address_id"].notna(), ""),
        identifier=work["identifier"].astype(str),
    ).drop_duplicates(["identifier", "id_kind", "target_enabled", "target_address_id"])
    clash = work["identifier"].duplicated(keep=False)
    if clash.any():
        # Two targets for one number would be two jobs racing on it (design rule 3).
        raise ValueError("the plan asks for different settings on the same number: "
                         + ", ".join(sorted(work.loc[clash, "identifier"].unique())[:10]))
    work = work.sort_values(["target_enabled", "target_address_id", "id_kind", "identifier"],
                            kind="stable")
    batches: list[Batch] = []
    for (enabled, address, kind), grp in work.groupby(
            ["target_enabled", "target_address_id", "id_kind"], sort=True):
        idents = grp["identifier"].to_numpy()
        actions = grp["action"].to_numpy()
        for start in range(0, len(idents), max_size):
            chunk = tuple(idents[start:start + max_size])
            counts = pd.Series(actions[start:start + max_size]).value_counts().sort_index()
            batches.append(batch_of(chunk, bool(enabled), address or None, kind,
                                    tuple((str(a), int(c)) for a, c in counts.items())))
    return batches
