"""One Telnyx account's definitions: its assets (keys prefixed by the account), checks, jobs,
partitions, schedule and sensor, and its resources under keys of its own.

The steps are written once, in assets.py and checks.py, as plain Dagster definitions; each
account gets a copy built from them here (`derive`), so that two accounts in one code location
never share an op, a resource, a partition set or a run-queue slot. The copy calls the same
function: its resources come from the account's own resource keys, its config defaults from
the account's settings (the component's defs.yaml), and its op tags name the account
(run_scope.applies reads them: the apply tag must name this account).

Without a prefix (`prefixed=False`) the copy has the names of the single-account code location
of old (tests and `build_definitions` use it).
"""

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetChecksDefinition, AssetIn, AssetsDefinition, AssetSelection, Config,
    Definitions, DynamicPartitionsDefinition, ScheduleDefinition, SensorDefinition, asset,
    asset_check, define_asset_job, in_process_executor,
)
from pydantic import create_model
from pydantic.fields import FieldInfo

from emergency_pipeline.defs.account_spec import AccountSpec
from emergency_pipeline.defs.partitions import desired_state_sources
from emergency_pipeline.defs.reconcile_job import APPLY_JOB_NAME, JOB_NAME, executor_named
from emergency_pipeline.defs.run_tags import ACCOUNT_TAG, apply_tags

RESOURCES = ("telnyx", "duckdb", "storage", "io_manager")


@dataclass(frozen=True)
class Templates:
    """The definitions each account gets a copy of: the reconcile job's steps and checks, and
    the E911 coverage report's asset and check (its own job and schedule)."""

    steps: Sequence[AssetsDefinition]
    checks: Sequence[AssetChecksDefinition]
    coverage: Sequence[AssetsDefinition] = ()
    coverage_checks: Sequence[AssetChecksDefinition] = ()


def _function(definition: Any) -> Callable:
    return definition.node_def.compute_fn.decorated_fn


def _config_class(annotation: Any, defaults: dict[str, Any], account: str) -> Any:
    """The step's Config class with this account's defaults (same fields, same checks)."""
    if not defaults:
        return annotation
    fields = annotation.model_fields
    unknown = sorted(set(defaults) - set(fields))
    if unknown:
        raise ValueError(f"{annotation.__name__} has no setting {', '.join(unknown)}")
    overrides = {}
    for name, value in defaults.items():
        info = fields[name]
        # The same field (its checks: ge, le, ...) with another default.
        overrides[name] = (info.annotation, FieldInfo.merge_field_infos(info, default=value))
    return create_model(f"{annotation.__name__}_{account}", __base__=annotation, **overrides)


def _calling(fn: Callable, spec: AccountSpec, drop: set[str],
             config_defaults: dict[str, Any]) -> Callable:
    """A function Dagster can decorate that calls `fn` with the account's resources (looked up
    under the account's keys) in place of the parameters named in `drop`."""
    sig = inspect.signature(fn)
    if not drop and not config_defaults:
        return fn      # nothing to supply (a check of its inputs alone)
    params = []
    for p in sig.parameters.values():
        if p.name in drop:
            continue
        if p.name == "config" and isinstance(p.annotation, type) and \
                issubclass(p.annotation, Config):
            p = p.replace(annotation=_config_class(p.annotation, config_defaults, spec.name))
        params.append(p)
    names = {r: spec.resource_key(r) for r in drop}

    def call(*args: Any, **kwargs: Any) -> Any:
        context = args[0] if args else kwargs["context"]
        found = {r: getattr(context.resources, key) for r, key in names.items()}
        return fn(*args, **kwargs, **found)

    call.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    call.__name__, call.__doc__ = fn.__name__, fn.__doc__
    return call


def derive_asset(template: AssetsDefinition, spec: AccountSpec,
                 partitions: DynamicPartitionsDefinition) -> AssetsDefinition:
    fn = _function(template)
    resources = set(template.required_resource_keys) & set(RESOURCES) - {"io_manager"}
    tspec = next(iter(template.specs))
    name = tspec.key.path[-1]
    ins = {arg: AssetIn(key=spec.key(key.path[-1]))
           for arg, key in template.keys_by_input_name.items()}
    kinds = set(tspec.kinds)
    return asset(
        name=name, key_prefix=[spec.name] if spec.prefixed else None, ins=ins,
        partitions_def=partitions if template.partitions_def else None,
        group_name=spec.named(tspec.group_name or "emergency") if spec.prefixed
        else tspec.group_name, description=tspec.description, metadata=dict(tspec.metadata),
        kinds=kinds, owners=list(tspec.owners),
        tags={k: v for k, v in tspec.tags.items() if not k.startswith("dagster/kind/")},
        required_resource_keys={spec.resource_key(r) for r in resources},
        io_manager_key=spec.resource_key("io_manager"), op_tags={ACCOUNT_TAG: spec.name},
    )(_calling(fn, spec, resources, spec.config_defaults.get(name, {})))


def derive_check(template: AssetChecksDefinition, spec: AccountSpec,
                 partitions: DynamicPartitionsDefinition) -> AssetChecksDefinition:
    fn = _function(template)
    cspec = next(iter(template.check_specs))
    resources = set(template.required_resource_keys) & set(RESOURCES) - {"io_manager"}
    asset_arg = next(a for a, k in template.keys_by_input_name.items()
                     if k == cspec.asset_key)
    additional = {arg: AssetIn(key=spec.key(key.path[-1]))
                  for arg, key in template.keys_by_input_name.items() if arg != asset_arg}
    return asset_check(
        asset=spec.key(cspec.asset_key.path[-1]), name=cspec.name,
        partitions_def=partitions if cspec.partitions_def else None, blocking=cspec.blocking,
        description=cspec.description,
        additional_ins=additional or None,
        required_resource_keys={spec.resource_key(r) for r in resources},
        op_tags={ACCOUNT_TAG: spec.name},
    )(_calling(fn, spec, resources, {}))


def account_definitions(spec: AccountSpec, templates: Templates) -> Definitions:
    """The account's Definitions, built from the templates."""
    from emergency_pipeline.defs.account_automation import (
        coverage_schedule, inbox_sensor, sheet_schedule,
    )
    from emergency_pipeline.defs.e911_coverage import COVERAGE_JOB

    partitions = (DynamicPartitionsDefinition(name=spec.named(desired_state_sources.name))
                  if spec.prefixed else desired_state_sources)
    derived = [derive_asset(a, spec, partitions) for a in templates.steps]
    coverage = [derive_asset(a, spec, partitions) for a in templates.coverage]
    selection = AssetSelection.assets(*[a.key for a in derived])
    executor = executor_named(spec.executor) if spec.executor else executor_named()
    tags = {ACCOUNT_TAG: spec.name}
    reconcile = define_asset_job(
        spec.named(JOB_NAME), selection=selection, tags=tags, executor_def=executor,
        description=f"Account {spec.name}: read a desired-state source, plan against the live "
                    "account, and (with the run tag emergency_pipeline/apply: "
                    f"{spec.name}) submit and follow the jobs; records every number's outcome.")
    # The launchpad's "apply" preset: Dagster has no presets for asset jobs; a job whose tags
    # apply is the closest. Its backfills from the UI apply too.
    applying = define_asset_job(
        spec.named(APPLY_JOB_NAME), selection=selection,
        tags={**tags, **apply_tags(spec.name)}, executor_def=executor,
        description=f"Account {spec.name}: {spec.named(JOB_NAME)} with the apply tag set.")
    jobs = [reconcile, applying]
    schedules: list[ScheduleDefinition] = []
    sensors: list[SensorDefinition] = []
    if spec.schedule_cron and spec.schedule_sheet:
        schedules.append(sheet_schedule(spec, applying, partitions))
    if spec.inbox:
        sensors.append(inbox_sensor(spec, applying, partitions))
    if coverage:
        # Read-only and unpartitioned: no lease, no apply tag, never queued behind an apply.
        report = define_asset_job(
            spec.named(COVERAGE_JOB), selection=AssetSelection.assets(*[a.key for a in coverage]),
            tags=tags, executor_def=executor,
            description=f"Account {spec.name}: read the account (read-only, no lease, no "
                        "sheet) and refresh its E911 coverage report.")
        jobs.append(report)
        if spec.coverage_cron:
            schedules.append(coverage_schedule(spec, report))
    checks = [derive_check(c, spec, partitions)
              for c in (*templates.checks, *templates.coverage_checks)]
    return Definitions(
        assets=[*derived, *coverage], asset_checks=checks,
        jobs=jobs, schedules=schedules, sensors=sensors,
        resources={spec.resource_key(k): v for k, v in spec.resources.items()},
        executor=in_process_executor,
    )
