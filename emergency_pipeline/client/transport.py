"""One thread-safe httpx.Client, with pacing, a concurrency bound and the retry loop for reads."""

from __future__ import annotations

import functools
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from .config import ClientConfig
from .errors import TelnyxAPIError, parse_errors, redact
from .pacing import Pacer
from .server_clock import ServerClock
from .retry import (Failure, RetryBudget, backoff_delay, classify_exception,
                    classify_response)


@dataclass(frozen=True)
class Attempt:
    """The result of sending one request once: an answer, or why there was none."""

    response: httpx.Response | None
    body: Any
    failure: Failure | None


class _BearerAuth(httpx.Auth):
    """Adds the key at send time, so it is in no default header and in no reprs of ours."""

    def __init__(self, key: str) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request):
        request.headers["Authorization"] = f"Bearer {self._key}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth([redacted])"


# httpx's and httpcore's own loggers: at DEBUG, httpcore logs a failed send with the request's
# header bytes (b'Bearer <key>\n'). A filter on each, since a logger's filter does not see its
# children's records.
_LIBRARY_LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11",
                    "httpcore.http2", "httpcore.proxy", "httpcore.socks")


class _RedactingFilter(logging.Filter):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self._secret)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default verification (certifi's CAs), made once a process: loading the CAs
    took 23 ms of CPU a client, and a run makes several."""
    return httpx.create_ssl_context(trust_env=False)   # as the client: nothing from the env


class Transport:
    def __init__(self, config: ClientConfig, log: Any) -> None:
        self.config = config
        self.log = log
        self._redacting = _RedactingFilter(config.api_key)
        for name in _LIBRARY_LOGGERS:
            logging.getLogger(name).addFilter(self._redacting)
        self.pacer = Pacer(config.max_rate)
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._rng = random.Random()
        self._stats_lock = threading.Lock()
        self.requests_sent = 0
        self.retries = 0
        self.server_clock = ServerClock()       # Telnyx's clock, from Date headers
        base = config.connect_url.rstrip("/")
        self._http = httpx.Client(
            base_url=base + "/",
            auth=_BearerAuth(config.api_key),
            headers={"Accept": "application/json", "User-Agent": config.user_agent},
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
            limits=httpx.Limits(
                max_connections=config.max_concurrency,
                max_keepalive_connections=config.max_concurrency,
            ),
            verify=_tls(),
            follow_redirects=False,   # a redirect could carry the key to another host
            trust_env=False,          # no proxies from the environment: the key goes to base_url
        )

    def close(self) -> None:
        self._http.close()
        for name in _LIBRARY_LOGGERS:
            logging.getLogger(name).removeFilter(self._redacting)

    # -- sending once ---------------------------------------------------------------------

    def send(self, method: str, path: str, *, params: dict | None = None,
             json_body: Any = None, before: Callable[[], None] | None = None) -> Attempt:
        """Send once (paced, bounded); never raises for HTTP or transport failures.

        `before` runs after the pacing waits, as the last thing before the request goes out
        (the lease's fence for a job POST): whatever it raises stops the send."""
        with self._slots:
            self.pacer.acquire()
            if before is not None:
                try:
                    before()
                except BaseException:
                    self.pacer.release(None)
                    raise
            with self._stats_lock:
                self.requests_sent += 1
            sent = time.time()
            try:
                response = self._http.request(method, path.lstrip("/"), params=params,
                                              json=json_body)
            except Exception as exc:  # noqa: BLE001 - classified below, httpx's and others'
                self.pacer.release(None)
                failure = classify_exception(exc)
                detail = redact(str(exc), self.config.api_key)
                return Attempt(None, None,
                               Failure(f"{failure.reason}: {detail}" if detail else failure.reason,
                                       failure.retryable, failure.ambiguous))
        self.server_clock.note(response.headers.get("date"), sent, time.time())
        failure = classify_response(response)
        self.pacer.release(response.headers, throttled=response.status_code == 429,
                           retry_after=failure.hint if failure else None)
        try:
            body = orjson.loads(response.content) if response.content else None
        except (orjson.JSONDecodeError, UnicodeDecodeError):
            body = None
            if failure is None:   # a truncated success: we cannot use it, try again
                failure = Failure(f"HTTP {response.status_code} with invalid JSON", True, True,
                                  None, response.status_code)
        return Attempt(response, body, failure)

    def error_for(self, attempt: Attempt, method: str, path: str, *, attempts: int = 1,
                  cls: type[TelnyxAPIError] = TelnyxAPIError, **extra: Any) -> TelnyxAPIError:
        status = attempt.response.status_code if attempt.response is not None else None
        reason = None if (status is not None and attempt.body) else (
            attempt.failure.reason if attempt.failure else None)
        return cls(status, parse_errors(attempt.body, self.config.api_key), method=method,
                   path=path, reason=reason, attempts=attempts, **extra)

    # -- reads, with retries --------------------------------------------------------------

    def budget(self) -> RetryBudget:
        c = self.config
        return RetryBudget(c.max_attempts, c.max_throttled_attempts, c.max_retry_seconds)

    def delay_for(self, retry_number: int, failure: Failure) -> float:
        return backoff_delay(retry_number, base=self.config.backoff_base,
                             cap=self.config.backoff_max, hint=failure.hint, rng=self._rng)

    def get(self, path: str, params: dict | None = None, *, what: str | None = None) -> Any:
        """GET with retries on 429, 5xx, timeouts and dropped connections; returns the JSON body."""
        return self.retrying("GET", path, params=params, what=what)

    def retrying(self, method: str, path: str, *, params: dict | None = None,
                 json_body: Any = None, what: str | None = None,
                 rejected: type[TelnyxAPIError] = TelnyxAPIError) -> Any:
        """A request without side effects (a read, a validation), retried on 429, 5xx,
        timeouts and dropped connections; returns the JSON body. A 422 raises `rejected`."""
        what = what or f"{method} {path}"
        shown = _show(path, params)
        budget = self.budget()
        while True:
            attempt_no = budget.tries + 1
            attempt = self.send(method, path, params=params, json_body=json_body)
            if attempt.failure is None:
                return attempt.body
            failure = attempt.failure
            if not failure.retryable:
                cls = rejected if failure.status == 422 else TelnyxAPIError
                raise self.error_for(attempt, method, shown, attempts=attempt_no, cls=cls)
            delay = self.delay_for(attempt_no, failure)
            if not budget.allows_another(failure, delay):
                self.log.warning(f"{what}: {failure.reason}; giving up after {attempt_no} "
                                 f"attempts in {budget.elapsed:.1f}s")
                raise self.error_for(attempt, method, shown, attempts=attempt_no)
            with self._stats_lock:
                self.retries += 1
            self.log.warning(f"{what}: {failure.reason}; retry {attempt_no} in "
                             f"{delay:.2f}s")
            time.sleep(delay)


def _show(path: str, params: dict | None) -> str:
    """Path with query for messages (the key is never in a query)."""
    if not params:
        return path
    return f"{path}?" + "&".join(f"{k}={v}" for k, v in params.items())
