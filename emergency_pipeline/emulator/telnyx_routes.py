"""The Telnyx API routes (/v2/...): which route a request names, its query's checks, and the
answer each route gives from the engine's account; and `App`, what every request runs against.

The HTTP plumbing (auth, faults, rate limit, sending) is http_server.py; the emulator's own
/_emulator routes are control_routes.py.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass
from typing import Any

from emergency_pipeline import telnyx_contract as contract
from emergency_pipeline.emulator import address_book
from emergency_pipeline.emulator.conformance import SpecCheck
from emergency_pipeline.emulator.errors import ErrorReply, invalid, not_found, unprocessable
from emergency_pipeline.emulator.faults import FaultInjector
from emergency_pipeline.emulator.organization import USER_STATUSES, Organization
from emergency_pipeline.emulator.engine import RateLimiter, Engine, Stats

PREFIX = "/v2"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile("^" + p + "$"), name) for m, p, name in [
        ("GET", r"/phone_numbers", "list_numbers"),
        ("GET", r"/phone_numbers/jobs", "list_jobs"),
        ("POST", r"/phone_numbers/jobs/update_emergency_settings", "create_job"),
        ("GET", r"/phone_numbers/jobs/(?P<id>[^/]+)", "get_job"),
        ("GET", r"/phone_numbers/(?P<id>[^/]+)", "get_number"),
        ("GET", r"/phone_numbers/(?P<id>[^/]+)/voice", "get_voice"),
        ("POST", r"/phone_numbers/(?P<id>[^/]+)/actions/enable_emergency", "enable_emergency"),
        ("GET", r"/addresses", "list_addresses"),
        ("POST", r"/addresses", "create_address"),
        ("POST", r"/addresses/actions/validate", "validate_address"),
        ("GET", r"/addresses/(?P<id>[^/]+)", "get_address"),
        ("GET", r"/organizations/users", "list_users"),
    ]
]
ROUTE_LABELS = {
    "list_numbers": "GET /v2/phone_numbers", "list_jobs": "GET /v2/phone_numbers/jobs",
    "create_job": "POST /v2/phone_numbers/jobs/update_emergency_settings",
    "get_job": "GET /v2/phone_numbers/jobs/{id}", "get_number": "GET /v2/phone_numbers/{id}",
    "get_voice": "GET /v2/phone_numbers/{id}/voice",
    "enable_emergency": "POST /v2/phone_numbers/{id}/actions/enable_emergency",
    "list_addresses": "GET /v2/addresses", "get_address": "GET /v2/addresses/{id}",
    "create_address": "POST /v2/addresses",
    "validate_address": "POST /v2/addresses/actions/validate",
    "list_users": "GET /v2/organizations/users",
}
# Routes that create something: (the count, the fault that loses the answer, the lost count).
CREATIONS = {
    "create_job": ("jobs_created", "lose_job_post_rate", "lost_job_answers"),
    "create_address": ("addresses_created", "lose_address_post_rate", "lost_address_answers"),
}
_ADDRESS_SORTS = ("created_at", "first_name", "last_name", "business_name", "street_address")
_NUMBER_SORTS = ("purchased_at", "phone_number", "connection_name", "usage_payment_method")
# The query enums of the spec, per route: any other value is 422 (code 10015, the pointer).
_TRUE_FALSE = ("true", "false")
_QUERY_ENUMS: dict[str, dict[str, tuple[str, ...]]] = {
    "list_numbers": {
        "sort": _NUMBER_SORTS, "filter[status]": contract.NUMBER_STATUS_FILTERS,
        "filter[source]": ("ported", "purchased"),
        "filter[number_type][eq]": ("local", "national", "toll_free", "mobile", "shared_cost"),
        "filter[voice.usage_payment_method]": ("pay-per-minute", "channel"),
        "filter[without_tags]": _TRUE_FALSE, "handle_messaging_profile_error": _TRUE_FALSE},
    "list_jobs": {"sort": ("created_at",), "filter[type]": contract.JOB_TYPES},
    "list_users": {"filter[user_status]": USER_STATUSES, "include_groups": _TRUE_FALSE},
}


@dataclass(frozen=True)
class JobPost:
    """A job POST as it arrived, before any fault: the host's clock (time.time(), not the
    emulator's skewed one) and which of the account's keys sent it (None: no valid key)."""

    received_at: float
    key: int | None


class App:
    """Everything a request handler needs; owned by the Emulator handle."""

    def __init__(self, engine: Engine, organization: Organization, limiter: RateLimiter,
                 faults: FaultInjector, spec: SpecCheck | None = None) -> None:
        self.engine, self.limiter, self.faults, self.spec = engine, limiter, faults, spec
        self.organization = organization   # its users, and every key of the account
        self.stats = Stats()
        self.job_posts: list[JobPost] = []   # every job POST that arrived, in order
        self._posts_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the key
        return "App(api_key=[redacted])"

    def authorized(self, header: str | None) -> bool:
        return self.organization.authorized(header)

    # ---- API routes; each runs under the state lock after advance() --------------------

    def dispatch(self, name: str, params: dict[str, str], query: dict[str, str],
                 body: Any) -> tuple[int, str]:
        st = self.engine
        acc = st.account
        _check_enums(_QUERY_ENUMS.get(name, {}), query)
        if name == "list_numbers":
            number, size = _page(query)
            sort = query.get("sort")
            phone = query.get("filter[phone_number]")
            if phone is not None and sum(c.isdigit() for c in phone) < 3:
                raise unprocessable("Requires at least three digits.", "/filter/phone_number")
            status = query.get("filter[status]")
            address = query.get("filter[emergency_address_id]")
            rows = (range(len(acc)) if phone is None and status is None and address is None
                    else st.filtered(phone_number=phone, status=status,
                                     emergency_address_id=address))
            if sort == "phone_number":  # the other sorts keep the default order
                rows = acc.by_phone(rows)
            chunk = rows[(number - 1) * size: number * size]
            data = ",".join(acc.number_json(i) for i in chunk)
            return 200, f'{{"data":[{data}],"meta":{_meta(number, size, len(rows))}}}'
        if name == "get_number":
            return 200, _data(acc.number_dict(st.number_index(_id_only(params["id"]))))
        if name == "get_voice":
            return 200, _data(acc.voice_dict(st.number_index(_id_only(params["id"]))))
        if name == "enable_emergency":
            return 202, _data(st.enable_emergency(_id_only(params["id"]), body))
        if name == "create_job":
            return 202, _data(st.create_job(body).to_dict(acc))
        if name == "get_job":
            return 200, _data(st.job(params["id"]).to_dict(acc))
        if name == "list_users":
            number, size = _page(query, 400)
            users = self.organization.list_users(query)
            data = json.dumps(users[(number - 1) * size: number * size], separators=(",", ":"))
            return 200, f'{{"data":{data},"meta":{_meta(number, size, len(users))}}}'
        if name == "list_jobs":
            number, size = _page(query)
            jobs = st.list_jobs(query.get("filter[type]"), query.get("sort"))
            data = [j.to_dict(acc) for j in jobs[(number - 1) * size: number * size]]
            return 200, (f'{{"data":{json.dumps(data, separators=(",", ":"))},'
                         f'"meta":{_meta(number, size, len(jobs))}}}')
        if name == "list_addresses":
            return 200, self._list_addresses(query)
        if name == "validate_address":
            return 200, _data(address_book.validate(body))
        if name == "create_address":
            return 200, _data(address_book.create(acc, body, st.clock.wall()))
        if name == "get_address":
            k = acc.address_index(params["id"])
            if k is None:
                raise not_found()
            return 200, _data(acc.addresses[k])
        raise not_found()

    def _list_addresses(self, query: dict[str, str]) -> str:
        # The spec lists 400 (no 422) for this endpoint's bad parameters.
        acc = self.engine.account
        number, size = _page(query, status=400)
        rows = list(range(len(acc.addresses)))
        used = query.get("filter[used_as_emergency]")
        if used is not None:
            if used not in _TRUE_FALSE:
                raise _bad_request("must be 'true' or 'false'", "/filter/used_as_emergency")
            rows = [k for k in rows if (acc.address_use[k] > 0) == (used == "true")]
        contains = query.get("filter[street_address][contains]")
        if contains is not None:
            if len(contains) < 3:
                raise _bad_request("Requires at least three characters.",
                                   "/filter/street_address/contains")
            low = contains.lower()
            rows = [k for k in rows if low in acc.addresses[k]["street_address"].lower()]
        sort = query.get("sort", "-created_at")
        field = sort.lstrip("-")
        if field not in _ADDRESS_SORTS:
            raise _bad_sort(status=400)
        rows.sort(key=lambda k: (acc.addresses[k].get(field) or "", k),
                  reverse=sort.startswith("-"))
        chunk = [acc.addresses[k] for k in rows[(number - 1) * size: number * size]]
        return json.dumps({"data": chunk, "meta": json.loads(_meta(number, size, len(rows)))})


def _page(query: dict[str, str], status: int = 422) -> tuple[int, int]:
    def get(name: str, default: int, low: int, high: int | None) -> int:
        raw = query.get(f"page[{name}]")
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            raise ErrorReply(status, [invalid(
                "The provided 'page' parameter is invalid. It must be an object with 'size' "
                "and/or 'number' with numeric values.", f"page/{name}", "Invalid pagination")])
        return value
    return get("number", 1, 1, None), get("size", 20, 1, contract.MAX_PAGE_SIZE)


def _meta(number: int, size: int, total: int) -> str:
    return (f'{{"page_number":{number},"page_size":{size},'
            f'"total_pages":{math.ceil(total / size)},"total_results":{total}}}')


def _data(obj: Any) -> str:
    return json.dumps({"data": obj}, separators=(",", ":"))


def _id_only(key: str) -> str:
    # The {id} routes take numeric ids; "+1..." would 404 on Telnyx too.
    return key if key.isdigit() else "-"


def _bad_sort(status: int = 422) -> ErrorReply:
    return ErrorReply(status, [invalid("The value provided for sorting is not valid. Check the "
                                     "value used and try again.", "/sort",
                                     "Invalid sorting value")])


def _bad_request(detail: str, pointer: str) -> ErrorReply:
    return ErrorReply(400, [invalid(detail, pointer)])


def _check_enums(enums: dict[str, tuple[str, ...]], query: dict[str, str]) -> None:
    for param, allowed in enums.items():
        value = query.get(param)
        if value is not None and value not in allowed:
            if param == "sort":
                raise _bad_sort()
            pointer = "/" + param.replace("[", "/").replace("]", "")
            raise unprocessable(f"The value provided for {param} is not valid: expected one "
                                f"of {', '.join(allowed)}.", pointer)



def route(method: str, path: str) -> tuple[str, dict[str, str]]:
    """The route a request names and its path parameters; ("unknown", {}) for none."""
    if path.startswith(PREFIX + "/"):
        for m, pattern, name in _ROUTES:
            match = pattern.match(path[len(PREFIX):])
            if match and m == method:
                return name, match.groupdict()
    return "unknown", {}


def request_body(name: str, method: str, raw: bytes) -> Any:
    """A POST's JSON body (None for other methods); a body that is not JSON is refused."""
    if method != "POST":
        return None
    try:
        return json.loads(raw or b"null")
    except ValueError:
        # The address routes list no 400 in the spec: they refuse a bad body with 422.
        status = 422 if name in ("create_address", "validate_address") else 400
        raise ErrorReply(status, [invalid(
            "The request body is not valid JSON.", "/base")]) from None
