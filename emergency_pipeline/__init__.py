"""emergency_pipeline: reconcile Telnyx E911 settings with a desired-state sheet, in Dagster.

`emergency_pipeline.EmergencySettingsComponent` (the component dg finds through the
`dagster_dg_cli.registry_modules` entry point) is imported on first use only: the emulator
and the CLI's other commands start without importing Dagster."""

from typing import Any

_LAZY = {"EmergencySettingsComponent": "emergency_pipeline.component"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emergency_pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
