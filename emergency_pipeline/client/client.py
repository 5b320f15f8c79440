"""TelnyxClient: the pipeline's one way to the account (synchronous API, concurrent inside)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from .address_calls import AddressCreation, AddressOps
from .config import ClientConfig
from .errors import TelnyxAPIError
from .job_ops import JobOps, JobSubmission
from .listing import FirstPage, PageCallback, count, each_page, first_page, get_each, list_all
from .transport import Transport

logger = logging.getLogger("emergency_pipeline.client")


class TelnyxClient:
    def __init__(self, config: ClientConfig, log: Any = None) -> None:
        self.config = config
        self.log = log if log is not None else logger
        self._transport = Transport(config, self.log)
        self._jobs = JobOps(self._transport)
        self._addresses = AddressOps(self._transport)

    def __enter__(self) -> TelnyxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def __repr__(self) -> str:
        return f"TelnyxClient(base_url={self.config.base_url!r})"

    @property
    def stats(self) -> dict[str, float]:
        """Requests sent, retries, and time held by pacing (for logs and benchmarks)."""
        t = self._transport
        return {"requests": t.requests_sent, "retries": t.retries,
                "paced_seconds": round(t.pacer.waited_seconds, 3), "paced_holds": t.pacer.holds}

    # -- reads ----------------------------------------------------------------------------

    def list_phone_numbers(self, on_page: PageCallback | None = None,
                           fields: Sequence[str] | None = None,
                           filters: Mapping[str, str] | None = None,
                           first: FirstPage | None = None) -> list[dict]:
        """Every number of the account (with its emergency fields), each exactly once; only
        `fields` of each when given; only those passing `filters` when given (the spec's
        filter[...] members, e.g. {"emergency_address_id": "null"}); `first`: page 1 from
        first_phone_numbers_page with the same filters and fields."""
        return list_all(self._transport, "/phone_numbers", what=_numbers_what(filters),
                        params=_filter_params(filters), on_page=on_page, fields=fields,
                        first=first)

    def first_phone_numbers_page(self, filters: Mapping[str, str] | None = None,
                                 fields: Sequence[str] | None = None) -> FirstPage:
        """Page 1 of the (filtered) listing: its records and its total_pages/total_results."""
        return first_page(self._transport, "/phone_numbers", what=_numbers_what(filters),
                          params=_filter_params(filters), fields=fields)

    def each_phone_number_page(self, on_page: PageCallback,
                               fields: Sequence[str] | None = None) -> tuple[int, int | None]:
        """Every page of the account's numbers to on_page, not kept (see listing.each_page)."""
        return each_page(self._transport, "/phone_numbers", what="phone numbers",
                         on_page=on_page, fields=fields)

    def count_phone_numbers(self) -> int:
        return count(self._transport, "/phone_numbers", what="phone numbers")

    def get_phone_numbers(self, ids: Sequence[str]) -> list[dict]:
        """These numbers by id, fetched concurrently (cheaper than a listing for a few)."""
        return get_each(self._transport, "/phone_numbers", ids, what="phone numbers read back")

    def list_addresses(self) -> list[dict]:
        return list_all(self._transport, "/addresses", what="addresses")

    def organization_owner_id(self) -> str | None:
        """The id of the organization's owner: what names the account behind this key (every
        key of the account sees the same owner). None when the key may not list the
        organization's users (403) or the API has no such route (404)."""
        try:
            users = list_all(self._transport, "/organizations/users", what="organization users")
        except TelnyxAPIError as exc:
            if exc.status in (403, 404):
                return None
            raise
        owners = sorted({str(u.get("id")) for u in users
                         if u.get("record_type") == "organization_owner" and u.get("id")})
        return owners[0] if len(owners) == 1 else None

    def list_jobs(self, created_after: datetime | None = None) -> list[dict]:
        """update_emergency_settings jobs, newest first; only those created at/after a time."""
        return self._jobs.list_jobs(created_after)

    def get_job(self, job_id: str) -> dict:
        return self._jobs.get_job(job_id)

    def server_since(self, local: datetime) -> datetime:
        """`local` (this host's clock) as a created_at bound on Telnyx's clock, with margin."""
        return self._jobs.server_since(local)

    def server_now(self) -> datetime:
        """Now on Telnyx's clock as best measured (this host's when no Date was seen)."""
        return self._transport.server_clock.now() or datetime.now(timezone.utc)

    # -- addresses ------------------------------------------------------------------------

    def validate_address(self, fields: dict) -> dict:
        """POST /addresses/actions/validate: {result, suggested, errors}."""
        return self._addresses.validate(fields)

    def create_address(self, fields: dict, find_existing: Callable[[], dict | None]
                       ) -> AddressCreation:
        """POST /addresses, never twice: see AddressOps.create. Raises AddressRejected on 422."""
        return self._addresses.create(fields, find_existing)

    # -- jobs -----------------------------------------------------------------------------

    def submit_update_emergency_settings(
        self, phone_numbers: Sequence[str], emergency_enabled: bool,
        emergency_address_id: str | None, existing: frozenset[str] = frozenset(),
        before_post: Callable[[], None] | None = None,
    ) -> JobSubmission:
        """Create one job, never two: see JobOps.submit. Raises JobRejected on 422.
        `existing`: ids of jobs that existed before this POST (never adopted as its job).
        `before_post`: called right before each POST goes out (the lease's fence); what it
        raises stops the submission with nothing sent."""
        return self._jobs.submit(phone_numbers, emergency_enabled, emergency_address_id,
                                 existing, before_post)

    def follow_jobs(
        self, job_ids: Iterable[str], deadline_seconds: float,
        on_update: Callable[[dict], None] | None = None,
    ) -> dict[str, dict]:
        """Poll jobs until each is terminal or the deadline passes; latest seen per job id."""
        return self._jobs.follow(job_ids, deadline_seconds, on_update)


def _filter_params(filters: Mapping[str, str] | None) -> dict[str, str] | None:
    # deepObject style, as the spec declares `filter`: filter[name]=value.
    return {f"filter[{k}]": v for k, v in filters.items()} if filters else None


def _numbers_what(filters: Mapping[str, str] | None) -> str:
    if not filters:
        return "phone numbers"
    return "phone numbers with " + ", ".join(f"{k}={v}" for k, v in filters.items())
