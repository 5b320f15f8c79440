"""The Dagster code location (workspace.yaml and [tool.dg] in pyproject point here): one
EmergencySettingsComponent per account under emergency_pipeline/location/accounts/ (the repo
ships one, `telnyx`, read from the environment: TELNYX_API_KEY, TELNYX_BASE_URL, ...)."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Any

from dagster import BetaWarning, Definitions, PreviewWarning

from emergency_pipeline import process_memory
from emergency_pipeline.defs import assets
from emergency_pipeline.defs.account_defs import account_definitions
from emergency_pipeline.defs.account_spec import AccountSpec
from emergency_pipeline.defs.checks import all_checks
from emergency_pipeline.defs.io_manager import RunScopedIOManager
from emergency_pipeline.defs.resources import PipelineStorage, state_dir_for
from emergency_pipeline.defs.run_tags import DEFAULT_ACCOUNT

LOCATION_MODULE = "emergency_pipeline.location"


def step_templates() -> Any:
    """The steps and checks every account gets a copy of (account_defs.py): the reconcile
    job's, and the E911 coverage report's (its own job and schedule, no partitions)."""
    from emergency_pipeline.defs.account_defs import Templates
    from emergency_pipeline.defs.e911_coverage import coverage_gaps, emergency_e911_coverage

    return Templates(
        steps=[assets.desired_emergency_settings, assets.emergency_account_snapshot,
               assets.emergency_address_resolution, assets.emergency_settings_plan,
               assets.emergency_update_jobs, assets.emergency_operation_outcomes],
        checks=all_checks(), coverage=[emergency_e911_coverage],
        coverage_checks=[coverage_gaps])


def build_definitions(resources: dict[str, Any], **spec: Any) -> Definitions:
    """One account's definitions with the given resources and the names of old (unprefixed
    asset keys, `reconcile_emergency_settings`): tests and the single-account embedding.

    Without a `state` resource, the state folder sits beside the DuckDB file; the IO manager
    keeps the steps' references in that folder, per run."""
    from emergency_pipeline.defs.schedules import canonical_source
    from emergency_pipeline.defs.sensors import INTERVAL_SECONDS, inbox_dir

    resources = dict(resources)
    if "storage" not in resources:
        resources["storage"] = PipelineStorage(
            directory=state_dir_for(str(resources["duckdb"].database)))
    resources.setdefault("io_manager", RunScopedIOManager(
        directory=resources["storage"].directory))
    settings = {"inbox": str(inbox_dir()), "schedule_cron": "0 6 * * *",
                "schedule_sheet": canonical_source(),
                "inbox_interval_seconds": INTERVAL_SECONDS, **spec}
    return account_definitions(AccountSpec(DEFAULT_ACCOUNT, resources, prefixed=False,
                                           **settings), step_templates())


def location_definitions(module: str = LOCATION_MODULE) -> Definitions:
    """Every component instance under the location's folder (what `dg list defs` shows)."""
    from dagster.components.core.component_tree import ComponentTree

    with warnings.catch_warnings():
        # The defs folder's own __init__.py is loaded by a function Dagster marks "preview".
        warnings.simplefilter("ignore", PreviewWarning)
        warnings.simplefilter("ignore", BetaWarning)
        tree = ComponentTree(defs_module=importlib.import_module(module),
                             project_root=Path(__file__).resolve().parent.parent)
        return tree.build_defs()


process_memory.settle()   # every process that runs the pipeline loads this module
defs = location_definitions()
