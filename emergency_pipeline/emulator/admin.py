"""Changes behind the pipeline's back, as someone in the Telnyx portal would make them: the
emulator's control routes for tests and demos (loopback only; see control_routes.py).

    PATCH /_emulator/numbers/{id or E.164}  {"emergency_enabled": bool,
                                             "emergency_address_id": str | null,
                                             "status": "active" | ...}
    PATCH /_emulator/addresses/{id}         {"validate_address": bool}

A number's change is settled at once (emergency_status active or disabled), as a portal
change seen a while later is. `validate_address` is the spec's own Address field (whether
the address was validated for emergency use when created); the spec has no other
validation status of an address.
"""

from __future__ import annotations

import time
from typing import Any

from emergency_pipeline import telnyx_contract as contract
from emergency_pipeline.emulator.account import _STATUS_CODE
from emergency_pipeline.emulator.engine import Engine


def patch_number(engine: Engine, key: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    unknown = set(body) - {"emergency_enabled", "emergency_address_id", "status"}
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    with engine.lock:
        engine.advance()
        acc = engine.account
        i = acc.index_of(str(key))
        if i is None:
            raise KeyError(key)
        if "status" in body:
            if body["status"] not in contract.NUMBER_STATUSES:
                raise ValueError(f"unknown status {body['status']!r}")
            acc.status[i] = _STATUS_CODE[body["status"]]
            acc.version += 1
        if "emergency_enabled" in body or "emergency_address_id" in body:
            enabled = bool(body.get("emergency_enabled", acc.enabled[i]))
            address_id = body.get("emergency_address_id", acc.address_id(i))
            address = None
            if address_id is not None:
                address = acc.address_index(str(address_id))
                if address is None:
                    raise ValueError(f"no address {address_id} in the account")
            acc.set_emergency(i, enabled, address, "active" if enabled else "disabled",
                              time.time())
        return acc.number_dict(i)


def patch_address(engine: Engine, address_id: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or set(body) - {"validate_address"}:
        raise ValueError("the body must be {\"validate_address\": true|false}")
    with engine.lock:
        acc = engine.account
        k = acc.address_index(str(address_id))
        if k is None:
            raise KeyError(address_id)
        acc.addresses[k]["validate_address"] = bool(body["validate_address"])
        acc.version += 1
        return dict(acc.addresses[k])
