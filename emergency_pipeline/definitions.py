"""The Dagster code location (workspace.yaml and [tool.dg] in pyproject point here)."""

from __future__ import annotations

from typing import Any

from dagster import Definitions

from emergency_pipeline import process_memory
from emergency_pipeline.defs import assets
from emergency_pipeline.defs.checks import all_checks
from emergency_pipeline.defs.coverage import (
    coverage_gaps, daily_e911_coverage, e911_coverage_report, emergency_e911_coverage,
)
from emergency_pipeline.defs.reconcile_job import reconcile_emergency_settings
from emergency_pipeline.defs.io_manager import RunScopedIOManager
from emergency_pipeline.defs.resources import PipelineState, default_resources, state_dir_for
from emergency_pipeline.defs.schedules import daily_emergency_reconcile
from emergency_pipeline.defs.sensors import desired_state_inbox


def build_definitions(resources: dict[str, Any]) -> Definitions:
    """The code location with the given resources (tests and the demo pass their own).

    Without a `state` resource, the state folder sits beside the DuckDB file; the IO manager
    keeps the steps' references in that folder, per run."""
    resources = dict(resources)
    if "state" not in resources:
        resources["state"] = PipelineState(
            directory=state_dir_for(str(resources["duckdb"].database)))
    resources.setdefault("io_manager", RunScopedIOManager(
        directory=resources["state"].directory))
    return Definitions(
        assets=[assets.desired_emergency_settings, assets.emergency_account_snapshot,
                assets.emergency_address_resolution, assets.emergency_settings_plan, assets.emergency_update_jobs,
                assets.emergency_operation_outcomes, emergency_e911_coverage],
        asset_checks=[*all_checks(), coverage_gaps],
        jobs=[reconcile_emergency_settings, e911_coverage_report],
        schedules=[daily_emergency_reconcile, daily_e911_coverage],
        sensors=[desired_state_inbox],
        resources=resources,
    )


process_memory.settle()   # every process that runs the pipeline loads this module
defs = build_definitions(default_resources())
