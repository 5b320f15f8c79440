"""Which spreadsheet column is which: headers are matched ignoring case, spaces and punctuation."""

from __future__ import annotations

import re
from dataclasses import dataclass

PHONE = "phone_number"
FLAG = "emergency_enabled"
ADDRESS = "emergency_address_id"
# An address by its fields (issue 7): the canonical names are the Telnyx field names.
STREET, EXTENDED, LOCALITY = "street_address", "extended_address", "locality"
AREA, POSTAL, COUNTRY, NAME = "administrative_area", "postal_code", "country_code", "business_name"
# Who the address is for: Telnyx requires all three to create one (issue 13), not to find one.
FIRST, LAST = "first_name", "last_name"
CONTACT_FIELDS = (NAME, FIRST, LAST)
ADDRESS_FIELDS = (STREET, EXTENDED, LOCALITY, AREA, POSTAL, COUNTRY, *CONTACT_FIELDS)

# Normalised header -> canonical column, in order of preference: when a sheet has two columns
# that both match (say `phone` and `number`), the one listed first wins and the other is kept as
# an extra column.
ALIASES: dict[str, tuple[str, ...]] = {
    PHONE: ("phonenumber", "number", "phone", "e164", "did", "tn", "telephonenumber",
            "phonenumberid", "numberid"),
    FLAG: ("emergencyenabled", "enabled", "e911", "emergency", "e911enabled"),
    ADDRESS: ("emergencyaddressid", "addressid", "emergencyaddress"),
    STREET: ("streetaddress", "street", "address1", "addressline1", "streetaddress1"),
    EXTENDED: ("extendedaddress", "address2", "addressline2", "suite", "streetaddress2",
               "unit", "floor"),
    LOCALITY: ("locality", "city", "town"),
    AREA: ("administrativearea", "state", "province", "region", "stateprovince"),
    POSTAL: ("postalcode", "zip", "zipcode", "postcode"),
    COUNTRY: ("countrycode", "country"),
    NAME: ("businessname", "company", "sitename", "name", "companyname", "business"),
    FIRST: ("firstname", "givenname", "contactfirstname", "first"),
    LAST: ("lastname", "surname", "familyname", "contactlastname", "last"),
}

_NOT_ALNUM = re.compile(r"[\W_]+", re.UNICODE)


def normalise_header(name: object) -> str:
    """`Phone Number`, `phone_number` and ` PHONE-number ` all become `phonenumber`."""
    return _NOT_ALNUM.sub("", str(name)).casefold()


@dataclass(frozen=True)
class ColumnMatch:
    """The sheet's header for each canonical column (None when absent) and the extra headers."""

    phone: str | None
    flag: str | None
    address: str | None
    extras: tuple[str, ...]
    # canonical address field -> the sheet's header, for the address columns it has
    address_fields: tuple[tuple[str, str], ...] = ()

    def header(self, canonical: str) -> str:
        """The header to show an operator for a canonical column (the sheet's own when present)."""
        found = {PHONE: self.phone, FLAG: self.flag, ADDRESS: self.address,
                 **dict(self.address_fields)}.get(canonical)
        return found if found is not None else canonical


def match_columns(headers: list[str]) -> ColumnMatch:
    normalised = [normalise_header(h) for h in headers]
    chosen: dict[str, str | None] = {}
    for canonical, aliases in ALIASES.items():
        chosen[canonical] = None
        for alias in aliases:
            hit = next((h for h, n in zip(headers, normalised) if n == alias), None)
            if hit is not None:
                chosen[canonical] = hit
                break
    used = {h for h in chosen.values() if h is not None}
    extras = tuple(h for h in headers if h not in used)
    fields = tuple((f, chosen[f]) for f in ADDRESS_FIELDS if chosen[f] is not None)
    return ColumnMatch(chosen[PHONE], chosen[FLAG], chosen[ADDRESS], extras, fields)


def describe_aliases(canonical: str) -> str:
    return ", ".join(ALIASES[canonical])
