"""A refused batch: narrowed down by its pointers, or by splitting (applying/refusals.py), and the
same outcome whichever way Telnyx answers (the emulator's `telnyx_shape`)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import pytest

from emergency_pipeline.planning.batching import batch_of
from emergency_pipeline.client import TelnyxClient
from emergency_pipeline.client.errors import ApiError
from emergency_pipeline.applying.refusals import narrow_refusal
from emergency_pipeline.applying.submission import RunIdentity, Settings, Submission, submit_and_follow

from _safety_support import fenced
from _client_support import fast_config, running_emulator
from _emulator_support import allowing

log = logging.getLogger("test")
OWN = ApiError("10015", "Bad Request", "You must own every number in the bulk request",
               "/phone_numbers")


def _batch(n: int):
    return batch_of([f"+1202555{i:04d}" for i in range(n)], True, "42", "e164")


# ---- the pure rule ---------------------------------------------------------------------------

def test_pointed_numbers_fail_and_the_rest_is_sent_again_whole():
    b = _batch(6)
    bad = b.identifiers[2]
    out = narrow_refusal(b, [OWN], {bad: (OWN,)}, splits_left=0)
    assert out.refused == {bad: OWN}
    assert [r.identifiers for r in out.resend] == [tuple(i for i in b.identifiers if i != bad)]
    assert out.resend[0].emergency_address_id == "42"


def test_an_error_about_the_list_splits_the_batch_in_halves():
    b = _batch(5)
    out = narrow_refusal(b, [OWN], {}, splits_left=10)
    assert out.refused == {} and out.requests == 2
    assert out.resend[0].identifiers + out.resend[1].identifiers == b.identifiers


@pytest.mark.parametrize("size,errors,splits_left", [
    (1, [OWN], 10),                                                     # one number: it is the one
    (8, [OWN], 1),                                                      # budget spent
    (8, [ApiError("10015", "Bad Request", "not found", "/emergency_address_id")], 10),
    (8, [ApiError("10015", "Bad Request", "at most 500 jobs", "/base")], 10),
    (8, [], 10),                                                        # no error body
])
def test_what_splitting_cannot_help_fails_whole(size, errors, splits_left):
    b = _batch(size)
    out = narrow_refusal(b, errors, {}, splits_left=splits_left)
    assert out.resend == () and set(out.refused) == set(b.identifiers)
    assert set(out.refused.values()) == {errors[0] if errors else None}


# ---- against the emulator, both shapes --------------------------------------------------------

def _apply(emu, tmp_path: Path, batch) -> tuple[dict, Submission]:
    run = RunIdentity("run-1", "test-account", "sheet.csv", str(tmp_path / "o.duckdb"))
    with TelnyxClient(fast_config(emu), log=log) as client, \
            fenced(tmp_path / "safety.sqlite", "test-account", "run-1") as (ledger, hold):
        done = submit_and_follow(client, ledger, run, [batch],
                                 snapshot_at=datetime.now(timezone.utc), aliases={},
                                 settings=Settings(follow_timeout_seconds=10, poll_seconds=0.05),
                                 log=log, fence=hold)
    return done.results, done


@pytest.mark.parametrize("shape", ["spec", "pointers"])
def test_unowned_numbers_fail_and_the_others_go_through(tmp_path, shape):
    with running_emulator(numbers=1000, seed=11, job_seconds=0.05, telnyx_shape=shape) as emu:
        mine = [n["phone_number"] for n in allowing(emu, 62, emergency_status="disabled")]
        foreign = ["+12025550111", "+13125550199"]
        address = emu.addresses()[0]["id"]
        results, state = _apply(emu, tmp_path, batch_of(mine + foreign, True, address, "e164"))
        posts = emu.stats()["by_route"]["POST /v2/phone_numbers/jobs/update_emergency_settings"]
    for n in foreign:
        r = results[n]
        assert (r.result, r.error_code) == ("failed", "10015")
        assert r.error_detail == "You must own every number in the bulk request"
        assert r.job_id is None
    assert {results[n].result for n in mine} == {"succeeded"}
    # Bounded: the pointers need one more POST; halving 64 with 2 bad numbers at most
    # 2 * 2 * log2(64) = 24 more.
    if shape == "pointers":
        assert posts == 2
    else:
        assert 2 < posts <= 1 + 2 * 2 * 6 and state.split_requests == posts - 1


@pytest.mark.parametrize("shape", ["unknown_address=failed_operations",
                                   "unknown_address=refuse_job"])
def test_an_unknown_address_fails_every_number_the_same_way(tmp_path, shape):
    with running_emulator(numbers=300, seed=11, job_seconds=0.05, telnyx_shape=shape) as emu:
        mine = [n["phone_number"] for n in allowing(emu, 4, emergency_status="disabled")]
        results, _ = _apply(emu, tmp_path, batch_of(mine, True, "1999999999999999999", "e164"))
        posts = emu.stats()["by_route"]["POST /v2/phone_numbers/jobs/update_emergency_settings"]
    assert posts == 1                      # nothing to narrow down: it concerns them all
    assert {(results[n].result, results[n].error_code, results[n].error_pointer)
            for n in mine} == {("failed", "10015", "/emergency_address_id")}
