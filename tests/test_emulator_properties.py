"""Properties over many inputs: pages never lose or repeat a number; no job body, however
odd, gets anything but 202/400/422; concurrent job POSTs respect the in-flight cap."""

from __future__ import annotations

import threading

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emergency_pipeline.emulator import Emulator

from _emulator_support import API_KEY, JOBS, client


@pytest.fixture(scope="module")
def shared():
    with Emulator(numbers=260, seed=13, api_key=API_KEY, job_seconds=0.05,
                  rate_limit=10**9, max_jobs_in_flight=10**6) as emu:
        yield emu


@pytest.fixture(scope="module")
def c(shared):
    with client(shared) as c:  # one client: making one per example costs an SSL context
        yield c


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(1, 250))
def test_any_page_size_lists_each_number_once(c, size):
    ids, page, pages = [], 1, 1
    while page <= pages:
        body = c.get("/phone_numbers", params={"page[size]": size,
                                               "page[number]": page}).json()
        pages = body["meta"]["total_pages"]
        assert len(body["data"]) == min(size, 260 - (page - 1) * size)
        ids += [n["id"] for n in body["data"]]
        page += 1
    assert len(ids) == len(set(ids)) == 260


_numbers = st.lists(st.one_of(
    st.sampled_from(["+12025550123", "1", "", "+", "abc", "+1202555012x", "0"]),
    st.text(max_size=14)), max_size=6)
_bodies = st.one_of(
    st.fixed_dictionaries({}, optional={
        "phone_numbers": st.one_of(_numbers, st.integers(), st.none(), st.text(max_size=5)),
        "emergency_enabled": st.one_of(st.booleans(), st.none(), st.integers(0, 1),
                                       st.text(max_size=3)),
        "emergency_address_id": st.one_of(st.none(), st.text(max_size=8), st.integers()),
    }),
    st.lists(st.integers(), max_size=2), st.integers(), st.none(), st.text(max_size=5))


@pytest.mark.spec_violations   # odd bodies, on purpose
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies, real=st.lists(st.integers(0, 259), max_size=4), kind=st.booleans())
def test_odd_job_bodies_get_a_clean_answer(shared, c, body, real, kind):
    if isinstance(body, dict) and real and isinstance(body.get("phone_numbers"), list):
        nums = list(shared.numbers())  # mix in numbers the account owns
        body["phone_numbers"] += [nums[i]["phone_number" if kind else "id"] for i in real]
    r = c.post(JOBS, json=body)
    assert r.status_code in (202, 400, 422), r.text
    if r.status_code != 202:
        for err in r.json()["errors"]:
            assert err["code"] == "10015" and err["source"]["pointer"].startswith("/")


def test_concurrent_posts_respect_the_cap(emulator_factory):
    emu = emulator_factory(job_seconds=60, max_jobs_in_flight=7)
    ids = [n["id"] for n in emu.numbers()][:40]
    answers: list[int] = []
    with client(emu, limits=httpx.Limits(max_connections=40)) as c:
        def post(i):
            answers.append(c.post(JOBS, json={"emergency_enabled": False,
                                              "phone_numbers": [ids[i]]}).status_code)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(answers) == [202] * 7 + [422] * 33
    assert len(emu.jobs()) == 7 and emu.stats()["jobs_created"] == 7
