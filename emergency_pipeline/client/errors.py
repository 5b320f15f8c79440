"""The client's one error type for API failures, and parsing of Telnyx error bodies."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

REDACTED = "[redacted]"


@dataclass(frozen=True)
class ApiError:
    """One entry of Telnyx's `errors` list."""

    code: str | None
    title: str | None
    detail: str | None = None
    pointer: str | None = None
    parameter: str | None = None

    def describe(self) -> str:
        text = " ".join(p for p in (self.code, self.title) if p) or "error"
        if self.detail:
            text += f": {self.detail}"
        if self.pointer:
            text += f" (at {self.pointer})"
        elif self.parameter:
            text += f" (parameter {self.parameter})"
        return text


def secret_forms(secret: str) -> list[str]:
    """Every way a library may print the secret: raw, repr-escaped, unicode-escaped, as bytes
    (b'...') and JSON-escaped; longest first, so a form containing another goes first."""
    forms = {secret, repr(secret)[1:-1], secret.encode("unicode_escape").decode("ascii"),
             repr(secret.encode("utf-8", "backslashreplace"))[2:-1],
             json.dumps(secret)[1:-1], secret.strip()}
    return sorted((f for f in forms if f), key=len, reverse=True)


def redact(text: str, secret: str | None) -> str:
    """Remove a secret from text that came from elsewhere (a server may echo anything, an
    exception may show a header's bytes)."""
    if secret and text:
        for form in secret_forms(secret):
            text = text.replace(form, REDACTED)
    return text


def parse_errors(body: Any, secret: str | None = None) -> tuple[ApiError, ...]:
    """Telnyx error body -> ApiErrors; tolerant of missing or malformed parts."""
    if not isinstance(body, Mapping):
        return ()
    raw = body.get("errors")
    if not isinstance(raw, list):
        return ()

    def text(value: Any) -> str | None:
        return None if value is None else redact(str(value), secret)

    out = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        source = item.get("source") if isinstance(item.get("source"), Mapping) else {}
        out.append(
            ApiError(
                code=text(item.get("code")),
                title=text(item.get("title")),
                detail=text(item.get("detail") or item.get("description")),
                pointer=text(source.get("pointer")),
                parameter=text(source.get("parameter")),
            )
        )
    return tuple(out)


class TelnyxAPIError(Exception):
    """An API call failed: an error answer, or no answer after the allowed retries.

    `status` is None when no HTTP answer came (timeout, dropped connection). Never holds the key.
    """

    def __init__(
        self,
        status: int | None,
        errors: Sequence[ApiError] = (),
        *,
        method: str,
        path: str,
        reason: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.status = status
        self.errors = tuple(errors)
        self.method = method
        self.path = path
        self.reason = reason
        self.attempts = attempts
        super().__init__(self._message())

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(e.code for e in self.errors if e.code)

    def _message(self) -> str:
        head = f"{self.method} {self.path} -> " + (
            f"HTTP {self.status}" if self.status is not None else "no answer"
        )
        if self.reason:
            head += f" ({self.reason})"
        if self.attempts > 1:
            head += f" after {self.attempts} attempts"
        if self.errors:
            head += ": " + "; ".join(e.describe() for e in self.errors)
        return head

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._message()!r})"


_INDEX_POINTER = re.compile(r"^/?phone_numbers/(\d+)(?:/.*)?$")


def errors_by_number(
    errors: Iterable[ApiError], phone_numbers: Sequence[str]
) -> tuple[dict[str, tuple[ApiError, ...]], tuple[ApiError, ...]]:
    """Map errors whose pointer is /phone_numbers/<index> to that identifier; the rest are general."""
    by_number: dict[str, list[ApiError]] = {}
    general: list[ApiError] = []
    for err in errors:
        m = _INDEX_POINTER.match(err.pointer or "")
        if m and int(m.group(1)) < len(phone_numbers):
            by_number.setdefault(phone_numbers[int(m.group(1))], []).append(err)
        else:
            general.append(err)
    return {k: tuple(v) for k, v in by_number.items()}, tuple(general)


class JobRejected(TelnyxAPIError):
    """Telnyx refused to create the job (422). Nothing was created; do not retry unchanged."""

    def __init__(self, status: int | None, errors: Sequence[ApiError] = (), *,
                 phone_numbers: Sequence[str] = (), **where: Any) -> None:
        """`where`: TelnyxAPIError's method, path, reason and attempts."""
        self.phone_numbers = tuple(phone_numbers)
        self.by_number, self.general_errors = errors_by_number(errors, self.phone_numbers)
        super().__init__(status, errors, **where)

    @property
    def failing_numbers(self) -> tuple[str, ...]:
        return tuple(self.by_number)

    def _message(self) -> str:
        text = super()._message()
        if self.by_number:
            shown = list(self.by_number)[:10]
            more = len(self.by_number) - len(shown)
            text += f" [numbers: {', '.join(shown)}" + (f" and {more} more]" if more else "]")
        return text


class JobUnanswered(TelnyxAPIError):
    """A job POST got no clear answer and the account's job list could not prove that no job
    was made: the job may exist. Not sent again; the next run adopts it or submits afresh."""
