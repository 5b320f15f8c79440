"""A deployment's own dg project with one EmergencySettingsComponent per account (what an
operator scaffolds with `dg scaffold defs emergency_pipeline.EmergencySettingsComponent
accounts/<name>`): used by the component, deployment and benchmark scripts, which need
several accounts where the repo's own code location has one, read from the environment."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import yaml

from emergency_pipeline.component.scaffolder import defs_yaml_attributes

PACKAGE = "ops_location"


def accounts_project(root: Path, accounts: dict[str, dict[str, Any]] | None = None) -> Path:
    """The project at `root` (its workspace.yaml too); `accounts` maps each name to the
    attributes its defs.yaml changes from the scaffolded ones (None: no account yet)."""
    package = root / PACKAGE
    (package / "defs").mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "defs" / "__init__.py").write_text("")
    (package / "definitions.py").write_text(textwrap.dedent("""
        from pathlib import Path

        import dagster as dg

        defs = dg.load_from_defs_folder(project_root=Path(__file__).parent.parent)
    """))
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""
        [project]
        name = "{PACKAGE}"
        version = "0.0.0"

        [tool.dg]
        directory_type = "project"

        [tool.dg.project]
        root_module = "{PACKAGE}"
        code_location_target_module = "{PACKAGE}.definitions"
    """))
    (root / "workspace.yaml").write_text(textwrap.dedent(f"""
        load_from:
          - python_module:
              module_name: {PACKAGE}.definitions
              working_directory: {root}
    """))
    for name, changes in (accounts or {}).items():
        folder = package / "defs" / "accounts" / name
        folder.mkdir(parents=True, exist_ok=True)
        attributes = {**defs_yaml_attributes(name), **changes}
        (folder / "defs.yaml").write_text(yaml.safe_dump(
            {"type": "emergency_pipeline.EmergencySettingsComponent",
             "attributes": attributes}, sort_keys=False))
    return root
