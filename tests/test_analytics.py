"""The history's answers to the usual questions, one query each (issue 27): what is failing
now (applied runs only), what changed for one number (before and after), which runs applied,
on which account, from which sheet."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster_duckdb import DuckDBResource

from emergency_pipeline.definitions import build_definitions
from emergency_pipeline.launch import run_job
from emergency_pipeline.defs.resources import TelnyxResource
from emergency_pipeline.emulator import Emulator, Faults
from emergency_pipeline.samples.demo_sheet import write_sample
from emergency_pipeline.analytics.store import Store

KEY = "KEY_analytics_test_not_secret"
NUMBERS, SEED = 400, 5


@pytest.fixture
def history(tmp_path: Path):
    with Emulator(numbers=NUMBERS, seed=SEED, api_key=KEY, job_seconds=0.2,
                  faults=Faults.parse("number_fail_rate=0.2,seed=3")) as emu:
        database = str(tmp_path / "outcomes.duckdb")
        desired = str(write_sample(tmp_path / "desired.csv", NUMBERS, SEED, rows=120))
        defs = build_definitions({
            "telnyx": TelnyxResource(api_key=KEY, base_url=emu.base_url,
                                     account_name="acme-prod"),
            "duckdb": DuckDBResource(database=database)})
        instance = DagsterInstance.ephemeral()

        def run(apply: bool):
            result = run_job(desired, apply, None, defs=defs,
                             instance=instance)
            assert result.success
            return result

        applied = run(True)
        planned = run(False).run_id
        yield Store(database), applied.run_id, planned, desired, applied


def test_failing_now_ignores_later_plan_only_runs(history) -> None:
    store, applied, planned, _, _ = history
    failed = store.query("SELECT phone_number FROM operation_outcomes WHERE run_id = ? AND "
                         "result IN ('failed', 'expired') ORDER BY 1", [applied])
    assert len(failed) > 0
    now = store.query("SELECT phone_number FROM failing_now ORDER BY 1")
    assert now["phone_number"].tolist() == failed["phone_number"].tolist()
    latest = store.query("SELECT result FROM latest_applied_outcome_per_number "
                         "WHERE run_id <> ?", [applied])
    assert latest.empty                                   # the plan-only run is not there
    # The old view keeps its meaning: the latest row of any run.
    assert set(store.query("SELECT DISTINCT run_id FROM latest_outcome_per_number")["run_id"]
               ) >= {planned}


def test_outcomes_carry_the_setting_before_and_the_account(history) -> None:
    store, applied, _, _, _ = history
    changed = store.query(
        "SELECT action, enabled_before, address_id_before, target_enabled, target_address_id, "
        "applied, account FROM operation_outcomes WHERE run_id = ? AND action IN "
        "('enable', 'disable', 'change_address')", [applied])
    assert len(changed) > 0 and set(changed["account"]) == {"acme-prod"}
    assert changed["applied"].all()
    enable = changed[changed["action"] == "enable"]
    assert not enable["enabled_before"].any()            # off before, on after
    move = changed[changed["action"] == "change_address"]
    assert (move["address_id_before"] != move["target_address_id"]).all()
    assert move["enabled_before"].all()


def test_run_summary_says_which_runs_applied_on_which_account(history) -> None:
    store, applied, planned, desired, _ = history
    runs = store.query("SELECT run_id, applied, account, source FROM run_summary")
    by_run = runs.set_index("run_id")
    assert bool(by_run.loc[applied, "applied"]) and not bool(by_run.loc[planned, "applied"])
    assert set(runs["account"]) == {"acme-prod"} and set(runs["source"]) == {desired}


def test_the_account_label_defaults_to_the_api_host() -> None:
    assert TelnyxResource(api_key="k", base_url="http://127.0.0.1:8911/v2").account_label() \
        == "127.0.0.1:8911"
    assert TelnyxResource(api_key="k").account_label() == "api.telnyx.com"
    assert TelnyxResource(api_key="k", account_name="ops").account_label() == "ops"


def test_the_outcomes_metadata_is_short_and_absolute(history) -> None:
    *_, result = history
    meta = {e.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()}["emergency_operation_outcomes"]
    assert Path(meta["tables"].value).is_absolute()
    sample = meta["failures_sample"].records
    assert sample and all(len(r.data["error_detail"] or "") <= 60 for r in sample)
