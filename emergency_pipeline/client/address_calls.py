"""Addresses: validate (safe to repeat) and create (never repeated blindly).

POST /addresses/actions/validate changes nothing, so it is retried like a read. POST
/addresses creates an immutable address and Telnyx has no idempotency key: after an
ambiguous failure (timeout, dropped connection, 5xx) the caller's `find_existing` looks for
an address with these fields before anything is sent again, like the job POST.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import TelnyxAPIError
from .transport import Transport

ADDRESSES_PATH = "/addresses"
VALIDATE_PATH = "/addresses/actions/validate"
VALIDATE_FIELDS = ("street_address", "extended_address", "locality", "administrative_area",
                   "postal_code", "country_code")


class AddressRejected(TelnyxAPIError):
    """Telnyx refused the address (422): nothing was created; do not send it again unchanged."""


@dataclass(frozen=True)
class AddressCreation:
    """The address Telnyx created; `adopted` when found by listing after a lost answer."""

    address: dict
    adopted: bool

    @property
    def address_id(self) -> str:
        return str(self.address.get("id"))


def _data(body: Any) -> Any:
    return body.get("data", body) if isinstance(body, dict) else body


class AddressOps:
    def __init__(self, transport: Transport) -> None:
        self.t = transport
        self.config = transport.config
        self.log = transport.log

    def validate(self, fields: Mapping[str, str]) -> dict:
        """The ValidateAddressResult (result, suggested, errors). Raises AddressRejected on
        422 (a required field missing)."""
        body = {k: v for k, v in fields.items() if k in VALIDATE_FIELDS and v}
        return _data(self.t.retrying("POST", VALIDATE_PATH, json_body=body,
                                     what="address validation", rejected=AddressRejected))

    def create(self, fields: Mapping[str, Any],
               find_existing: Callable[[], dict | None]) -> AddressCreation:
        """Create one address, never two: after an ambiguous failure `find_existing()` is asked
        (after a short wait, `adopt_checks` times) before the POST is sent again; if it cannot
        be asked (its listing fails), nothing is sent again and the error is raised."""
        body = dict(fields)
        what = f"address {body.get('street_address')!r}, {body.get('locality')!r}"
        budget = self.t.budget()
        while True:
            attempt_no = budget.tries + 1
            attempt = self.t.send("POST", ADDRESSES_PATH, json_body=body)
            failure = attempt.failure
            if failure is None:
                address = _data(attempt.body)
                self.log.info(f"{what}: created address {address.get('id')}")
                return AddressCreation(address, adopted=False)
            if failure.status == 422:
                raise self.t.error_for(attempt, "POST", ADDRESSES_PATH, attempts=attempt_no,
                                       cls=AddressRejected)
            if not failure.retryable:
                raise self.t.error_for(attempt, "POST", ADDRESSES_PATH, attempts=attempt_no)
            if failure.ambiguous:
                self.log.warning(f"{what}: {failure.reason}; the address may have been "
                                 "created, looking for it before sending again")
                for check in range(1, self.config.adopt_checks + 1):
                    time.sleep(self.config.adopt_wait_seconds * check)
                    found = find_existing()   # a TelnyxAPIError here stops: not knowing, no POST
                    if found is not None:
                        self.log.warning(f"{what}: adopted address {found.get('id')} created "
                                         "by the unanswered POST")
                        return AddressCreation(found, adopted=True)
            delay = self.t.delay_for(attempt_no, failure)
            if not budget.allows_another(failure, delay):
                raise self.t.error_for(attempt, "POST", ADDRESSES_PATH, attempts=attempt_no)
            self.log.warning(f"{what}: {failure.reason}; not created, sending again in "
                             f"{delay:.2f}s")
            time.sleep(delay)
