"""Telnyx-style error bodies: {"errors": [{"code", "title", "detail", "source", "meta"}]}."""

from __future__ import annotations

from typing import Any

from emergency_pipeline import telnyx_contract as contract

DOCS_URL = "https://developers.telnyx.com/docs/overview/errors/"


def error(code: str, title: str, detail: str, pointer: str | None = None,
          parameter: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "title": title, "detail": detail,
                           "meta": {"url": DOCS_URL + code}}
    if pointer is not None or parameter is not None:
        out["source"] = {k: v for k, v in (("pointer", pointer), ("parameter", parameter))
                         if v is not None}
    return out


def invalid(detail: str, pointer: str, title: str = "Bad Request") -> dict[str, Any]:
    return error(contract.CODE_INVALID, title, detail, pointer)


class ErrorReply(Exception):
    """An answer other than success: HTTP status plus the `errors` list."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{status}: {errors[0].get('detail') if errors else ''}")
        self.status = status
        self.errors = errors

    def body(self) -> dict[str, Any]:
        return {"errors": self.errors}


def unprocessable(detail: str, pointer: str, title: str = "Bad Request") -> ErrorReply:
    return ErrorReply(422, [invalid(detail, pointer, title)])


def not_found() -> ErrorReply:
    return ErrorReply(404, [error(contract.CODE_NOT_FOUND, "Resource not found",
                                "The requested resource or URL could not be found.", "/base")])


def unauthorized() -> ErrorReply:
    return ErrorReply(401, [error(contract.CODE_UNAUTHORIZED, "Authentication failed",
                                "Could not understand the provided credentials.")])


def rate_limited() -> ErrorReply:
    return ErrorReply(429, [error(contract.CODE_RATE_LIMITED, "Too many requests",
                                "Too many requests have been made in this time window. "
                                "Wait for the window to reset and try again.")])


def server_error(status: int) -> ErrorReply:
    if status == 503:
        return ErrorReply(503, [error("10008", "Service unavailable",
                                    "The service is temporarily unavailable. Try again later.")])
    return ErrorReply(500, [error("10007", "Unexpected error", "An unexpected error occured.")])
