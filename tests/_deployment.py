"""A Dagster deployment as an operator runs one: `dagster-webserver` and `dagster-daemon` as
child processes on a DAGSTER_HOME, the code location loaded from workspace.yaml, runs and
backfills launched over the webserver's GraphQL (what the UI does). Used by the daemon tests
and by benchmarks/daemon_path.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REPO = "__repository__"
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Deployment:
    """start() / stop(): the webserver and the daemon on `home`, with `env`. The log of both
    is `home/deployment.log` (shown when a wait times out)."""

    def __init__(self, home: Path, env: dict[str, str], cwd: Path = ROOT) -> None:
        self.home, self.cwd = Path(home), cwd
        self.env = {**env, "DAGSTER_HOME": str(self.home)}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = self.home / "deployment.log"
        self.procs: list[subprocess.Popen] = []
        self.location: str | None = None

    def start(self, timeout: float = 180) -> Deployment:
        self.home.mkdir(parents=True, exist_ok=True)
        workspace = str(self.cwd / "workspace.yaml")
        with self.log.open("a") as out:
            for cmd in ([str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1",
                         "-p", str(self.port)],
                        [str(BIN / "dagster-daemon"), "run", "-w", workspace]):
                # Their own sessions: stop() signals each whole group (code servers too).
                self.procs.append(subprocess.Popen(cmd, cwd=self.cwd, env=self.env, stdout=out,
                                                   stderr=subprocess.STDOUT,
                                                   start_new_session=True))
        self.wait("the webserver", self._up, timeout)
        self.location = self.wait("the code location", self._location, timeout)
        return self

    def stop(self) -> None:
        for proc in self.procs:
            _signal(proc, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _signal(proc, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    def __enter__(self) -> Deployment:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- GraphQL -------------------------------------------------------------------------

    def gql(self, query: str, **variables) -> dict:
        answer = httpx.post(self.base + "/graphql", json={"query": query,
                                                          "variables": variables}, timeout=60)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    @property
    def repo(self) -> dict:
        return {"repositoryLocationName": self.location, "repositoryName": REPO}

    def add_partition(self, partitions_def: str, key: str) -> None:
        added = self.gql("""mutation($repo: RepositorySelector!, $name: String!, $key: String!) {
            addDynamicPartition(repositorySelector: $repo, partitionsDefName: $name,
                                partitionKey: $key) { __typename ... on PythonError { message } } }""",
                         repo=self.repo, name=partitions_def, key=key)
        kind = added["addDynamicPartition"]["__typename"]
        assert kind in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"), added

    def launch(self, job: str, partition: str, run_config: dict | None = None,
               tags: dict[str, str] | None = None) -> str:
        tags = {"dagster/partition": partition, **(tags or {})}
        launched = self.gql("""mutation($params: ExecutionParams!) {
            launchRun(executionParams: $params) {
              __typename ... on LaunchRunSuccess { run { runId } }
              ... on PythonError { message } ... on RunConfigValidationInvalid { errors { message } } } }""",
                            params={"selector": {**self.repo, "jobName": job},
                                    "runConfigData": run_config or {},
                                    "executionMetadata": {"tags": [
                                        {"key": k, "value": v} for k, v in tags.items()]}})
        assert launched["launchRun"]["__typename"] == "LaunchRunSuccess", launched
        return launched["launchRun"]["run"]["runId"]

    def backfill(self, job: str, partitions: list[str], run_config: dict | None = None,
                 tags: dict[str, str] | None = None) -> str:
        """A backfill of the job's partition set (the UI's "Launch backfill" on the job)."""
        params = {"selector": {"partitionSetName": f"{job}_partition_set",
                               "repositorySelector": self.repo},
                  "partitionNames": partitions,
                  "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}
        if run_config:
            params["runConfigData"] = run_config
        got = self.gql("""mutation($params: LaunchBackfillParams!) {
            launchPartitionBackfill(backfillParams: $params) {
              __typename ... on LaunchBackfillSuccess { backfillId }
              ... on PythonError { message } } }""", params=params)
        assert got["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", got
        return got["launchPartitionBackfill"]["backfillId"]

    def run_status(self, run_id: str) -> str:
        data = self.gql("query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                        id=run_id)
        return data["runOrError"]["status"]

    def runs(self, tags: dict[str, str]) -> list[dict]:
        data = self.gql("""query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) {
                             ... on Runs { results { runId status creationTime startTime endTime tags { key value } } } } }""",
                        tags=[{"key": k, "value": v} for k, v in tags.items()])
        return [{**r, "tags": {t["key"]: t["value"] for t in r["tags"]}}
                for r in data["runsOrError"]["results"]]

    def run_end(self, run_id: str) -> float:
        """When the run ended (epoch seconds), as its process recorded it: a benchmark's
        figure that does not depend on how often it polled."""
        data = self.gql("query($id: ID!) { runOrError(runId: $id) { ... on Run { endTime } } }",
                        id=run_id)
        return data["runOrError"]["endTime"]

    def wait_run(self, run_id: str, timeout: float = 600, every: float = 0.2) -> str:
        return self.wait(f"run {run_id}", lambda: _done(self.run_status(run_id)), timeout, every)

    def wait_backfill(self, backfill_id: str, count: int, timeout: float = 900,
                      every: float = 0.2) -> list[dict]:
        """The backfill's runs (with their endTime), once `count` of them have finished."""
        def finished():
            runs = self.runs({"dagster/backfill": backfill_id})
            return runs if len(runs) == count and all(r["status"] in FINISHED
                                                      for r in runs) else None
        return self.wait(f"backfill {backfill_id}", finished, timeout, every)

    def wait(self, what: str, check, timeout: float, every: float = 0.2):
        return wait_for(what, check, timeout, self.log, every)

    def _up(self) -> bool:
        try:
            return httpx.get(self.base + "/server_info", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _location(self) -> str | None:
        data = self.gql("""{ workspaceOrError { ... on Workspace { locationEntries {
                        name locationOrLoadError { __typename ... on PythonError { message } } } } } }""")
        for entry in data["workspaceOrError"]["locationEntries"]:
            got = entry["locationOrLoadError"] or {}
            if got.get("__typename") == "RepositoryLocation":
                return entry["name"]
            if got.get("__typename") == "PythonError":
                raise AssertionError(f"the code location failed to load: {got['message']}")
        return None


def _done(status: str) -> str | None:
    return status if status in FINISHED else None


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def wait_for(what: str, check, timeout: float, log: Path, every: float = 0.2):
    """check()'s first truthy answer within timeout, else AssertionError with the log's end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(every)
    tail = log.read_text()[-4000:] if log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}; log:\n{tail}")
