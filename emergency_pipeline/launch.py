"""Running the reconcile job in this process: how the CLI, the demo and the tests launch it
(the daemon and the webserver launch it through Dagster's run launcher instead).

Above the code location (it loads emergency_pipeline.definitions), so nothing in defs/
imports it.
"""

from __future__ import annotations

from dagster import DagsterInstance, ExecuteInProcessResult

from emergency_pipeline.defs.partitions import ensure_partition
from emergency_pipeline.defs.reconcile_job import JOB_NAME
from emergency_pipeline.defs.run_tags import ACCOUNT_TAG, DEFAULT_ACCOUNT, apply_tags


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
    if defs is None:   # the code location's own (loaded only when asked: it builds them all)
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
