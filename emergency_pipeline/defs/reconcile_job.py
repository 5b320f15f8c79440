"""The Dagster job that runs the whole flow for one desired-state source (a partition)."""

from __future__ import annotations

import os

from dagster import (
    AssetSelection, DagsterInstance, ExecuteInProcessResult, ExecutorDefinition,
    define_asset_job, in_process_executor, multiprocess_executor,
)

from emergency_pipeline.defs.assets import GROUP
from emergency_pipeline.defs.partitions import ensure_partition
from emergency_pipeline.defs.run_tags import ACCOUNT_TAG, APPLY_TAG, DEFAULT_ACCOUNT, apply_tags  # noqa: F401

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


class AccountNotChosen(ValueError):
    """The location has several accounts (or none by that name): the message names them."""


def account_job_name(defs, account: str | None = None, job: str = JOB_NAME) -> str:
    """The name of `job` of `account` in `defs`; with one account, `account` may be None."""
    names = [j.name for j in defs.jobs or []]
    by_account = {n.rsplit("__", 1)[0] if "__" in n else DEFAULT_ACCOUNT: n
                  for n in names if n == job or n.endswith("__" + job)}
    if account is not None:
        if account in by_account:
            return by_account[account]
        raise AccountNotChosen(f"no account {account!r} in the code location (accounts: "
                               f"{', '.join(sorted(by_account)) or 'none'}): check --account")
    if len(by_account) == 1:
        return next(iter(by_account.values()))
    raise AccountNotChosen(f"the code location has {len(by_account)} accounts "
                           f"({', '.join(sorted(by_account))}): pass --account NAME")


def _with_op_names(job, run_config: dict) -> dict:
    """Run config whose `ops:` may name steps (emergency_update_jobs) rather than the
    account's ops (acme__emergency_update_jobs)."""
    ops = dict(run_config.get("ops") or {})
    if not ops:
        return run_config
    nodes = {n.name for n in job.graph.node_defs}
    renamed = {}
    for step, config in ops.items():
        if step not in nodes:
            step = next((n for n in nodes if n.endswith("__" + step)), step)
        renamed[step] = config
    return {**run_config, "ops": renamed}


def run_job(source: str, apply: bool, run_config: dict | None = None, *, defs=None,
            instance: DagsterInstance | None = None,
            tags: dict[str, str] | None = None,
            loggers: dict | None = None,
            account: str | None = None) -> ExecuteInProcessResult:
    """Run the reconcile job for one source in this process (default: the persistent
    instance of $DAGSTER_HOME and the code location's own definitions); `apply` sets the
    run's apply tag (apply_tags), `run_config` the steps' settings (guard limits, sheet)."""
    if defs is None:
        from emergency_pipeline.definitions import defs
    instance = instance or DagsterInstance.get()
    job = defs.resolve_job_def(account_job_name(defs, account))
    ensure_partition(instance, source, job.partitions_def.name)
    if loggers:   # the CLI's console logger (no tracebacks unless DEBUG)
        job = job.with_logger_defs(loggers)
    tags = {**(tags or {}), **apply_tags(job.tags.get(ACCOUNT_TAG, DEFAULT_ACCOUNT), apply)}
    return job.execute_in_process(run_config=_with_op_names(job, run_config or {}),
                                  instance=instance,
                                  partition_key=source, raise_on_error=False, tags=tags)
