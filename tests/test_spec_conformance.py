"""Strict mode: the emulator checks what it receives against tests/openapi-subset.json, and a
test whose requests break the spec fails (conftest.py)."""

from __future__ import annotations

import json
import textwrap

import httpx
import pytest

from emergency_pipeline.emulator.conformance import SpecCheck

from _emulator_support import JOBS, client
from conftest import SPEC_PATH

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def spec_check() -> SpecCheck:
    return SpecCheck.from_file(SPEC_PATH)


def _problems(check: SpecCheck, method: str, path: str, body=None, **query) -> list[str]:
    raw = b"" if body is None else json.dumps(body).encode()
    return check.problems(method, "/v2" + path, {k: [str(v)] for k, v in query.items()}, raw)


def test_what_the_spec_allows_passes(spec_check):
    assert _problems(spec_check, "GET", "/phone_numbers/jobs", **{
        "filter[type]": "update_emergency_settings", "page[number]": 2,
        "page[size]": 250, "sort": "created_at"}) == []
    assert _problems(spec_check, "GET", "/phone_numbers", **{
        "filter[emergency_address_id]": "null", "filter[status]": "active"}) == []
    assert _problems(spec_check, "GET", "/addresses",
                     **{"filter[street_address][contains]": "Main"}) == []
    assert _problems(spec_check, "POST", "/phone_numbers/jobs/update_emergency_settings",
                     {"phone_numbers": ["+12025550123"], "emergency_enabled": False,
                      "emergency_address_id": None}) == []
    assert _problems(spec_check, "POST", "/addresses", {
        "first_name": "Ops", "last_name": "Desk", "business_name": "Acme",
        "street_address": "1 Main St", "locality": "Springfield", "country_code": "US"}) == []


@pytest.mark.parametrize("method,path,body,query,says", [
    ("GET", "/phone_numbers/jobs", None, {"sort": "-created_at"}, "not one of ['created_at']"),
    ("GET", "/phone_numbers/jobs", None, {"filter[kind]": "x"}, "'kind' was unexpected"),
    ("GET", "/phone_numbers", None, {"page[size]": 251}, "maximum of 250"),
    ("GET", "/phone_numbers", None, {"page[size]": "ten"}, "not of type 'integer'"),
    ("GET", "/phone_numbers", None, {"limit": 5}, "'limit' is not in the spec"),
    ("GET", "/numbers", None, {}, "no path /numbers"),
    ("PUT", "/addresses", None, {}, "no PUT /addresses"),
    ("POST", "/phone_numbers/jobs/update_emergency_settings", {"phone_numbers": ["1"]}, {},
     "'emergency_enabled' is a required property"),
    ("POST", "/phone_numbers/jobs/update_emergency_settings",
     {"phone_numbers": [1], "emergency_enabled": True}, {}, "not of type 'string'"),
    ("POST", "/addresses", {"business_name": "Acme", "street_address": "1 Main St",
                            "locality": "X", "country_code": "US"}, {},
     "'first_name' is a required property"),
    ("POST", "/addresses/actions/validate", {"street_address": "1 Main St",
                                             "postal_code": "1", "country_code": "US",
                                             "business_name": "Acme"}, {},
     "'business_name' was unexpected"),
])
def test_what_the_spec_refuses_is_a_violation(spec_check, method, path, body, query, says):
    found = _problems(spec_check, method, path, body, **query)
    assert any(says in p for p in found), found


def test_the_literal_path_wins_over_a_template(spec_check):
    # /phone_numbers/jobs must not be read as /phone_numbers/{id} (which takes no filter).
    assert _problems(spec_check, "GET", "/phone_numbers/jobs",
                     **{"filter[type]": "update_emergency_settings"}) == []
    assert _problems(spec_check, "GET", "/phone_numbers/123", **{"filter[type]": "x"})


@pytest.mark.spec_violations   # sends one on purpose
def test_the_emulator_records_what_it_receives(emulator):
    assert emulator.strict   # on in every test (conftest sets TELNYX_EMULATOR_SPEC)
    with client(emulator) as c:
        assert c.get("/phone_numbers/jobs", params={"sort": "-created_at"}).status_code == 422
        c.post(JOBS, json={"emergency_enabled": False, "phone_numbers": ["1"]})
        admin = httpx.get(emulator.root_url + "/_emulator/violations").json()
    found = emulator.spec_violations()
    assert found == admin and len(found) == 1
    assert found[0]["path"] == "/v2/phone_numbers/jobs" and "sort" in found[0]["problem"]
    assert "test-key" not in json.dumps(found)   # the Authorization header is never kept


def test_an_unmarked_test_with_a_violation_fails(pytester):
    pytester.makeconftest((SPEC_PATH.parent / "conftest.py").read_text()
                          .replace('pathlib.Path(__file__).with_name("openapi-subset.json")',
                                   repr(str(SPEC_PATH))))
    pytester.makepyfile(test_inner=textwrap.dedent("""
        import httpx
        from conftest import API_KEY

        def _get(emu, **params):
            return httpx.get(emu.base_url + "/phone_numbers/jobs", params=params,
                             headers={"Authorization": f"Bearer {API_KEY}"})

        def test_bad(emulator):
            _get(emulator, sort="-created_at")

        def test_good(emulator):
            _get(emulator, sort="created_at")
    """))
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*1 request(s) outside the spec: GET /v2/phone_numbers/jobs*"])
