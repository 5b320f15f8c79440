"""EmergencySettingsComponent (issue 25, item 1), with Dagster's component testing helpers:
scaffolded into a sandbox defs folder, loaded, two accounts side by side, a run of each
against its own emulator; and the `dg` commands an operator types, in a sandbox project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance
from dagster.components.testing import create_defs_folder_sandbox

from _accounts_project import accounts_project
from emergency_pipeline import EmergencySettingsComponent
from emergency_pipeline.defs.partitions import ensure_partition
from emergency_pipeline.launch import account_job_name
from emergency_pipeline.defs.run_tags import ACCOUNT_TAG, APPLY_TAG, apply_tags
from emergency_pipeline.emulator import Emulator
from emergency_pipeline.samples.demo_sheet import write_sample
from emergency_pipeline.analytics.store import Store

DG = str(Path(sys.executable).parent / "dg")
STEPS = ("desired_emergency_settings", "emergency_account_snapshot",
         "emergency_address_resolution", "emergency_settings_plan", "emergency_update_jobs",
         "emergency_operation_outcomes", "emergency_e911_coverage")


def _account(sandbox, name: str, tmp: Path, **attributes) -> Path:
    """Scaffold accounts/<name>, then point its files into `tmp` (and any other settings)."""
    path = sandbox.scaffold_component(EmergencySettingsComponent, defs_path=f"accounts/{name}")
    body = yaml.safe_load((path / "defs.yaml").read_text())
    body["attributes"].update(duckdb=str(tmp / f"{name}.duckdb"),
                              inbox=str(tmp / "inbox" / name), **attributes)
    (path / "defs.yaml").write_text(yaml.safe_dump(body))
    return path


def test_scaffold_writes_every_setting_and_a_key_by_reference() -> None:
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(EmergencySettingsComponent,
                                          defs_path="accounts/acme_east")
        body = yaml.safe_load((path / "defs.yaml").read_text())
    assert body["type"] == "emergency_pipeline.component.component.EmergencySettingsComponent" \
        or body["type"].endswith("EmergencySettingsComponent")
    attrs = body["attributes"]
    assert attrs["account"] == "acme_east"
    assert attrs["api_key"] == "{{ env.TELNYX_API_KEY_ACME_EAST }}"
    assert attrs["schedule"]["cron"] and attrs["schedule"]["sheet"]
    assert set(attrs["guard"]) == {"max_disable_count", "max_disable_share",
                                   "allow_mass_disable"}
    assert set(attrs["contact"]) == {"first_name", "last_name", "business_name"}
    assert {"max_batch_size", "wave_size"} <= set(attrs["batches"])
    assert attrs["inbox"] and attrs["base_url"]


def test_each_account_gets_its_own_prefixed_definitions(tmp_path: Path) -> None:
    with create_defs_folder_sandbox() as sandbox:
        _account(sandbox, "acme", tmp_path, guard={"max_disable_count": 7,
                                                   "max_disable_share": 0.5,
                                                   "allow_mass_disable": False})
        _account(sandbox, "globex", tmp_path)
        with sandbox.build_all_defs() as defs:
            keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
            assert keys == {f"{a}/{s}" for a in ("acme", "globex") for s in STEPS}
            for account in ("acme", "globex"):
                job = defs.resolve_job_def(account_job_name(defs, account))
                assert job.tags[ACCOUNT_TAG] == account
                applying = defs.resolve_job_def(f"{account}__apply_emergency_settings")
                assert applying.tags[APPLY_TAG] == account
                assert defs.resolve_schedule_def(f"{account}__scheduled_reconcile")
                assert defs.resolve_sensor_def(f"{account}__desired_state_inbox")
                assert defs.resolve_schedule_def(f"{account}__daily_e911_coverage")
                coverage = defs.resolve_job_def(f"{account}__e911_coverage_report")
                assert coverage.tags[ACCOUNT_TAG] == account and APPLY_TAG not in coverage.tags
                assert job.partitions_def.name == f"{account}__desired_state_sources"
                # The key is an environment variable's name, read when a run starts.
                assert defs.resources[f"{account}_telnyx"].api_key == \
                    f"TELNYX_API_KEY_{account.upper()}"
            checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys
                      if k.asset_key == AssetKey(["acme", "emergency_operation_outcomes"])}
            assert "one_result_per_desired_number" in checks
            # The account's guard limits are its update step's defaults.
            job = defs.resolve_job_def("acme__reconcile_emergency_settings")
            fields = job.run_config_schema.config_type.fields["ops"].config_type.fields
            limits = fields["acme__emergency_update_jobs"].config_type.fields["config"]
            assert limits.config_type.fields["max_disable_count"].default_value == 7


def test_an_api_key_written_in_the_yaml_is_refused(tmp_path: Path) -> None:
    with create_defs_folder_sandbox() as sandbox:
        _account(sandbox, "acme", tmp_path, api_key="KEY_written_down_secret")
        with pytest.raises(Exception) as caught:
            with sandbox.build_all_defs():
                pass
    error = caught.value
    while error is not None and not isinstance(error, ValueError):
        error = error.__cause__ or error.__context__
    # Our message names the fix, never the key (Dagster's own error shows the yaml's line).
    assert "api_key must name an environment variable" in str(error)
    assert "KEY_written_down_secret" not in str(error)


def test_two_accounts_apply_from_their_components(tmp_path: Path, monkeypatch) -> None:
    """Each instance's job runs against its own emulator with its own key, tags and history."""
    with Emulator(numbers=200, seed=5, api_key="KEY_acme_not_secret", job_seconds=0.2) as a, \
            Emulator(numbers=200, seed=6, api_key="KEY_globex_not_secret",
                     job_seconds=0.2) as b, create_defs_folder_sandbox() as sandbox:
        monkeypatch.setenv("TELNYX_API_KEY_ACME", "KEY_acme_not_secret")
        monkeypatch.setenv("TELNYX_API_KEY_GLOBEX", "KEY_globex_not_secret")
        monkeypatch.setenv("EMERGENCY_PIPELINE_STATE_URL", str(tmp_path / "safety.sqlite"))
        _account(sandbox, "acme", tmp_path, base_url=a.base_url)
        _account(sandbox, "globex", tmp_path, base_url=b.base_url)
        sheets = {"acme": write_sample(tmp_path / "acme.csv", 200, 5, rows=20),
                  "globex": write_sample(tmp_path / "globex.csv", 200, 6, rows=20)}
        instance = DagsterInstance.ephemeral()
        with sandbox.build_all_defs() as defs:
            for account, sheet in sheets.items():
                job = defs.resolve_job_def(f"{account}__reconcile_emergency_settings")
                ensure_partition(instance, str(sheet), job.partitions_def.name)
                result = job.execute_in_process(instance=instance, partition_key=str(sheet),
                                                tags=apply_tags(account))
                assert result.success, account
                assert result.dagster_run.tags[ACCOUNT_TAG] == account
        assert a.stats()["jobs_created"] >= 1 and b.stats()["jobs_created"] >= 1
        for account in sheets:
            rows = Store(str(tmp_path / f"{account}.duckdb")).query(
                "SELECT DISTINCT account FROM operation_outcomes")
            assert list(rows["account"]) == [account]


def _project(tmp_path: Path, accounts: list[str]) -> Path:
    """An operator's dg project, its accounts scaffolded by `dg scaffold defs`."""
    root = accounts_project(tmp_path / "ops_project")
    for account in accounts:
        _dg(root, "scaffold", "defs", "emergency_pipeline.EmergencySettingsComponent",
            f"accounts/{account}")
    return root


def _dg(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root), "VIRTUAL_ENV": sys.prefix}
    # `dg check defs` loads the code in this venv (the project itself is not installed).
    extra = ["--use-active-venv"] if args[0] == "check" else []
    done = subprocess.run([DG, *args, *extra], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_dg_scaffold_list_and_check_with_two_accounts(tmp_path: Path) -> None:
    root = _project(tmp_path, ["acme", "globex"])
    for account in ("acme", "globex"):
        body = yaml.safe_load((root / "ops_location" / "defs" / "accounts" / account /
                               "defs.yaml").read_text())
        assert body["type"] == "emergency_pipeline.EmergencySettingsComponent"
        assert body["attributes"]["api_key"] == f"{{{{ env.TELNYX_API_KEY_{account.upper()} }}}}"
    _dg(root, "check", "defs")
    listed = _dg(root, "list", "defs").stdout
    for account in ("acme", "globex"):
        assert f"{account}/emergency_update_jobs" in listed
        assert f"{account}__reconcile_emergency_settings" in listed


def test_an_accounts_defaults_keep_the_settings_checks() -> None:
    from pydantic import ValidationError

    from emergency_pipeline.defs.account_defs import _config_class
    from emergency_pipeline.defs.assets import ApplyConfig

    config = _config_class(ApplyConfig, {"max_batch_size": 500, "max_disable_count": 7}, "acme")
    assert (config().max_batch_size, config().max_disable_count) == (500, 7)
    with pytest.raises(ValidationError):
        config(max_batch_size=5000)          # le=1000, as the step's own setting
    with pytest.raises(ValueError, match="no setting wave"):
        _config_class(ApplyConfig, {"wave": 3}, "acme")
