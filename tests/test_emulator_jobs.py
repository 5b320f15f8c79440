"""update_emergency_settings jobs: validation errors, lifecycle, the changes they make."""

from __future__ import annotations

import time

import pytest

from emergency_pipeline import telnyx_contract as contract
from emergency_pipeline.emulator import Faults

from _emulator_support import JOBS, allowing, client, error_of, pick


def _wait(c, job_id, statuses, seconds=5.0):
    deadline = time.monotonic() + seconds
    while True:
        job = c.get(f"/phone_numbers/jobs/{job_id}").json()["data"]
        if job["status"] in statuses or time.monotonic() > deadline:
            return job
        time.sleep(0.02)


def _rejected(c, body, status=422):
    r = c.post(JOBS, json=body)
    assert r.status_code == status, r.text
    err = error_of(r)
    assert err["code"] == "10015"
    return err


@pytest.mark.spec_violations   # bodies without required fields, on purpose
def test_validation_errors_have_the_spec_bodies(emulator):
    nums = allowing(emulator, 3, emergency_enabled=False)
    e164 = [n["phone_number"] for n in nums]
    addr = emulator.addresses()[0]["id"]
    all_numbers = [n["phone_number"] for n in emulator.numbers()]
    with client(emulator) as c:
        err = _rejected(c, {"emergency_enabled": True, "emergency_address_id": addr,
                            "phone_numbers": (all_numbers * 4)[:1001]})
        assert err == {"code": "10015", "title": "Bad Request",
                       "detail": "1000 numbers is the maximum allowed.",
                       "source": {"pointer": "/phone_numbers"},
                       "meta": {"url": "https://developers.telnyx.com/docs/overview/errors/10015"}}
        err = _rejected(c, {"emergency_enabled": True, "emergency_address_id": addr,
                            "phone_numbers": []})
        assert err["detail"] == "You must provide at least 1 phone number."
        assert err["source"] == {"pointer": "/phone_numbers"}
        err = _rejected(c, {"emergency_enabled": True, "emergency_address_id": addr})
        assert (err["detail"], err["source"]["pointer"]) == ("must be present", "/phone_numbers")
        err = _rejected(c, {"emergency_enabled": True, "emergency_address_id": addr,
                            "phone_numbers": [e164[0], nums[1]["id"]]})
        assert err["detail"] == ("You must specify either all phone numbers in the e164 format "
                                 "or all as phone number ids")
        assert err["source"]["pointer"] == "/phone_numbers"

        unowned = {"emergency_enabled": True, "emergency_address_id": addr,
                   "phone_numbers": [e164[0], "+12025550123", e164[1], "+13125550188"]}
        r = c.post(JOBS, json=unowned)   # the spec's example: one error, no index
        assert r.status_code == 422
        assert [(e["source"]["pointer"], e["detail"]) for e in r.json()["errors"]] == [
            ("/phone_numbers", "You must own every number in the bulk request")]
        emulator.set_shape("unowned_numbers=per_number")
        r = c.post(JOBS, json=unowned)
        errors = r.json()["errors"]
        assert [e["source"]["pointer"] for e in errors] == ["/phone_numbers/1",
                                                            "/phone_numbers/3"]
        assert {e["detail"] for e in errors} == {"You must own every number in the bulk request"}
        err = _rejected(c, {"emergency_enabled": True, "phone_numbers": [nums[0]["id"], "1"]})
        assert err["source"]["pointer"] == "/phone_numbers/1"

        err = _rejected(c, {"emergency_enabled": True, "phone_numbers": e164})
        assert err["source"]["pointer"] == "/emergency_address_id"
        err = _rejected(c, {"emergency_enabled": True, "emergency_address_id": None,
                            "phone_numbers": e164})
        assert err["source"]["pointer"] == "/emergency_address_id"
        err = _rejected(c, {"emergency_enabled": False, "emergency_address_id": addr,
                            "phone_numbers": e164})
        assert err["source"]["pointer"] == "/emergency_address_id"
        assert "must be null or omitted" in err["detail"]
        emulator.set_shape("unknown_address=refuse_job")
        err = _rejected(c, {"emergency_enabled": True, "emergency_address_id": "999999",
                            "phone_numbers": e164})
        assert err["source"]["pointer"] == "/emergency_address_id"
        err = _rejected(c, {"emergency_address_id": addr, "phone_numbers": e164})
        assert err["source"]["pointer"] == "/emergency_enabled"
        _rejected(c, {"emergency_enabled": True, "emergency_address_id": addr,
                      "phone_numbers": ["2025550123x"]})
        r = c.post(JOBS, content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and error_of(r)["code"] == "10015"
    assert emulator.jobs() == [] and emulator.stats()["jobs_created"] == 0


def test_cap_on_jobs_in_flight(emulator_factory):
    emu = emulator_factory(job_seconds=60, max_jobs_in_flight=2)
    nums = allowing(emu, 3)
    with client(emu) as c:
        for n in nums[:2]:
            assert c.post(JOBS, json={"emergency_enabled": False,
                                      "phone_numbers": [n["id"]]}).status_code == 202
        err = _rejected(c, {"emergency_enabled": False, "phone_numbers": [nums[2]["id"]]})
        assert err["detail"] == "You can have at most 2 pending or in progress jobs"
        assert err["source"] == {"pointer": "/base"}
        emu.finish_jobs()
        assert c.post(JOBS, json={"emergency_enabled": False,
                                  "phone_numbers": [nums[2]["id"]]}).status_code == 202


def test_job_lifecycle_and_the_numbers_it_changes(emulator_factory):
    emu = emulator_factory(job_seconds=1.0, settle_seconds=0.8)
    targets = allowing(emu, 6, emergency_enabled=False, emergency_status="disabled")
    addr = emu.addresses()[1]["id"]
    e164 = [n["phone_number"] for n in targets]
    with client(emu) as c:
        r = c.post(JOBS, json={"emergency_enabled": True, "emergency_address_id": addr,
                               "phone_numbers": e164 + e164[:1]})  # a duplicate
        assert r.status_code == 202
        job = r.json()["data"]
        assert job["status"] == "pending" and job["type"] == contract.JOB_TYPE
        assert job["record_type"] == "phone_numbers_job"
        assert job["phone_numbers"] == [{"phone_number": p} for p in e164]
        assert [o["phone_number"] for o in job["pending_operations"]] == e164
        assert [o["id"] for o in job["pending_operations"]] == [n["id"] for n in targets]
        assert job["successful_operations"] == job["failed_operations"] == []

        mid = _wait(c, job["id"], {"in_progress", "completed"})
        assert mid["status"] == "in_progress"
        done = _wait(c, job["id"], {"completed"})
        assert done["status"] == "completed"
        assert [o["phone_number"] for o in done["successful_operations"]] == e164
        assert done["pending_operations"] == done["failed_operations"] == []
        assert emu.jobs() == [done]

        # The last number was changed near the end, so it is still provisioning.
        after = c.get(f"/phone_numbers/{targets[-1]['id']}").json()["data"]
        assert after["emergency_enabled"] is True
        assert after["emergency_address_id"] == addr
        assert after["emergency_status"] == "provisioning"
        time.sleep(0.9)
        after = c.get(f"/phone_numbers/{targets[-1]['id']}").json()["data"]
        assert after["emergency_status"] == "active"
        untouched = pick(emu, 1, emergency_enabled=False, emergency_status="disabled",
                         status="active")[0]
        assert untouched["id"] not in {n["id"] for n in targets}


def test_disable_by_ids_and_finish_jobs(emulator_factory):
    emu = emulator_factory(job_seconds=60, settle_seconds=60)
    targets = allowing(emu, 4, emergency_enabled=True, emergency_status="active")
    ids = [n["id"] for n in targets]
    with client(emu) as c:
        job = c.post(JOBS, json={"emergency_enabled": False, "emergency_address_id": None,
                                 "phone_numbers": ids}).json()["data"]
        assert job["phone_numbers"] == [{"id": i} for i in ids]
        assert c.get(f"/phone_numbers/jobs/{job['id']}").json()["data"]["status"] == "pending"
        emu.finish_jobs(settle=False)
        assert emu.job(job["id"])["status"] == "completed"
        n = emu.number(ids[0])
        assert (n["emergency_enabled"], n["emergency_address_id"], n["emergency_status"]) == (
            False, None, "deprovisioning")
        emu.finish_jobs()
        assert emu.number(ids[0])["emergency_status"] == "disabled"
        # Asking again for what is already so succeeds and changes nothing.
        job = c.post(JOBS, json={"emergency_enabled": False, "phone_numbers": ids}).json()["data"]
        emu.finish_jobs(settle=False)
        assert len(emu.job(job["id"])["successful_operations"]) == 4
        assert emu.number(ids[0])["emergency_status"] == "disabled"


def test_numbers_that_cannot_change_fail_with_telnyx_errors(emulator_factory):
    emu = emulator_factory(job_seconds=60, numbers=600)
    ok = allowing(emu, 2, emergency_enabled=False, emergency_status="disabled")
    blocked = pick(emu, 1, status="port-pending")[0]
    moving = allowing(emu, 1, emergency_status="provisioning")[0]
    addr = emu.addresses()[0]["id"]
    order = [ok[0], blocked, ok[1], moving]
    with client(emu) as c:
        job = c.post(JOBS, json={"emergency_enabled": True, "emergency_address_id": addr,
                                 "phone_numbers": [n["phone_number"] for n in order]}).json()
        emu.finish_jobs()
        job = c.get(f"/phone_numbers/jobs/{job['data']['id']}").json()["data"]
    assert job["status"] == "completed"  # a completed job can still hold failed numbers
    assert [o["id"] for o in job["successful_operations"]] == [ok[0]["id"], ok[1]["id"]]
    failed = {o["id"]: o["errors"][0] for o in job["failed_operations"]}
    assert set(failed) == {blocked["id"], moving["id"]}
    err = failed[blocked["id"]]
    assert err["code"] == "10015" and err["source"] == {"pointer": "/phone_numbers/1"}
    assert "port-pending" in err["detail"] and err["title"]
    assert failed[moving["id"]]["source"] == {"pointer": "/phone_numbers/3"}
    assert emu.number(blocked["id"]) == blocked
    assert emu.number(ok[0]["id"])["emergency_address_id"] == addr


@pytest.mark.parametrize("fate", ["expired", "failed"])
def test_jobs_that_expire_or_fail_leave_the_rest_unchanged(emulator_factory, fate):
    faults = Faults(expire_rate=1.0) if fate == "expired" else Faults(fail_job_rate=1.0)
    emu = emulator_factory(job_seconds=60, faults=faults)
    targets = allowing(emu, 10, emergency_enabled=False, emergency_status="disabled")
    addr = emu.addresses()[0]["id"]
    with client(emu) as c:
        job = c.post(JOBS, json={"emergency_enabled": True, "emergency_address_id": addr,
                                 "phone_numbers": [n["id"] for n in targets]}).json()["data"]
        assert job["status"] == "pending"
        emu.finish_jobs()
        job = c.get(f"/phone_numbers/jobs/{job['id']}").json()["data"]
    assert job["status"] == fate
    assert job["pending_operations"] == []
    assert len(job["successful_operations"]) == 5 and len(job["failed_operations"]) == 5
    for op in job["failed_operations"]:
        assert op["errors"][0]["code"] and op["errors"][0]["title"]
        assert emu.number(op["id"]) == next(n for n in targets if n["id"] == op["id"])
    for op in job["successful_operations"]:
        assert emu.number(op["id"])["emergency_enabled"] is True


def test_numbers_the_provider_refuses_fail_alone_and_stay_unchanged(emulator_factory):
    emu = emulator_factory(job_seconds=0.05, faults=Faults(number_fail_rate=0.5, seed=3))
    targets = allowing(emu, 40, emergency_enabled=False, emergency_status="disabled")
    addr = emu.addresses()[0]["id"]
    with client(emu) as c:
        job = c.post(JOBS, json={"emergency_enabled": True, "emergency_address_id": addr,
                                 "phone_numbers": [n["id"] for n in targets]}).json()["data"]
        emu.finish_jobs()
        job = c.get(f"/phone_numbers/jobs/{job['id']}").json()["data"]
    assert job["status"] == "completed"
    failed, ok = job["failed_operations"], job["successful_operations"]
    assert failed and ok and len(failed) + len(ok) == 40   # some of each at a 50% rate
    position = {n["id"]: pos for pos, n in enumerate(targets)}
    for op in failed:
        err = op["errors"][0]
        assert err["code"] == "10015" and err["title"] == "Emergency provisioning refused"
        assert err["source"] == {"pointer": f"/phone_numbers/{position[op['id']]}"}
        assert emu.number(op["id"]) == next(n for n in targets if n["id"] == op["id"])
    for op in ok:
        assert emu.number(op["id"])["emergency_address_id"] == addr


@pytest.mark.spec_violations   # sort and filter values outside the enums, on purpose
def test_list_jobs_filter_sort_and_pages(emulator_factory):
    emu = emulator_factory(job_seconds=60)
    nums = allowing(emu, 5)
    with client(emu) as c:
        created = []
        for n in nums:
            created.append(c.post(JOBS, json={"emergency_enabled": False,
                                              "phone_numbers": [n["id"]]}).json()["data"]["id"])
            time.sleep(0.002)

        def listed(**params):
            r = c.get("/phone_numbers/jobs", params=params)
            assert r.status_code == 200, r.text
            return r.json()

        assert [j["id"] for j in listed()["data"]] == created[::-1]
        assert [j["id"] for j in listed(sort="created_at")["data"]] == created
        assert [j["id"] for j in listed(**{"filter[type]": contract.JOB_TYPE})["data"]] == \
            created[::-1]
        assert listed(**{"filter[type]": "delete_phone_numbers"})["data"] == []
        page = listed(**{"page[size]": 2, "page[number]": 3, "sort": "created_at"})
        assert [j["id"] for j in page["data"]] == created[4:]
        assert page["meta"] == {"page_number": 3, "page_size": 2, "total_pages": 3,
                                "total_results": 5}
        for sort in ("id", "-created_at"):   # the spec's enum is ["created_at"]
            assert c.get("/phone_numbers/jobs", params={"sort": sort}).status_code == 422
        assert c.get("/phone_numbers/jobs",
                     params={"filter[type]": "bogus"}).status_code == 422
        r = c.get("/phone_numbers/jobs/00000000-0000-4000-8000-000000000000")
        assert r.status_code == 404 and error_of(r)["code"] == "10005"


def test_enable_emergency_action(emulator_factory):
    emu = emulator_factory(settle_seconds=60)
    num = allowing(emu, 1, emergency_enabled=False, emergency_status="disabled")[0]
    blocked = pick(emu, 1, status="port-pending")[0]
    addr = emu.addresses()[2]["id"]
    path = "/phone_numbers/{}/actions/enable_emergency"
    with client(emu) as c:
        r = c.post(path.format(num["id"]), json={"emergency_enabled": True,
                                                  "emergency_address_id": addr})
        assert r.status_code == 202
        assert r.json()["data"]["emergency"] == {
            "emergency_enabled": True, "emergency_address_id": addr,
            "emergency_status": "provisioning"}
        emu.finish_jobs()
        assert emu.number(num["id"])["emergency_status"] == "active"
        r = c.post(path.format(blocked["id"]), json={"emergency_enabled": True,
                                                      "emergency_address_id": addr})
        assert r.status_code == 422 and error_of(r)["code"] == "10015"
        r = c.post(path.format(num["id"]), json={"emergency_enabled": True,
                                                  "emergency_address_id": "42"})
        assert error_of(r)["source"]["pointer"] == "/emergency_address_id"
        r = c.post(path.format("1"), json={"emergency_enabled": True,
                                           "emergency_address_id": addr})
        assert r.status_code == 404
