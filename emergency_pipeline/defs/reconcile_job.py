"""The Dagster job that runs the whole flow for one desired-state source (a partition)."""

from __future__ import annotations

from dagster import AssetSelection, DagsterInstance, ExecuteInProcessResult, define_asset_job

from emergency_pipeline.defs.assets import GROUP
from emergency_pipeline.defs.partitions import ensure_partition

JOB_NAME = "reconcile_emergency_settings"
# Runs of this job share one tag, so a deployment's run queue may keep them one at a time
# (the demo's dagster.yaml does); the account lease (state/lease.py) is what guarantees it.
CONCURRENCY_TAG = {"emergency_pipeline/account": "telnyx"}

reconcile_emergency_settings = define_asset_job(
    JOB_NAME,
    selection=AssetSelection.groups(GROUP),
    tags=CONCURRENCY_TAG,
    description="Read a desired-state source, plan against the live account, and (with "
                "apply: true) submit and follow the jobs; records every number's outcome.",
)


def apply_run_config(apply: bool = True) -> dict:
    """Run config that applies (or only plans) with the default safety limits."""
    return {"ops": {"emergency_address_resolution": {"config": {"apply": apply}},
                    "emergency_update_jobs": {"config": {"apply": apply}}}}


def run_job(source: str, apply: bool, run_config: dict | None = None, *, defs=None,
            instance: DagsterInstance | None = None,
            tags: dict[str, str] | None = None,
            loggers: dict | None = None) -> ExecuteInProcessResult:
    """Run the reconcile job for one source in this process (default: the persistent
    instance of $DAGSTER_HOME and the code location's own definitions)."""
    if defs is None:
        from emergency_pipeline.definitions import defs
    instance = instance or DagsterInstance.get()
    ensure_partition(instance, source)
    job = defs.resolve_job_def(JOB_NAME)
    if loggers:   # the CLI's console logger (no tracebacks unless DEBUG)
        job = job.with_logger_defs(loggers)
    return job.execute_in_process(run_config=run_config or apply_run_config(apply),
                                  instance=instance, partition_key=source,
                                  raise_on_error=False, tags=tags)
