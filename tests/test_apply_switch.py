"""The one apply switch (issue 25, item 3): the run tag emergency_pipeline/apply naming the
account, read the same by every step; the old per-step `apply` config no longer exists, so a
run that applies in one step and plans in another cannot be configured at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterInvalidConfigError
from dagster_duckdb import DuckDBResource

from emergency_pipeline.definitions import build_definitions, defs
from emergency_pipeline.defs.partitions import ensure_partition
from emergency_pipeline.defs.reconcile_job import APPLY_JOB_NAME, JOB_NAME
from emergency_pipeline.launch import run_job
from emergency_pipeline.defs.resources import PipelineStorage, TelnyxResource, state_dir_for
from emergency_pipeline.defs.run_tags import ACCOUNT_TAG, APPLY_TAG, DEFAULT_ACCOUNT
from emergency_pipeline.defs.schedules import daily_emergency_reconcile
from emergency_pipeline.emulator import Emulator
from emergency_pipeline.samples.demo_sheet import write_sample

KEY = "KEY_apply_switch_not_secret"


def _defs(tmp_path: Path, emu: Emulator):
    database = str(tmp_path / "outcomes.duckdb")
    return build_definitions({
        "telnyx": TelnyxResource(api_key=KEY, base_url=emu.base_url),
        "duckdb": DuckDBResource(database=database),
        "storage": PipelineStorage(directory=state_dir_for(database),
                               store_url=str(tmp_path / "safety.sqlite"))})


@pytest.mark.parametrize("step", ["emergency_update_jobs", "emergency_address_resolution"])
def test_a_per_step_apply_is_not_configurable(tmp_path: Path, step: str) -> None:
    with Emulator(numbers=50, seed=3, api_key=KEY) as emu:
        sheet = str(write_sample(tmp_path / "s.csv", 50, 3, rows=5))
        instance = DagsterInstance.ephemeral()
        ensure_partition(instance, sheet)
        job = _defs(tmp_path, emu).resolve_job_def(JOB_NAME)
        with pytest.raises(DagsterInvalidConfigError, match="apply"):
            job.execute_in_process(run_config={"ops": {step: {"config": {"apply": True}}}},
                                   instance=instance, partition_key=sheet)
        assert emu.stats()["jobs_created"] == 0


def test_the_apply_tag_applies_every_step_and_a_wrong_account_stops_the_run(
        tmp_path: Path) -> None:
    with Emulator(numbers=300, seed=7, api_key=KEY, job_seconds=0.2) as emu:
        sheet = str(write_sample(tmp_path / "s.csv", 300, 7, rows=40))
        location = _defs(tmp_path, emu)
        instance = DagsterInstance.ephemeral()
        ensure_partition(instance, sheet)
        job = location.resolve_job_def(JOB_NAME)

        wrong = job.execute_in_process(instance=instance, partition_key=sheet,
                                       raise_on_error=False, tags={APPLY_TAG: "someone-else"})
        assert not wrong.success
        failure = next(e for e in wrong.all_events if e.is_step_failure)
        text = failure.step_failure_data.user_failure_data.description
        assert f"{APPLY_TAG}='someone-else'" in text and repr(DEFAULT_ACCOUNT) in text
        assert emu.stats()["jobs_created"] == 0

        planned = run_job(sheet, False, defs=location, instance=instance)
        assert planned.success and emu.stats()["jobs_created"] == 0

        applied = location.resolve_job_def(APPLY_JOB_NAME).execute_in_process(
            instance=instance, partition_key=sheet)
        assert applied.success and emu.stats()["jobs_created"] >= 1
        meta = {e.asset_key.path[-1]: e.materialization.metadata
                for e in applied.get_asset_materialization_events()}
        # Both steps that can apply did, from the one tag.
        assert meta["emergency_update_jobs"]["applied"].value is True
        assert meta["emergency_address_resolution"]["applied"].value is True


def test_every_launcher_sets_the_same_switch() -> None:
    # The code location's account (location/accounts/telnyx): its apply job carries the tag,
    # and its schedule and sensor launch that job with the tag.
    apply_job = defs.resolve_job_def(f"telnyx__{APPLY_JOB_NAME}")
    assert apply_job.tags[APPLY_TAG] == apply_job.tags[ACCOUNT_TAG] == DEFAULT_ACCOUNT
    assert APPLY_TAG not in defs.resolve_job_def(f"telnyx__{JOB_NAME}").tags  # plans unless told
    assert defs.resolve_schedule_def("telnyx__scheduled_reconcile").job_name == \
        f"telnyx__{APPLY_JOB_NAME}"
    assert defs.resolve_sensor_def("telnyx__desired_state_inbox").job_name == \
        f"telnyx__{APPLY_JOB_NAME}"
    # The single-account embedding of old (module-level schedule) says the same.
    assert daily_emergency_reconcile.job_name == APPLY_JOB_NAME
