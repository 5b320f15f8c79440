"""The scratch DuckDB of the frame helpers: a use leaves nothing behind, nested and concurrent
uses never see each other's tables, and a use that failed mid-transaction spoils nothing."""

import threading

import duckdb
import pytest

from emergency_pipeline.scratch_duckdb import _database, scratch_duckdb


def _leftovers() -> dict[str, list]:
    con = _database()
    return {
        "schemas": con.execute("SELECT schema_name FROM duckdb_schemas() WHERE database_name = "
                               "'memory' AND schema_name <> 'main'").fetchall(),
        "tables": con.execute("SELECT table_name FROM duckdb_tables()").fetchall(),
        "views": con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal")
                    .fetchall(),
    }


def test_a_use_leaves_no_table_view_or_schema() -> None:
    with scratch_duckdb() as con:
        con.execute("CREATE TABLE accepted AS SELECT 1 AS a")
        con.execute("CREATE TEMP TABLE plan_dup AS SELECT 2 AS b")
        con.execute("CREATE TEMP VIEW acc AS SELECT 3 AS c")
        assert con.execute("SELECT count(*) FROM accepted").fetchone() == (1,)
    assert _leftovers() == {"schemas": [], "tables": [], "views": []}
    with scratch_duckdb() as con:    # the same names again: nothing of the last use is seen
        con.execute("CREATE TABLE accepted AS SELECT 'x' AS other")
        assert con.execute("SELECT * FROM accepted").fetchall() == [("x",)]


def test_a_nested_use_gets_a_database_of_its_own() -> None:
    with scratch_duckdb() as outer:
        outer.execute("CREATE TABLE t AS SELECT 1 AS a")
        with scratch_duckdb() as inner:
            assert inner is not outer
            with pytest.raises(duckdb.CatalogException):
                inner.execute("SELECT * FROM t")
        assert outer.execute("SELECT a FROM t").fetchall() == [(1,)]


def test_a_use_that_failed_in_a_transaction_spoils_nothing() -> None:
    with pytest.raises(duckdb.CatalogException):
        with scratch_duckdb() as con:
            con.execute("BEGIN")
            con.execute("CREATE TABLE half AS SELECT 1 AS a")
            con.execute("SELECT * FROM missing")
    with scratch_duckdb() as con:
        assert con.execute("SELECT 42").fetchone() == (42,)
    assert _leftovers()["tables"] == []


def test_threads_never_share_a_database() -> None:
    barrier, seen, errors = threading.Barrier(2), {}, []

    def work(name: str) -> None:
        try:
            with scratch_duckdb() as con:
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
