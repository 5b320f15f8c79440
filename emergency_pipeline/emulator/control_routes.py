"""The emulator's own routes under /_emulator/, for tests, demos and other processes: its
faults, answer shape, clock, counters and spec violations, and changes behind the pipeline's
back (admin.py). No auth, no faults, not counted; and so for loopback clients only.
"""

from __future__ import annotations

import json
from typing import Any

from emergency_pipeline.emulator import admin
from emergency_pipeline.emulator.errors import not_found
from emergency_pipeline.emulator.faults import Faults
from emergency_pipeline.emulator.shape import Shape
from emergency_pipeline.emulator.telnyx_routes import App

PREFIX = "/_emulator/"
_LOOPBACK = ("127.0.0.1", "::1")


def answer(app: App, client_host: str, method: str, path: str,
           raw: bytes) -> tuple[int, str]:
    """The status and JSON text of a control route's answer."""
    if client_host not in _LOOPBACK:
        return 403, json.dumps({"errors": [{
            "code": "10006", "title": "Not authorized",
            "detail": "The emulator's control routes answer loopback clients only."}]})
    try:
        found = _route(app, method, path, raw)
    except (ValueError, TypeError) as exc:
        return 400, json.dumps({"errors": [{"detail": str(exc)}]})
    return found if found is not None else (404, json.dumps(not_found().body()))


def _route(app: App, method: str, path: str, raw: bytes) -> tuple[int, str] | None:
    if path == "/_emulator/faults" and method == "GET":
        return 200, json.dumps(app.faults.faults.to_dict())
    if path == "/_emulator/faults" and method == "PUT":
        faults = Faults.from_dict(json.loads(raw or b"{}"))
        app.faults.set(faults)
        return 200, json.dumps(faults.to_dict())
    if path == "/_emulator/shape" and method == "GET":
        return 200, json.dumps(app.engine.shape.to_dict())
    if path == "/_emulator/shape" and method == "PUT":
        shape = Shape.from_dict(json.loads(raw or b"{}"))
        app.engine.shape = shape
        return 200, json.dumps(shape.to_dict())
    if path == "/_emulator/violations" and method == "GET":
        found = list(app.spec.violations) if app.spec is not None else []
        return 200, json.dumps(found)
    if path == "/_emulator/stats" and method == "GET":
        return 200, json.dumps(app.stats.snapshot())
    if path == "/_emulator/stats" and method == "DELETE":
        app.stats.reset()
        return 200, "{}"
    if path == "/_emulator/clock" and method == "GET":
        return 200, json.dumps(app.engine.clock.to_dict())
    if path == "/_emulator/clock" and method == "PUT":
        body = _object(raw)
        if "offset_seconds" in body:
            app.engine.clock.set_offset(body["offset_seconds"])
        return 200, json.dumps(app.engine.clock.to_dict())
    if path == "/_emulator/advance" and method == "POST":
        app.engine.move_clock(_object(raw).get("seconds"))
        return 200, json.dumps(app.engine.clock.to_dict())
    if path == "/_emulator/finish_jobs" and method == "POST":
        app.engine.finish_jobs()
        return 200, "{}"
    for prefix, patch in (("/_emulator/numbers/", admin.patch_number),
                          ("/_emulator/addresses/", admin.patch_address)):
        if path.startswith(prefix) and method == "PATCH":
            try:
                done = patch(app.engine, path[len(prefix):], json.loads(raw or b"{}"))
            except KeyError:
                return None       # 404
            return 200, json.dumps({"data": done})
    return None


def _object(raw: bytes) -> dict[str, Any]:
    body = json.loads(raw or b"{}")
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body
