"""The plan as a reviewer reads it (pure: a plan frame and the account's addresses in)."""

from __future__ import annotations

import duckdb
import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from emergency_pipeline.planning.report import (full_list, group_sql, has_changes, heads_and_totals,
                                            plan_groups, render_plan, write_full_list)

ADDRESSES = pd.DataFrame([
    {"id": "111", "business_name": "Acme HQ", "street_address": "1 Main St", "extended_address": None,
     "locality": "Springfield", "administrative_area": "IL", "postal_code": "62701",
     "country_code": "US"},
    {"id": "222", "street_address": "9 Elm Ave", "locality": "Boston",
     "administrative_area": "MA", "postal_code": "02108", "country_code": "US"},
])


def _row(n: int, action: str, enabled: bool, address: str | None, reason: str = "r") -> dict:
    return {"phone_number": f"+1970555{n:04d}", "number_id": str(9000 + n), "action": action,
            "reason": reason, "target_enabled": enabled, "target_address_id": address,
            "address_given": None, "source_file": "a.csv", "source_row": n + 1,
            "current_enabled": not enabled, "current_address_id": None, "extras": "{}"}


def _plan() -> pd.DataFrame:
    rows = [_row(n, "enable", True, "111") for n in range(12)]
    rows += [_row(20, "change_address", True, "222")]
    rows += [_row(30 + n, "disable", False, None) for n in range(3)]
    rows += [_row(40, "skip", True, "333", "address not in the account")]
    rows += [_row(50 + n, "noop", True, "111") for n in range(5)]
    new = _row(60, "enable", True, "new-address-abc")
    new["address_given"] = "Acme, 5 Oak Rd, Salem, OR 97301, US"
    return pd.DataFrame(rows + [new])


def test_changes_are_grouped_by_action_and_target_with_the_address_as_people_read_it():
    text = render_plan(_plan(), ADDRESSES, limit=10, full_list_at="plans/r.csv")
    lines = text.splitlines()
    assert lines[0] == ("Plan: 17 to change (enable 13, change_address 1, disable 3), "
                        "5 unchanged, 1 skipped.")
    assert ("+ enable E911: 12 numbers -> Acme HQ, 1 Main St, Springfield, IL 62701, US "
            "(address id 111)"
            in lines)
    assert "    +19705550000 (id 9000)" in lines
    assert "    and 2 more" in lines                      # 12 numbers, 10 shown
    # An account's address reads as a new one does: name and country too (issue 27).
    assert "~ change the E911 address: 1 number -> 9 Elm Ave, Boston, MA 02108, US (address id 222)" \
        in lines
    assert "- disable E911: 3 numbers" in lines
    # An address the run would create reads as the sheet gave it.
    assert any("Acme, 5 Oak Rd, Salem" in line and "new-address-abc" in line for line in lines)
    assert "! skip: 1 number: address not in the account" in lines
    assert not any("+19705550050" in line for line in lines)   # noops are only counted
    assert lines[-1] == "Full list: plans/r.csv"
    # The biggest group of an action comes first.
    assert text.index("12 numbers") < text.index("Acme, 5 Oak Rd")


def test_nothing_to_do():
    plan = pd.DataFrame([_row(n, "noop", False, None) for n in range(3)])
    assert not has_changes(plan)
    text = render_plan(plan, ADDRESSES)
    assert text.splitlines()[:2] == ["Plan: 0 to change, 3 unchanged, 0 skipped.",
                                     "No changes: the account already matches the desired state."]


def test_groups_and_the_full_list(tmp_path):
    groups = plan_groups(_plan(), ADDRESSES, limit=3)
    enable = groups.iloc[0]
    assert (enable.action, enable.numbers, enable.target_address_id) == ("enable", 12, "111")
    assert enable.first_numbers == ["+19705550000 (id 9000)", "+19705550001 (id 9001)",
                                    "+19705550002 (id 9002)"]
    assert list(groups["action"]) == ["enable", "enable", "change_address", "disable", "skip",
                                      "noop"]
    path = write_full_list(_plan(), ADDRESSES, tmp_path / "plans" / "r.csv")
    back = pd.read_csv(path, dtype=str)
    assert len(back) == len(_plan())
    assert back.loc[0, "target_address"] == "Acme HQ, 1 Main St, Springfield, IL 62701, US"
    assert full_list(_plan(), ADDRESSES)["action"].iloc[-1] == "noop"


_ROWS = st.lists(st.tuples(st.sampled_from(["enable", "change_address", "disable", "skip", "noop"]),
                           st.sampled_from([None, "111", "222", "333"]),
                           st.sampled_from(["r1", "r2", None])), max_size=40)


@settings(max_examples=150, deadline=None)
@given(_ROWS, st.integers(1, 4))
# A skip group mixes targets: its first numbers are by target, then number (row 1 has the
# larger number and the smaller target).
@example([("noop", None, None), ("skip", "111", "r1"), ("skip", "333", "r1")], 1)
def test_the_groups_from_sql_heads_are_the_groups_of_the_whole_plan(rows, limit):
    """What `run` and the plan's metadata show of a big plan (only each group's first rows
    leave DuckDB, with the group sizes) is what plan_groups makes of the whole plan: the same
    groups, counts and first numbers, an absent target or number sorted last."""
    plan = pd.DataFrame([{
        # Row 0 has no number (a row given by id): it must sort after the numbers.
        **_row(n, action, action != "disable", target, reason or ""),
        "phone_number": None if n == 0 else f"+1970555{(7919 * n) % 10000:04d}",
        "reason": reason} for n, (action, target, reason) in enumerate(rows)],
        columns=list(_row(0, "noop", True, None)))
    with duckdb.connect() as con:
        con.register("plan_frame", plan)
        heads = con.execute(group_sql("plan_frame"), [limit]).df()
    shown, totals = heads_and_totals(heads)

    def comparable(groups: pd.DataFrame) -> list[dict]:
        return groups.astype(object).where(groups.notna(), None).to_dict("records")
    assert comparable(plan_groups(shown, ADDRESSES, limit, totals)) == \
        comparable(plan_groups(plan, ADDRESSES, limit))
