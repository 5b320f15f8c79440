"""The HTTP plumbing: a stdlib `ThreadingHTTPServer` speaking HTTP/1.1 (keep-alive), and the
handler that reads a request, applies faults, bearer auth and the fixed-window rate limit,
and sends the answer of a Telnyx route (telnyx_routes.py) or a control route
(control_routes.py) with its error body.

Faults are applied before the state lock is taken, so added latency never blocks other
requests.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from emergency_pipeline.emulator import control_routes
from emergency_pipeline.emulator.errors import (
    ErrorReply, not_found, rate_limited, server_error, unauthorized)
from emergency_pipeline.emulator.telnyx_routes import (
    CREATIONS, ROUTE_LABELS, App, JobPost, request_body, route)


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
        if path.startswith(control_routes.PREFIX):
            # No auth, no faults, not counted: control_routes.py.
            return self._send(None, *control_routes.answer(
                app, self.client_address[0], method, path, raw))
        multi = parse_qs(url.query, keep_blank_values=True)
        query = {k: v[0] for k, v in multi.items()}
        if app.spec is not None:  # before faults: what was sent counts, answered or not
            app.spec.check(method, path, multi, raw)

        name, params = route(method, path)
        app.stats.request(ROUTE_LABELS.get(name, "other"))
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

        try:
            body = request_body(name, method, raw)
        except ErrorReply as err:
            return self._send_error(app, err, rl)
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
        if name in CREATIONS:
            made, rate, lost = CREATIONS[name]
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
