"""Addresses given by their fields, normalised (pure): the field names, the canonical form
of each field, the place a set of fields names, and the body that creates an address.

Two spellings of one place must compare equal, and two places must never do
(addressing/matching.py compares them against the account):

- text fields are compared after case folding, punctuation to spaces, collapsed spacing and
  the usual USPS abbreviations (Street/St, Avenue/Ave, Suite/Ste, Floor/Fl, North/N, ...);
- the state may be its name or its two-letter code; the country `USA` / `United States`;
- postal codes compare on the 5-digit ZIP (ZIP+4 against ZIP matches; two different +4
  extensions do not); other countries' codes ignoring case and spacing;
- the extended address (suite, floor) must agree, and an empty one matches only an empty
  one: "1 Main St" is not "1 Main St, Suite 200";
- the business name is not part of the place: it only breaks a tie between account
  addresses at the same place.

    key = address_key(fields)                   # None when the place is not given fully
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STREET = "street_address"
EXTENDED = "extended_address"
LOCALITY = "locality"
AREA = "administrative_area"
POSTAL = "postal_code"
COUNTRY = "country_code"
NAME = "business_name"
FIRST = "first_name"
LAST = "last_name"
# The order a person reads them in (and the order `describe` prints them); the contact's
# names are kept for creating an address, never used to match one.
FIELDS = (NAME, STREET, EXTENDED, LOCALITY, AREA, POSTAL, COUNTRY, FIRST, LAST)
PLACE_FIELDS = (STREET, EXTENDED, LOCALITY, AREA, POSTAL, COUNTRY)
# Without these a place cannot be found or created (country defaults to the sheet's region).
REQUIRED_FIELDS = (STREET, LOCALITY, POSTAL)
# What the spec's AddressCreate requires; Telnyx refuses an empty string as much as an absence.
CREATE_REQUIRED = (FIRST, LAST, NAME, STREET, LOCALITY, COUNTRY)

ABBREVIATIONS = {
    "street": "st", "avenue": "ave", "av": "ave", "road": "rd", "boulevard": "blvd",
    "drive": "dr", "lane": "ln", "court": "ct", "place": "pl", "parkway": "pkwy",
    "highway": "hwy", "terrace": "ter", "circle": "cir", "square": "sq", "trail": "trl",
    "expressway": "expy", "freeway": "fwy", "turnpike": "tpke", "center": "ctr",
    "centre": "ctr", "plaza": "plz", "point": "pt", "heights": "hts", "mount": "mt",
    "fort": "ft", "saint": "st", "way": "way", "alley": "aly",
    "suite": "ste", "floor": "fl", "flr": "fl", "building": "bldg", "apartment": "apt",
    "department": "dept", "room": "rm", "unit": "unit", "number": "no",
    "north": "n", "south": "s", "east": "e", "west": "w", "northeast": "ne",
    "northwest": "nw", "southeast": "se", "southwest": "sw",
    "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th",
}
US_STATES = {
    "alabama": "al", "alaska": "ak", "arizona": "az", "arkansas": "ar", "california": "ca",
    "colorado": "co", "connecticut": "ct", "delaware": "de", "district of columbia": "dc",
    "florida": "fl", "georgia": "ga", "hawaii": "hi", "idaho": "id", "illinois": "il",
    "indiana": "in", "iowa": "ia", "kansas": "ks", "kentucky": "ky", "louisiana": "la",
    "maine": "me", "maryland": "md", "massachusetts": "ma", "michigan": "mi",
    "minnesota": "mn", "mississippi": "ms", "missouri": "mo", "montana": "mt",
    "nebraska": "ne", "nevada": "nv", "new hampshire": "nh", "new jersey": "nj",
    "new mexico": "nm", "new york": "ny", "north carolina": "nc", "north dakota": "nd",
    "ohio": "oh", "oklahoma": "ok", "oregon": "or", "pennsylvania": "pa",
    "rhode island": "ri", "south carolina": "sc", "south dakota": "sd", "tennessee": "tn",
    "texas": "tx", "utah": "ut", "vermont": "vt", "virginia": "va", "washington": "wa",
    "west virginia": "wv", "wisconsin": "wi", "wyoming": "wy", "puerto rico": "pr",
}
COUNTRIES = {"usa": "us", "united states": "us", "united states of america": "us",
             "canada": "ca", "can": "ca", "united kingdom": "gb", "uk": "gb"}

_PUNCT = re.compile(r"[^\w]+|_", re.UNICODE)


def _words(text: Any) -> list[str]:
    if text is None:
        return []
    return [w for w in _PUNCT.sub(" ", str(text).casefold()).split() if w]


def normalise_text(text: Any) -> str:
    """Free text (street, suite, city) in a canonical form: 'Suite #200' -> 'ste 200'."""
    return " ".join(ABBREVIATIONS.get(w, w) for w in _words(text))


def normalise_area(text: Any) -> str:
    joined = " ".join(_words(text))
    return US_STATES.get(joined, joined)


def normalise_country(text: Any) -> str:
    joined = " ".join(_words(text))
    return COUNTRIES.get(joined, joined)


def normalise_postal(text: Any, country: str = "us") -> tuple[str, str]:
    """(base, extension): US '62701-1234' -> ('62701', '1234'); others ('SW1A1AA', '')."""
    compact = "".join(_words(text)).upper()
    if country == "us" and compact.isdigit() and len(compact) in (5, 9):
        return compact[:5], compact[5:]
    return compact, ""


def clean_fields(fields: Mapping[str, Any]) -> dict[str, str]:
    """The given fields as stripped text, empty ones dropped."""
    out = {}
    for f in FIELDS:
        v = fields.get(f)
        if v is None or (isinstance(v, float) and v != v):
            continue
        text = " ".join(str(v).split())
        if text:
            out[f] = text
    return out


def missing_fields(fields: Mapping[str, Any]) -> list[str]:
    given = clean_fields(fields)
    return [f for f in REQUIRED_FIELDS if f not in given]


@dataclass(frozen=True)
class PlaceKey:
    """A place, normalised. `postal_ext` takes part in matching only when both sides have it."""

    street: str
    extended: str
    locality: str
    area: str
    postal: str
    postal_ext: str
    country: str

    @property
    def text(self) -> str:
        """One stable line for tables and hashing (the +4 is kept apart from the ZIP)."""
        return "|".join((self.street, self.extended, self.locality, self.area,
                         self.postal + (f"-{self.postal_ext}" if self.postal_ext else ""),
                         self.country))

    @property
    def group(self) -> str:
        """The place without the ZIP+4 extension: rows that differ only there are one place."""
        return "|".join((self.street, self.extended, self.locality, self.area, self.postal,
                         self.country))

    @property
    def coarse(self) -> tuple[str, ...]:
        return (self.street, self.extended, self.locality, self.postal, self.country)


def address_key(fields: Mapping[str, Any], default_country: str = "US") -> PlaceKey | None:
    """The place of an address (the sheet's or the account's); None if street, city or
    postal code is missing."""
    f = clean_fields(fields)
    if missing_fields(f):
        return None
    country = normalise_country(f.get(COUNTRY) or default_country)
    postal, ext = normalise_postal(f.get(POSTAL), country)
    return PlaceKey(normalise_text(f.get(STREET)), normalise_text(f.get(EXTENDED)),
                    normalise_text(f.get(LOCALITY)), normalise_area(f.get(AREA)),
                    postal, ext, country)


def describe(fields: Mapping[str, Any]) -> str:
    """'Acme, 1 Main St, Suite 2, Springfield, IL 62701, US' (as given, for people)."""
    f = clean_fields(fields)
    area_postal = " ".join(x for x in (f.get(AREA), f.get(POSTAL)) if x)
    parts = [f.get(NAME), f.get(STREET), f.get(EXTENDED), f.get(LOCALITY), area_postal,
             f.get(COUNTRY)]
    return ", ".join(p for p in parts if p)


def fields_json(fields: Mapping[str, Any]) -> str:
    return json.dumps(clean_fields(fields), ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class ContactDefaults:
    """Names for a new address whose sheet gives none (run config of the address step)."""

    first_name: str | None = None
    last_name: str | None = None
    business_name: str | None = None


def creation_fields(fields: Mapping[str, Any],
                    defaults: ContactDefaults | None = None) -> tuple[dict[str, str], list[str]]:
    """(the body that creates this address: the sheet's fields, blank names filled from the
    defaults; the fields AddressCreate requires that are still missing)."""
    d = defaults or ContactDefaults()
    body = clean_fields({FIRST: d.first_name, LAST: d.last_name, NAME: d.business_name,
                         **clean_fields(fields)})
    return body, [f for f in CREATE_REQUIRED if f not in body]
