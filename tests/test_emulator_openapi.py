"""Every emulated endpoint's answers, success and error, validate against the spec subset.

The spec's schemas rarely forbid extra fields, so the test validates against a copy in which
every object schema with `properties` is closed (additionalProperties: false): a misspelt
or invented field fails too.
"""

from __future__ import annotations

import copy
import json
import pathlib
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from emergency_pipeline.emulator import Faults
from emergency_pipeline.emulator.conformance import closed_schemas

from _emulator_support import JOBS, allowing, client, pick

SPEC_PATH = pathlib.Path(__file__).with_name("openapi-subset.json")
SPEC_URI = "urn:telnyx-openapi-subset"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


@pytest.fixture(scope="module")
def check(spec):
    strict = closed_schemas(copy.deepcopy(spec))
    registry = Registry().with_resource(
        SPEC_URI, Resource(contents=strict, specification=DRAFT202012))
    checked: list[tuple[str, str, int]] = []

    def _resolve(obj: dict[str, Any], pointer: str) -> tuple[dict[str, Any], str]:
        while "$ref" in obj:
            pointer = obj["$ref"].lstrip("#")
            obj = spec
            for part in pointer.strip("/").split("/"):
                obj = obj[part.replace("~1", "/").replace("~0", "~")]
        return obj, pointer

    def check(method: str, template: str, response: httpx.Response) -> None:
        esc = template.replace("~", "~0").replace("/", "~1")
        op = spec["paths"][template][method.lower()]
        status = str(response.status_code)
        if status not in op["responses"]:
            # 429 and 503 are not in the subset: they still use the spec's error body.
            assert response.status_code in (429, 503), (method, template, status)
            pointer = "/components/schemas/numbers_Errors"
        else:
            resp, pointer = _resolve(op["responses"][status],
                                     f"/paths/{esc}/{method.lower()}/responses/{status}")
            if "content" not in resp:  # the subset gives no body schema (addresses 401/404)
                assert "errors" in response.json()
                checked.append((method, template, response.status_code))
                return
            pointer += "/content/application~1json/schema"
        validator = OAS31Validator({"$ref": f"{SPEC_URI}#{pointer}"}, registry=registry,
                                   format_checker=OAS31Validator.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(response.json()), key=str)
        assert not errors, f"{method} {template} {status}: {errors[0].message} at " \
                           f"{list(errors[0].absolute_path)}"
        checked.append((method, template, response.status_code))

    check.checked = checked  # type: ignore[attr-defined]
    return check


@pytest.mark.spec_violations   # the error answers need bad requests
def test_every_endpoint_matches_the_spec(emulator_factory, check):
    emu = emulator_factory(job_seconds=60, numbers=600)
    ok = allowing(emu, 4, emergency_enabled=False, emergency_status="disabled")
    blocked = pick(emu, 1, status="port-pending")[0]
    enabled = allowing(emu, 1, emergency_enabled=True)[0]
    addr = emu.addresses()[0]["id"]
    with client(emu) as c, client(emu, key="wrong") as bad:
        numbers = "/phone_numbers"
        check("GET", numbers, c.get(numbers, params={"page[size]": 250}))
        check("GET", numbers, c.get(numbers, params={"filter[emergency_address_id]": "null"}))
        check("GET", numbers, c.get(numbers, params={"page[size]": 251}))
        check("GET", numbers, bad.get(numbers))

        one, voice = "/phone_numbers/{id}", "/phone_numbers/{id}/voice"
        for n in (ok[0], blocked, enabled):
            check("GET", one, c.get(f"/phone_numbers/{n['id']}"))
            check("GET", voice, c.get(f"/phone_numbers/{n['id']}/voice"))
        check("GET", one, c.get("/phone_numbers/1"))
        check("GET", one, bad.get(f"/phone_numbers/{ok[0]['id']}"))
        check("GET", voice, c.get("/phone_numbers/1/voice"))

        action = "/phone_numbers/{id}/actions/enable_emergency"
        body = {"emergency_enabled": True, "emergency_address_id": addr}
        check("POST", action, c.post(f"/phone_numbers/{ok[3]['id']}/actions/enable_emergency",
                                     json=body))
        check("POST", action, c.post(f"/phone_numbers/{blocked['id']}/actions/enable_emergency",
                                     json=body))
        check("POST", action, c.post("/phone_numbers/1/actions/enable_emergency", json=body))

        job_body = {"emergency_enabled": True, "emergency_address_id": addr,
                    "phone_numbers": [n["phone_number"] for n in ok[:3]]
                    + [blocked["phone_number"]]}
        r = c.post(JOBS, json=job_body)
        check("POST", JOBS, r)
        job_id = r.json()["data"]["id"]
        for body in ({"emergency_enabled": True, "phone_numbers": []},
                     {"emergency_enabled": True, "emergency_address_id": addr,
                      "phone_numbers": ["+12025550123"]},
                     {"emergency_enabled": False, "phone_numbers": [ok[0]["id"], "+1202"]}):
            check("POST", JOBS, c.post(JOBS, json=body))
        check("POST", JOBS, c.post(JOBS, content=b"{", headers={"Content-Type": "application/json"}))
        check("POST", JOBS, bad.post(JOBS, json=job_body))

        job = "/phone_numbers/jobs/{id}"
        check("GET", job, c.get(f"/phone_numbers/jobs/{job_id}"))
        emu.finish_jobs()
        r = c.get(f"/phone_numbers/jobs/{job_id}")
        assert r.json()["data"]["failed_operations"]
        check("GET", job, r)
        check("GET", job, c.get("/phone_numbers/jobs/nope"))
        check("GET", job, bad.get(f"/phone_numbers/jobs/{job_id}"))

        jobs = "/phone_numbers/jobs"
        check("GET", jobs, c.get(jobs, params={"filter[type]": "update_emergency_settings"}))
        check("GET", jobs, c.get(jobs, params={"sort": "bogus"}))
        check("GET", jobs, bad.get(jobs))

        check("GET", "/addresses", c.get("/addresses", params={"page[size]": 250}))
        check("GET", "/addresses", bad.get("/addresses"))
        check("GET", "/addresses/{id}", c.get(f"/addresses/{addr}"))
        check("GET", "/addresses/{id}", c.get("/addresses/1"))

        emu.set_faults(Faults(error_rate=1.0, seed=2))
        for _ in range(4):
            check("GET", numbers, c.get(numbers))
        emu.set_faults(Faults(throttle_rate=1.0))
        check("GET", numbers, c.get(numbers))

    statuses = {s for _, _, s in check.checked}
    assert {200, 202, 400, 401, 404, 422, 429, 500} <= statuses
    templates = {t for _, t, _ in check.checked}
    assert len(templates) == 9  # every emulated route


def test_the_closed_schemas_catch_an_invented_field(emulator, check):
    with client(emulator) as c:
        r = c.get("/addresses")
    tampered = httpx.Response(200, json={**r.json(), "data": [
        {**r.json()["data"][0], "invented": True}]})
    with pytest.raises(AssertionError, match="invented"):
        check("GET", "/addresses", tampered)
