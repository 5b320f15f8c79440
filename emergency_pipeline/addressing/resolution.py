"""Addresses given by their fields -> address ids of the account: matched, or created.

For the accepted rows that give an address by its fields (`address_fields`, JSON text):
- a row that gives an id the account does not have is rejected (a typo, or an id a
  spreadsheet rounded: the plan must not guess);
- a row that also gives an id is checked against that address of the account; rows whose
  fields disagree with it are rejected;
- the other rows are grouped by place (fields.address_key), and each distinct place is
  matched against the account: one match gives its id; several are ambiguous, and the rows
  are rejected with the candidates' ids;
- a place with no match is validated (POST /addresses/actions/validate, on plan-only runs
  too): invalid ones reject their rows with Telnyx's errors and its suggestion; valid ones
  are created once (POST /addresses) on an apply run, or shown as `would_create` with a
  placeholder id (`new-address-...`) that the plan carries and nothing ever submits.

Creation never doubles an address: the intent is recorded in the address ledger
(safety_store/ledger.py) before the POST; a run that finds an intent still open (its
creation was never recorded) lists the account's addresses again and matches by fields
before creating; after an ambiguous failure the client does the same before sending again.

The stages, each in its module: the rows and their ids (sheet_rows.py), each place matched
or validated (places.py), created once (creation.py); this module runs them in order and
assembles the accepted and rejected rows, the addresses and the resolutions table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pandas as pd

from emergency_pipeline.addressing.creation import create_once
from emergency_pipeline.addressing.fields import ContactDefaults, describe
from emergency_pipeline.addressing.matching import AddressIndex
from emergency_pipeline.addressing.places import AccountPlaces, NewPlace, PlaceOutcome, \
    creation_outcome, place_fields, validate_new
from emergency_pipeline.addressing.sheet_rows import GivenIds, SheetRows, check_given_ids
from emergency_pipeline.safety_store import Ledger

PLACEHOLDER_PREFIX = "new-address-"
RESOLUTION_COLUMNS = ["address_key", "address_given", "status", "address_id", "candidates",
                      "rows", "phone_numbers", "errors", "suggested", "detail"]
# status: matched, matched_by_id, created, adopted, would_create, ambiguous, invalid,
#         disagrees, failed


def is_placeholder(address_id: Any) -> bool:
    return isinstance(address_id, str) and address_id.startswith(PLACEHOLDER_PREFIX)


@dataclass(frozen=True)
class Resolution:
    accepted: pd.DataFrame     # the accepted rows, ids filled in; + address_given, address_note
    rejected: pd.DataFrame     # rows rejected for their address (REJECTED_COLUMNS)
    addresses: pd.DataFrame    # the account's addresses, + created ones and placeholders
    table: pd.DataFrame        # one row per distinct address of the sheet (RESOLUTION_COLUMNS)

    def counts(self) -> dict[str, int]:
        by = self.table["status"].value_counts() if len(self.table) else {}
        return {f"addresses_{s}": int(n) for s, n in dict(by).items()}


@dataclass(frozen=True)
class SettledPlace:
    key: str                    # PlaceKey.group (the ledger's key of its creation)
    positions: tuple[int, ...]  # its rows
    fields: dict                # as resolved (place_fields)
    outcome: PlaceOutcome


def resolve_addresses(accepted: pd.DataFrame, account_addresses: list[dict] | pd.DataFrame,
                      client: Any, ledger: Ledger | None, *, apply: bool, run_id: str,
                      log: Any, contact: ContactDefaults | None = None,
                      account: str = "") -> Resolution:
    """`contact`: names for new addresses whose rows give none (Telnyx requires first name,
    last name and business name to create one). `account`: the account's key in the ledger
    (client/account_identity.py), whose creation intents this run sees and adds to."""
    if ledger is not None and not account:
        raise ValueError("the address ledger is per account: pass account=")
    if isinstance(account_addresses, pd.DataFrame):
        known = [{k: (None if pd.isna(v) else v) for k, v in r.items()}
                 for r in account_addresses.to_dict("records")]
    else:
        known = [dict(a) for a in account_addresses]
    rows = SheetRows(accepted)
    index = AddressIndex(known)
    given = check_given_ids(rows, index)
    open_intents = (ledger.open_address_intents(account)
                    if (ledger is not None and apply and given.places)
                    else set())
    in_account = AccountPlaces(index, open_intents,
                               lambda: AddressIndex(client.list_addresses()), log)
    settled = []
    for key, positions in given.places.items():
        fields = place_fields([rows.fields[p] for p in positions])
        outcome = in_account.match(key, fields)
        if outcome is None:     # not in the account: validate, then create or show
            match validate_new(client, fields, contact):
                case NewPlace(body=body) if apply:
                    outcome = creation_outcome(
                        create_once(client, ledger, account, key, body, run_id, log))
                case NewPlace(body=body):
                    outcome = would_create(key, body)
                case PlaceOutcome() as refused_or_failed:
                    outcome = refused_or_failed
        settled.append(SettledPlace(key, tuple(positions), fields, outcome))
    return _assemble(rows, known, given, settled)


def would_create(key: str, body: dict[str, str]) -> PlaceOutcome:
    """A plan-only run's new address: a placeholder id that the plan carries and nothing ever
    submits (the update-jobs step refuses a batch that targets one)."""
    placeholder = PLACEHOLDER_PREFIX + hashlib.sha1(key.encode()).hexdigest()[:10]
    return PlaceOutcome("would_create", address_id=placeholder,
                        address={"id": placeholder, **body})


def _assemble(rows: SheetRows, known: list[dict], given: GivenIds,
              settled: list[SettledPlace]) -> Resolution:
    ids = list(rows.given_ids)
    notes: dict[int, str] = {}
    rejections = list(given.rejected)
    table = list(given.by_id)
    new_addresses = []
    for place in settled:
        out = place.outcome
        table.append({"address_key": place.key, "address_given": describe(place.fields),
                      "rows": len(place.positions),
                      "phone_numbers": rows.numbers(place.positions), **out.table_fields()})
        if out.address is not None:
            new_addresses.append(out.address)
        for p in place.positions:
            if out.refused is not None:
                rejections.append(out.refused.of_row(p, rows))
            elif out.note is not None:
                ids[p] = None
                notes[p] = out.note
            else:
                ids[p] = out.address_id
    accepted = rows.resolved(ids, notes, {r.pos for r in rejections})
    all_addresses = pd.DataFrame(known + new_addresses)
    if all_addresses.empty:
        all_addresses = pd.DataFrame(columns=["id"])
    return Resolution(accepted, rows.rejected_frame(rejections), all_addresses, _table(table))


def _table(rows: list[dict]) -> pd.DataFrame:
    """One row per distinct address and status (rows that name an id come one by one)."""
    frame = pd.DataFrame(rows, columns=RESOLUTION_COLUMNS)
    if frame.empty:
        return frame
    frame = frame.astype(object).where(frame.notna(), None)
    keys = ["address_key", "status", "address_id"]
    grouped = frame.fillna({"address_id": ""}).groupby(keys, sort=False, dropna=False).agg({
        "address_given": "first", "candidates": "first", "rows": "sum",
        "phone_numbers": lambda s: ", ".join(s.dropna())[:300], "errors": "first",
        "suggested": "first", "detail": "first"}).reset_index()
    grouped["address_id"] = grouped["address_id"].replace("", None)
    return grouped[RESOLUTION_COLUMNS]
