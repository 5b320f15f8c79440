"""Batches for update_emergency_settings jobs (pure).

A batch holds at most max_size identifiers that share one target (emergency_enabled +
emergency_address_id) and one identifier kind (Telnyx refuses a job mixing ids and E.164).
Identifiers are sorted and chunked in order, and batch_id is a hash of the target, the kind and the
identifiers, so planning the same work twice gives the same batches with the same ids (the job
runner uses that to recognise a batch it has submitted before).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from emergency_pipeline import telnyx_contract as contract
from emergency_pipeline.planning.plan import ACTIONABLE_SQL


@dataclass(frozen=True)
class Batch:
    batch_id: str
    emergency_enabled: bool
    emergency_address_id: str | None
    id_kind: str                      # "id" | "e164"
    identifiers: tuple[str, ...]      # sorted, unique
    # (action, count) pairs, for reports; not part of the batch's identity.
    action_counts: tuple[tuple[str, int], ...] = field(default=(), compare=False)

    def narrowed(self, identifiers) -> Batch:
        """The same target and kind for only these identifiers (a batch of its own id)."""
        return batch_of(identifiers, self.emergency_enabled, self.emergency_address_id,
                        self.id_kind, self.action_counts)


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


# Batches in SQL over the plan's actionable rows: DuckDB dedupes and sorts them, and they are
# chunked as they stream out, so only the identifiers themselves become Python objects (a
# 500,000-change plan read as a frame of all its columns cost about 1 GB). A disable job
# carries no address, whatever the row said; an identifier asked for twice with the same
# target counts once.
_TARGETS_SQL = f"""
SELECT CAST(identifier AS VARCHAR) AS identifier, CAST(id_kind AS VARCHAR) AS id_kind,
       CAST(target_enabled AS BOOLEAN) AS enabled,
       CASE WHEN CAST(target_enabled AS BOOLEAN)
            THEN coalesce(CAST(target_address_id AS VARCHAR), '') ELSE '' END AS address,
       min(CAST(action AS VARCHAR)) AS action
FROM {{plan}} WHERE action IN ({ACTIONABLE_SQL}) GROUP BY ALL
"""
_CLASH_SQL = """
SELECT identifier FROM ({targets}) GROUP BY identifier HAVING count(*) > 1
ORDER BY identifier LIMIT 10
"""
_SORTED_SQL = "SELECT * FROM ({targets}) ORDER BY enabled, address, id_kind, identifier"


def plan_batches(con, plan: str, max_size: int = contract.MAX_NUMBERS_PER_JOB) -> list[Batch]:
    """The batches of a plan table (its name as con knows it), in a stable order: by target,
    then identifier kind, then identifier."""
    _check_size(max_size)
    targets = _TARGETS_SQL.format(plan=plan)
    clash = [r[0] for r in con.execute(_CLASH_SQL.format(targets=targets)).fetchall()]
    if clash:
        # Two targets for one number would be two jobs racing on it (design rule 3).
        raise ValueError("the plan asks for different settings on the same number: "
                         + ", ".join(clash))
    con.execute(_SORTED_SQL.format(targets=targets))
    rows = itertools.chain.from_iterable(iter(lambda: con.fetchmany(10_000), []))
    batches: list[Batch] = []
    # rows: identifier, id_kind, enabled, address, action; sorted by target, kind, identifier
    for (kind, enabled, address), group in itertools.groupby(rows, key=lambda r: r[1:4]):
        while chunk := list(itertools.islice(group, max_size)):
            batches.append(batch_of([r[0] for r in chunk], enabled, address or None, kind,
                                    tuple(sorted(Counter(r[4] for r in chunk).items()))))
    return batches


def make_batches(plan: pd.DataFrame, max_size: int = contract.MAX_NUMBERS_PER_JOB) -> list[Batch]:
    """The batches of a plan frame (tests, small inputs): the same SQL as plan_batches."""
    from emergency_pipeline.duckdb_pool import borrowed

    with borrowed() as con:     # the frame's registration goes with the borrowed connection
        con.register("plan_frame", plan)
        return plan_batches(con, "plan_frame", max_size)


def other_names(con, plan: str) -> dict[str, str]:
    """Each actionable identifier's other name (id <-> E.164), for the pre-wave check."""
    return dict(con.execute(
        "SELECT CAST(identifier AS VARCHAR), CAST(CASE WHEN id_kind = 'e164' THEN number_id "
        f"ELSE phone_number END AS VARCHAR) FROM {plan} WHERE action IN ({ACTIONABLE_SQL}) "
        "AND number_id IS NOT NULL AND phone_number IS NOT NULL").fetchall())
