"""The drop-folder sensor: run keys for new, changed and unchanged files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context

from emergency_pipeline.defs.partitions import desired_state_sources
from emergency_pipeline.defs.run_tags import APPLY_TAG, DEFAULT_ACCOUNT
from emergency_pipeline.defs.sensors import desired_state_inbox


def _drop(inbox: Path, name: str, text: str, age: float = 60) -> Path:
    path = inbox / name
    path.write_text(text)
    past = time.time() - age
    os.utime(path, (past, past))
    return path


@pytest.fixture
def inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    monkeypatch.setenv("EMERGENCY_PIPELINE_INBOX", str(folder))
    return folder


def _tick(instance: DagsterInstance, cursor: str | None):
    result = desired_state_inbox(build_sensor_context(instance=instance, cursor=cursor))
    if isinstance(result, SensorResult):
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    return result


def _skipped(result) -> str | None:
    """The tick's skip reason (a SkipReason, or a SensorResult that carries one)."""
    if isinstance(result, SkipReason):
        return result.skip_message
    if isinstance(result, SensorResult) and not result.run_requests and result.skip_reason:
        return result.skip_reason.skip_message
    return None


def test_unusable_sheets_never_become_partitions(inbox: Path) -> None:
    instance = DagsterInstance.ephemeral()
    _drop(inbox, "zero.csv", "")
    _drop(inbox, "header_only.csv", "phone_number,enabled\n")
    _drop(inbox, "no_flag.csv", "phone_number,site\n+12015550100,HQ\n")
    first = _tick(instance, None)
    why = _skipped(first)
    assert why is not None, first
    for name in ("zero.csv", "header_only.csv", "no_flag.csv"):
        assert name in why
    assert "no emergency_enabled column" in why
    assert instance.get_dynamic_partitions(desired_state_sources.name) == []
    # Reported once per version: the next tick says nothing new about them.
    again = _tick(instance, first.cursor)
    assert "no_flag.csv" not in (_skipped(again) or "")
    # The fixed sheet runs.
    fixed = _drop(inbox, "no_flag.csv", "phone_number,enabled\n+12015550100,no\n")
    later = _tick(instance, first.cursor)
    assert [r.partition_key for r in later.run_requests] == [str(fixed)]


def test_new_changed_and_unchanged_files(inbox: Path) -> None:
    instance = DagsterInstance.ephemeral()
    a = _drop(inbox, "site-a.csv", "phone_number,enabled\n+12015550100,no\n")
    b = _drop(inbox, "site-b.csv", "number,e911\n+12015550101,no\n")
    _drop(inbox, "~$site-a.xlsx", "office lock file")
    _drop(inbox, "notes.txt", "not a spreadsheet")
    _drop(inbox, "half-copied.csv", "phone_number,enabled\n+12015550102,no\n",
          age=0)  # still being written

    first = _tick(instance, None)
    assert isinstance(first, SensorResult)
    keys = sorted(r.partition_key for r in first.run_requests)
    assert keys == [str(a), str(b)]
    assert all(r.run_key.startswith(f"{r.partition_key}@") for r in first.run_requests)
    assert all(r.tags[APPLY_TAG] == DEFAULT_ACCOUNT for r in first.run_requests)
    assert sorted(instance.get_dynamic_partitions(desired_state_sources.name)) == keys

    # Nothing changed: nothing runs.
    again = _tick(instance, first.cursor)
    assert _skipped(again)

    # A changed file runs again, under the same partition and a new run key.
    old_key = next(r.run_key for r in first.run_requests if r.partition_key == str(a))
    _drop(inbox, "site-a.csv", "phone_number,enabled\n+12015550100,yes\n")
    changed = _tick(instance, first.cursor)
    assert [r.partition_key for r in changed.run_requests] == [str(a)]
    assert changed.run_requests[0].run_key != old_key
    assert not changed.dynamic_partitions_requests  # the partition exists already

    # The half-copied file is picked up once it has settled.
    settled = _drop(inbox, "half-copied.csv", "phone_number,enabled\n+12015550102,no\n",
                    age=60)
    later = _tick(instance, changed.cursor)
    assert [r.partition_key for r in later.run_requests] == [str(settled)]


def test_missing_inbox_is_a_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMERGENCY_PIPELINE_INBOX", str(tmp_path / "nowhere"))
    result = desired_state_inbox(build_sensor_context(instance=DagsterInstance.ephemeral()))
    assert isinstance(result, SkipReason)


def test_the_schedule_skips_an_unusable_canonical_sheet(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster import build_schedule_context

    from emergency_pipeline.defs.schedules import daily_emergency_reconcile

    sheet = tmp_path / "canonical.csv"
    sheet.write_text("phone_number,emergency_enabled\n")
    monkeypatch.setenv("EMERGENCY_PIPELINE_DESIRED_STATE", str(sheet))
    instance = DagsterInstance.ephemeral()
    result = daily_emergency_reconcile(build_schedule_context(instance=instance))
    assert isinstance(result, SkipReason) and "no data rows" in result.skip_message
    assert instance.get_dynamic_partitions(desired_state_sources.name) == []
