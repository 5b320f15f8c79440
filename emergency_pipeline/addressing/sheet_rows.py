"""The accepted rows that give an address, as the resolution reads them, and its first stage.

    rows = SheetRows(accepted)          # each row's fields, the id it gives, its sheet's headers
    check_given_ids(rows, index) -> GivenIds(rejected, by_id, places)

The ids come first: an id the account does not have is rejected (a typo, or an id a
spreadsheet rounded: the plan must not guess); a row that gives an id and fields is checked
against that address; the other rows with fields are grouped by place, each place resolved
once (addressing/places.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from emergency_pipeline.addressing.fields import NAME, PlaceKey, address_key, describe, \
    fields_json
from emergency_pipeline.addressing.matching import AddressIndex, disagreements
from emergency_pipeline.desired_state.validate import REJECTED_COLUMNS


@dataclass(frozen=True)
class Rejection:
    """One row rejected for its address; `column` is the canonical name (the row's own
    header is looked up when the row is written)."""

    pos: int
    column: str
    value: str
    reason: str
    fix: str


class SheetRows:
    """The rows, read once. `frame` gains address_given (the address as the row gives it, for
    people) and address_note (why a row goes on without an id)."""

    def __init__(self, accepted: pd.DataFrame) -> None:
        frame = accepted.reset_index(drop=True).copy()
        given = frame["address_fields"] if "address_fields" in frame else pd.Series(
            [None] * len(frame), dtype=object)
        self.fields: list[dict | None] = [json.loads(t) if isinstance(t, str) and t else None
                                          for t in given]
        frame["address_given"] = [describe(f) if f else None for f in self.fields]
        frame["address_note"] = None
        self.given_ids: list[Any] = frame["emergency_address_id"].astype(object).where(
            frame["emergency_address_id"].notna(), None).tolist()
        self.frame = frame

    def __len__(self) -> int:
        return len(self.frame)

    def given(self, pos: int) -> str | None:
        return self.frame.at[pos, "address_given"]

    def columns(self, pos: int) -> dict[str, str]:
        """The row's address columns as its sheet heads them (canonical name -> header)."""
        names = self.frame.at[pos, "address_columns"] if "address_columns" in self.frame else None
        return json.loads(names) if isinstance(names, str) else {}

    def numbers(self, positions: list[int] | tuple[int, ...]) -> str:
        """The rows' numbers for people: the first five, and how many more."""
        f = self.frame
        shown = [str(f.at[p, "phone_number"] if pd.notna(f.at[p, "phone_number"])
                     else f.at[p, "number_id"]) for p in positions[:5]]
        return ", ".join(shown) + (f" and {len(positions) - 5} more" if len(positions) > 5 else "")

    def rejected_frame(self, rejections: list[Rejection]) -> pd.DataFrame:
        """The rejected rows (REJECTED_COLUMNS), each naming the column as its sheet heads it."""
        f = self.frame
        rows = [{
            "source_file": f.at[r.pos, "source_file"], "source_row": f.at[r.pos, "source_row"],
            "column": self.columns(r.pos).get(r.column, r.column), "value": r.value,
            "reason": r.reason, "fix": r.fix,
            "phone_number": f.at[r.pos, "phone_number"]
            if pd.notna(f.at[r.pos, "phone_number"]) else f.at[r.pos, "number_id"],
            "extras": f.at[r.pos, "extras"] if "extras" in f else "{}"} for r in rejections]
        rejected = pd.DataFrame(rows, columns=REJECTED_COLUMNS)
        rejected["source_row"] = rejected["source_row"].astype("int64")
        return rejected

    def resolved(self, ids: list[Any], notes: dict[int, str],
                 rejected: set[int]) -> pd.DataFrame:
        """The rows kept, with their ids (and notes) filled in (the last use of `frame`: it is
        changed in place, not copied)."""
        frame = self.frame
        frame["emergency_address_id"] = pd.Series(ids, dtype=object)
        for pos, note in notes.items():
            frame.at[pos, "address_note"] = note
        keep = [p for p in range(len(frame)) if p not in rejected]
        return frame.iloc[keep].reset_index(drop=True)


@dataclass(frozen=True)
class GivenIds:
    rejected: tuple[Rejection, ...]   # an id the account lacks; fields that disagree with it
    by_id: tuple[dict, ...]           # resolution rows (RESOLUTION_COLUMNS) of id + fields rows
    places: dict[str, list[int]]      # the rows with fields and no id, by place (PlaceKey.group)


def check_given_ids(rows: SheetRows, index: AddressIndex) -> GivenIds:
    rejected: list[Rejection] = []
    # An id the account does not have is a mistake in the sheet: rejected, with the fix.
    for pos, given_id in enumerate(rows.given_ids):
        if given_id is not None and str(given_id) not in index.by_id:
            rejected.append(Rejection(
                pos, "emergency_address_id", str(given_id),
                f"address id {given_id} is not one of the account's addresses",
                "use the id of an address of the account (table account_addresses, or "
                "GET /v2/addresses), or give the address by its fields"))
    # An id and fields: they must agree.
    done = {r.pos for r in rejected}
    by_id: list[dict] = []
    places: dict[str, list[int]] = {}
    for pos, fields in enumerate(rows.fields):
        if not fields or pos in done:
            continue
        given_id = rows.given_ids[pos]
        if given_id is None:
            key = address_key(fields)
            places.setdefault(key.group if key else fields_json(fields), []).append(pos)
            continue
        have = index.by_id[str(given_id)]
        wrong = [f for f in disagreements(fields, have) if f != NAME]
        if wrong:
            rejected.append(Rejection(
                pos, "emergency_address_id", str(given_id),
                f"the address fields disagree with address {given_id} of the account "
                f"({', '.join(wrong)}: the account has {describe(have)})",
                "give either the emergency_address_id or the address fields, or make "
                "them agree"))
        by_id.append({"address_key": (address_key(fields) or address_key(have)
                                      or PlaceKey(*[""] * 7)).text,
                      "address_given": rows.given(pos),
                      "status": "disagrees" if wrong else "matched_by_id",
                      "address_id": str(given_id), "rows": 1,
                      "phone_numbers": rows.numbers([pos])})
    return GivenIds(tuple(rejected), tuple(by_id), places)
