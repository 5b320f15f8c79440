"""The Dagster job that runs the whole flow for one desired-state source (a partition)."""

from __future__ import annotations

import os

from dagster import (
    AssetSelection, ExecutorDefinition, define_asset_job, in_process_executor,
    multiprocess_executor,
)

from emergency_pipeline.defs.assets import GROUP
from emergency_pipeline.defs.run_tags import ACCOUNT_TAG, DEFAULT_ACCOUNT, apply_tags  # noqa: F401

JOB_NAME = "reconcile_emergency_settings"
# Runs of this job name their account, so a deployment's run queue may keep them one at a
# time (the demo's dagster.yaml does); the account lease (safety_store) is what guarantees it.
CONCURRENCY_TAG = {ACCOUNT_TAG: DEFAULT_ACCOUNT}

# The job is a linear chain of six steps: nothing runs in parallel, so the multiprocess
# executor only adds a process (and an import of Dagster) per step, 20-40 s a run on two cores.
EXECUTOR_ENV = "EMERGENCY_PIPELINE_EXECUTOR"
EXECUTORS = {"in_process": in_process_executor, "multiprocess": multiprocess_executor}


def executor_named(name: str | None = None) -> ExecutorDefinition:
    """The run's executor: `in_process` (default), or `multiprocess` ($EMERGENCY_PIPELINE_EXECUTOR
    or the component's `executor`), e.g. to isolate each step's memory on a big account."""
    name = name or os.environ.get(EXECUTOR_ENV) or "in_process"
    if name not in EXECUTORS:
        raise ValueError(f"executor {name!r} is not one of {', '.join(EXECUTORS)}: "
                         f"set {EXECUTOR_ENV} to one of them")
    return EXECUTORS[name]


reconcile_emergency_settings = define_asset_job(
    JOB_NAME,
    selection=AssetSelection.groups(GROUP),
    tags=CONCURRENCY_TAG,
    executor_def=executor_named(),
    description="Read a desired-state source, plan against the live account, and (with the "
                "run tag emergency_pipeline/apply: <account>) submit and follow the jobs; "
                "records every number's outcome.",
)

# The launchpad's "apply" preset: the same assets, with the apply tag on every run (Dagster
# has no presets for asset jobs; a job's tags are the closest). Its backfills apply too.
APPLY_JOB_NAME = "apply_emergency_settings"
apply_emergency_settings = define_asset_job(
    APPLY_JOB_NAME,
    selection=AssetSelection.groups(GROUP),
    tags={**CONCURRENCY_TAG, **apply_tags(DEFAULT_ACCOUNT)},
    executor_def=executor_named(),
    description=f"{JOB_NAME} with the apply tag set: plans, then submits and follows the jobs.",
)
