"""A run whose process died is failed by the next `emergency-pipeline run`, not left STARTED."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.storage.dagster_run import DagsterRun

from emergency_pipeline.defs.dead_runs import HOST_TAG, PID_START_TAG, PID_TAG, fail_dead_runs
from emergency_pipeline.defs.reconcile_job import JOB_NAME

from conftest import API_KEY


def _started(instance: DagsterInstance, run_id: str, tags: dict[str, str]) -> None:
    instance.add_run(DagsterRun(job_name=JOB_NAME, run_id=run_id,
                                status=DagsterRunStatus.STARTED, tags=tags))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_run_command_fails_runs_left_started_by_a_dead_process(tmp_path: Path,
                                                                   emulator) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = DagsterInstance.from_config(str(home))
    host = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _started(instance, "a" * 8 + "-dead", {HOST_TAG: host, PID_TAG: str(_dead_pid())})
        _started(instance, "b" * 8 + "-alive", {HOST_TAG: host, PID_TAG: str(sleeper.pid)})
        _started(instance, "c" * 8 + "-other", {HOST_TAG: "another-host", PID_TAG: "1"})
        _started(instance, "d" * 8 + "-daemon", {})       # the daemon's: run monitoring's job
        # A live pid that now belongs to another process than the run's: the run is dead.
        _started(instance, "e" * 8 + "-reused", {HOST_TAG: host, PID_TAG: str(sleeper.pid),
                                                 PID_START_TAG: "1"})
        desired = tmp_path / "d.csv"
        desired.write_text("phone_number,enabled\n+13162429136,no\n")
        env = {**os.environ, "TELNYX_API_KEY": API_KEY, "TELNYX_BASE_URL": emulator.base_url,
               "DAGSTER_HOME": str(home),
               "EMERGENCY_PIPELINE_DUCKDB": str(tmp_path / "o.duckdb")}
        done = subprocess.run([sys.executable, "-m", "emergency_pipeline.cli", "run",
                               str(desired), "--quiet"], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "earlier run aaaaaaaa-dead marked failed" in done.stderr
        assert done.stdout.startswith("run ") and "-dead" not in done.stdout   # scripts read it
        status = {r.run_id: r.status for r in instance.get_runs()}
        assert status["aaaaaaaa-dead"] == DagsterRunStatus.FAILURE
        assert status["eeeeeeee-reused"] == DagsterRunStatus.FAILURE
        for run_id in ("bbbbbbbb-alive", "cccccccc-other", "dddddddd-daemon"):
            assert status[run_id] == DagsterRunStatus.STARTED
        new = [r for r in instance.get_runs() if r.run_id not in status or
               r.status == DagsterRunStatus.SUCCESS]
        assert len(new) == 1 and new[0].tags[HOST_TAG] == host
        assert new[0].tags[PID_TAG].isdigit() and new[0].tags[PID_START_TAG]
        # Nothing left to fail: a second check changes nothing.
        assert fail_dead_runs(instance, JOB_NAME, say=lambda _: None) == []
    finally:
        sleeper.kill()
        sleeper.wait()


def test_demo_dagster_yaml_turns_run_monitoring_on(tmp_path: Path, monkeypatch) -> None:
    from emergency_pipeline.cli.demo import DAGSTER_YAML, prepare_dagster_home

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))   # prepare_dagster_home sets it

    old = tmp_path / "home"
    old.mkdir()
    # An earlier demo's file is brought up to date; a person's own is left alone.
    (old / "dagster.yaml").write_text("# Written by `emergency-pipeline demo`. old\n")
    prepare_dagster_home(old)
    assert (old / "dagster.yaml").read_text() == DAGSTER_YAML
    instance = DagsterInstance.from_config(str(old))
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_max_runtime_seconds > 900
    assert instance.run_monitoring_max_resume_run_attempts == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    prepare_dagster_home(mine)
    assert (mine / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_the_process_tags_are_hidden_and_older_runs_still_recognised(tmp_path: Path) -> None:
    from dagster._core.storage.tags import TagType, get_tag_type

    from emergency_pipeline.defs.dead_runs import process_tags

    # Dagster's UI (GraphQL) leaves out hidden tags: they do not clutter the Runs list.
    assert {get_tag_type(k) for k in process_tags()} == {TagType.HIDDEN}
    instance = DagsterInstance.ephemeral()
    host = socket.gethostname()
    _started(instance, "f" * 8 + "-old-keys", {"emergency_pipeline/host": host,
                                               "emergency_pipeline/pid": str(_dead_pid())})
    assert fail_dead_runs(instance, JOB_NAME, say=lambda _: None) == ["ffffffff-old-keys"]
