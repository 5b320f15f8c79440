"""The read-back's budget: its cost known before any request, reading back now only within a
share of the snapshot's requests, and the numbers past it verified by the next snapshot.

The pure parts first (no server); then real runs against the emulator over HTTP, with a real
DuckDB file and ledger, the emulator counting every request."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pytest
from dagster import DagsterInstance, build_asset_check_context
from dagster_duckdb import DuckDBResource

from emergency_pipeline.samples.changed_share import write_changed_state
from emergency_pipeline.client import ClientConfig, TelnyxClient
from emergency_pipeline.definitions import build_definitions
from emergency_pipeline.launch import run_job
from emergency_pipeline.defs.checks import account_agrees_after_apply
from emergency_pipeline.defs.resources import PipelineStorage, TelnyxResource, state_dir_for
from emergency_pipeline.emulator import Emulator
from emergency_pipeline.applying.read_back import (
    judge_at_snapshot, plan_reads, snapshot_pages, target_counts, within_budget,
)
from emergency_pipeline.stage_files import RunTables
from emergency_pipeline.analytics.store import Store

SHARE = "EMERGENCY_PIPELINE_READ_BACK_MAX_SHARE"

# -- the estimate and the budget (pure) ------------------------------------------------------


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


@pytest.mark.parametrize("requests, pages, share, now", [
    (1, 16, 0.05, True),         # 0.8 requests allowed: at least one, always
    (2, 16, 0.05, False),
    (20, 400, 0.05, True),       # 5% of 400 pages
    (21, 400, 0.05, False),
    (4_010, 4_000, 0.05, False),
    (4_010, 4_000, math.inf, True),
    (4_010, 4_000, 1e9, True),
    (1, 16, 0.0, False),         # 0: always left to the next snapshot
    (1, 16, -1.0, False),
    (1, 16, math.nan, False),
])
def test_the_budget_is_a_share_of_the_snapshot(requests: int, pages: int, share: float,
                                               now: bool) -> None:
    assert within_budget(requests, pages, share) is now


def test_snapshot_pages() -> None:
    assert [snapshot_pages(n) for n in (0, 1, 250, 251, 1_000_000)] == [1, 1, 1, 2, 4000]


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


def test_judged_at_the_snapshot(tmp_path: Path) -> None:
    numbers = _numbers([("1", "+1", True, "A"), ("2", "+2", True, "A"), ("3", "+3", False, None),
                        ("4", "+4", True, "B"), ("5", "+5", False, "A")])
    in_flight = pd.DataFrame({"identifier": ["+4"], "job_id": ["j"]})
    snapshot = RunTables(tmp_path, "r").write("snapshot", {"numbers": numbers,
                                                           "in_flight": in_flight})

    def row(i: str, on: bool, a: str | None) -> dict:
        return {"number_id": i, "phone_number": f"+{i}", "target_enabled": on,
                "target_address_id": a, "run_id": "r0", "recorded_at": 1.0}

    judged = judge_at_snapshot(snapshot.path, [
        row("1", True, "A"), row("2", True, "B"), row("3", False, None),
        row("4", True, "A"),        # named by a job in flight: stays pending
        row("5", False, None),      # disabled but still holding an address: not its target
        row("9", True, "A")])       # gone from the account
    assert dict(zip(judged["number_id"], judged["verdict"])) == {
        "1": "verified", "2": "disagreeing", "3": "verified", "4": "in_flight",
        "5": "disagreeing", "9": "missing"}
    wrong = judged.set_index("number_id").loc["2"]
    assert (bool(wrong["live_enabled"]), wrong["live_address_id"]) == (True, "A")


def test_judged_with_nothing_pending_or_in_flight(tmp_path: Path) -> None:
    snapshot = RunTables(tmp_path, "r").write("snapshot", {
        "numbers": _numbers([("1", "+1", True, "A")]),
        "in_flight": pd.DataFrame(columns=["identifier", "job_id"])})
    assert judge_at_snapshot(snapshot.path, []).empty
    judged = judge_at_snapshot(snapshot.path, [{
        "number_id": "1", "phone_number": "+1", "target_enabled": True,
        "target_address_id": "A", "run_id": "r", "recorded_at": 1.0}])
    assert list(judged["verdict"]) == ["verified"]


# The ledger's own to_verify semantics: tests/test_safety_ledger.py (both stores).

# -- real runs ---------------------------------------------------------------------------------

KEY = "KEY_read_back_budget_test_not_secret"
NUMBERS = 4000          # 16 listing pages: the default budget is one request
PAGES = 16


class Account:
    """An emulated account, and apply (or plan-only) runs on it, in process, each one's
    requests counted."""

    def __init__(self, emu: Emulator, tmp_path: Path) -> None:
        self.emu, self.tmp_path = emu, tmp_path
        self.telnyx = TelnyxResource(api_key=KEY, base_url=emu.base_url)
        self.database = str(tmp_path / "outcomes.duckdb")
        self.state = PipelineStorage(directory=state_dir_for(self.database),
                                   store_url=str(tmp_path / "safety.sqlite"))
        self.defs = build_definitions({"telnyx": self.telnyx, "storage": self.state,
                                       "duckdb": DuckDBResource(database=self.database)})
        self.instance = DagsterInstance.ephemeral()
        self.ledger = self.state.ledger()
        self.addresses = [a["id"] for a in emu.addresses()]

    def run(self, source: Path, apply: bool = True, **jobs_config):
        self.emu.reset_stats()
        config = {"ops": {"emergency_update_jobs": {"config": dict(jobs_config)}}}
        result = run_job(str(source), apply, config, defs=self.defs, instance=self.instance)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        result.requests = self.emu.stats()["by_route"]
        return result

    def succeeded(self, run_id: str) -> pd.DataFrame:
        out = Store(self.database).query("SELECT * FROM operation_outcomes WHERE run_id = ? "
                                         "AND result = 'succeeded'", [run_id])
        return out.set_index("number_id", drop=False)

    def pending(self) -> dict[str, dict]:
        return {r["number_id"]: r for r in self.ledger.to_verify(self.telnyx.account(), 1e12)}

    def set_number(self, number_id: str, enabled: bool, address: str | None) -> None:
        """Changed behind the pipeline's back, as a person in the portal would."""
        with TelnyxClient(ClientConfig(api_key=KEY, base_url=self.emu.base_url)) as client:
            client.submit_update_emergency_settings([number_id], enabled, address)
        self.emu.finish_jobs()


def evaluation(result, name: str) -> dict:
    (e,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return {"passed": e.passed, "description": e.description,
            **{k: v.value for k, v in e.metadata.items()}}


class FirstRun(NamedTuple):
    emu: Emulator
    account: Account
    source: Path
    first: object
    succeeded: pd.DataFrame


@pytest.fixture
def first_run(tmp_path: Path, monkeypatch) -> Iterator[FirstRun]:
    """An emulator and a first apply run: 10% of the account changed, to its existing
    (shared) addresses, at the default share."""
    monkeypatch.delenv(SHARE, raising=False)
    with Emulator(numbers=NUMBERS, seed=5, api_key=KEY, job_seconds=0.05) as emu:
        account = Account(emu, tmp_path)
        source = tmp_path / "desired.csv"
        write_changed_state(emu.numbers(), account.addresses, source, 0.10, seed=3)
        first = account.run(source)
        yield FirstRun(emu, account, source, first, account.succeeded(first.run_id))


def test_over_the_budget_nothing_is_read_now_and_the_next_snapshot_verifies_all(
        tmp_path: Path, monkeypatch, first_run: FirstRun) -> None:
    emu, account, source, first, succeeded = first_run
    assert len(succeeded) >= 0.09 * NUMBERS
    check = evaluation(first, "account_agrees_after_apply")
    assert check["passed"] and check["checked"] == 0
    assert check["deferred"] == len(succeeded)
    assert check["snapshot_requests"] == PAGES and check["estimated_requests"] > 1
    assert check["description"].startswith(f"{len(succeeded)} numbers left to verify at "
                                           "the next snapshot")
    # Nothing read back: the run's number pages are its snapshot's, no GET by id.
    assert first.requests["GET /v2/phone_numbers"] == PAGES
    assert "GET /v2/phone_numbers/{id}" not in first.requests
    pending = account.pending()
    assert set(pending) == set(succeeded.index)
    assert all(pending[i]["run_id"] == first.run_id for i in pending)

    # The next run (the same sheet: nothing to change) checks them in its snapshot.
    second = account.run(source)
    hold = evaluation(second, "earlier_successes_hold")
    assert hold["passed"], hold
    assert hold["verified"] == hold["pending"] == len(succeeded)
    assert hold["disagreeing"] == hold["missing"] == hold["in_flight"] == 0
    assert hold["forgotten"] == len(succeeded)
    assert second.requests == {"GET /v2/phone_numbers": PAGES,
                               "GET /v2/phone_numbers/jobs": 1, "GET /v2/addresses": 1}
    assert account.pending() == {}


def test_a_number_changed_behind_the_pipelines_back_fails_the_next_snapshots_check(
        tmp_path: Path, monkeypatch, first_run: FirstRun) -> None:
    emu, account, source, first, succeeded = first_run
    moved = succeeded[succeeded["target_enabled"].astype(bool)].iloc[0]
    account.set_number(moved["number_id"], False, None)

    # A plan-only run reports it and leaves the ledger as it was.
    planned = account.run(source, apply=False)
    hold = evaluation(planned, "earlier_successes_hold")
    assert not hold["passed"] and hold["disagreeing"] == 1
    assert hold["verified"] == len(succeeded) - 1 and hold["forgotten"] == 0
    assert hold["description"].startswith(f"1 of {len(succeeded)} numbers whose job "
                                           "succeeded in an earlier run")
    assert moved["phone_number"] in hold["description"]
    (shown,) = [r.data for r in hold["sample"].records]
    assert shown["phone_number"] == moved["phone_number"]
    assert (shown["target_enabled"], shown["target_address_id"]) == (
        True, moved["target_address_id"])
    assert (shown["live_enabled"], shown["live_address_id"]) == (False, None)
    assert len(account.pending()) == len(succeeded)

    # An apply run reports it again, forgets what it checked, and puts the number back
    # (one change: read back in that run, within the budget).
    applied = account.run(source)
    hold = evaluation(applied, "earlier_successes_hold")
    assert not hold["passed"] and hold["disagreeing"] == 1
    assert hold["forgotten"] == len(succeeded)
    again = evaluation(applied, "account_agrees_after_apply")
    assert again["passed"] and again["checked"] == 1 and again["read_back_requests"] == 1
    assert account.pending() == {}
    assert emu.number(moved["number_id"])["emergency_address_id"] == \
        moved["target_address_id"]


@pytest.mark.parametrize("later", ["deferred", "read back in its run"])
def test_a_number_a_later_run_changed_again_is_held_to_the_later_target(
        tmp_path: Path, monkeypatch, later: str, first_run: FirstRun) -> None:
    emu, account, source, first, succeeded = first_run
    number = succeeded[succeeded["target_enabled"].astype(bool)].iloc[0]
    other = next(a for a in account.addresses if a != number["target_address_id"])
    changed = tmp_path / "changed.csv"
    _rewrite(source, changed, number["phone_number"], other)

    if later == "deferred":
        monkeypatch.setenv(SHARE, "0")        # 0: always left to the next snapshot
    second = account.run(changed)
    # Its snapshot, before its job, held the first run's target.
    hold = evaluation(second, "earlier_successes_hold")
    assert hold["passed"] and hold["verified"] == hold["forgotten"] == len(succeeded)
    check = evaluation(second, "account_agrees_after_apply")
    assert check["passed"] and len(account.succeeded(second.run_id)) == 1
    if later == "deferred":
        assert check["deferred"] == 1 and check["checked"] == 0
        assert {i: (r["target_address_id"], r["run_id"])
                for i, r in account.pending().items()} == {
            number["number_id"]: (other, second.run_id)}
    else:
        assert check["checked"] == 1 and check["deferred"] == 0
        assert account.pending() == {}

    monkeypatch.delenv(SHARE, raising=False)
    third = account.run(changed)
    hold = evaluation(third, "earlier_successes_hold")
    assert hold["passed"], hold
    assert hold["verified"] == hold["pending"] == (later == "deferred")
    assert account.pending() == {}


@pytest.mark.parametrize("share", ["inf", "0"])
def test_an_older_pending_target_never_outlives_a_later_success(
        tmp_path: Path, monkeypatch, share: str, first_run: FirstRun) -> None:
    """An earlier run's row still pending for a number (say its next snapshot's check did not
    run) when a later run succeeds on it: that run's target replaces it, whether it reads
    back now or defers."""
    emu, account, _, first, _ = first_run
    key, pending = account.telnyx.account(), account.pending()
    number_id, row = next(iter(pending.items()))
    account.ledger.verified(key, [(i, math.inf) for i in pending])
    account.ledger.defer_verification(key, "an-older-run", 1.0,
                                      [(number_id, row["phone_number"], False, None)])
    # The run's check evaluated again, on its own stage files.
    monkeypatch.setenv(SHARE, share)
    tables = account.state.tables(first.run_id)
    result = account_agrees_after_apply(
        build_asset_check_context(), tables.ref("outcomes"),
        tables.ref("snapshot", {"numbers": NUMBERS}), account.telnyx, account.state)
    assert result.passed
    if share == "inf":
        assert result.metadata["checked"].value == len(pending)
        assert account.pending() == {}
    else:
        assert result.metadata["deferred"].value == len(pending)
        assert account.pending() == pending


def _rewrite(source: Path, path: Path, phone: str, address: str) -> None:
    """The sheet at `source` with the number `phone` enabled at `address`."""
    with source.open(newline="") as fh:
        rows = list(csv.reader(fh))
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(
            [r if r[0] != phone else [phone, "true", address] for r in rows])


def test_earlier_runs_jobs_a_later_run_sees_succeed_are_verified_at_the_next_snapshot(
        tmp_path: Path, monkeypatch) -> None:
    """A run that ends before its jobs (its follow timed out, or it was killed) cannot read
    them back; the run that follows them to their end does not plan those numbers (another
    sheet). They are left to the next snapshot, never to no one."""
    monkeypatch.delenv(SHARE, raising=False)
    with Emulator(numbers=NUMBERS, seed=5, api_key=KEY, job_seconds=2.0) as emu:
        account = Account(emu, tmp_path)
        changes = tmp_path / "desired.csv"
        targets = write_changed_state(emu.numbers(), account.addresses, changes, 0.02,
                                      seed=3).targets
        first = account.run(changes, follow_timeout_seconds=0)   # its jobs outlive it
        submitted = Store(account.database).query(
            "SELECT number_id, target_enabled, target_address_id, result FROM "
            "operation_outcomes WHERE run_id = ? AND batch_id IS NOT NULL",
            [first.run_id]).set_index("number_id")
        unfinished = submitted.index[submitted["result"] == "pending"]
        assert len(unfinished) >= 0.9 * len(targets) and account.pending() == {}

        # Another sheet: one number that no job touches, as it is.
        other = tmp_path / "other.csv"
        (keep,) = [n for n in emu.numbers() if n["id"] not in targets][:1]
        with other.open("w", newline="") as fh:
            csv.writer(fh).writerows([
                ["phone_number", "emergency_enabled", "emergency_address_id"],
                [keep["phone_number"], keep["emergency_enabled"],
                 keep["emergency_address_id"] or ""]])
        second = account.run(other, follow_timeout_seconds=60)
        assert evaluation(second, "account_agrees_after_apply")["checked"] == 0
        pending = account.pending()
        # Every number the first run left unfinished; any other is one of its jobs' too.
        assert set(unfinished) <= set(pending) <= set(submitted.index)
        for number_id, row in pending.items():
            want = submitted.loc[number_id]
            assert row["run_id"] == first.run_id
            assert row["target_enabled"] == bool(want["target_enabled"])
            assert row["target_address_id"] == (want["target_address_id"]
                                                if row["target_enabled"] else None)

        third = account.run(other)
        hold = evaluation(third, "earlier_successes_hold")
        assert hold["passed"] and hold["verified"] == hold["pending"] == len(pending), hold
        assert account.pending() == {}
