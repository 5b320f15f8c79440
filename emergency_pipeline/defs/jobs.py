"""The Dagster job that runs the whole flow for one desired-state source (a partition)."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from emergency_pipeline.defs.assets import GROUP
from emergency_pipeline.defs.partitions import desired_state_sources

JOB_NAME = "reconcile_emergency_settings"
# Runs of this job share one tag, so the run queue can keep them one at a time (dagster.yaml):
# two runs planning against the same account at once could both submit a number.
CONCURRENCY_TAG = {"emergency_pipeline/account": "telnyx"}

reconcile_emergency_settings = define_asset_job(
    JOB_NAME,
    selection=AssetSelection.groups(GROUP),
    partitions_def=desired_state_sources,
    tags=CONCURRENCY_TAG,
    description="Read a desired-state source, plan against the live account, and (with "
                "apply: true) submit and follow the jobs; records every number's outcome.",
)


def apply_run_config(apply: bool = True) -> dict:
    """Run config that applies (or only plans) with the default safety limits."""
    return {"ops": {"emergency_update_jobs": {"config": {"apply": apply}}}}
