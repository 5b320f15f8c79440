"""Helpers for the emulator tests: an authenticated httpx client and number pickers."""

from __future__ import annotations

from typing import Any

import httpx

from emergency_pipeline import telnyx_contract as contract
from emergency_pipeline.emulator import Emulator

API_KEY = "test-key-not-secret"
JOBS = "/phone_numbers/jobs/update_emergency_settings"


def client(emu: Emulator, key: str | None = API_KEY, **kwargs: Any) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.Client(base_url=emu.base_url, headers=headers, timeout=10.0, **kwargs)


def pick(emu: Emulator, n: int, **want: Any) -> list[dict[str, Any]]:
    """The first n numbers whose fields equal `want` (status_in: a set of statuses)."""
    statuses = want.pop("status_in", None)
    out = []
    for num in emu.numbers():
        if statuses is not None and num["status"] not in statuses:
            continue
        if all(num[k] == v for k, v in want.items()):
            out.append(num)
            if len(out) == n:
                return out
    raise AssertionError(f"the account has fewer than {n} numbers with {want}")


def allowing(emu: Emulator, n: int, **want: Any) -> list[dict[str, Any]]:
    return pick(emu, n, status_in=contract.NUMBER_STATUSES_ALLOWING_EMERGENCY, **want)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert list(body) == ["errors"], body
    return body["errors"][0]


def each_number_in_one_job(emu: Emulator) -> bool:
    """True when no number of the account was named by two of its jobs (rule 3)."""
    sets = [frozenset(p.get("phone_number") or p.get("id") for p in j["phone_numbers"])
            for j in emu.jobs()]
    return sum(map(len, sets)) == len(frozenset().union(*sets))
