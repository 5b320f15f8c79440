"""What every step of a run needs from its context: whether it applies, the account lease
held across its steps, its working tables, and the stamp on the rows it writes.

The lease is taken by the snapshot (before it reads the account) and held by each step of an
apply run up to the outcomes, which release it; a step that fails releases it at once (the
steps after it will not run). Each step re-enters the lease by the run id, so a step in
another process (the multiprocess executor) continues the same hold; the heartbeat keeps it
fresh while a step works, and the lease's dead-process grace covers the gap between steps.
Plan-only runs never take it, so they never wait.
"""

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dagster import AssetCheckExecutionContext, AssetExecutionContext, Failure
from dagster_duckdb import DuckDBResource

from emergency_pipeline.defs.run_tags import ACCOUNT_TAG, APPLY_TAG, DEFAULT_ACCOUNT
from emergency_pipeline.defs.resources import PipelineStorage, TelnyxResource, store_for
from emergency_pipeline.one_line_errors import failures_explained
from emergency_pipeline.steps.context import RunContext, StepFailed
from emergency_pipeline.client.account_identity import AccountUnknown
from emergency_pipeline.safety_store import LeaseLost, LeaseUnavailable, StoreUnavailable, held
from emergency_pipeline.safety_store.legacy import legacy_account_key


def account_of(context: AssetExecutionContext | AssetCheckExecutionContext) -> str:
    """The account whose step this is (account_defs puts it in the op's tags)."""
    return context.op_def.tags.get(ACCOUNT_TAG, DEFAULT_ACCOUNT)


def applies(context: AssetExecutionContext | AssetCheckExecutionContext) -> bool:
    """True when the run's apply tag names this account (run_tags.APPLY_TAG): the one
    switch, the same for every step of the run. A tag naming another account stops the run
    (a run that asked one account's queue slot must not apply to another)."""
    value = (context.run.tags.get(APPLY_TAG) or "").strip()
    if value.lower() in ("", "false", "no", "0"):
        return False
    account = account_of(context)
    if value != account:
        raise Failure(description=f"run tag {APPLY_TAG}={value!r} does not name this job's "
                      f"account: set it to {account!r} to apply, or remove it to plan only")
    return True


def mark_and_sweep(context: AssetExecutionContext) -> None:
    """Tag this run with its worker's host and pid (the CLI tags its runs at launch; the
    daemon's are tagged here), then fail the runs of the job whose worker died (dead_runs):
    whatever launched it, the next run never leaves a dead one STARTED, nor its lease held."""
    from emergency_pipeline.defs.dead_runs import HOST_TAG, fail_dead_runs, process_tags, \
        run_worker_pid

    if HOST_TAG not in context.run.tags:
        context.instance.add_run_tags(context.run.run_id, process_tags(run_worker_pid()))
    fail_dead_runs(context.instance, context.run.job_name, say=context.log.warning)


def run_context(context: AssetExecutionContext, telnyx: TelnyxResource, duckdb: DuckDBResource,
                storage: PipelineStorage) -> RunContext:
    """The run as its step sees it (steps/context.py), built once per step from the Dagster
    context and the account's resources."""
    return RunContext(
        run_id=context.run.run_id, account=account_of(context),
        account_label=telnyx.account_label(),
        source=context.partition_key if context.has_partition_key else "",
        applies=applies(context), log=context.log, base_url=telnyx.base_url,
        stages=storage.tables(context.run.run_id), analytics=store_for(duckdb),
        storage_dir=storage.directory, keep_run_tables_days=storage.keep_run_tables_days,
        history_url=storage.history_url,
        open_client=lambda: telnyx.client(context.log), open_ledger=storage.ledger)


@contextlib.contextmanager
def step_failures(run: RunContext) -> Iterator[None]:
    """A step's failures as the run's one-line failure: StepFailed as it is, the client's and
    the network's explained with the fix (one_line_errors)."""
    with failures_explained(run.base_url):
        try:
            yield
        except StepFailed as exc:
            raise Failure(description=str(exc)) from None


class _NoLease:
    """What a plan-only step holds: nothing to lose (it never posts a job)."""

    def confirm(self) -> None:
        return None


def _import_legacy_ledger(context: AssetExecutionContext, telnyx: TelnyxResource,
                          storage: PipelineStorage, account: str) -> None:
    """A ledger of the layout before the safety store (<database>.state/ledger.sqlite, keyed by
    the API key's hash), brought in once under the lease, so that its open batches are
    resumed like any other."""
    old = Path(storage.directory) / "ledger.sqlite"
    if old.is_file():
        moved = storage.ledger().import_legacy(
            old, account, legacy_keys={legacy_account_key(telnyx.base_url, telnyx.api_key)})
        if moved:
            context.log.info(f"brought {moved} batch(es) of the old ledger {old} into the "
                             "safety store")


@contextlib.contextmanager
def account_lease(context: AssetExecutionContext, telnyx: TelnyxResource,
                  storage: PipelineStorage, *, first: bool = False,
                  last: bool = False) -> Iterator[Any]:
    """Hold the account's lease for this step of an apply run (no-op when plan-only).

    `first`: the step that takes it, waiting up to lease_wait_seconds for another run's;
    later steps re-enter it with the token the first took, and fail if another run has held
    it since (never a fresh token behind a stale snapshot). `last`: released when the step
    ends. The hold's `confirm()` is the fence each job POST passes right before it is sent."""
    if not applies(context):
        yield _NoLease()
        return
    run_id = context.run.run_id
    instance = context.instance

    def finished(other_run: str) -> bool:
        run = instance.get_run_by_id(other_run)
        return run is not None and run.is_finished

    def queued_beside(holder: Any) -> bool:
        """The holder is an unfinished apply run of this Dagster instance on the same account
        (the run queue, deploy/dagster.yaml, starts two per account so that the next one
        starts up while the one ahead applies): wait for it however long it takes, as the
        queue would have."""
        run = instance.get_run_by_id(holder.run_id)
        return (run is not None and not run.is_finished
                and run.tags.get(APPLY_TAG) == context.run.tags.get(APPLY_TAG))

    def waiting(holder: Any) -> None:
        if queued_beside(holder):
            context.log.info(f"waiting for the account lease, held by {holder.describe()}, "
                             "until that run ends (an apply run of this Dagster instance on "
                             "the same account)")
        else:
            context.log.warning(f"waiting up to {storage.lease_wait_seconds:.0f}s for the "
                                f"account lease, held by {holder.describe()}")

    holding: str | None = None   # the account's key, once this step holds its lease
    try:
        identity = telnyx.identity(storage.safety_store().names)
        with held(storage.lease(), identity.key, run_id,
                  wait_seconds=storage.lease_wait_seconds if first else 0.0,
                  fence_seconds=storage.fence_seconds, on_wait=waiting,
                  # Several beats per fence: a short fence (a soak's) stays valid.
                  heartbeat_seconds=min(5.0, storage.fence_seconds / 4),
                  is_run_finished=finished, keep_waiting=queued_beside, reenter=not first,
                  release_on_exit=last, confirm_on_exit=True) as hold:
            holding = identity.key
            if first:
                _import_legacy_ledger(context, telnyx, storage, identity.key)
                took = hold.holder.took_over
                context.log.info(f"holding the account lease of {identity.label} (token "
                                 f"{hold.token}; the account told by {identity.how})")
                if took is not None:
                    context.log.warning(
                        f"took the lease over from run {took.run_id} on {took.host} "
                        f"({took.why}); " + ("its process is gone" if took.proven_dead else
                                             "it may still be alive: its open batches count "
                                             "as in flight until their jobs can no longer "
                                             "appear"))
            yield hold
    except LeaseLost as exc:
        # Another run holds the account now: send nothing more, leave the recorded batches
        # open for it, and end failed (rule 3).
        context.log.error(f"lost the account lease: {exc}")
        raise Failure(description=f"stopped: {exc}") from None
    except LeaseUnavailable as exc:
        raise Failure(description=f"not applying: {exc}") from None
    except (AccountUnknown, StoreUnavailable) as exc:
        now = _holder_if_not(storage, holding, run_id) if isinstance(exc, StoreUnavailable) \
            else None
        if now is not None:
            # A store call failed while we held the lease, and another run holds it now (a
            # pause inside a connect outlives its timeout): that, not the store, is the news.
            context.log.error(f"lost the account lease: it is held by {now.describe()}")
            raise Failure(description=f"stopped: lost the account lease to run {now.run_id} "
                          f"({exc})") from None
        raise Failure(description=f"not applying: {exc}") from None


def _holder_if_not(storage: PipelineStorage, account: str | None, run_id: str) -> Any:
    """The lease's holder when it is another run's (None when unknown or still ours)."""
    if account is None:
        return None
    try:
        holder = storage.lease().holder(account)
    except StoreUnavailable:
        return None
    return holder if holder is not None and holder.run_id != run_id else None
