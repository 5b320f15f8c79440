"""Batches: the job limit, one target and one identifier kind per batch, stable ids."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emergency_pipeline import telnyx_contract as contract
from emergency_pipeline.planning.batching import Batch, batch_of, make_batches, other_names


def plan_rows(rows):
    """rows: (identifier, id_kind, action, target_enabled, target_address_id)."""
    return pd.DataFrame(rows, columns=["identifier", "id_kind", "action", "target_enabled",
                                       "target_address_id"])


def test_groups_by_target_and_kind_and_ignores_noop_and_skip():
    plan = plan_rows([
        ("+19705550002", "e164", "enable", True, "A"),
        ("+19705550001", "e164", "change_address", True, "A"),
        ("7", "id", "enable", True, "A"),
        ("+19705550003", "e164", "disable", False, None),
        ("+19705550004", "e164", "enable", True, "B"),
        ("+19705550005", "e164", "noop", True, "A"),
        ("+19705550006", "e164", "skip", True, "A"),
    ])
    batches = make_batches(plan)
    got = {(b.emergency_enabled, b.emergency_address_id, b.id_kind): b.identifiers
           for b in batches}
    assert got == {
        (False, None, "e164"): ("+19705550003",),
        (True, "A", "e164"): ("+19705550001", "+19705550002"),
        (True, "A", "id"): ("7",),
        (True, "B", "e164"): ("+19705550004",),
    }
    a = next(b for b in batches if b.identifiers == ("+19705550001", "+19705550002"))
    assert dict(a.action_counts) == {"change_address": 1, "enable": 1}


def test_limit_and_determinism():
    rows = [(f"+1970555{i:04d}", "e164", "enable", True, "A") for i in range(2500)]
    plan = plan_rows(rows)
    batches = make_batches(plan, max_size=1000)
    assert [len(b.identifiers) for b in batches] == [1000, 1000, 500]
    shuffled = make_batches(plan.sample(frac=1, random_state=3), max_size=1000)
    assert [b.batch_id for b in shuffled] == [b.batch_id for b in batches]
    assert len({b.batch_id for b in batches}) == 3


@pytest.mark.parametrize("bad", [0, -1, contract.MAX_NUMBERS_PER_JOB + 1, 1.5, True, "10"])
def test_max_size_is_validated(bad):
    with pytest.raises(ValueError, match="max_size"):
        make_batches(plan_rows([]), max_size=bad)


def test_one_number_with_two_targets_is_refused():
    plan = plan_rows([("+19705550001", "e164", "enable", True, "A"),
                      ("+19705550001", "e164", "enable", True, "B")])
    with pytest.raises(ValueError, match="same number"):
        make_batches(plan)


def test_empty_plan():
    assert make_batches(plan_rows([])) == []


def test_disable_batches_carry_no_address():
    plan = plan_rows([("+19705550003", "e164", "disable", False, "stray")])
    assert make_batches(plan)[0].emergency_address_id is None


def test_batch_of_matches_a_batch_rebuilt_from_the_ledger():
    b = batch_of(["2", "1", "2"], True, "A", "id")
    assert b.identifiers == ("1", "2")
    rebuilt = Batch(batch_id=b.batch_id, emergency_enabled=True, emergency_address_id="A",
                    id_kind="id", identifiers=("1", "2"))
    assert rebuilt == b
    assert batch_of(["1", "2"], True, "B", "id").batch_id != b.batch_id
    assert batch_of(["1", "2"], True, "A", "e164").batch_id != b.batch_id


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(
    st.integers(0, 400), st.sampled_from(["e164", "id"]),
    st.sampled_from(["enable", "disable", "change_address", "noop", "skip"]),
    st.sampled_from(["A", "B"])), max_size=300, unique_by=lambda r: (r[0], r[1])),
    size=st.integers(1, 50))
def test_batches_never_exceed_the_limit_or_mix(rows, size):
    plan = plan_rows([
        (f"+1970555{i:04d}" if kind == "e164" else str(i), kind, action,
         action != "disable", addr if action != "disable" else None)
        for i, kind, action, addr in rows])
    batches = make_batches(plan, max_size=size)
    actionable = plan[plan.action.isin(["enable", "disable", "change_address"])]
    expected = actionable.drop_duplicates(["identifier", "target_enabled", "target_address_id"])
    assert sum(len(b.identifiers) for b in batches) == len(expected)
    lookup = {(r.identifier, r.id_kind): (r.target_enabled, r.target_address_id)
              for r in expected.itertuples()}
    for b in batches:
        assert 1 <= len(b.identifiers) <= size
        assert list(b.identifiers) == sorted(set(b.identifiers))
        for ident in b.identifiers:
            enabled, addr = lookup[(ident, b.id_kind)]
            assert (enabled, addr if enabled else None) == (b.emergency_enabled,
                                                             b.emergency_address_id)
    assert [b.batch_id for b in make_batches(plan, max_size=size)] == \
        [b.batch_id for b in batches]


def test_other_names_map_each_change_to_its_other_identifier():
    import duckdb

    plan = pd.DataFrame({
        "identifier": ["+19705550001", "7", "+19705550003", "+19705550004"],
        "id_kind": ["e164", "id", "e164", "e164"],
        "action": ["enable", "disable", "noop", "change_address"],
        "number_id": ["1", "7", "3", None],
        "phone_number": ["+19705550001", "+19705550002", "+19705550003", "+19705550004"]})
    con = duckdb.connect()
    con.register("plan_frame", plan)
    # noop rows are not submitted; a row without an id has no other name
    assert other_names(con, "plan_frame") == {"+19705550001": "1", "7": "+19705550002"}
