"""Where the safety store lives, who can open it, and what its errors say."""

from __future__ import annotations

import multiprocessing
import os
import pwd
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from emergency_pipeline.safety_store import (
    LEASE_DIR_ENV, SCHEMA_VERSION, STATE_URL_ENV, LeaseUnavailable, StoreUnavailable,
    open_safety_store,
)
from emergency_pipeline.safety_store import sqlite_backend  # noqa: F401 - loaded before a
from emergency_pipeline.safety_store.location import MACHINE_DIR, mask, resolve  # fork drops
# root: the interpreter's own files (under /root/.pyenv) may be unreadable to that user.

ACCOUNT = "http://127.0.0.1:8080/v2#0123456789abcdef"
_CHILD = """
import os, sys
from emergency_pipeline.safety_store import open_safety_store, LeaseUnavailable
store = open_safety_store()
try:
    h = store.lease.acquire(sys.argv[1], sys.argv[2], wait_seconds=0)
    print("took", store.describe(), h.token)
except LeaseUnavailable as exc:
    print("unavailable", store.describe(), exc.holder.run_id)
"""


@pytest.fixture
def no_store_env(monkeypatch):
    for name in (STATE_URL_ENV, LEASE_DIR_ENV, "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_default_location_order(no_store_env, tmp_path):
    assert resolve().path == MACHINE_DIR / "safety.sqlite"  # not $TMPDIR's
    no_store_env.setenv("TMPDIR", str(tmp_path / "private-tmp"))
    assert resolve().path == Path("/var/tmp/emergency_pipeline/safety.sqlite")
    no_store_env.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert resolve().path == tmp_path / "home" / "emergency_pipeline" / "safety.sqlite"
    no_store_env.setenv(LEASE_DIR_ENV, str(tmp_path / "leases"))  # deprecated, still honoured
    assert resolve().path == tmp_path / "leases" / "safety.sqlite"
    no_store_env.setenv(STATE_URL_ENV, f"sqlite:///{tmp_path}/s.sqlite")
    assert resolve().path == tmp_path / "s.sqlite"
    no_store_env.setenv(STATE_URL_ENV, "postgresql://u:pw@db.example:5432/e911")
    assert resolve().kind == "postgresql"
    assert resolve(str(tmp_path / "given.sqlite")).path == tmp_path / "given.sqlite"
    for bad in ("sqlite://relative.sqlite", "mysql://u:pw@h/db"):
        with pytest.raises(StoreUnavailable, match=STATE_URL_ENV + "|absolute") as caught:
            resolve(bad)
        assert "pw" not in str(caught.value).replace("password", "")


def test_dagster_home_store_takes_dagster_homes_mode(no_store_env, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o2775)
    no_store_env.setenv("DAGSTER_HOME", str(home))
    store = open_safety_store()
    folder = home / "emergency_pipeline"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o2775
    assert stat.S_IMODE((folder / "safety.sqlite").stat().st_mode) == 0o664
    assert store.describe() == str(folder / "safety.sqlite")


def test_two_users_tmpdirs_share_one_store_through_dagster_home(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    runs = []
    for who in ("alice", "bob"):
        env = {k: v for k, v in os.environ.items()
               if k not in (STATE_URL_ENV, LEASE_DIR_ENV)}
        env.update(DAGSTER_HOME=str(home), TMPDIR=str(tmp_path / f"tmp-{who}"),
                   HOME=str(tmp_path / f"home-{who}"))
        for name in ("TMPDIR", "HOME"):
            Path(env[name]).mkdir()
        done = subprocess.run([sys.executable, "-c", _CHILD, ACCOUNT, f"run-{who}"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        runs.append(done.stdout.split())
    path = str(home / "emergency_pipeline" / "safety.sqlite")
    # alice's process is gone, but within the dead-process grace her lease still counts.
    assert runs == [["took", path, "1"], ["unavailable", path, "run-alice"]]


def _open_as(uid, gid, dagster_home, results):
    """In a forked child: become another user (root ignores modes), open the default store."""
    os.environ.pop(STATE_URL_ENV, None)
    os.environ.pop(LEASE_DIR_ENV, None)
    os.environ["DAGSTER_HOME"] = dagster_home
    if uid is not None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    try:
        open_safety_store()
        results.put("opened")
    except StoreUnavailable as exc:
        results.put(str(exc))
    except BaseException as exc:  # noqa: BLE001 - the parent must hear of it, not wait
        results.put(f"unexpected {exc!r}")


def test_a_folder_of_another_user_gives_one_line_and_the_fix():
    # In /tmp itself: another user must be able to reach the folder (a test worker's own
    # temporary folder is private to root).
    base = Path(tempfile.mkdtemp(prefix="store-perm-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        folder = base / "emergency_pipeline"
        folder.mkdir()
        os.chmod(folder, 0o755)
        if os.geteuid() == 0:  # made by `nobody`, opened by another user (not root)
            nobody, daemon = pwd.getpwnam("nobody"), pwd.getpwnam("daemon")
            os.chown(folder, nobody.pw_uid, nobody.pw_gid)
            owner, mode, as_user = "nobody", "0755", (daemon.pw_uid, daemon.pw_gid)
        else:
            os.chmod(folder, 0o555)
            owner, mode = pwd.getpwuid(os.geteuid()).pw_name, "0555"
            as_user = (None, None)
        fork = multiprocessing.get_context("fork")
        results = fork.Queue()
        child = fork.Process(target=_open_as, args=(*as_user, str(base), results))
        child.start()
        message = results.get(timeout=60)
        child.join()
        assert "\n" not in message, message
        for part in (str(folder / "safety.sqlite"), f"owned by user {owner}", f"mode {mode}",
                     "group-writable", STATE_URL_ENV):
            assert part in message
    finally:
        subprocess.run(["rm", "-rf", str(base)])


def test_a_newer_schema_is_refused(store_url):
    store = open_safety_store(store_url)
    with store.backend.transaction() as con:
        con.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    store.close()
    with pytest.raises(StoreUnavailable, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        open_safety_store(store_url)


def test_reopening_keeps_the_data_and_creates_nothing_twice(store_url):
    first = open_safety_store(store_url)
    first.lease.acquire(ACCOUNT, "r", wait_seconds=0)
    again = open_safety_store(store_url)
    assert again.lease.holder(ACCOUNT).run_id == "r"
    with again.backend.transaction() as con:
        assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 1


def test_the_store_clock_is_the_one_it_writes(store_url):
    store = open_safety_store(store_url)
    before = store.now()
    holder = store.lease.acquire(ACCOUNT, "r", wait_seconds=0)
    after = store.now()
    assert before <= holder.acquired_at <= after and before.tzinfo is not None


def test_a_postgres_password_never_shows(pg_server):
    url = pg_server.new_database()
    password = url.split(":")[2].split("@")[0]
    store = open_safety_store(url)
    assert password not in store.describe() and password not in repr(store)
    assert "postgres:***@127.0.0.1" in store.describe()
    store.lease.acquire(ACCOUNT, "holder", wait_seconds=0)
    with pytest.raises(LeaseUnavailable) as caught:
        store.lease.acquire(ACCOUNT, "waiter", wait_seconds=0)
    assert password not in str(caught.value) and "***" in str(caught.value)
    wrong = url.replace(password, "Wrong-Pass-42")
    with pytest.raises(StoreUnavailable) as refused:
        open_safety_store(wrong)
    text = str(refused.value)
    assert "Wrong-Pass-42" not in text and "***" in text and "\n" not in text
    assert "password authentication failed" in text
    closed = url.replace(f":{pg_server.port}/", ":1/")  # nothing listens: refused
    with pytest.raises(StoreUnavailable) as unreachable:
        open_safety_store(closed)
    assert password not in str(unreachable.value) and ":1/" in str(unreachable.value)
    assert mask("postgresql://h/db?user=u&password=s3cr3t") == \
        "postgresql://h/db?user=u&password=***"


def test_the_shared_store_is_one_per_process_and_location(store_url, tmp_path):
    from emergency_pipeline.safety_store import shared_safety_store
    first = shared_safety_store(store_url)
    assert shared_safety_store(store_url) is first
    assert shared_safety_store(store_url, stale_after=30) is not first
    assert shared_safety_store(tmp_path / "other.sqlite") is not first


def test_the_heartbeat_survives_a_dropped_postgres_connection(pg_server):
    import psycopg
    from emergency_pipeline.safety_store import held
    url = pg_server.new_database()
    store = open_safety_store(url, stale_after=3, dead_pid_grace=1)
    with held(store.lease, ACCOUNT, "r", wait_seconds=0, heartbeat_seconds=0.1,
              fence_seconds=1.0) as fence:
        fence.confirm()
        with psycopg.connect(pg_server.url(), autocommit=True) as admin:
            ended = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (url.rsplit("/", 1)[1],)).fetchone()[0]
        assert ended >= 1  # the pool's and the heartbeat thread's sessions
        beat = store.lease.holder(ACCOUNT).heartbeat_at
        deadline = time.monotonic() + 20
        while store.lease.holder(ACCOUNT).heartbeat_at <= beat:  # the thread reconnects
            assert time.monotonic() < deadline, "the heartbeat never came back"
            time.sleep(0.05)
        fence.confirm()
        assert fence.fresh()


def test_a_file_that_is_no_database_gives_one_line(tmp_path):
    path = tmp_path / "safety.sqlite"
    path.write_bytes(b"not a database, an operator's notes" * 100)
    with pytest.raises(StoreUnavailable) as caught:
        open_safety_store(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert "not a database" in str(caught.value) and "move that file away" in str(caught.value)


def test_a_postgres_user_without_create_rights_gives_one_line(pg_server):
    import psycopg
    url = pg_server.new_database()
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("CREATE ROLE reader LOGIN PASSWORD 'Reader-Pw-31'")
        admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    reader = url.replace("postgres:" + url.split(":")[2].split("@")[0], "reader:Reader-Pw-31")
    with pytest.raises(StoreUnavailable) as caught:
        open_safety_store(reader)
    text = str(caught.value)
    assert "permission denied" in text and "GRANT CREATE" in text and database in text
    assert "Reader-Pw-31" not in text and "\n" not in text
