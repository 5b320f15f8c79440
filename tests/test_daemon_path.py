"""The path schedules, sensors and backfills take: the webserver and the daemon (`emergency-
pipeline dev`, i.e. `dg dev`) as child processes, a run launched through the webserver's
GraphQL, and a run the drop-folder sensor starts; both end SUCCESS and land in DuckDB."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from conftest import API_KEY
from emergency_pipeline.defs.reconcile_job import APPLY_JOB_NAME
from emergency_pipeline.defs.partitions import desired_state_sources
from emergency_pipeline.samples.demo_sheet import write_sample
from _deployment import wait_for

ROOT = Path(__file__).parent.parent
CLI = str(Path(sys.executable).parent / "emergency-pipeline")
REPO = "__repository__"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GraphQL:
    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, query: str, **variables) -> dict:
        answer = httpx.post(self.url, json={"query": query, "variables": variables}, timeout=60)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def run_status(self, run_id: str) -> str:
        data = self("query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                    id=run_id)
        return data["runOrError"]["status"]

    def sensor_runs(self, sensor: str) -> list[dict]:
        data = self("""query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) {
                         ... on Runs { results { runId status } } } }""",
                    tags=[{"key": "dagster/sensor_name", "value": sensor}])
        return data["runsOrError"]["results"]


def _finished(gql: GraphQL, run_id: str) -> str | None:
    status = gql.run_status(run_id)
    return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None


@pytest.mark.daemon
def test_launch_through_graphql_and_the_inbox_sensor_run_on_the_daemon(tmp_path, emulator):
    port, inbox, database = _free_port(), tmp_path / "inbox", tmp_path / "outcomes.duckdb"
    inbox.mkdir()
    log = tmp_path / "dev.log"
    env = {**os.environ, "TELNYX_API_KEY": API_KEY, "TELNYX_BASE_URL": emulator.base_url,
           "EMERGENCY_PIPELINE_DUCKDB": str(database), "EMERGENCY_PIPELINE_INBOX": str(inbox),
           "EMERGENCY_PIPELINE_INBOX_INTERVAL_SECONDS": "1"}
    with log.open("w") as out:
        dev = subprocess.Popen([CLI, "dev", "--no-emulator", "--port", str(port),
                                "--dagster-home", str(tmp_path / "home")],
                               cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for("the webserver", lambda: _up(base), 120, log)
        gql = GraphQL(base + "/graphql")
        location = wait_for("the code location", lambda: _location(gql), 120, log)
        repo = {"repositoryLocationName": location, "repositoryName": REPO}

        # 1. A run launched from the UI's API: the partition, then the run (queued, then
        #    dequeued and launched by the daemon in its own process).
        source = str(write_sample(tmp_path / "ui.csv", 300, 7, rows=20))
        added = gql("""mutation($repo: RepositorySelector!, $name: String!, $key: String!) {
                         addDynamicPartition(repositorySelector: $repo, partitionsDefName: $name,
                                             partitionKey: $key) {
                           __typename ... on PythonError { message } } }""",
                    repo=repo, name=f"telnyx__{desired_state_sources.name}", key=source)
        assert added["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess", added
        launched = gql("""mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
                            __typename ... on LaunchRunSuccess { run { runId } }
                            ... on PythonError { message }
                            ... on RunConfigValidationInvalid { errors { message } } } }""",
                       params={"selector": {**repo, "jobName": f"telnyx__{APPLY_JOB_NAME}"},
                               "runConfigData": {},
                               "executionMetadata": {"tags": [
                                   {"key": "dagster/partition", "value": source}]}})
        assert launched["launchRun"]["__typename"] == "LaunchRunSuccess", launched
        ui_run = launched["launchRun"]["run"]["runId"]
        assert wait_for("the launched run", lambda: _finished(gql, ui_run), 240, log) == "SUCCESS"

        # 2. The sensor, started through the API, picks up a dropped sheet.
        started = gql("""mutation($sel: SensorSelector!) { startSensor(sensorSelector: $sel) {
                           __typename ... on Sensor { sensorState { status } } } }""",
                      sel={**repo, "sensorName": "telnyx__desired_state_inbox"})
        assert started["startSensor"]["sensorState"]["status"] == "RUNNING", started
        dropped = write_sample(inbox / "site.csv", 300, 8, rows=20)
        past = time.time() - 60
        os.utime(dropped, (past, past))        # settled: not a file still being copied
        runs = wait_for("the sensor's run",
                     lambda: [r for r in gql.sensor_runs("telnyx__desired_state_inbox")
                              if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")], 240, log)
        assert [r["status"] for r in runs] == ["SUCCESS"], runs
        sensor_run = runs[0]["runId"]

        con = duckdb.connect(str(database), read_only=True)
        landed = dict(con.execute(
            "SELECT run_id, count(*) FROM operation_outcomes WHERE run_id IN (?, ?) GROUP BY 1",
            [ui_run, sensor_run]).fetchall())
        con.close()
        assert landed.get(ui_run, 0) > 0 and landed.get(sensor_run, 0) > 0, landed
        assert emulator.stats()["jobs_created"] >= 1          # both applied
    finally:
        dev.send_signal(signal.SIGTERM)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            dev.kill()
            raise AssertionError("`emergency-pipeline dev` did not stop on SIGTERM") from None
    assert not _up(f"http://127.0.0.1:{port}")       # the webserver went with it


def _up(base: str) -> bool:
    try:
        return httpx.get(base + "/server_info", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _location(gql: GraphQL) -> str | None:
    data = gql("""{ workspaceOrError { ... on Workspace { locationEntries {
                    name locationOrLoadError { __typename } } } } }""")
    entries = data["workspaceOrError"]["locationEntries"]
    loaded = [e["name"] for e in entries
              if e["locationOrLoadError"] and
              e["locationOrLoadError"]["__typename"] == "RepositoryLocation"]
    return loaded[0] if loaded else None
