"""`emergency-pipeline run` as an operator uses it: a child process against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import API_KEY
from emergency_pipeline.samples.demo_sheet import write_sample

ROOT = Path(__file__).parent.parent
CLI = str(Path(sys.executable).parent / "emergency-pipeline")


class Cli:
    def __init__(self, tmp_path: Path, base_url: str) -> None:
        self.tmp = tmp_path
        self.database = tmp_path / "out" / "outcomes.duckdb"
        self.home = tmp_path / "not-yet" / "dagster_home"      # the CLI creates it
        self.env = {**os.environ, "TELNYX_API_KEY": API_KEY, "TELNYX_BASE_URL": base_url,
                    "EMERGENCY_PIPELINE_DUCKDB": str(self.database),
                    "DAGSTER_HOME": str(self.home)}

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([CLI, *args], cwd=self.tmp, env={**self.env, **env},
                              capture_output=True, text=True, timeout=240)


@pytest.fixture
def cli(tmp_path: Path, emulator) -> Cli:
    return Cli(tmp_path, emulator.base_url)


def test_plan_apply_and_nothing_left_to_do(cli: Cli, emulator) -> None:
    sheet = write_sample(cli.tmp / "desired.csv", 300, 7, rows=40)
    plan = cli("run", str(sheet), "--quiet", "--plan-limit", "2")
    assert plan.returncode == 2, plan.stdout + plan.stderr        # changes planned
    out = plan.stdout
    assert " - INFO - " not in out + plan.stderr                  # --quiet: no Dagster lines
    assert "Plan: " in out and "+ enable E911: " in out and "(address id " in out
    assert "and " in out and " more" in out
    assert f"To apply: emergency-pipeline run {sheet} --apply" in out
    assert "set apply: true" not in out
    csv = next(line.split("Full list: ", 1)[1] for line in out.splitlines()
               if line.startswith("Full list: "))
    assert Path(csv).parent == cli.database.parent / "plans"
    planned = pd.read_csv(csv, dtype=str)
    assert {"enable", "noop"} <= set(planned["action"])
    assert emulator.stats()["jobs_created"] == 0
    assert cli.home.is_dir()

    applied = cli("run", str(sheet), "--apply", "--quiet")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert emulator.stats()["jobs_created"] >= 1
    emulator.finish_jobs()

    again = cli("run", str(sheet), "--quiet")
    assert again.returncode == 0, again.stdout + again.stderr     # nothing to do
    assert "Plan: 0 to change" in again.stdout and "No changes" in again.stdout


def test_errors_are_one_line_with_the_fix(cli: Cli, emulator) -> None:
    sheet = write_sample(cli.tmp / "desired.csv", 300, 7, rows=10)
    wrong_key = cli("run", str(sheet), TELNYX_API_KEY="not-the-key")
    assert wrong_key.returncode == 1
    assert "HTTP 401" in wrong_key.stderr and "check TELNYX_API_KEY" in wrong_key.stderr
    assert "Traceback" not in wrong_key.stderr + wrong_key.stdout
    assert 'File "' not in wrong_key.stderr + wrong_key.stdout
    assert "not-the-key" not in wrong_key.stderr + wrong_key.stdout
    debug = cli("run", str(sheet), "--log-level", "DEBUG", TELNYX_API_KEY="not-the-key")
    assert debug.returncode == 1 and 'File "' in debug.stderr     # the traceback on request

    nowhere = cli("run", str(sheet), "--quiet", TELNYX_BASE_URL="http://127.0.0.1:9/v2")
    assert nowhere.returncode == 1
    assert "no answer from 127.0.0.1:9" in nowhere.stderr
    assert "check TELNYX_BASE_URL" in nowhere.stderr

    no_key = cli("run", str(sheet), TELNYX_API_KEY="")
    assert no_key.returncode == 1 and "TELNYX_API_KEY is not set" in no_key.stderr


def test_a_missing_source_fails_first_and_never_becomes_a_partition(cli: Cli, emulator) -> None:
    write_sample(cli.tmp / "desired.csv", 300, 7, rows=10)
    emulator.reset_stats()
    missing = cli("run", "nope.csv")
    assert missing.returncode == 1
    assert "'nope.csv' does not exist" in missing.stderr and "desired.csv" in missing.stderr
    assert emulator.stats()["requests"] == 0                     # the account was not listed
    cli.home.mkdir(parents=True)
    assert cli("partitions", "list").stdout == ""

    # A sheet that loses its flag column fails the run (it used to end green).
    broken = cli.tmp / "broken.csv"
    broken.write_text("phone_number,site\n+12015550100,HQ\n")
    failed = cli("run", str(broken), "--quiet")
    assert failed.returncode == 1
    assert "no emergency_enabled column" in failed.stderr

    # ... before it becomes a partition (issue 27: an unusable sheet never does).
    assert cli("partitions", "list").stdout == ""

    # Old partitions can be removed: by key, or every one whose source is gone.
    sheet = cli.tmp / "desired.csv"
    # (the sample's few bad rows are 2 of 10 here: past the rejected share, exit 3 otherwise)
    assert cli("run", str(sheet), "--quiet",
               EMERGENCY_PIPELINE_MAX_REJECTED_SHARE="1").returncode == 2
    listed = cli("partitions", "list").stdout.splitlines()
    assert listed == [str(sheet)]
    sheet.unlink()
    assert "(missing" in cli("partitions", "list").stdout
    assert cli("partitions", "remove", "--missing").stdout.strip() == f"removed {sheet}"
    assert cli("partitions", "list").stdout == ""
    assert cli("partitions", "remove", "nope").returncode == 1
