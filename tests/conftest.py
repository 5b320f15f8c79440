"""Shared fixtures: a running emulator on a free port (small account, fast jobs), and strict
mode: every emulator of the test run (in this process or started as a command) checks each
request it receives against tests/openapi-subset.json, and a test whose requests break the
spec fails, unless it is marked `spec_violations` (it sends bad requests on purpose).

Each process of the run (the one process, or each pytest-xdist worker, `PYTEST_XDIST_WORKER`)
has its own folders, set at import so that child processes inherit them: `TMPDIR`,
`EMERGENCY_PIPELINE_LEASE_DIR` (the lease, and the safety store that falls back to it) and
`DAGSTER_HOME`. No two workers share a lease, a ledger or a Dagster instance; a test that
needs its own still sets them itself. Hypothesis profiles: `ci` (fixed seed, `make test`) and
`dev` (random, the default); tests/README.md.
"""

from __future__ import annotations

import atexit
import json
import os
import pathlib
import shutil
import tempfile

import pytest
from hypothesis import settings

from emergency_pipeline.emulator import Emulator
from emergency_pipeline.emulator.conformance import LOG_ENV, SPEC_ENV

API_KEY = "test-key-not-secret"
SPEC_PATH = pathlib.Path(__file__).with_name("openapi-subset.json")

# This process's own folders (xdist: one set per worker), before anything reads them;
# removed at exit. tmp_path stays where pytest keeps it (its last three runs, for a look
# after a failure): its root is pinned before TMPDIR moves.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
WORKER_DIR = pathlib.Path(tempfile.mkdtemp(prefix=f"emergency-pipeline-tests-{WORKER}-"))
atexit.register(shutil.rmtree, WORKER_DIR, ignore_errors=True)
for _var, _name in (("TMPDIR", "tmp"), ("EMERGENCY_PIPELINE_LEASE_DIR", "lease"),
                    ("DAGSTER_HOME", "dagster_home")):
    (WORKER_DIR / _name).mkdir()
    os.environ[_var] = str(WORKER_DIR / _name)
tempfile.tempdir = None  # gettempdir() reads TMPDIR again

# `ci`: the same examples on every run (a failure in CI reproduces locally with
# --hypothesis-profile ci); `dev`: new examples each run, failures replayed from .hypothesis/.
# Neither has a deadline: the shared 2-core machine makes timings noise. Examples per test are
# the tests' own (tests/README.md says which were cut and why).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          database=None)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("dev")

# Set at import, before any emulator starts; child processes inherit both.
os.environ[SPEC_ENV] = str(SPEC_PATH)
_LOG = pathlib.Path(tempfile.mkdtemp(prefix="spec-violations-")) / "violations.jsonl"
_LOG.touch()
os.environ[LOG_ENV] = str(_LOG)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "spec_violations: the test sends requests the spec refuses, on purpose")


@pytest.fixture(scope="session")
def worker_dir() -> pathlib.Path:
    """This process's (this xdist worker's) own folder: tmp/, lease/, dagster_home/ in it."""
    return WORKER_DIR


def spec_violations_since(offset: int) -> tuple[list[dict], int]:
    """The violations logged after `offset` bytes, and the new offset."""
    with open(_LOG, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    return [json.loads(line) for line in data.splitlines() if line.strip()], offset + len(data)


@pytest.fixture(autouse=True)
def _requests_follow_the_spec(request):
    start = _LOG.stat().st_size
    yield
    found, _ = spec_violations_since(start)
    if found and request.node.get_closest_marker("spec_violations") is None:
        shown = "; ".join(f"{v['method']} {v['path']}: {v['problem']}" for v in found[:5])
        pytest.fail(f"{len(found)} request(s) outside the spec: {shown}", pytrace=False)


@pytest.fixture
def emulator_factory():
    """make(**Emulator kwargs) -> a started Emulator, stopped after the test."""
    started: list[Emulator] = []

    def make(**kwargs) -> Emulator:
        kwargs.setdefault("api_key", API_KEY)
        kwargs.setdefault("numbers", 300)
        kwargs.setdefault("seed", 7)
        kwargs.setdefault("job_seconds", 0.2)
        emu = Emulator(**kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def emulator(emulator_factory) -> Emulator:
    """300 numbers, seed 7, jobs of 0.2 s, key API_KEY."""
    return emulator_factory()


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL for the session (tests/pg_server.py); fails, never skips, without
    the server binaries."""
    from pg_server import PgServer
    try:
        server = PgServer().start()
    except RuntimeError as exc:
        pytest.fail(str(exc).splitlines()[0], pytrace=False)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The URL of a fresh, empty safety store: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "store" / "safety.sqlite")
    return request.getfixturevalue("pg_server").new_database()


# The slowest tests (seconds on an idle 2-core machine; tests/README.md, "Time"), started
# first. worksteal gives each worker a contiguous share of the collection and lets an idle
# one steal from the end of another's queue: a long test near the end of a share would start
# last and keep its worker busy after the rest is done. Each one is put at the head of the
# share that has the least estimated time, so the long ones run side by side from the start.
SLOW_FIRST = {
    "tests/test_deploy_postgres.py::"
    "test_two_accounts_apply_at_once_and_a_backfill_queues_on_postgres": 120,
    "tests/test_secret_audit.py::test_the_key_appears_nowhere": 85,
    "tests/test_cli_run.py::test_a_missing_source_fails_first_and_never_becomes_a_partition": 37,
    "tests/test_daemon_path.py::"
    "test_launch_through_graphql_and_the_inbox_sensor_run_on_the_daemon": 33,
    "tests/test_fuzz_readers.py::test_csv_junk_never_escapes": 32,
    "tests/test_cli_run.py::test_errors_are_one_line_with_the_fix": 21,
    "tests/test_component.py::test_dg_scaffold_list_and_check_with_two_accounts": 21,
    "tests/test_desired_state.py::test_any_csv_yields_rows_or_reasons": 19,
    "tests/test_pipeline.py::"
    "test_rerun_after_stopping_right_after_the_posts_follows_instead_of_resubmitting": 19,
    "tests/test_concurrency.py::"
    "test_a_plan_only_run_never_waits_and_an_apply_run_gives_up_naming_the_holder": 19,
    "tests/test_fuzz_readers.py::test_far_cells_and_declared_dimensions_never_abort": 18,
    "tests/test_concurrency.py::"
    "test_two_apply_runs_at_once_take_turns_and_never_double_a_number": 18,
    "tests/test_operator_cli.py::"
    "test_an_apply_says_what_it_applied_and_the_log_counts_agree": 17,
    "tests/test_plan.py::test_planning_a_range_at_a_time_gives_the_one_plan": 16,
}


@pytest.hookimpl(trylast=True)      # after `-m` has deselected: the shares are of what runs
def pytest_collection_modifyitems(config, items):
    workers = getattr(config, "workerinput", {}).get("workercount")
    if not workers or workers < 2:
        return
    # Every worker computes the same order from the same collection (xdist checks it).
    slow = sorted((i for i in items if i.nodeid in SLOW_FIRST),
                  key=lambda i: (-SLOW_FIRST[i.nodeid], i.nodeid))
    rest = [i for i in items if i.nodeid not in SLOW_FIRST]
    heads: list[list] = [[] for _ in range(workers)]
    load = [0] * workers
    for item in slow:
        share = min(range(workers), key=lambda k: (load[k], k))
        heads[share].append(item)
        load[share] += SLOW_FIRST[item.nodeid]
    ordered, left, start = [], len(items), 0
    for k in range(workers):         # the shares as worksteal cuts them (xdist 3.x)
        size = left // (workers - k)
        take = max(0, size - len(heads[k]))
        ordered += heads[k] + rest[start:start + take]
        start, left = start + take, left - size
    ordered += rest[start:]
    items[:] = ordered
