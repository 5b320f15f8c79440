"""The process's pool of DuckDB databases (duckdb_pool.py), which the stage files, the history
and the frame helpers borrow from: a use leaves nothing behind (no table, no attached file, no
lock, no setting), nested and concurrent uses never see each other's tables, and a use that
failed mid-transaction or spilled to disk spoils nothing for the next."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from _analyst import held_open
from emergency_pipeline import duckdb_pool
from emergency_pipeline.duckdb_pool import borrowed
from emergency_pipeline.stage_files import file_connection, stage_config


def _leftovers() -> dict[str, list]:
    with borrowed() as con:    # the database the last use gave back (the pool lends the latest)
        return _what_it_holds(con)


def _what_it_holds(con: duckdb.DuckDBPyConnection) -> dict[str, list]:
    """Besides this use's own (current, empty) schema."""
    return {
        "schemas": con.execute("SELECT schema_name FROM duckdb_schemas() WHERE database_name = "
                               "'memory' AND schema_name NOT IN ('main', current_schema())"
                               ).fetchall(),
        "tables": con.execute("SELECT table_name FROM duckdb_tables()").fetchall(),
        "views": con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal")
                    .fetchall(),
    }


def test_a_use_leaves_no_table_view_or_schema() -> None:
    with borrowed() as con:
        con.execute("CREATE TABLE accepted AS SELECT 1 AS a")
        con.execute("CREATE TEMP TABLE plan_dup AS SELECT 2 AS b")
        con.execute("CREATE TEMP VIEW acc AS SELECT 3 AS c")
        assert con.execute("SELECT count(*) FROM accepted").fetchone() == (1,)
    assert _leftovers() == {"schemas": [], "tables": [], "views": []}
    with borrowed() as con:    # the same names again: nothing of the last use is seen
        con.execute("CREATE TABLE accepted AS SELECT 'x' AS other")
        assert con.execute("SELECT * FROM accepted").fetchall() == [("x",)]


def test_a_nested_use_gets_a_database_of_its_own() -> None:
    with borrowed() as outer:
        outer.execute("CREATE TABLE t AS SELECT 1 AS a")
        with borrowed() as inner:
            assert inner is not outer
            with pytest.raises(duckdb.CatalogException):
                inner.execute("SELECT * FROM t")
        assert outer.execute("SELECT a FROM t").fetchall() == [(1,)]


def test_a_use_that_failed_in_a_transaction_spoils_nothing() -> None:
    with pytest.raises(duckdb.CatalogException):
        with borrowed() as con:
            con.execute("BEGIN")
            con.execute("CREATE TABLE half AS SELECT 1 AS a")
            con.execute("SELECT * FROM missing")
    with borrowed() as con:
        assert con.execute("SELECT 42").fetchone() == (42,)
    assert _leftovers()["tables"] == []


def test_threads_never_share_a_database() -> None:
    barrier, seen, errors = threading.Barrier(2), {}, []

    def work(name: str) -> None:
        try:
            with borrowed() as con:
                con.execute("CREATE TEMP TABLE mine AS SELECT ? AS owner", [name])
                barrier.wait(timeout=10)         # both hold their table at once
                seen[name] = con.execute("SELECT owner FROM mine").fetchall()
        except Exception as exc:                 # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert seen == {"a": [("a",)], "b": [("b",)]}


def test_the_pool_lends_one_database_again_and_again() -> None:
    with borrowed() as con:
        first = con.execute("SELECT current_setting('memory_limit')").fetchone()
    idle = duckdb_pool.idle_count()
    assert idle >= 1
    for _ in range(20):
        with borrowed():
            assert duckdb_pool.idle_count() == idle - 1    # taken from the pool, not made
    assert duckdb_pool.idle_count() == idle
    with borrowed() as con:
        assert con.execute("SELECT current_setting('memory_limit')").fetchone() == first


def test_a_use_has_its_settings_and_the_next_has_the_defaults(tmp_path: Path) -> None:
    def settings(con: duckdb.DuckDBPyConnection) -> tuple:
        return con.execute("SELECT current_setting('memory_limit'), current_setting('threads'), "
                           "current_setting('temp_directory')").fetchone()

    with duckdb.connect() as new:
        defaults = settings(new)
    spill = str(tmp_path / "spill.tmp")
    with borrowed({"memory_limit": "64MB", "threads": 1, "temp_directory": spill}) as con:
        limit, threads, folder = settings(con)
        assert limit.startswith("61") and threads == 1 and folder == spill
    with borrowed() as con:
        assert settings(con) == defaults


def test_a_file_is_detached_and_free_for_another_process_when_the_use_ends(tmp_path) -> None:
    path = tmp_path / "stage.duckdb"
    with file_connection(path, stage_config(10)) as con:
        con.execute("CREATE TABLE t AS SELECT range AS a FROM range(10)")
        con.register("frame", con.execute("SELECT 1 AS b").df())
    other = subprocess.run(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
         "c.execute('INSERT INTO t VALUES (10)'); print(c.execute('SELECT count(*) FROM t')"
         ".fetchone()[0])", str(path)], capture_output=True, text=True, timeout=60)
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == "11"      # it could write: this process holds no lock
    with borrowed() as con:
        assert con.execute("SELECT database_name FROM duckdb_databases() WHERE NOT internal"
                           ).fetchall() == [("memory",)]
        with pytest.raises(duckdb.CatalogException):
            con.execute("SELECT * FROM frame")       # the last use's frame went with it


def test_a_file_another_process_holds_fails_the_attach_and_spoils_nothing(tmp_path) -> None:
    path = tmp_path / "held.duckdb"
    duckdb.connect(str(path)).close()
    with held_open(path, read_only=False):
        with pytest.raises(duckdb.IOException, match="lock"):
            with file_connection(path, stage_config()):
                pass
    with file_connection(path, stage_config()) as con:      # free now: the same process opens it
        assert con.execute("SELECT 1").fetchone() == (1,)


def test_a_use_that_spilled_closes_its_database_and_removes_the_spill_folder(tmp_path) -> None:
    spill = tmp_path / "spill.tmp"
    with borrowed({"memory_limit": "32MB", "threads": 1, "temp_directory": str(spill)}) as con:
        con.execute("CREATE TEMP TABLE big AS SELECT md5(range::VARCHAR) AS h "
                    "FROM range(1500000) ORDER BY h")
        assert spill.is_dir()                  # it did spill
    assert not spill.exists()                  # closed, so DuckDB removed it
    with borrowed({"temp_directory": str(tmp_path / "next.tmp")}) as con:
        assert con.execute("SELECT current_setting('temp_directory')").fetchone()[0] \
            == str(tmp_path / "next.tmp")


def test_an_option_only_a_new_database_takes_gets_one(tmp_path) -> None:
    with borrowed({"allow_unsigned_extensions": True}) as con:
        assert con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchone() \
            == (True,)
    with borrowed() as con:
        assert con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchone() \
            == (False,)


def test_a_forked_child_makes_its_own_databases() -> None:
    with borrowed():
        pass
    assert duckdb_pool.idle_count() >= 1
    pid = os.fork()
    if pid == 0:                                # the child: none of the parent's is lent
        code = 0 if duckdb_pool.idle_count() == 0 else 1
        try:
            with borrowed() as con:
                code = code or (0 if con.execute("SELECT 7").fetchone() == (7,) else 1)
        except BaseException:                   # noqa: BLE001 - the exit code says it
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_use_with_several_threads_closes_its_database() -> None:
    with borrowed({"threads": 1}):
        pass
    idle = duckdb_pool.idle_count()
    with borrowed({"threads": 2}) as con:          # a big use (stage_threads): not kept
        assert con.execute("SELECT current_setting('threads')").fetchone() == (2,)
    assert duckdb_pool.idle_count() == idle - 1
    with borrowed({"threads": 1}):             # a small use gives its database back
        pass
    assert duckdb_pool.idle_count() == max(idle - 1, 1)


def test_an_idle_database_keeps_no_memory_and_the_next_use_gets_the_default(tmp_path) -> None:
    with duckdb.connect() as new:
        default = new.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    with file_connection(tmp_path / "small.duckdb", stage_config(10)) as con:
        con.execute("CREATE TABLE t AS SELECT range AS id, md5(range::VARCHAR) AS h "
                    "FROM range(100000)")
    idle = duckdb_pool._IDLE[-1].base       # the database that use gave back
    # A 1 MB limit while idle: DuckDB's buffer pool gives back what it kept for reuse.
    assert idle.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "976.5 KiB"
    with borrowed() as con:
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == default
