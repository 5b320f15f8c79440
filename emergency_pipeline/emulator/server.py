"""The HTTP side: routes, bearer auth, the fixed-window rate limit, faults, error bodies.

Stdlib `ThreadingHTTPServer` speaking HTTP/1.1 (keep-alive). Faults are applied before the
state lock is taken, so added latency never blocks other requests.
"""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from emergency_pipeline import telnyx_contract as contract
from emergency_pipeline.emulator import address_book, admin
from emergency_pipeline.emulator.conformance import SpecCheck
from emergency_pipeline.emulator.errors import (
    ErrorReply, invalid, not_found, rate_limited, server_error, unauthorized, unprocessable)
from emergency_pipeline.emulator.faults import Faults, FaultInjector
from emergency_pipeline.emulator.organization import USER_STATUSES, Organization
from emergency_pipeline.emulator.shape import Shape
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
_ROUTE_LABEL = {
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
_CREATIONS = {
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


def _object(raw: bytes) -> dict[str, Any]:
    body = json.loads(raw or b"{}")
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _check_enums(enums: dict[str, tuple[str, ...]], query: dict[str, str]) -> None:
    for param, allowed in enums.items():
        value = query.get(param)
        if value is not None and value not in allowed:
            if param == "sort":
                raise _bad_sort()
            pointer = "/" + param.replace("[", "/").replace("]", "")
            raise unprocessable(f"The value provided for {param} is not valid: expected one "
                                f"of {', '.join(allowed)}.", pointer)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "telnyx-emulator"
    timeout = 60  # idle keep-alive connections give their thread back
    disable_nagle_algorithm = True  # small answers must not wait for a delayed ACK

    def log_message(self, format: str, *args: Any) -> None:  # quiet; and never log headers
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header (RFC 7231, as Telnyx sends it) from the emulator's clock, so a
        skewed emulator shows its skew there too."""
        if timestamp is None:
            timestamp = self.server.app.engine.clock.wall()  # type: ignore[attr-defined]
        return formatdate(timestamp, usegmt=True)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # ---- plumbing -------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        app: App = self.server.app  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        path = unquote(url.path)
        if path.startswith("/_emulator/"):
            return self._admin(app, method, path, raw)
        multi = parse_qs(url.query, keep_blank_values=True)
        query = {k: v[0] for k, v in multi.items()}
        if app.spec is not None:  # before faults: what was sent counts, answered or not
            app.spec.check(method, path, multi, raw)

        name, params = "unknown", {}
        if path.startswith(PREFIX + "/"):
            for m, pattern, route in _ROUTES:
                match = pattern.match(path[len(PREFIX):])
                if match and m == method:
                    name, params = route, match.groupdict()
                    break
        app.stats.request(_ROUTE_LABEL.get(name, "other"))
        if name == "create_job":   # as it arrives: a POST counts as sent, answered or not
            post = JobPost(time.time(), app.organization.key_number(
                self.headers.get("Authorization")))
            with app._posts_lock:
                app.job_posts.append(post)

        decision = app.faults.for_request()
        if decision.latency:
            time.sleep(decision.latency)  # outside every lock
        if decision.drop:
            app.stats.add("dropped")
            self.close_connection = True
            return
        allowed, rl = app.limiter.hit()
        if decision.status is not None:
            rl = {**rl, "x-ratelimit-remaining": "0"} if decision.status == 429 else rl
            err = rate_limited() if decision.status == 429 else server_error(decision.status)
            return self._send_error(app, err, rl)
        if not app.authorized(self.headers.get("Authorization")):
            return self._send_error(app, unauthorized(), rl)
        if not allowed:
            return self._send_error(app, rate_limited(), rl)
        if name == "unknown":
            return self._send_error(app, not_found(), rl)

        body: Any = None
        if method == "POST":
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                # The address routes list no 400 in the spec: they refuse a bad body with 422.
                status = 422 if name in ("create_address", "validate_address") else 400
                return self._send_error(app, ErrorReply(status, [invalid(
                    "The request body is not valid JSON.", "/base")]), rl)
        if name == "create_job" and app.faults.happens("slow_job_post_rate"):
            # A slow server: the job is made only after this wait, long after a client's
            # read timeout may have given up on the answer.
            time.sleep(app.faults.faults.slow_job_post_seconds)
        try:
            with app.engine.lock:
                app.engine.advance()
                status, text = app.dispatch(name, params, query, body)
        except ErrorReply as err:
            return self._send_error(app, err, rl)
        if name in _CREATIONS:
            made, rate, lost = _CREATIONS[name]
            app.stats.add(made)
            if app.faults.happens(rate):    # created, but the answer never arrives
                app.stats.add(lost)
                self.close_connection = True
                return
        self._send(app, status, text, rl)

    def _send_error(self, app: App, err: ErrorReply, headers: dict[str, str]) -> None:
        if err.status == 429:
            headers = {**headers, "Retry-After": headers.get("x-ratelimit-reset", "1")}
        self._send(app, err.status, json.dumps(err.body()), headers)

    def _send(self, app: App | None, status: int, text: str,
              headers: dict[str, str] | None = None) -> None:
        data = text.encode()
        if app is not None:  # counted before the client can see the answer
            app.stats.add("", status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        # Headers and body in one write: one packet for a small answer.
        self._headers_buffer.append(b"\r\n" + data)
        self.flush_headers()

    def _admin(self, app: App, method: str, path: str, raw: bytes) -> None:
        """Control routes for other processes: no auth, no faults, not counted; and so
        for loopback clients only."""
        if self.client_address[0] not in ("127.0.0.1", "::1"):
            return self._send(None, 403, json.dumps({"errors": [{
                "code": "10006", "title": "Not authorized",
                "detail": "The emulator's control routes answer loopback clients only."}]}))
        try:
            if path == "/_emulator/faults" and method == "GET":
                return self._send(None, 200, json.dumps(app.faults.faults.to_dict()))
            if path == "/_emulator/faults" and method == "PUT":
                faults = Faults.from_dict(json.loads(raw or b"{}"))
                app.faults.set(faults)
                return self._send(None, 200, json.dumps(faults.to_dict()))
            if path == "/_emulator/shape" and method == "GET":
                return self._send(None, 200, json.dumps(app.engine.shape.to_dict()))
            if path == "/_emulator/shape" and method == "PUT":
                shape = Shape.from_dict(json.loads(raw or b"{}"))
                app.engine.shape = shape
                return self._send(None, 200, json.dumps(shape.to_dict()))
            if path == "/_emulator/violations" and method == "GET":
                found = list(app.spec.violations) if app.spec is not None else []
                return self._send(None, 200, json.dumps(found))
            if path == "/_emulator/stats" and method == "GET":
                return self._send(None, 200, json.dumps(app.stats.snapshot()))
            if path == "/_emulator/stats" and method == "DELETE":
                app.stats.reset()
                return self._send(None, 200, "{}")
            if path == "/_emulator/clock" and method == "GET":
                return self._send(None, 200, json.dumps(app.engine.clock.to_dict()))
            if path == "/_emulator/clock" and method == "PUT":
                body = _object(raw)
                if "offset_seconds" in body:
                    app.engine.clock.set_offset(body["offset_seconds"])
                return self._send(None, 200, json.dumps(app.engine.clock.to_dict()))
            if path == "/_emulator/advance" and method == "POST":
                app.engine.move_clock(_object(raw).get("seconds"))
                return self._send(None, 200, json.dumps(app.engine.clock.to_dict()))
            if path == "/_emulator/finish_jobs" and method == "POST":
                app.engine.finish_jobs()
                return self._send(None, 200, "{}")
            for prefix, patch in (("/_emulator/numbers/", admin.patch_number),
                                  ("/_emulator/addresses/", admin.patch_address)):
                if path.startswith(prefix) and method == "PATCH":
                    try:
                        done = patch(app.engine, path[len(prefix):], json.loads(raw or b"{}"))
                    except KeyError:
                        break       # 404 below
                    return self._send(None, 200, json.dumps({"data": done}))
        except (ValueError, TypeError) as exc:
            return self._send(None, 400, json.dumps({"errors": [{"detail": str(exc)}]}))
        self._send(None, 404, json.dumps(not_found().body()))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self._open: set[Any] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, Handler)

    # Keep-alive connections outlive serve_forever(); track them so that stop() can
    # close them and a stopped emulator really stops answering.
    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-answer is not news
