"""update_emergency_settings jobs: request validation and the job lifecycle.

A job's progress is a pure function of time since it was created, so the state advances
it lazily on each request (no timers): `pending` for the first fifth of `job_seconds`,
then `in_progress` while its numbers are processed in order, then its terminal status.
A job fated to end `failed` or `expired` stops half-way; its unprocessed numbers are
reported in `failed_operations` with the job's error and are left unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emergency_pipeline import telnyx_contract as contract
from emergency_pipeline.emulator.account import Account, iso
from emergency_pipeline.emulator.errors import ErrorReply, error, invalid, unprocessable
from emergency_pipeline.emulator.shape import Shape

PENDING_SHARE = 0.2      # share of job_seconds spent `pending`
FATED_STOP_SHARE = 0.5   # share of its numbers a failed/expired job processes first


@dataclass(frozen=True)
class JobRequest:
    given: tuple[str, ...]         # unique, in the order given
    kind: str                      # "e164" or "id"
    indexes: tuple[int, ...]
    enable: bool
    address: int | None            # index into account.addresses
    # An address the account lacks, accepted (Shape.unknown_address == "failed_operations"):
    # each number fails.
    unknown_address: bool = False


def validate(body: Any, account: Account, in_flight: int, max_in_flight: int,
             shape: Shape | None = None) -> JobRequest:
    """The checks Telnyx makes before accepting a job; raises ErrorReply(422) like it. `shape`
    chooses between the answers the spec leaves open (emulator/shape.py)."""
    shape = shape or Shape()
    if not isinstance(body, dict):
        raise unprocessable("The request body must be a JSON object.", "/base")
    numbers = body.get("phone_numbers")
    if numbers is None:
        raise unprocessable("must be present", "/phone_numbers")
    if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
        raise unprocessable("must be an array of strings", "/phone_numbers")
    if "emergency_enabled" not in body or body["emergency_enabled"] is None:
        raise unprocessable("must be present", "/emergency_enabled")
    enable = body["emergency_enabled"]
    if not isinstance(enable, bool):
        raise unprocessable("must be a boolean", "/emergency_enabled")
    if not numbers:
        raise unprocessable("You must provide at least 1 phone number.", "/phone_numbers")
    if len(numbers) > contract.MAX_NUMBERS_PER_JOB:
        raise unprocessable(f"{contract.MAX_NUMBERS_PER_JOB} numbers is the maximum allowed.",
                            "/phone_numbers")

    kinds = set()
    for pos, n in enumerate(numbers):
        if n.startswith("+") and n[1:].isdigit() and n.isascii():
            kinds.add("e164")
        elif n.isdigit() and n.isascii():
            kinds.add("id")
        else:
            raise unprocessable("must be a phone number id or a phone number in E.164 format",
                                f"/phone_numbers/{pos}")
    if len(kinds) > 1:
        raise unprocessable("You must specify either all phone numbers in the e164 format or "
                            "all as phone number ids", "/phone_numbers")
    kind = kinds.pop()

    given: list[str] = []
    indexes: list[int] = []
    seen: set[str] = set()
    unowned: list[dict[str, Any]] = []
    for pos, n in enumerate(numbers):
        i = account.index_of(n)
        if i is None:
            unowned.append(invalid("You must own every number in the bulk request",
                                   f"/phone_numbers/{pos}"))
        elif n not in seen:
            seen.add(n)
            given.append(n)
            indexes.append(i)
    if unowned:
        if shape.unowned_numbers == "one_error":   # the spec's example: no index
            raise unprocessable("You must own every number in the bulk request",
                                "/phone_numbers")
        raise ErrorReply(422, unowned)

    address_id = body.get("emergency_address_id")
    address: int | None = None
    if enable:
        if address_id in (None, ""):
            raise unprocessable("must be present when emergency_enabled is true",
                                "/emergency_address_id")
        if not isinstance(address_id, str):
            raise unprocessable("must be a string", "/emergency_address_id")
        address = account.address_index(address_id)
        if address is None and shape.unknown_address == "refuse_job":
            raise unprocessable("The emergency address was not found on this account",
                                "/emergency_address_id")
    elif address_id is not None:
        raise unprocessable("must be null or omitted when emergency_enabled is false",
                            "/emergency_address_id")

    if in_flight >= max_in_flight:
        raise unprocessable(f"You can have at most {max_in_flight} pending or in progress jobs",
                            "/base")
    return JobRequest(tuple(given), kind, tuple(indexes), enable, address,
                      unknown_address=enable and address is None)


@dataclass
class Job:
    id: str
    request: JobRequest
    created_wall: float
    created_mono: float
    seconds: float
    fate: str                                  # completed | failed | expired
    status: str = "pending"
    done: int = 0                              # numbers processed, in order
    errors: dict[int, dict[str, Any]] = field(default_factory=dict)  # position -> error
    updated_wall: float = 0.0

    @property
    def in_flight(self) -> bool:
        return self.status in contract.JOB_IN_FLIGHT_STATUSES

    def _target(self, now_mono: float) -> tuple[int, str]:
        """(numbers processed, status) that this job has reached at now_mono."""
        n = len(self.request.indexes)
        elapsed = now_mono - self.created_mono
        start = self.seconds * PENDING_SHARE
        if elapsed < start:
            return 0, "pending"
        span = max(self.seconds - start, 1e-9)
        progress = min(1.0, (elapsed - start) / span)
        if self.fate != "completed":
            stop = FATED_STOP_SHARE
            if progress >= stop:
                return int(n * stop), self.fate
            return int(n * progress), "in_progress"
        if progress >= 1.0:
            return n, "completed"
        return int(n * progress), "in_progress"

    def advance(self, now_mono: float, now_wall: float, state: Any) -> None:
        """Move to where time says this job is; `state.apply_number` changes each number."""
        if not self.in_flight:
            return
        target, status = self._target(now_mono)
        if self.done < target:
            self.updated_wall = now_wall
        while self.done < target:
            err = state.apply_number(self, self.done, now_wall)
            if err is not None:
                self.errors[self.done] = err
            self.done += 1
        if status != self.status:
            self.status = status
            self.updated_wall = now_wall
            if status in ("failed", "expired"):
                err = _fate_error(status)
                for pos in range(self.done, len(self.request.indexes)):
                    self.errors[pos] = {**err, "source": {"pointer": f"/phone_numbers/{pos}"}}
                self.done = len(self.request.indexes)

    def finish(self, now_wall: float, state: Any) -> None:
        """Drive to the end now (as if its time had passed)."""
        self.advance(self.created_mono + self.seconds + 1e6, now_wall, state)

    def to_dict(self, account: Account) -> dict[str, Any]:
        req = self.request
        key = "phone_number" if req.kind == "e164" else "id"
        ok, failed, pending = [], [], []
        for pos, i in enumerate(req.indexes):
            entry: dict[str, Any] = {"id": str(account.ids[i]), "phone_number": account.e164(i)}
            if pos >= self.done:
                pending.append(entry)
            elif pos in self.errors:
                entry["errors"] = [self.errors[pos]]
                failed.append(entry)
            else:
                ok.append(entry)
        return {
            "id": self.id, "record_type": "phone_numbers_job", "type": contract.JOB_TYPE,
            "status": self.status,
            "phone_numbers": [{key: g} for g in req.given],
            "successful_operations": ok, "failed_operations": failed,
            "pending_operations": pending,
            "created_at": iso(self.created_wall),
            "updated_at": iso(self.updated_wall or self.created_wall),
            "etc": iso(self.created_wall + self.seconds),
        }


def number_error(account: Account, i: int, pos: int) -> dict[str, Any] | None:
    """Why number i (at position pos of a job) cannot be changed now, or None."""
    if not account.emergency_allowed(i):
        status = account.status_of(i)
        return invalid(f"Emergency settings cannot be changed for a phone number with status "
                       f"'{status}'.", f"/phone_numbers/{pos}", "Invalid phone number status")
    em = account.emergency_status(i)
    if em in contract.EMERGENCY_STATUSES_IN_TRANSITION:
        return invalid(f"The phone number's emergency service is {em}; wait until that is done.",
                       f"/phone_numbers/{pos}", "Emergency settings change in progress")
    return None


def unknown_address_error() -> dict[str, Any]:
    """Each number's error in a job whose address the account lacks (the spec's example)."""
    return invalid("The field is invalid.", "/emergency_address_id")


def provider_refusal(enable: bool, pos: int) -> dict[str, Any]:
    """A number the emergency service provider refused (the `number_fail_rate` fault)."""
    what = "provisioning" if enable else "deprovisioning"
    return invalid(f"The emergency service provider refused the {what} of this phone number; "
                   "it was left unchanged. Check the number's address and try again.",
                   f"/phone_numbers/{pos}", f"Emergency {what} refused")


def _fate_error(status: str) -> dict[str, Any]:
    if status == "expired":
        return error("10015", "Job expired",
                     "The job expired before this phone number was processed.")
    return error("10007", "Job failed", "The job failed before this phone number was processed.")
