"""Strict mode: every request the emulator receives is checked against an OpenAPI document.

The emulator answers what Telnyx would, but a lenient answer hides a request Telnyx would
refuse. With a spec (`Emulator(spec=path)`, or the environment variable
`TELNYX_EMULATOR_SPEC`), each request is checked for its path and method, its query
parameters (names, deepObject members, types and enums) and its JSON body (required fields,
types; objects closed: a field the spec does not name is a violation). Violations are only
recorded (`Emulator.spec_violations()`, and appended as JSON lines to
`TELNYX_EMULATOR_SPEC_LOG` when set, so a test run can count those of emulators in other
processes); the answer is the emulator's own. Needs `jsonschema` (a test dependency).
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

SPEC_ENV = "TELNYX_EMULATOR_SPEC"
LOG_ENV = "TELNYX_EMULATOR_SPEC_LOG"
SPEC_URI = "urn:telnyx-openapi-subset"
_INTEGER = re.compile(r"^-?\d+$")
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def closed_schemas(node: Any) -> Any:
    """A copy in which every object schema with `properties` forbids other properties: the
    spec's schemas rarely say so, and an invented or misspelt field must not pass."""
    if isinstance(node, dict):
        out = {k: closed_schemas(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out and \
                out.get("type", "object") == "object":
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [closed_schemas(v) for v in node]
    return node


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


class SpecCheck:
    def __init__(self, spec: dict[str, Any], prefix: str = "/v2",
                 log_path: str | None = None) -> None:
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        self.spec, self.prefix, self.log_path = spec, prefix, log_path
        self._closed = closed_schemas(copy.deepcopy(spec))
        self._registry = Registry().with_resource(
            SPEC_URI, Resource(contents=self._closed, specification=DRAFT202012))
        self._validator_cls = Draft202012Validator
        self._validators: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.violations: list[dict[str, str]] = []
        routes = []
        for template in spec["paths"]:
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            literal = sum(1 for p in template.split("/") if p and not p.startswith("{"))
            routes.append((-literal, template, re.compile(f"^{pattern}$")))
        self._routes = [(t, r) for _, t, r in sorted(routes)]  # literal segments win

    @classmethod
    def from_file(cls, path: str | Path, log_path: str | None = None) -> SpecCheck:
        return cls(json.loads(Path(path).read_text()), log_path=log_path)

    @classmethod
    def from_env(cls) -> SpecCheck | None:
        path = os.environ.get(SPEC_ENV)
        return cls.from_file(path, os.environ.get(LOG_ENV)) if path else None

    # ---- checking -------------------------------------------------------------------

    def check(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> list[str]:
        """The request's violations (also recorded); [] when it is what the spec allows."""
        problems = self.problems(method, path, query, raw)
        if problems:
            rows = [{"method": method, "path": path, "problem": p} for p in problems]
            with self._lock:
                self.violations.extend(rows)
                if self.log_path:
                    with open(self.log_path, "a", encoding="utf-8") as fh:
                        fh.write("".join(json.dumps(r) + "\n" for r in rows))
        return problems

    def problems(self, method: str, path: str, query: dict[str, list[str]],
                 raw: bytes) -> list[str]:
        if not path.startswith(self.prefix + "/"):
            return [f"{path} is outside {self.prefix}"]
        rel = path[len(self.prefix):]
        template = next((t for t, r in self._routes if r.match(rel)), None)
        if template is None:
            return [f"no path {rel} in the spec"]
        op = self.spec["paths"][template].get(method.lower())
        if op is None:
            return [f"no {method} {template} in the spec"]
        base = f"/paths/{_escape(template)}/{method.lower()}"
        return self._query(op, base, query) + self._body(op, base, raw)

    def _resolve(self, node: dict[str, Any], pointer: str) -> tuple[dict[str, Any], str]:
        while "$ref" in node:
            pointer = node["$ref"].lstrip("#")
            node = self.spec
            for part in pointer.strip("/").split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, pointer

    def _errors(self, pointer: str, value: Any) -> list[str]:
        validator = self._validators.get(pointer)
        if validator is None:
            validator = self._validator_cls({"$ref": f"{SPEC_URI}#{pointer}"},
                                            registry=self._registry)
            self._validators[pointer] = validator
        out = []
        for err in sorted(validator.iter_errors(value), key=str):
            where = "/".join(str(p) for p in err.absolute_path)
            out.append(err.message + (f" (at {where})" if where else ""))
        return out

    def _query(self, op: dict[str, Any], base: str, query: dict[str, list[str]]) -> list[str]:
        params: dict[str, tuple[dict[str, Any], str]] = {}
        for i, p in enumerate(op.get("parameters", [])):
            spec, pointer = self._resolve(p, f"{base}/parameters/{i}")
            if spec.get("in") == "query":
                params[spec["name"]] = (spec, pointer)
        given: dict[str, Any] = {}
        problems = []
        for key, values in query.items():
            if key in params:   # a name with brackets in it (organizations/users' page[size])
                given[key] = values[0] if len(values) == 1 else list(values)
                continue
            m = _KEY.match(key)
            name, members = (m.group(1), re.findall(r"\[([^\[\]]*)\]", m.group(2))) \
                if m else (key, [])
            if name not in params:
                problems.append(f"query parameter {key!r} is not in the spec")
                continue
            value: Any = values[0] if len(values) == 1 else list(values)
            if members:
                node = given.setdefault(name, {})
                if not isinstance(node, dict):
                    problems.append(f"query parameter {name!r} given both plain and as an object")
                    continue
                for member in members[:-1]:
                    node = node.setdefault(member, {})
                node[members[-1]] = value
            else:
                given[name] = value
        for name, (spec, pointer) in params.items():
            if name not in given:
                if spec.get("required"):
                    problems.append(f"query parameter {name!r} is required")
                continue
            value = _coerce(given[name], spec.get("schema", {}))
            problems += [f"query {name}: {e}" for e in self._errors(f"{pointer}/schema", value)]
        return problems

    def _body(self, op: dict[str, Any], base: str, raw: bytes) -> list[str]:
        body_spec = op.get("requestBody")
        if body_spec is None:
            return ["a body where the spec has none"] if raw.strip() else []
        if not raw.strip():
            return ["the body is required"] if body_spec.get("required") else []
        try:
            value = json.loads(raw)
        except ValueError:
            return ["the body is not JSON"]
        pointer = f"{base}/requestBody/content/application~1json/schema"
        return [f"body: {e}" for e in self._errors(pointer, value)]


def _coerce(value: Any, schema: dict[str, Any]) -> Any:
    """Query strings -> the JSON types their schema asks for (integers, booleans)."""
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return {k: _coerce(v, props.get(k, {})) for k, v in value.items()}
    if isinstance(value, str):
        kind = schema.get("type")
        if kind == "integer" and _INTEGER.match(value):
            return int(value)
        if kind == "boolean" and value in ("true", "false"):
            return value == "true"
    return value
