"""The read-back's cost, known before any request from the run's own tables, and the
ledger's numbers left to verify (no server)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from emergency_pipeline.read_back import plan_reads, target_counts
from emergency_pipeline.run_tables import RunTables
from emergency_pipeline.state.ledger import Ledger


def test_each_target_is_read_the_cheaper_way() -> None:
    changed = {"busy": 40, "quiet": 40, "one": 1, "null": 300, None: 2, "tie": 2}
    after = {"busy": 30_000, "quiet": 45, "one": 1, "null": 600, None: 0, "tie": 251}
    plan = plan_reads(changed, after)
    # busy: 120 pages > 40 by id; quiet: 1 page; null: 3 pages < 300; tie: 2 pages = 2 GETs
    # (by id); None (enabled with no address known) is only readable by id.
    assert plan.listed == {"quiet", "null"}
    assert (plan.pages, plan.by_id) == (1 + 3, 40 + 1 + 2 + 2)
    assert plan.requests == 4 + 45


def test_a_target_with_nothing_after_still_costs_one_page() -> None:
    assert plan_reads({"a": 5}, {}).requests == 1
    assert plan_reads({"a": 5}, {"a": 0}, page_size=7).listed == {"a"}


def _numbers(rows: list[tuple[str, str, bool, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "phone_number", "emergency_enabled",
                                       "emergency_address_id"])


def test_target_counts_move_the_changed_numbers_to_their_targets(tmp_path: Path) -> None:
    numbers = _numbers([("1", "+1", True, "A"), ("2", "+2", True, "A"), ("3", "+3", True, "A"),
                        ("4", "+4", True, "B"), ("5", "+5", True, "B"),
                        ("6", "+6", False, None), ("7", "+7", False, None)])
    snapshot = RunTables(tmp_path, "r").write("snapshot", {"numbers": numbers})
    # 1: A -> B; 4: B -> disabled; 6: null -> C (a new site); 2: already at A (adopted job).
    targets = {"1": "B", "4": "null", "6": "C", "2": "A"}
    changed, after = target_counts(snapshot.path, targets)
    assert changed == {"B": 1, "null": 1, "C": 1, "A": 1}
    assert after == {"B": 2, "null": 2, "C": 1, "A": 2}


def test_the_ledger_keeps_the_newest_target_per_number(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.defer_verification("acct", "run-1", 100.0, [("1", "+1", True, "A"),
                                                       ("2", "+2", False, None)])
    ledger.defer_verification("other", "run-x", 100.0, [("1", "+1", True, "Z")])
    ledger.defer_verification("acct", "run-2", 200.0, [("1", "+1", True, "B")])
    # An older run's check evaluated again later never brings back its older target.
    ledger.defer_verification("acct", "run-1", 100.0, [("1", "+1", True, "A")])
    rows = {r["number_id"]: r for r in ledger.to_verify("acct", recorded_before=1e12)}
    assert (rows["1"]["target_address_id"], rows["1"]["run_id"]) == ("B", "run-2")
    assert rows["2"]["target_enabled"] is False and rows["2"]["target_address_id"] is None
    # A snapshot taken before run-2 recorded cannot show its target.
    assert [r["number_id"] for r in ledger.to_verify("acct", recorded_before=150.0)] == ["2"]
    # Forgetting a checked row leaves a newer one for the same number.
    assert ledger.verified("acct", [("1", 100.0), ("2", 100.0)]) == 1
    assert [r["run_id"] for r in ledger.to_verify("acct", 1e12)] == ["run-2"]
    assert [r["target_address_id"] for r in ledger.to_verify("other", 1e12)] == ["Z"]
