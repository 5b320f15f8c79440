"""Runs whose process died are failed, not left STARTED.

A run executed in this process by `emergency-pipeline run` has no run launcher that Dagster's
run monitoring could ask about its worker: if the process is killed (SIGKILL, an out-of-memory
abort) the run stays STARTED for ever. So the CLI tags each run with its host, pid and the
pid's start time, and at its next start fails every run of the job that is STARTED on this
host by a process that no longer exists. Runs launched otherwise (the daemon, the UI) get the
same tags from their first step (the run worker's pid), and every run's first step fails the
dead ones too, so the next run, however launched, ends a run whose process died. Runs of
other hosts, or not yet tagged, are left alone (the daemon's run monitoring covers runs that
never start: see cli/demo.py's dagster.yaml).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable

# Hidden tags: Dagster's UI leaves out every run tag whose key starts with `.dagster/`
# (dagster._core.storage.tags.HIDDEN_TAG_PREFIX), so these no longer clutter the Runs list.
HOST_TAG = ".dagster/emergency_pipeline.host"
PID_TAG = ".dagster/emergency_pipeline.pid"
PID_START_TAG = ".dagster/emergency_pipeline.pid_start"   # tells a reused pid from the run's
# The keys runs were tagged with before (issue 27); still read, for runs left by older versions.
_OLD_KEYS = {HOST_TAG: "emergency_pipeline/host", PID_TAG: "emergency_pipeline/pid",
             PID_START_TAG: "emergency_pipeline/pid_start"}


def _tag(tags: dict[str, str], key: str) -> str | None:
    return tags.get(key, tags.get(_OLD_KEYS[key]))


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            # The command name (field 2) may hold spaces and parentheses: split after it.
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def run_worker_pid() -> int:
    """The process that runs the whole run: this one (in-process execution, the CLI), or the
    parent of a step process (the daemon's multiprocess executor: each step is a child of
    the run worker, and ends with its step)."""
    import multiprocessing

    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid else os.getpid()


def process_tags(pid: int | None = None) -> dict[str, str]:
    """Tags that let a later process tell whether this one is still running."""
    pid = os.getpid() if pid is None else pid
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(pid)}
    start = _process_start(pid)
    if start is not None:
        tags[PID_START_TAG] = start
    return tags


def process_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                       # exists, owned by someone else
    return start is None or _process_start(pid) in (start, None)


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fail_dead_runs(instance, job_name: str, say: Callable[[str], None] = _to_stderr
                   ) -> list[str]:
    """Mark failed the STARTED runs of `job_name` whose process on this host is gone.
    Said on stderr: stdout's `run <id>: ...` line is this process's own run (scripts read it)."""
    from dagster import DagsterRunStatus, RunsFilter

    host, failed = socket.gethostname(), []
    records = instance.get_run_records(RunsFilter(
        job_name=job_name, statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING]))
    for record in records:
        run = record.dagster_run
        tags = run.tags
        if _tag(tags, HOST_TAG) != host or not (_tag(tags, PID_TAG) or "").isdigit():
            continue
        pid = int(_tag(tags, PID_TAG))
        if pid == os.getpid() or process_alive(pid, _tag(tags, PID_START_TAG)):
            continue
        message = (f"marked failed by `emergency-pipeline run`: its process {pid} on {host} "
                   "is gone (killed or crashed) and left the run STARTED")
        instance.report_run_failed(run, message)
        say(f"earlier run {run.run_id} {message}")
        failed.append(run.run_id)
    return failed
