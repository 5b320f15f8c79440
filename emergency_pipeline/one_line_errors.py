"""One line for an error: the root cause and what to do (which variable, which host, which file).

    explain(exc, base_url=None) -> str             # any exception -> one line with the fix
    with failures_explained(base_url): ...        # in an asset: re-raised as dagster Failure
    explain_run_failure(result) -> list[str]       # a failed run's step errors, one line each

The texts never hold the API key: TelnyxAPIError and the client's errors are redacted where
they are made, and this module only adds names of variables and hosts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from emergency_pipeline.client import API_KEY_ENV, InsecureTransportError, TelnyxAPIError

BASE_URL_ENV = "TELNYX_BASE_URL"


def _host(base_url: str | None) -> str:
    if not base_url:
        return "the Telnyx API"
    try:
        url = httpx.URL(base_url)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as given
        return base_url
    return f"{url.host}:{url.port}" if url.port else str(url.host)


def explain_api_error(exc: TelnyxAPIError, base_url: str | None = None) -> str:
    where = f"{exc.method} {exc.path.split('?')[0]} at {_host(base_url)}"
    codes = f", code {', '.join(exc.codes)}" if exc.codes else ""
    if exc.status is None:
        why = exc.reason or "no answer"
        return (f"no answer from {_host(base_url)} ({why}; {exc.attempts} attempt"
                f"{'s' if exc.attempts != 1 else ''}): check {BASE_URL_ENV} (now {base_url or 'the default'}) "
                "and that the host is up and reachable from here")
    if exc.status == 401:
        return (f"Telnyx refused the API key (HTTP 401{codes}) for {where}: check "
                f"{API_KEY_ENV} (a valid key of the account that {BASE_URL_ENV} points at)")
    if exc.status == 403:
        return (f"the API key may not do this (HTTP 403{codes}) for {where}: give "
                f"{API_KEY_ENV} a key with access to phone numbers and addresses")
    if exc.status == 404:
        return (f"not found (HTTP 404{codes}) for {where}: check that {BASE_URL_ENV} "
                f"(now {base_url or 'the default'}) ends in /v2")
    if exc.status == 429:
        return (f"rate limited by Telnyx (HTTP 429{codes}) for {where} after {exc.attempts} "
                "attempts: run again later, or lower the Telnyx resource's max_rate")
    if exc.status >= 500:
        return (f"Telnyx answered HTTP {exc.status} for {where} after {exc.attempts} attempts: "
                "the service is failing; run again later (open jobs are resumed, not resent)")
    return f"Telnyx refused {where}: {exc}"


def explain(exc: BaseException, base_url: str | None = None) -> str:
    """The root cause of `exc` with its fix, in one line."""
    from emergency_pipeline.desired_state import DesiredStateError
    from emergency_pipeline.planning.disable_guard import SafetyGuardError

    if isinstance(exc, TelnyxAPIError):
        return explain_api_error(exc, base_url)
    if isinstance(exc, InsecureTransportError):
        return f"{exc} (set {BASE_URL_ENV})"
    if isinstance(exc, ValueError) and API_KEY_ENV in str(exc):
        return f"{API_KEY_ENV} is not set: export the account's API key (never in a file of the repo)"
    if isinstance(exc, DesiredStateError):
        return f"desired state not usable: {exc}"
    if isinstance(exc, SafetyGuardError):
        return str(exc)
    if isinstance(exc, httpx.TransportError):
        return (f"cannot reach {_host(base_url)} ({type(exc).__name__}: {exc}): check "
                f"{BASE_URL_ENV} (now {base_url or 'the default'})")
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


@contextmanager
def failures_explained(base_url: str | None = None) -> Iterator[None]:
    """Turn a Telnyx or connection error into a dagster Failure whose description is the
    one-line cause (what the UI shows first), keeping the original as its cause."""
    from dagster import Failure

    try:
        yield
    except (TelnyxAPIError, InsecureTransportError, httpx.TransportError) as exc:
        raise Failure(description=explain(exc, base_url)) from exc


def _root(error: Any) -> Any:
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error


def explain_run_failure(result: Any) -> list[str]:
    """One line per failed step of an ExecuteInProcessResult: the Failure's description
    when the step raised one, else the innermost exception's type and message."""
    lines = []
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data
        described = getattr(data.user_failure_data, "description", None)
        if described:
            text = described
        elif data.error is not None:
            root = _root(data.error)
            text = f"{root.cls_name}: {root.message.strip().splitlines()[-1]}" \
                if root.message.strip() else root.cls_name
        else:
            text = "failed"
        lines.append(f"{event.step_key}: {' '.join(str(text).split())}")
    if not lines:   # a run can fail outside any step (e.g. a resource that cannot start)
        for event in result.all_events:
            if event.is_failure and event.message:
                lines.append(" ".join(event.message.split()))
    return lines
