"""Listing and reading numbers and addresses: pages, filters, the generated account."""

from __future__ import annotations

from collections import Counter

import phonenumbers
import pytest

from emergency_pipeline import telnyx_contract as contract
from emergency_pipeline.emulator import Emulator

from _emulator_support import client, error_of


def test_every_number_exactly_once_across_pages(emulator):
    with client(emulator) as c:
        seen, page, total_pages = [], 1, None
        while total_pages is None or page <= total_pages:
            r = c.get("/phone_numbers", params={"page[number]": page, "page[size]": 7})
            assert r.status_code == 200
            meta = r.json()["meta"]
            assert meta["page_number"] == page and meta["page_size"] == 7
            assert meta["total_results"] == 300
            total_pages = meta["total_pages"]
            seen += [n["id"] for n in r.json()["data"]]
            page += 1
    assert total_pages == 43  # ceil(300 / 7)
    assert len(seen) == 300 and len(set(seen)) == 300
    assert set(seen) == {n["id"] for n in emulator.numbers()}


def test_default_page_and_page_past_the_end(emulator):
    with client(emulator) as c:
        r = c.get("/phone_numbers")
        assert len(r.json()["data"]) == 20
        assert r.json()["meta"] == {"page_number": 1, "page_size": 20, "total_pages": 15,
                                    "total_results": 300}
        r = c.get("/phone_numbers", params={"page[number]": 2, "page[size]": 250})
        assert len(r.json()["data"]) == 50
        r = c.get("/phone_numbers", params={"page[number]": 99, "page[size]": 250})
        assert r.status_code == 200 and r.json()["data"] == []


@pytest.mark.parametrize("param,value", [
    ("page[size]", 0), ("page[size]", 251), ("page[size]", "ten"), ("page[number]", 0),
    ("page[number]", -1),
])
@pytest.mark.spec_violations
def test_page_bounds_are_rejected(emulator, param, value):
    with client(emulator) as c:
        for path in ("/phone_numbers", "/phone_numbers/jobs", "/addresses"):
            r = c.get(path, params={param: value})
            # The spec lists 400, not 422, for GET /addresses.
            assert r.status_code == (400 if path == "/addresses" else 422), path
            err = error_of(r)
            assert err["code"] == "10015" and err["title"] == "Invalid pagination"
            assert err["source"]["pointer"] == param.replace("[", "/").rstrip("]")


@pytest.mark.spec_violations   # enum values outside the spec, on purpose
def test_filters(emulator):
    numbers = list(emulator.numbers())
    some = numbers[17]
    with client(emulator) as c:
        def ids(**params):
            out, page = [], 1
            while True:
                r = c.get("/phone_numbers", params={"page[size]": 100, "page[number]": page,
                                                    **params})
                assert r.status_code == 200, r.text
                out += [n["id"] for n in r.json()["data"]]
                if page >= r.json()["meta"]["total_pages"]:
                    break
                page += 1
            assert r.json()["meta"]["total_results"] == len(out) == len(set(out))
            return set(out)

        # The spec: "Non-numerical characters will result in no values being returned".
        assert ids(**{"filter[phone_number]": some["phone_number"]}) == set()
        assert ids(**{"filter[phone_number]": some["phone_number"][1:]}) == {some["id"]}
        digits = some["phone_number"][2:8]
        assert ids(**{"filter[phone_number]": digits}) == {
            n["id"] for n in numbers if digits in n["phone_number"]}
        assert ids(**{"filter[phone_number]": "+19999999999"}) == set()
        for status in ("active", "port-pending"):
            want = {n["id"] for n in numbers if n["status"] == status}
            assert want and ids(**{"filter[status]": status}) == want
        addr = some["emergency_address_id"] or next(
            n["emergency_address_id"] for n in numbers if n["emergency_address_id"])
        assert ids(**{"filter[emergency_address_id]": addr}) == {
            n["id"] for n in numbers if n["emergency_address_id"] == addr}
        none = {n["id"] for n in numbers if n["emergency_address_id"] is None}
        assert none and ids(**{"filter[emergency_address_id]": "null"}) == none
        both = ids(**{"filter[status]": "active", "filter[emergency_address_id]": "null"})
        assert both == {n["id"] for n in numbers
                        if n["status"] == "active" and n["emergency_address_id"] is None}
        assert c.get("/phone_numbers", params={"filter[status]": "bogus"}).status_code == 422
        assert c.get("/phone_numbers", params={"sort": "bogus"}).status_code == 422


def test_get_number_and_voice(emulator):
    num = next(n for n in emulator.numbers() if n["emergency_enabled"])
    with client(emulator) as c:
        r = c.get(f"/phone_numbers/{num['id']}")
        assert r.status_code == 200 and r.json()["data"] == num
        assert emulator.number(num["phone_number"]) == num
        v = c.get(f"/phone_numbers/{num['id']}/voice").json()["data"]
        assert v["id"] == num["id"] and v["phone_number"] == num["phone_number"]
        assert v["emergency"] == {"emergency_enabled": True, "emergency_status": "active",
                                  "emergency_address_id": num["emergency_address_id"]}
        for bad in ("1", num["phone_number"], "abc"):
            r = c.get(f"/phone_numbers/{bad}")
            assert r.status_code == 404 and error_of(r)["code"] == "10005"
        assert c.get("/phone_numbers/1/voice").status_code == 404


def test_addresses_and_their_filters(emulator):
    numbers = list(emulator.numbers())
    addresses = emulator.addresses()
    used = {n["emergency_address_id"] for n in numbers if n["emergency_enabled"]}
    with client(emulator) as c:
        r = c.get("/addresses", params={"page[size]": 250})
        data = r.json()["data"]
        assert {a["id"] for a in data} == {a["id"] for a in addresses}
        assert r.json()["meta"]["total_results"] == len(addresses)
        got = c.get("/addresses", params={"filter[used_as_emergency]": "true"}).json()["data"]
        assert {a["id"] for a in got} == used
        got = c.get("/addresses", params={"filter[used_as_emergency]": "false"}).json()["data"]
        assert got and {a["id"] for a in got} == {a["id"] for a in addresses} - used
        word = addresses[0]["street_address"].split()[1].upper()  # case-insensitive
        got = c.get("/addresses", params={"filter[street_address][contains]": word}).json()
        assert addresses[0]["id"] in {a["id"] for a in got["data"]}
        assert all(word.lower() in a["street_address"].lower() for a in got["data"])
        r = c.get(f"/addresses/{addresses[1]['id']}")
        assert r.status_code == 200 and r.json()["data"] == addresses[1]
        assert c.get("/addresses/12345").status_code == 404
        asc = c.get("/addresses", params={"sort": "street_address"}).json()["data"]
        assert [a["street_address"] for a in asc] == sorted(a["street_address"] for a in asc)


def test_generated_account_is_deterministic_and_realistic():
    a = Emulator(numbers=2000, seed=3)
    b = Emulator(numbers=2000, seed=3)
    other = Emulator(numbers=2000, seed=4)
    nums = list(a.numbers())
    assert nums == list(b.numbers()) and a.addresses() == b.addresses()
    assert nums != list(other.numbers())
    assert len({n["id"] for n in nums}) == 2000
    assert len({n["phone_number"] for n in nums}) == 2000
    for n in nums:
        assert n["id"].isdigit()
        parsed = phonenumbers.parse(n["phone_number"])
        assert phonenumbers.is_valid_number(parsed), n["phone_number"]
        assert phonenumbers.region_code_for_number(parsed) == "US"
        assert n["status"] in contract.NUMBER_STATUSES
        assert n["emergency_status"] in contract.EMERGENCY_STATUSES
        if n["emergency_enabled"]:
            assert n["emergency_address_id"] is not None
        if n["status"] not in contract.NUMBER_STATUSES_ALLOWING_EMERGENCY:
            assert not n["emergency_enabled"]
    statuses = Counter(n["status"] for n in nums)
    emergency = Counter(n["emergency_status"] for n in nums)
    assert statuses["active"] > 1500 and len(statuses) >= 5
    assert emergency["active"] > 1000 and emergency["disabled"] > 200
    assert emergency["provisioning"] and emergency["deprovisioning"]
    used = {n["emergency_address_id"] for n in nums if n["emergency_enabled"]}
    assert 1 < len(used) < len(a.addresses())


def test_large_account_generates_quickly():
    import time
    started = time.monotonic()
    emu = Emulator(numbers=100_000, seed=1)
    assert len(emu.engine.account) == 100_000
    assert time.monotonic() - started < 5


def test_sort_by_phone_number(tmp_path, emulator_factory):
    import json
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"addresses": [], "numbers": [
        {"id": "1", "phone_number": "+13125550188"}, {"id": "2", "phone_number": "+12025550123"},
        {"id": "3", "phone_number": "+14155550100", "status": "port-pending"}]}))
    emu = emulator_factory(state_file=str(path))
    with client(emu) as c:
        def phones(**params):
            return [n["phone_number"] for n in c.get("/phone_numbers", params=params).json()["data"]]
        assert phones() == ["+13125550188", "+12025550123", "+14155550100"]
        assert phones(sort="phone_number") == ["+12025550123", "+13125550188", "+14155550100"]
        assert phones(sort="phone_number", **{"filter[status]": "active"}) == [
            "+12025550123", "+13125550188"]
        assert phones(sort="phone_number", **{"page[size]": 1, "page[number]": 3}) == [
            "+14155550100"]
