"""The whole Dagster job in process, against the emulator over HTTP and a real DuckDB file."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import DagsterInstance
from dagster_duckdb import DuckDBResource

from _analyst import held_open
from emergency_pipeline.definitions import build_definitions, defs
from emergency_pipeline.defs.reconcile_job import JOB_NAME
from emergency_pipeline.launch import run_job
from emergency_pipeline.defs.resources import PipelineStorage, TelnyxResource, state_dir_for
from emergency_pipeline.emulator import Emulator
from emergency_pipeline.stage_files import RunTables
from emergency_pipeline.samples.demo_sheet import write_sample
from emergency_pipeline.analytics.store import Store

KEY = "KEY_pipeline_test_not_secret"
NUMBERS, SEED = 600, 11


class Setup:
    def __init__(self, tmp_path: Path, emu: Emulator) -> None:
        self.emu = emu
        self.database = str(tmp_path / "outcomes.duckdb")
        self.desired = str(write_sample(tmp_path / "desired.csv", NUMBERS, SEED, rows=150))
        self.instance = DagsterInstance.ephemeral()
        state = PipelineStorage(directory=state_dir_for(self.database),
                              store_url=str(tmp_path / "safety.sqlite"))
        self.defs = build_definitions({
            "telnyx": TelnyxResource(api_key=KEY, base_url=emu.base_url),
            "duckdb": DuckDBResource(database=self.database), "storage": state,
        })
        self.store = Store(self.database)
        self.ledger = state.ledger()
        self.account = TelnyxResource(api_key=KEY, base_url=emu.base_url).account()

    def run(self, apply: bool = True, **jobs_config):
        config = {"ops": {"emergency_update_jobs": {"config": dict(jobs_config)}}}
        result = run_job(self.desired, apply, config, defs=self.defs, instance=self.instance)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        return result

    def outcomes(self, run_id: str) -> pd.DataFrame:
        return self.store.query("SELECT * FROM operation_outcomes WHERE run_id = ?", [run_id])


@pytest.fixture
def setup(tmp_path: Path):
    with Emulator(numbers=NUMBERS, seed=SEED, api_key=KEY, job_seconds=0.4) as emu:
        yield Setup(tmp_path, emu)


def _state(emu: Emulator, number_id: str) -> dict:
    return emu.number(number_id)


def test_definitions_load() -> None:
    # The code location: the shipped account `telnyx` (location/accounts/telnyx/defs.yaml).
    defs.resolve_all_job_defs()
    assert defs.resolve_job_def(f"telnyx__{JOB_NAME}") is not None
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {f"telnyx/{k}" for k in (
        "desired_emergency_settings", "emergency_account_snapshot",
        "emergency_address_resolution", "emergency_settings_plan", "emergency_update_jobs",
        "emergency_operation_outcomes", "emergency_e911_coverage")}


@dataclass(frozen=True)
class TwoApplies:
    """One account applied twice over the same sheet, read by the tests that only look."""
    setup: Setup
    before: dict[str, dict]          # every number before the first run
    after_first: dict[str, dict]     # and right after it
    first: Any
    second: Any
    jobs_after_first: int


@pytest.fixture(scope="module")
def applied_twice(tmp_path_factory) -> TwoApplies:
    # Two whole runs on a 600-number account, shared (per worker) by the tests below, which
    # only read them; a test that changes the account or the ledger has its own `setup`.
    with Emulator(numbers=NUMBERS, seed=SEED, api_key=KEY, job_seconds=0.4) as emu:
        setup = Setup(tmp_path_factory.mktemp("applied_twice"), emu)
        before = {n["id"]: n for n in emu.engine.account.iter_numbers()}
        first = setup.run()
        after_first = {n: _state(emu, n) for n in before}
        emu.finish_jobs()  # let provisioning settle, as it does in a day
        jobs_after_first = emu.stats()["jobs_created"]
        second = setup.run()
        yield TwoApplies(setup, before, after_first, first, second, jobs_after_first)


def test_outcomes_match_the_emulator_number_by_number(applied_twice: TwoApplies) -> None:
    setup, before, result = applied_twice.setup, applied_twice.before, applied_twice.first
    out = setup.outcomes(result.run_id)
    desired = pd.read_csv(setup.desired, dtype=str)
    # Rule 5: every non-duplicate desired row has exactly one result.
    assert len(out) == len(desired) - 1  # the sample ends with one identical duplicate
    assert out.groupby(["source_file", "source_row"]).size().max() == 1
    assert {"succeeded", "unchanged", "skipped", "rejected"} <= set(out["result"])
    assert applied_twice.jobs_after_first >= 1
    for row in out.itertuples():
        if row.result == "rejected" or pd.isna(row.number_id):
            continue
        now = applied_twice.after_first[row.number_id]
        if row.result in ("succeeded", "unchanged"):
            assert now["emergency_enabled"] == bool(row.target_enabled), row
            want = row.target_address_id if row.target_enabled else None
            assert now["emergency_address_id"] == want, row
        elif row.result in ("failed", "skipped"):
            then = before[row.number_id]
            assert (now["emergency_enabled"], now["emergency_address_id"]) == (
                then["emergency_enabled"], then["emergency_address_id"]), row
    failed = out[out["result"] == "failed"]
    assert failed["error_code"].notna().all() and failed["error_title"].notna().all()
    # The per-run history and views answer the analysts' questions.
    summary = setup.store.query("SELECT * FROM run_summary WHERE run_id = ?", [result.run_id])
    assert int(summary["desired_rows"].iloc[0]) == len(out)


def test_second_run_over_the_same_state_is_all_unchanged(applied_twice: TwoApplies) -> None:
    setup = applied_twice.setup
    out1 = setup.outcomes(applied_twice.first.run_id)
    out2 = setup.outcomes(applied_twice.second.run_id)
    assert setup.emu.stats()["jobs_created"] == applied_twice.jobs_after_first
    assert set(out2["result"]) <= {"unchanged", "skipped", "rejected"}
    became = out1["result"].isin(["succeeded", "unchanged"])
    assert (out2["result"] == "unchanged").sum() == became.sum()


def test_plan_only_run_submits_nothing(setup: Setup) -> None:
    result = setup.run(apply=False)
    out = setup.outcomes(result.run_id)
    assert setup.emu.stats()["jobs_created"] == 0
    assert "planned" in set(out["result"])
    assert not set(out["result"]) & {"succeeded", "failed", "pending"}


def test_rerun_after_stopping_right_after_the_posts_follows_instead_of_resubmitting(
        setup: Setup) -> None:
    setup.emu.engine.job_seconds = 3.0  # jobs outlive the first run
    first = setup.run(follow_timeout_seconds=0)
    out1 = setup.outcomes(first.run_id)
    jobs = setup.emu.stats()["jobs_created"]
    assert jobs >= 1 and (out1["result"] == "pending").any()
    second = setup.run(follow_timeout_seconds=60)
    out2 = setup.outcomes(second.run_id)
    assert setup.emu.stats()["jobs_created"] == jobs  # no extra job
    pending_before = out1.loc[out1["result"] == "pending", "number_id"]
    again = out2.set_index("number_id").loc[pending_before]
    assert again["result"].isin(["succeeded", "failed"]).all()
    assert again["job_id"].notna().all()
    assert (out2["result"] != "pending").all()


def test_safety_guard_refuses_a_mass_disable(setup: Setup, tmp_path: Path) -> None:
    numbers = [n for n in setup.emu.engine.account.iter_numbers() if n["emergency_enabled"]]
    pd.DataFrame({"number": [n["phone_number"] for n in numbers[:60]],
                  "enabled": "no"}).to_csv(setup.desired, index=False)
    config = {"ops": {"emergency_update_jobs": {"config": {"max_disable_count": 10}}}}
    result = run_job(setup.desired, True, config, defs=setup.defs, instance=setup.instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message + str(
        failure.step_failure_data.user_failure_data)
    assert "max_disable_count" in message and "allow_mass_disable" in message
    assert setup.emu.stats()["jobs_created"] == 0


def test_an_analyst_holding_the_file_does_not_fail_the_run(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMERGENCY_PIPELINE_LOCK_WAIT_SECONDS", "0.3")
    Store(setup.database).write("operation_outcomes", pd.DataFrame({"run_id": ["earlier"]}))
    with held_open(setup.database):
        result = setup.run()
    assert setup.store.flush() == 0
    out = setup.outcomes(result.run_id)
    assert len(out) > 0 and "succeeded" in set(out["result"])
    assert setup.store.query("SELECT count(*) FROM operation_outcomes WHERE run_id = 'earlier'"
                             ).iloc[0, 0] == 1


def _backdate(setup: Setup, run_id: str, seconds: float) -> None:
    """As if `run_id` recorded its batches that long ago (a crash long past)."""
    import sqlite3

    con = sqlite3.connect(setup.ledger.path)
    con.execute("UPDATE batches SET recorded_at = recorded_at - ? WHERE run_id = ?",
                (seconds, run_id))
    con.commit()
    con.close()


def _crashed_run(setup: Setup) -> tuple:
    """A run that recorded two batches and died; only the first POST reached Telnyx."""
    import httpx

    from emergency_pipeline.planning.batching import make_batches

    planned = setup.run(apply=False)
    plan = setup.store.query("SELECT * FROM emergency_plan WHERE run_id = ?", [planned.run_id])
    posted, never_posted = make_batches(plan, max_size=1000)[:2]
    setup.ledger.record([posted, never_posted], run_id="crashed-run", account=setup.account,
                        source=setup.desired, outcomes_db=setup.database)
    answer = httpx.post(f"{setup.emu.base_url}/phone_numbers/jobs/update_emergency_settings",
                        headers={"Authorization": f"Bearer {KEY}"},
                        json={"phone_numbers": list(posted.identifiers),
                              "emergency_enabled": posted.emergency_enabled,
                              "emergency_address_id": posted.emergency_address_id})
    assert answer.status_code == 202
    return posted, never_posted, answer.json()["data"]["id"]


def _by_identifier(out: pd.DataFrame, batch) -> pd.DataFrame:
    column = "phone_number" if batch.id_kind == "e164" else "number_id"
    rows = out[out[column].isin(batch.identifiers)]
    assert len(rows) == len(batch.identifiers)
    return rows


def _events(setup: Setup, batch_id: str) -> list[tuple]:
    import sqlite3

    con = sqlite3.connect(setup.ledger.path)
    rows = con.execute("SELECT by_run, event, job_id, detail FROM batch_events "
                       "WHERE run_id = 'crashed-run' AND batch_id = ? ORDER BY at, rowid",
                       (batch_id,)).fetchall()
    con.close()
    return rows


def test_a_crash_between_recording_and_answer_adopts_the_job_or_replans(setup: Setup) -> None:
    posted, never_posted, lost_job_id = _crashed_run(setup)
    _backdate(setup, "crashed-run", 3600)   # longer ago than any late job could appear

    resumed = setup.run()
    adopted = [e for e in _events(setup, posted.batch_id) if e[1] == "submitted"]
    assert [(e[0], e[2]) for e in adopted] == [(resumed.run_id, lost_job_id)]
    assert "adopted" in adopted[0][3]
    assert [e[1] for e in _events(setup, never_posted.batch_id)] == ["recorded", "abandoned"]
    # The abandoned batch's numbers were planned afresh and submitted by the new run.
    out = _by_identifier(setup.outcomes(resumed.run_id), never_posted)
    assert out["result"].isin(["succeeded", "failed"]).all()
    # Exactly one job per batch on the account: nothing was submitted twice.
    jobs = [frozenset(p.get("phone_number") or p.get("id") for p in j["phone_numbers"])
            for j in setup.emu.jobs()]
    assert jobs.count(frozenset(posted.identifiers)) == 1
    # The crashed run's adopted job's results are recorded, attributed to the crashed run.
    theirs = setup.outcomes("crashed-run")
    assert len(_by_identifier(theirs, posted)) == len(theirs) == len(posted.identifiers)
    assert theirs["result"].isin(["succeeded", "failed"]).all()
    assert (theirs["job_id"] == lost_job_id).all()


def test_a_fresh_unanswered_batch_is_left_alone_not_sent_again(setup: Setup) -> None:
    """Recorded a moment ago with no answer: its job may still appear, so the next run
    neither abandons it nor sends its numbers (rule 4)."""
    posted, never_posted, _ = _crashed_run(setup)
    jobs_before = setup.emu.stats()["jobs_created"]
    resumed = setup.run()
    assert [e[1] for e in _events(setup, never_posted.batch_id)] == ["recorded"]
    held = _by_identifier(setup.outcomes(resumed.run_id), never_posted)
    assert (held["result"] == "skipped").all()
    assert held["reason"].str.contains("no answer yet").all()
    sent = [frozenset(p.get("phone_number") or p.get("id") for p in j["phone_numbers"])
            for j in setup.emu.jobs()[jobs_before:]]
    assert not any(frozenset(never_posted.identifiers) & s for s in sent)


def test_workspace_validates() -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions",
                           "validate", "-w", "workspace.yaml"],
                          cwd=Path(__file__).parent.parent, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_ledger_job_unknown_to_the_account_is_closed_not_waited_for(setup: Setup) -> None:
    import time

    from emergency_pipeline.planning.batching import batch_of

    number = next(n for n in setup.emu.engine.account.iter_numbers() if n["status"] == "active")
    ghost = batch_of([number["phone_number"]], False, None, "e164")
    setup.ledger.record([ghost], run_id="other-run", account=setup.account,
                        source=setup.desired, outcomes_db=setup.database)
    setup.ledger.move([("other-run", ghost.batch_id)], "submitted", by_run="other-run",
                      job_id="00000000-0000-4000-8000-000000000000")
    started = time.monotonic()
    setup.run(follow_timeout_seconds=120)
    assert time.monotonic() - started < 60
    assert setup.ledger.open_batches(setup.account) == []
    (closed,) = setup.ledger.batches_of_run("other-run")
    assert closed.state == "abandoned"


def _check(result, name: str) -> dict:
    """The run's evaluation of one asset check: passed, and its metadata values."""
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return {"passed": evaluation.passed,
            **{k: v.value for k, v in evaluation.metadata.items()}}


def _snapshot(emu: Emulator, run: RunTables):
    """A snapshot stage of the emulator's account as it is now."""
    numbers = pd.DataFrame(list(emu.numbers()))[[
        "id", "phone_number", "status", "emergency_enabled", "emergency_address_id",
        "emergency_status"]]
    return run.write("snapshot", {"numbers": numbers}, counts={"numbers": len(numbers)})


@pytest.mark.parametrize("changes", [1, 40])
def test_read_back_reports_numbers_the_account_disagrees_on(setup: Setup, tmp_path: Path,
                                                           changes: int) -> None:
    from dagster import build_asset_check_context

    from emergency_pipeline.defs.checks import account_agrees_after_apply

    # Outcomes that claim success for targets the account does not hold.
    numbers = [n for n in setup.emu.engine.account.iter_numbers()
               if n["emergency_status"] == "disabled"][:changes]
    outcomes = pd.DataFrame({
        "result": "succeeded", "number_id": [n["id"] for n in numbers],
        "phone_number": [n["phone_number"] for n in numbers], "target_enabled": True,
        "target_address_id": setup.emu.addresses()[0]["id"], "recorded_at": pd.Timestamp.now()})
    telnyx = TelnyxResource(api_key=KEY, base_url=setup.emu.base_url)
    run = RunTables(tmp_path, "a-run")
    ref = run.write("outcomes", {"outcomes": outcomes})
    result = account_agrees_after_apply(build_asset_check_context(), ref,
                                        _snapshot(setup.emu, run), telnyx,
                                        PipelineStorage(directory=str(tmp_path)))
    # Within the default budget (one request on a 3-page account): read back in the run.
    assert result.metadata["estimated_requests"].value == 1
    assert not result.passed
    assert result.metadata["disagreeing"].value == changes
    sample = [r.data for r in result.metadata["sample"].records]
    assert len(sample) == min(changes, 20) and sample[0]["phone_number"] == numbers[0]["phone_number"]
    assert sample[0]["target_enabled"] is True and sample[0]["live_enabled"] is False


@pytest.mark.parametrize("bad, passed", [(1, True), (3, False)])
def test_rejected_share_counts_every_row_of_the_sheet(tmp_path: Path, bad: int,
                                                      passed: bool) -> None:
    from emergency_pipeline.defs.checks import rejected_rows_share
    from emergency_pipeline.desired_state import read_desired_state

    # Ten rows: identical copies count as rows of the sheet; the limit is 20%.
    good = ["+12025550123,no"] * 5 + ["+12025550124,no"] * (10 - bad - 5)
    (tmp_path / "s.csv").write_text("phone,e911\n" + "\n".join(good + ["junk,no"] * bad) + "\n")
    desired = read_desired_state(tmp_path / "s.csv")
    result = rejected_rows_share(RunTables(tmp_path, "a-run").write(
        "desired", {"accepted": desired.accepted}, counts=desired.counts()))
    assert result.metadata["rows"].value == 10
    assert result.metadata["rejected_rows"].value == bad
    assert result.passed is passed


def test_numbers_the_provider_refuses_are_failed_with_its_error(setup: Setup) -> None:
    from emergency_pipeline.emulator import Faults

    before = {n["id"]: n for n in setup.emu.engine.account.iter_numbers()}
    setup.emu.set_faults(Faults(number_fail_rate=0.5, seed=1))
    result = setup.run(follow_timeout_seconds=60)
    out = setup.outcomes(result.run_id)
    failed = out[out["result"] == "failed"]
    assert len(failed) > 0 and (out["result"] == "succeeded").any()
    assert set(failed["error_code"]) == {"10015"}
    want = failed["target_enabled"].map({True: "Emergency provisioning refused",
                                         False: "Emergency deprovisioning refused"})
    assert (failed["error_title"] == want).all()
    assert failed["error_pointer"].str.match(r"^/phone_numbers/\d+$").all()
    for row in failed.itertuples():      # left as they were
        now, then = _state(setup.emu, row.number_id), before[row.number_id]
        assert now["emergency_address_id"] == then["emergency_address_id"], row
    # Half refused is far past the 10% limit: the check warns, the run still succeeds.
    check = _check(result, "failure_share")
    assert not check["passed"] and check["failed_or_expired"] == len(failed)
    by_error = [r.data for r in check["failures_by_error"].records]
    # A row per error (not per number's place in its job), so that every failure is counted.
    kinds = {(r["result"], r["error_code"], r["error_title"]) for r in by_error}
    assert len(kinds) == len(by_error) < 20
    assert sum(r["numbers"] for r in by_error) == len(failed)
    assert {r["error_title"] for r in by_error} == set(failed["error_title"])
    by_code = setup.store.query("SELECT * FROM failures_by_error_code")
    assert "10015" in set(by_code["error_code"])


def test_a_read_back_the_api_refuses_is_a_failed_check_not_a_failed_run(setup: Setup,
                                                                       tmp_path: Path) -> None:
    from dagster import build_asset_check_context

    from emergency_pipeline.defs.checks import account_agrees_after_apply
    from emergency_pipeline.emulator import Faults

    number = next(iter(setup.emu.engine.account.iter_numbers()))
    outcomes = pd.DataFrame({"result": ["succeeded"], "number_id": [number["id"]],
                             "phone_number": [number["phone_number"]], "target_enabled": [False],
                             "target_address_id": [None], "recorded_at": [pd.Timestamp.now()]})
    run = RunTables(tmp_path, "a-run")
    snapshot = _snapshot(setup.emu, run)
    setup.emu.set_faults(Faults(error_rate=1.0, seed=1))
    telnyx = TelnyxResource(api_key=KEY, base_url=setup.emu.base_url, max_attempts=2)
    ref = run.write("outcomes", {"outcomes": outcomes})
    result = account_agrees_after_apply(build_asset_check_context(), ref, snapshot, telnyx,
                                        PipelineStorage(directory=str(tmp_path)))
    assert not result.passed
    assert result.description.startswith("could not read the account back")
    assert KEY not in result.description


def test_the_one_result_check_counts_every_way_rule_5_can_break(tmp_path: Path) -> None:
    from emergency_pipeline.defs.checks import one_result_per_desired_number

    rows = lambda n: pd.DataFrame({"source_file": "s.csv", "source_row": range(2, 2 + n)})  # noqa: E731
    desired = RunTables(tmp_path, "r").write(
        "desired", {"accepted": rows(4), "rejected": rows(5).tail(1)})
    outcomes = pd.DataFrame({
        "source_file": "s.csv", "source_row": [2, 3, 3, 5, 6, 9],   # 4 missing, 3 twice, 9 stray
        "number_id": ["1", "2", "2", None, None, "7"],
        "phone_number": [None, None, None, "+1", "+1", None],       # "+1" twice
        "result": ["succeeded", "unchanged", "unchanged", "failed", None, "rejected"]})
    ref = RunTables(tmp_path, "r").write("outcomes", {"outcomes": outcomes})
    result = one_result_per_desired_number(ref, desired)
    got = {k: v.value for k, v in result.metadata.items()}
    assert not result.passed
    assert got == {"desired_rows": 5, "outcome_rows": 6, "rows_without_result": 1,
                   "results_without_row": 1, "rows_with_several_results": 1,
                   "numbers_with_several_results": 2, "results_left_empty": 1}
