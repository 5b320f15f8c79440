"""POST /addresses/actions/validate and POST /addresses: emergency validation of addresses.

Deterministic, so that tests and the demo can show rejections:
- a street number 0 (or no street number) is invalid, with no correction to suggest;
- for a city the emulator knows (the generated sites' cities and a few more), a postal code
  or state that does not belong to it is invalid, and `suggested` carries the right one;
- a US postal code that is not 5 digits or ZIP+4 is invalid.
Everything else is valid. Both answer 422 (code 10015, source.pointer) for a request that
lacks a required field (create: every field AddressCreate requires, names included); validate answers 200 with result valid/invalid, create answers 422
with the validation errors when `validate_address` is true (the default) and the address is
invalid. Created addresses are immutable and appear in GET /addresses at once.
"""

from __future__ import annotations

import re
from typing import Any

from emergency_pipeline.emulator.account import Account, iso
from emergency_pipeline.emulator.errors import ErrorReply, error, invalid

VALIDATE_FIELDS = ("street_address", "extended_address", "locality", "administrative_area",
                   "postal_code", "country_code")
CREATE_FIELDS = ("address_book", "administrative_area", "borough", "business_name",
                 "country_code", "customer_reference", "extended_address", "first_name",
                 "last_name", "locality", "neighborhood", "phone_number", "postal_code",
                 "street_address", "validate_address")
# The spec's AddressCreate requires all six (the official SDK too); empty strings are refused.
CREATE_REQUIRED = ("first_name", "last_name", "business_name", "street_address", "locality",
                   "country_code")
# city (case-folded) -> (state, ZIP): the generated sites' cities and a few more.
KNOWN_CITIES = {
    "austin": ("TX", "78701"), "chicago": ("IL", "60601"), "denver": ("CO", "80202"),
    "seattle": ("WA", "98101"), "atlanta": ("GA", "30303"), "boston": ("MA", "02108"),
    "phoenix": ("AZ", "85004"), "portland": ("OR", "97204"), "miami": ("FL", "33130"),
    "new york": ("NY", "10001"), "san francisco": ("CA", "94103"), "dallas": ("TX", "75201"),
    "springfield": ("IL", "62701"), "madison": ("WI", "53703"),
}
STATE_NAMES = {"TX": "TEXAS", "IL": "ILLINOIS", "CO": "COLORADO", "WA": "WASHINGTON",
               "GA": "GEORGIA", "MA": "MASSACHUSETTS", "AZ": "ARIZONA", "OR": "OREGON",
               "FL": "FLORIDA", "NY": "NEW YORK", "CA": "CALIFORNIA", "WI": "WISCONSIN"}
_ZIP = re.compile(r"^\d{5}(-?\d{4})?$")
_NUMBER = re.compile(r"^\s*(\d+)")


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    return value.strip() if isinstance(value, str) else ""


def _require(body: Any, names: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ErrorReply(422, [invalid("The request body must be a JSON object.", "/")])
    errors = [invalid(f"{n} is required", f"/{n}", "Missing required parameter")
              for n in names if not _text(body, n)]
    for n, v in body.items():
        if n in CREATE_FIELDS and n not in ("address_book", "validate_address") \
                and v is not None and not isinstance(v, str):
            errors.append(invalid(f"{n} must be a string", f"/{n}"))
    if errors:
        raise ErrorReply(422, errors)
    return body


def check(body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(errors, suggested) for an address; no errors means valid."""
    suggested = {n: _text(body, n) for n in VALIDATE_FIELDS if _text(body, n)}
    errors = []
    street = _text(body, "street_address")
    number = _NUMBER.match(street)
    if number is None or int(number.group(1)) == 0:
        errors.append(error("20207", "Invalid street address",
                            "The street address has no valid street number.",
                            "/street_address"))
    country = _text(body, "country_code").upper()
    postal = _text(body, "postal_code")
    if country == "US":
        if not _ZIP.match(postal):
            errors.append(error("20208", "Invalid postal code",
                                "A US postal code is 5 digits, or ZIP+4.", "/postal_code"))
        known = KNOWN_CITIES.get(" ".join(_text(body, "locality").casefold().split()))
        if known is not None:
            state, zip5 = known
            if postal[:5] != zip5:
                errors.append(error("20208", "Invalid postal code",
                                    f"The postal code {postal} does not belong to "
                                    f"{_text(body, 'locality')}.", "/postal_code"))
                suggested["postal_code"] = zip5
            area = _text(body, "administrative_area")
            if area and " ".join(area.upper().replace(".", " ").split()) not in (
                    state, STATE_NAMES.get(state)):
                errors.append(error("20209", "Invalid administrative area",
                                    f"{_text(body, 'locality')} is not in {area}.",
                                    "/administrative_area"))
                suggested["administrative_area"] = state
            elif not area:
                suggested["administrative_area"] = state
    return errors, suggested


def validate(body: Any) -> dict[str, Any]:
    body = _require(body, ("country_code", "street_address", "postal_code"))
    errors, suggested = check(body)
    return {"record_type": "address_validation", "result": "invalid" if errors else "valid",
            "suggested": suggested, "errors": errors}


def create(account: Account, body: Any, now: float) -> dict[str, Any]:
    body = _require(body, CREATE_REQUIRED)
    if body.get("validate_address", True) is not False:
        errors, _ = check(body)
        if errors:
            raise ErrorReply(422, errors)
    record = {n: body.get(n, "") for n in CREATE_FIELDS}
    record["address_book"] = bool(body.get("address_book", True))
    record["validate_address"] = body.get("validate_address", True) is not False
    ids = [int(a["id"]) for a in account.addresses if str(a["id"]).isdigit()]
    record = {"id": str(max(ids, default=1_315_261_609_962_000_000) + 1 + len(ids)),
              "record_type": "address", **record,
              "created_at": iso(now), "updated_at": iso(now)}
    account.add_address(record)
    return record
