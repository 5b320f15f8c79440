"""Each distinct place of the sheet, once: matched in the account, else validated by Telnyx.

    place_fields(rows' fields) -> the fields the place is resolved with
    AccountPlaces(index, open_intents, relist, log).match(key, fields) -> PlaceOutcome | None
    validate_new(client, fields, contact) -> NewPlace(body) | PlaceOutcome
    creation_outcome(Created | Refused | Failed) -> PlaceOutcome

A place found once in the account gives its id; found several times it is ambiguous, and its
rows are rejected with the candidates' ids. A place not in the account is validated (on
plan-only runs too): an invalid one rejects its rows with Telnyx's errors and its suggestion;
a valid one is created (addressing/creation.py) or shown (addressing/resolution.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, assert_never

from emergency_pipeline.addressing.creation import Created, Creation, Failed, Refused
from emergency_pipeline.addressing.fields import FIRST, LAST, NAME, STREET, ContactDefaults, \
    creation_fields, describe, normalise_text
from emergency_pipeline.addressing.matching import AddressIndex
from emergency_pipeline.addressing.sheet_rows import Rejection, SheetRows
from emergency_pipeline.client import AddressRejected, TelnyxAPIError

# The fix when Telnyx refused the address without a suggestion.
CORRECT_FIELDS = "correct the address fields"


@dataclass(frozen=True)
class PlaceRefused:
    """Why every row of a place is rejected. `missing`: the fields a new address lacks (the
    row's value is blank, and its fix depends on its own sheet's columns)."""

    column: str
    reason: str
    fix: str = ""
    missing: tuple[str, ...] = ()

    def of_row(self, pos: int, rows: SheetRows) -> Rejection:
        if self.missing:
            return Rejection(pos, self.column, "", self.reason,
                             _missing_fix(list(self.missing), rows.columns(pos)))
        return Rejection(pos, self.column, rows.given(pos), self.reason, self.fix)


@dataclass(frozen=True)
class PlaceOutcome:
    """What became of a place: its status (RESOLUTION_COLUMNS), and for its rows an id, a
    rejection, or a note (no clear answer: they go on without an id, the plan skips them,
    and a re-run tries again)."""

    status: str
    address_id: str | None = None
    candidates: str | None = None
    errors: str | None = None
    suggested: str | None = None
    refused: PlaceRefused | None = None
    note: str | None = None
    address: dict | None = None     # one more for the run's addresses table

    def table_fields(self) -> dict[str, Any]:
        return {"status": self.status, "address_id": self.address_id,
                "candidates": self.candidates, "errors": self.errors,
                "suggested": self.suggested}


@dataclass(frozen=True)
class NewPlace:
    """Valid and not in the account: `body` creates it (the sheet's fields, names filled)."""

    body: dict[str, str]


def place_fields(given: Sequence[dict]) -> dict:
    """The first row's fields; any row of the place may name the business and the contact."""
    fields = dict(given[0])
    for name in (NAME, FIRST, LAST):
        names = [f[name] for f in given if f.get(name)]
        if names and not fields.get(name):
            fields[name] = names[0]
    return fields


class AccountPlaces:
    """The account's addresses, looked at again (once a run) for a place whose creation an
    earlier run recorded and never saw answered."""

    def __init__(self, index: AddressIndex, open_intents: set[str],
                 relist: Callable[[], AddressIndex], log: Any) -> None:
        self.index = index
        self.open_intents = open_intents
        self.relist = relist
        self.log = log
        self._fresh: AddressIndex | None = None

    def match(self, key: str, fields: dict) -> PlaceOutcome | None:
        """Matched or ambiguous; None when the account does not have the place."""
        found = self.index.find(fields)
        address = None
        if found.status == "none" and key in self.open_intents:
            # An earlier run recorded this creation and never saw its answer: look again.
            self._fresh = self._fresh or self.relist()
            found = self._fresh.find(fields)
            if found.status != "none":
                address = dict(self._fresh.by_id[found.ids[0]])
                self.log.warning(f"address {describe(fields)}: found {found.ids[0]}, created "
                                 "by an earlier run whose answer was not recorded")
        if found.status == "matched":
            return PlaceOutcome("matched", address_id=found.address_id, address=address)
        if found.status == "ambiguous":
            return PlaceOutcome("ambiguous", candidates=", ".join(found.ids), refused=PlaceRefused(
                STREET, f"the address matches {len(found.ids)} addresses of the account: "
                f"{', '.join(found.ids)}", "give the emergency_address_id of the one meant"))
        return None


def validate_new(client: Any, fields: dict,
                 contact: ContactDefaults | None) -> NewPlace | PlaceOutcome:
    """POST /addresses/actions/validate, then the names creation needs."""
    try:
        result = client.validate_address(fields)
    except TelnyxAPIError as exc:
        text = "; ".join(e.describe() for e in exc.errors) or str(exc)
        if isinstance(exc, AddressRejected):
            return PlaceOutcome("invalid", errors=text, refused=PlaceRefused(
                STREET, f"Telnyx refused the address: {text}", CORRECT_FIELDS))
        return PlaceOutcome("failed", errors=text,
                            note=f"the address could not be validated: {exc}")
    if result.get("result") != "valid":
        text = _errors_text(result.get("errors") or [])
        suggested = {k: v for k, v in (result.get("suggested") or {}).items() if v}
        changed = {k: v for k, v in suggested.items()
                   if normalise_text(v) != normalise_text(fields.get(k))}
        hint = (", ".join(f"{k} {v!r}" for k, v in changed.items()) if changed else None)
        return PlaceOutcome(
            "invalid", errors=text,
            suggested=describe({**fields, **suggested}) if changed else None,
            refused=PlaceRefused(
                STREET, f"the address is not valid for emergency use: {text}",
                f"Telnyx suggests {hint}: {describe({**fields, **suggested})}"
                if hint else "correct the address (no suggestion was offered)"))
    body, missing = creation_fields(fields, contact)
    if missing:
        return PlaceOutcome("invalid", errors="a new address needs " + ", ".join(missing),
                            refused=PlaceRefused(
                                missing[0], "not an address of the account; creating it "
                                f"needs {', '.join(missing)}", missing=tuple(missing)))
    return NewPlace(body)


def creation_outcome(creation: Creation) -> PlaceOutcome:
    match creation:
        case Created(address=address, adopted=adopted):
            return PlaceOutcome("adopted" if adopted else "created",
                                address_id=creation.address_id, address=address)
        case Refused(errors=text):
            return PlaceOutcome("invalid", errors=text, refused=PlaceRefused(
                STREET, f"Telnyx refused to create the address: {text}", CORRECT_FIELDS))
        case Failed(reason=text):
            return PlaceOutcome("failed", errors=text,
                                note=f"the address could not be created ({text}); "
                                "a re-run looks for it before creating it")
    assert_never(creation)


def _errors_text(errors: list[dict] | tuple) -> str:
    parts = []
    for e in errors:
        get = e.get if isinstance(e, dict) else (lambda k, e=e: getattr(e, k, None))
        source = get("source") if isinstance(e, dict) else None
        pointer = (source or {}).get("pointer") if isinstance(source, dict) else get("pointer")
        text = " ".join(str(p) for p in (get("code"), get("title")) if p)
        detail = get("detail") or get("description")
        if detail:
            text += f": {detail}"
        if pointer:
            text += f" (at {pointer})"
        parts.append(text)
    return "; ".join(parts)


def _missing_fix(missing: list[str], columns: dict[str, str]) -> str:
    """The fix for a new address that lacks fields: fill the cells when the sheet has the
    column (they were blank), else add the column; short (one line of the summary)."""
    blank = [columns[f] for f in missing if columns.get(f)]
    absent = [f for f in missing if not columns.get(f)]
    ways = []
    if blank:
        ways.append(f"fill the blank {', '.join(blank)} cell{'s' if len(blank) > 1 else ''}")
    if absent:
        ways.append(f"add {'a column' if len(absent) == 1 else 'columns'} {', '.join(absent)}")
    names = any(f in (FIRST, LAST, NAME) for f in missing)
    return " and ".join(ways) + (", or set default_<name> in the config of "
                                 "emergency_address_resolution" if names else "")
