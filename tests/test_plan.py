"""The plan: one action per desired row, table-driven against a small snapshot, and properties."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from emergency_pipeline.planning.plan import ACTIONS, PLAN_COLUMNS, build_plan, plan_summary, \
    plan_summary_markdown

A1, A2, GONE = "100", "200", "999"


def snapshot(*rows):
    """rows: (id, e164, status, enabled, address, emergency_status)."""
    return pd.DataFrame(rows, columns=["id", "phone_number", "status", "emergency_enabled",
                                       "emergency_address_id", "emergency_status"])


ADDRESSES = pd.DataFrame({"id": [A1, A2]})
NUMBERS = snapshot(
    ("1", "+19705550001", "active", False, None, "disabled"),
    ("2", "+19705550002", "active", True, A1, "active"),
    ("3", "+19705550003", "active", True, A1, "provisioning"),
    ("4", "+19705550004", "active", True, A1, "deprovisioning"),
    ("5", "+19705550005", "port-pending", False, None, "disabled"),
    ("6", "+19705550006", "emergency-only", True, A1, "provisioning-failed"),
    ("7", "+19705550007", "deleted", True, A1, "active"),
)


def desired(*rows):
    """rows: (e164 or None, id or None, enabled, address or None)."""
    return pd.DataFrame([
        {"source_file": "d.csv", "source_row": i + 2, "phone_number": p, "number_id": n,
         "emergency_enabled": e, "emergency_address_id": a, "extras": "{}"}
        for i, (p, n, e, a) in enumerate(rows)])


@pytest.mark.parametrize("row,action,reason", [
    (("+19705550001", None, True, A1), "enable", "enable"),
    (("+19705550001", None, False, None), "noop", "already disabled"),
    (("+19705550002", None, True, A1), "noop", "already enabled"),
    (("+19705550002", None, True, A2), "change_address", "address 100 -> 200"),
    (("+19705550002", None, False, None), "disable", "disable"),
    ((None, "2", False, None), "disable", "disable"),
    (("+19705559999", None, True, A1), "skip", "not in the account"),
    ((None, "424242", True, A1), "skip", "no number with id 424242"),
    (("+19705550001", None, True, GONE), "skip", "address not in the account"),
    (("+19705550003", None, True, A2), "skip", "emergency_status is provisioning"),
    (("+19705550003", None, True, A1), "skip", "emergency_status is provisioning"),
    (("+19705550004", None, False, None), "skip", "emergency_status is deprovisioning"),
    (("+19705550005", None, True, A1), "skip", "number status port-pending"),
    (("+19705550005", None, False, None), "noop", "already disabled"),   # nothing to change
    (("+19705550006", None, True, A1), "enable", "provisioning failed"),
    (("+19705550007", None, False, None), "skip", "number status deleted"),
])
def test_one_action_per_case(row, action, reason):
    plan = build_plan(desired(row), NUMBERS, ADDRESSES)
    assert list(plan.columns) == PLAN_COLUMNS
    assert plan.action.tolist() == [action]
    assert reason in plan.reason[0]


def test_identifier_keeps_the_kind_the_sheet_used():
    plan = build_plan(desired(("+19705550001", None, True, A1), (None, "2", True, A2)),
                      NUMBERS, ADDRESSES)
    assert plan.identifier.tolist() == ["+19705550001", "2"]
    assert plan.id_kind.tolist() == ["e164", "id"]
    # Both columns are filled from the snapshot when the number is known.
    assert plan.number_id.tolist() == ["1", "2"]
    assert plan.phone_number.tolist() == ["+19705550001", "+19705550002"]
    assert plan.current_enabled.tolist() == [False, True]
    assert plan.current_address_id.tolist()[1] == A1


@pytest.mark.parametrize("in_flight", [{"2"}, {"+19705550002"}, frozenset({"x", "2"})])
def test_in_flight_numbers_are_skipped_by_id_or_e164(in_flight):
    rows = desired(("+19705550002", None, True, A2), (None, "2", True, A2),
                   ("+19705550001", None, True, A1))
    rows.loc[1, "source_row"] = 99   # the same number twice would otherwise be rule 3
    plan = build_plan(rows.iloc[[0, 2]], NUMBERS, ADDRESSES, in_flight=in_flight)
    assert plan.action.tolist() == ["skip", "enable"]
    assert "in flight" in plan.reason[0]


def test_absent_numbers_never_appear():
    plan = build_plan(desired(("+19705550002", None, True, A1)), NUMBERS, ADDRESSES)
    assert plan.number_id.tolist() == ["2"]


def test_same_number_by_e164_and_by_id():
    same = build_plan(desired(("+19705550001", None, True, A1), (None, "1", True, A1)),
                      NUMBERS, ADDRESSES)
    assert same.action.tolist() == ["enable", "skip"]
    assert "the same account number as d.csv row 2" in same.reason[1]
    conflict = build_plan(desired(("+19705550001", None, True, A1), (None, "1", False, None)),
                          NUMBERS, ADDRESSES)
    assert conflict.action.tolist() == ["skip", "skip"]
    assert "d.csv row 3" in conflict.reason[0] and "d.csv row 2" in conflict.reason[1]


def test_empty_snapshot_and_empty_desired():
    plan = build_plan(desired(("+19705550001", None, True, A1)), NUMBERS.iloc[:0],
                      ADDRESSES.iloc[:0])
    assert plan.action.tolist() == ["skip"]
    assert build_plan(desired(("+1", None, True, A1)).iloc[:0], NUMBERS, ADDRESSES).empty


def test_snapshot_types_are_tolerated():
    """Ids as integers, flags as text, NaN addresses: what a DuckDB round trip may hand back."""
    nums = NUMBERS.assign(id=NUMBERS.id.astype(int),
                          emergency_enabled=NUMBERS.emergency_enabled.map(str))
    plan = build_plan(desired((None, "2", True, A2)), nums, ADDRESSES.assign(id=[100, 200]))
    assert plan.action.tolist() == ["change_address"]


def test_summary():
    plan = build_plan(desired(("+19705550001", None, True, A1), ("+19705550002", None, False, None),
                              ("+19705559999", None, True, A1)), NUMBERS, ADDRESSES)
    s = plan_summary(plan)
    assert s.numbers.sum() == 3
    assert set(s.action) == {"enable", "disable", "skip"}
    md = plan_summary_markdown(plan)
    assert md.startswith("| action |") and "| enable | True | 100 | 1 |" in md


IDS = [str(i) for i in range(1, 30)]


@st.composite
def worlds(draw):
    nums = draw(st.lists(st.tuples(
        st.sampled_from(IDS), st.sampled_from(["active", "deleted", "port-pending"]),
        st.booleans(), st.sampled_from([None, A1, A2]),
        st.sampled_from(["active", "disabled", "provisioning", "provisioning-failed"])),
        max_size=20, unique_by=lambda t: t[0]))
    numbers = snapshot(*[(i, f"+1970555{int(i):04d}", s, e, a, es) for i, s, e, a, es in nums])
    rows = draw(st.lists(st.tuples(st.sampled_from(IDS), st.booleans(), st.booleans(),
                                   st.sampled_from([A1, A2, GONE])), max_size=25))
    seen, want = set(), []
    for i, by_id, enabled, addr in rows:
        key = i if by_id else f"+1970555{int(i):04d}"
        if key in seen:
            continue
        seen.add(key)
        want.append((None, i, enabled, addr if enabled else None) if by_id
                    else (key, None, enabled, addr if enabled else None))
    flight = draw(st.sets(st.sampled_from(IDS), max_size=3))
    return (desired(*want) if want else desired(("+1", None, True, A1)).iloc[:0]), numbers, flight


# One number named twice (by E.164 and by id) with one target, another with two: rule 3
# across rows (and, at one row a range, across ranges); a number in flight named by E.164
# while the flight lists its id (rule 4). Random worlds meet these rarely: measured with
# tests/property_mutants.py, dropping rule 3 was caught within 200 examples by 2 seeds of 10.
_TWICE = (desired(("+19705550003", None, True, A1), (None, "3", True, A1),
                  ("+19705550004", None, True, A1), (None, "4", False, None),
                  ("+19705550005", None, True, A2)),
          snapshot(("3", "+19705550003", "active", False, None, "disabled"),
                   ("4", "+19705550004", "active", True, A1, "active"),
                   ("5", "+19705550005", "active", False, None, "disabled")),
          {"5"})


@settings(max_examples=100, deadline=None)   # 200 before the @example: tests/README.md
@given(world=worlds())
@example(world=_TWICE)
def test_every_desired_row_appears_exactly_once(world):
    acc, numbers, flight = world
    plan = build_plan(acc, numbers, ADDRESSES, in_flight=frozenset(flight))
    assert len(plan) == len(acc)
    assert plan.source_row.tolist() == acc.source_row.tolist()
    assert set(plan.action) <= set(ACTIONS)
    assert plan.reason.notna().all()
    known = set(numbers.id) | set(numbers.phone_number)
    assert (plan.action.eq("skip") | plan.identifier.isin(known)).all()
    acting = plan[plan.action.isin(["enable", "disable", "change_address"])]
    assert not acting.number_id.duplicated().any()
    assert not acting.number_id.isin(flight).any()


def test_a_number_listed_twice_counts_its_first_sighting():
    # the listing can show a number twice when pages shift under it; by E.164 and by id
    later = snapshot(("2", "+19705550002", "active", False, None, "disabled"))
    plan = build_plan(desired(("+19705550002", None, True, A1), (None, "2", True, A1)),
                      pd.concat([NUMBERS, later], ignore_index=True), ADDRESSES)
    assert plan.action.tolist() == ["noop", "skip"]   # the first: enabled with A1 already
    assert plan.reason[1] == "the same account number as d.csv row 2"


@settings(max_examples=50, deadline=None)   # 100 before the @example: tests/README.md
@given(world=worlds(), per_range=st.integers(1, 7),
       repeats=st.lists(st.tuples(st.integers(0, 19), st.booleans()), max_size=4))
@example(world=_TWICE, per_range=1, repeats=[(0, True)])
def test_planning_a_range_at_a_time_gives_the_one_plan(world, per_range, repeats):
    """write_plan plans the rows a range at a time; the plan is the one of all rows at once,
    in the same order, rule 3 and a number listed twice included."""
    from unittest import mock

    from emergency_pipeline.planning import plan as plan_module

    acc, numbers, flight = world
    later = [numbers.iloc[i % len(numbers)].copy() for i, _ in repeats] if len(numbers) else []
    for row, (_, enabled) in zip(later, repeats):
        row["emergency_enabled"], row["emergency_status"] = enabled, "active"
    numbers = pd.concat([numbers, pd.DataFrame(later)], ignore_index=True) if later else numbers
    whole = build_plan(acc, numbers, ADDRESSES, in_flight=frozenset(flight))
    with mock.patch.object(plan_module, "PLAN_RANGE_ROWS", per_range), \
            mock.patch.object(plan_module, "MAX_PLAN_RANGES", 1000):
        assert len(plan_module.plan_ranges(len(acc))) == max(1, -(-len(acc) // per_range))
        ranged = build_plan(acc, numbers, ADDRESSES, in_flight=frozenset(flight))
    pd.testing.assert_frame_equal(ranged, whole)
