"""Addresses given by their fields, matched against the account's (pure).

    AddressIndex(account_addresses).find(fields) -> AddressMatch(status, ids)
    disagreements(fields, account_address)      # the given fields an address contradicts

The rules of a match (what compares equal) are in addressing/fields.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from emergency_pipeline.addressing.fields import (
    AREA, COUNTRY, NAME, PLACE_FIELDS, POSTAL, PlaceKey, address_key, clean_fields,
    normalise_area, normalise_country, normalise_postal, normalise_text,
)


def same_place(a: PlaceKey, b: PlaceKey) -> bool:
    if a.coarse != b.coarse:
        return False
    if a.area and b.area and a.area != b.area:      # a state left out does not disagree
        return False
    return not (a.postal_ext and b.postal_ext and a.postal_ext != b.postal_ext)


def disagreements(fields: Mapping[str, Any], address: Mapping[str, Any],
                  default_country: str = "US") -> list[str]:
    """The given fields that do not agree with an account address (only fields given are
    compared, so a sheet that names an id and a city is checked on the city alone)."""
    f = clean_fields(fields)
    country = normalise_country(f.get(COUNTRY) or address.get(COUNTRY) or default_country)
    out = []
    for name in PLACE_FIELDS + (NAME,):
        if name not in f:
            continue
        mine, theirs = f[name], address.get(name) or ""
        if name == POSTAL:
            (b1, e1), (b2, e2) = normalise_postal(mine, country), normalise_postal(theirs, country)
            same = b1 == b2 and not (e1 and e2 and e1 != e2)
        elif name == AREA:
            same = normalise_area(mine) == normalise_area(theirs)
        elif name == COUNTRY:
            same = normalise_country(mine) == normalise_country(theirs)
        else:
            same = normalise_text(mine) == normalise_text(theirs)
        if not same:
            out.append(name)
    return out


@dataclass(frozen=True)
class AddressMatch:
    status: str                     # "matched" | "ambiguous" | "none"
    ids: tuple[str, ...] = ()

    @property
    def address_id(self) -> str | None:
        return self.ids[0] if self.status == "matched" else None


class AddressIndex:
    """The account's addresses by place, for many lookups."""

    def __init__(self, addresses: Iterable[Mapping[str, Any]], default_country: str = "US"):
        self.default_country = default_country
        self._by_coarse: dict[tuple[str, ...], list[tuple[PlaceKey, Mapping[str, Any]]]] = {}
        self.by_id: dict[str, Mapping[str, Any]] = {}
        for a in addresses:
            if a.get("id") is None:
                continue
            self.by_id[str(a["id"])] = a
            key = address_key(a, default_country)
            if key is not None:
                self._by_coarse.setdefault(key.coarse, []).append((key, a))

    def find(self, fields: Mapping[str, Any]) -> AddressMatch:
        key = address_key(fields, self.default_country)
        if key is None:
            return AddressMatch("none")
        hits = [a for k, a in self._by_coarse.get(key.coarse, []) if same_place(key, k)]
        if len(hits) > 1:
            name = normalise_text(clean_fields(fields).get(NAME))
            named = [a for a in hits if name and normalise_text(a.get(NAME)) == name]
            if len(named) == 1:
                hits = named
        ids = tuple(sorted(str(a["id"]) for a in hits))
        if not ids:
            return AddressMatch("none")
        return AddressMatch("matched" if len(ids) == 1 else "ambiguous", ids)
