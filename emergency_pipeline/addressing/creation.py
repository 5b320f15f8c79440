"""Creating one address, once: the intent recorded in the address ledger before the POST.

    create_once(client, ledger, account, key, fields, run_id, log)
        -> Created(address, adopted) | Refused(errors) | Failed(reason)

A run that finds an intent still open (its creation was never recorded) lists the account's
addresses and matches by fields before creating (addressing/places.py); after an ambiguous
failure the client does the same before sending again (client/address_calls.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emergency_pipeline.addressing.fields import describe
from emergency_pipeline.addressing.matching import AddressIndex
from emergency_pipeline.client import AddressRejected, TelnyxAPIError
from emergency_pipeline.safety_store import Ledger


@dataclass(frozen=True)
class Created:
    """Telnyx has the address: created by this POST, or `adopted` (found by listing after
    an answer that never came)."""

    address: dict
    adopted: bool

    @property
    def address_id(self) -> str:
        return str(self.address["id"])


@dataclass(frozen=True)
class Refused:
    """Telnyx refused the address (422): nothing was created; its rows are rejected."""

    errors: str


@dataclass(frozen=True)
class Failed:
    """No clear answer: the intent stays open, and the next run looks for the address before
    creating it again."""

    reason: str


Creation = Created | Refused | Failed


def create_once(client: Any, ledger: Ledger | None, account: str, key: str, fields: dict,
                run_id: str, log: Any) -> Creation:
    def find_existing() -> dict | None:
        found = AddressIndex(client.list_addresses())
        match = found.find(fields)
        return dict(found.by_id[match.ids[0]]) if match.ids else None

    if ledger is not None:
        ledger.record_address(key, run_id, "recorded", fields,   # before the POST (docstring)
                              account=account)
    try:
        made = client.create_address(fields, find_existing)
    except AddressRejected as exc:
        text = "; ".join(e.describe() for e in exc.errors) or str(exc)
        if ledger is not None:
            ledger.record_address(key, run_id, "rejected", fields, detail=text, account=account)
        return Refused(text)
    except TelnyxAPIError as exc:
        # Left `recorded`: the next run lists the addresses before creating it again.
        log.warning(f"address {describe(fields)}: {exc}")
        return Failed(str(exc))
    if ledger is not None:
        ledger.record_address(key, run_id, "adopted" if made.adopted else "created", fields,
                              address_id=made.address_id, account=account)
    return Created(made.address, made.adopted)
