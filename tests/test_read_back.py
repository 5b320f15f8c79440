"""The read-back check (`account_agrees_after_apply`) after real runs against the emulator:
it passes when the account holds every succeeded number's target, fails naming the numbers
when it does not, and reads them back by few requests (counted by the emulator).

These tests read back in the run whatever it costs (EMERGENCY_PIPELINE_READ_BACK_MAX_SHARE
"inf"); test_read_back_budget.py tests the budget and the reading left to the next snapshot."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, build_asset_check_context
from dagster_duckdb import DuckDBResource

from emergency_pipeline import telnyx_contract as contract
from emergency_pipeline.samples.changed_share import write_changed_state
from emergency_pipeline.client import ClientConfig, TelnyxClient
from emergency_pipeline.definitions import build_definitions
from emergency_pipeline.defs.checks import account_agrees_after_apply
from emergency_pipeline.launch import run_job
from emergency_pipeline.defs.resources import PipelineStorage, TelnyxResource, state_dir_for
from emergency_pipeline.emulator import Emulator
from emergency_pipeline.stage_files import RunTables
from emergency_pipeline.analytics.store import Store

from _emulator_support import API_KEY

KEY = "KEY_read_back_test_not_secret"
NUMBERS = 4000          # 16 listing pages


@pytest.fixture(autouse=True)
def _read_back_always(monkeypatch) -> None:
    monkeypatch.setenv("EMERGENCY_PIPELINE_READ_BACK_MAX_SHARE", "inf")


class Run:
    """One apply run of a whole-account sheet, in process."""

    def __init__(self, emu: Emulator, tmp_path: Path, source: Path) -> None:
        self.emu, self.tmp_path = emu, tmp_path
        self.telnyx = TelnyxResource(api_key=KEY, base_url=emu.base_url)
        database = str(tmp_path / "outcomes.duckdb")
        self.state = PipelineStorage(directory=state_dir_for(database))
        defs = build_definitions({"telnyx": self.telnyx,
                                  "duckdb": DuckDBResource(database=database)})
        self.result = run_job(str(source), True, None, defs=defs,
                              instance=DagsterInstance.ephemeral())
        assert self.result.success
        self.outcomes = Store(database).query(
            "SELECT * FROM operation_outcomes WHERE run_id = ?", [self.result.run_id])
        self.succeeded = self.outcomes[self.outcomes["result"] == "succeeded"]
        # The run's own snapshot (taken before its jobs), as the check gets it.
        self.snapshot = self.state.tables(self.result.run_id).ref("snapshot",
                                                                   {"numbers": NUMBERS})

    def check_again(self):
        """The check on this run's outcomes, evaluated now (the emulator counts its requests)."""
        ref = RunTables(self.tmp_path / "again", self.result.run_id).write(
            "outcomes", {"outcomes": self.outcomes})
        self.emu.reset_stats()
        return account_agrees_after_apply(build_asset_check_context(), ref, self.snapshot,
                                          self.telnyx, self.state)

    def evaluation(self) -> dict:
        (e,) = [e for e in self.result.get_asset_check_evaluations()
                if e.check_name == "account_agrees_after_apply"]
        return {"passed": e.passed, **{k: v.value for k, v in e.metadata.items()}}


def _apply(tmp_path: Path, emu: Emulator, share: float, addresses: list[str]) -> Run:
    source = tmp_path / "desired.csv"
    write_changed_state(emu.numbers(), addresses, source, share, seed=3)
    return Run(emu, tmp_path, source)


def _cheapest(emu: Emulator, succeeded: pd.DataFrame) -> int:
    """Per target, the fewer of its listing's pages (as the account is now) and its numbers:
    the least any strategy of whole pages and GETs by id can spend."""
    at: dict[str | None, int] = {}
    for n in emu.numbers():
        at[n["emergency_address_id"]] = at.get(n["emergency_address_id"], 0) + 1
    targets = succeeded["target_address_id"].where(succeeded["target_enabled"].astype(bool))
    per_target = targets.map(lambda t: None if pd.isna(t) else t).value_counts(dropna=False)
    return sum(min(math.ceil(at.get(None if pd.isna(t) else t, 0) / contract.MAX_PAGE_SIZE), n)
               for t, n in per_target.items())


@pytest.mark.parametrize("where", ["existing sites", "a new site"])
def test_after_a_real_apply_of_10_percent_the_check_passes_by_few_requests(
        tmp_path: Path, where: str) -> None:
    with Emulator(numbers=NUMBERS, seed=5, api_key=KEY, job_seconds=0.05) as emu:
        addresses = [a["id"] for a in emu.addresses()]
        if where == "a new site":
            used = {n["emergency_address_id"] for n in emu.numbers()}
            addresses = [a for a in addresses if a not in used][:1]   # a spare: no numbers yet
        run = _apply(tmp_path, emu, 0.10, addresses)
        evaluation = run.evaluation()
        assert evaluation["passed"], evaluation
        assert evaluation["checked"] == len(run.succeeded) >= 0.09 * NUMBERS
        # The same check again, now its requests alone are counted by the emulator.
        again = run.check_again()
        assert again.passed
        stats = emu.stats()
        requests = stats["requests"]
        assert requests == again.metadata["read_back_requests"].value
        assert set(stats["by_route"]) <= {"GET /v2/phone_numbers", "GET /v2/phone_numbers/{id}"}
        targets = run.succeeded["target_address_id"].fillna("none").nunique()
        snapshot_pages = math.ceil(NUMBERS / contract.MAX_PAGE_SIZE)
        # The cheapest possible, known from the run's tables before any request; never more
        # than re-listing the account by one partial page per target.
        assert requests == _cheapest(emu, run.succeeded) == \
            again.metadata["estimated_requests"].value
        assert requests <= snapshot_pages + targets
        if where == "a new site":
            # The new site's listing holds just the numbers moved there; the disabled ones
            # share theirs ("null") with the numbers that never had an address.
            assert requests < snapshot_pages


def test_a_few_changes_are_read_by_id(tmp_path: Path) -> None:
    with Emulator(numbers=NUMBERS, seed=5, api_key=KEY, job_seconds=0.05) as emu:
        run = _apply(tmp_path, emu, 0.001, [a["id"] for a in emu.addresses()])
        again = run.check_again()
        assert again.passed and again.metadata["checked"].value == len(run.succeeded) > 0
        # No request to decide how: each target's cost is known from the run's tables.
        assert emu.stats()["requests"] == again.metadata["estimated_requests"].value \
            <= len(run.succeeded)


def test_the_check_fails_naming_the_numbers_the_account_disagrees_on(tmp_path: Path) -> None:
    with Emulator(numbers=NUMBERS, seed=5, api_key=KEY, job_seconds=0.05) as emu:
        addresses = [a["id"] for a in emu.addresses()]
        run = _apply(tmp_path, emu, 0.10, addresses)
        emu.finish_jobs()
        # Someone changes some of them back behind the pipeline's back: three that were
        # enabled at an address are disabled, three that were disabled are enabled.
        enabled = run.succeeded[run.succeeded["target_enabled"].astype(bool)].head(3)
        disabled = run.succeeded[~run.succeeded["target_enabled"].astype(bool)].head(3)
        with TelnyxClient(ClientConfig(api_key=KEY, base_url=emu.base_url)) as client:
            client.submit_update_emergency_settings(enabled["number_id"].tolist(), False, None)
            client.submit_update_emergency_settings(disabled["number_id"].tolist(), True,
                                                    addresses[0])
        emu.finish_jobs()
        result = run.check_again()
        assert not result.passed
        assert result.metadata["disagreeing"].value == 6
        shown = {r.data["phone_number"]: r.data for r in result.metadata["sample"].records}
        assert set(shown) == set(enabled["phone_number"]) | set(disabled["phone_number"])
        # What the account holds instead, read back by id.
        assert all(shown[p]["live_enabled"] is False for p in enabled["phone_number"])
        assert all(shown[p]["live_address_id"] == addresses[0] for p in disabled["phone_number"])
        assert result.description.startswith("6 numbers whose job succeeded")


@pytest.mark.parametrize("page_size", [7, 250])
def test_the_client_lists_the_numbers_at_an_address_or_at_none(emulator, page_size: int) -> None:
    # The conftest emulator checks every request against the spec: filter[emergency_address_id]
    # is a string, "null" for numbers with no emergency address.
    address = emulator.addresses()[0]["id"]
    config = ClientConfig(api_key=API_KEY,
                          base_url=emulator.base_url, page_size=page_size)
    with TelnyxClient(config) as client:
        for target, want in ((address, address), ("null", None)):
            first = client.first_phone_numbers_page({"emergency_address_id": target},
                                                    fields=["emergency_address_id"])
            listed = client.list_phone_numbers(filters={"emergency_address_id": target},
                                               fields=["emergency_address_id"], first=first)
            expected = [n["id"] for n in emulator.numbers() if n["emergency_address_id"] == want]
            assert sorted(r["id"] for r in listed) == sorted(expected) and expected
            assert first.total_results == len(expected)
            assert all(set(r) == {"id", "emergency_address_id"} for r in listed)
