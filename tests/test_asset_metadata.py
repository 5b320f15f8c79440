"""What the Dagster UI shows of the assets: a real run against the emulator and a real DuckDB
file, its materializations read back and compared with the tables the run wrote."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import AssetKey, TableMetadataValue
from dagster._core.definitions.metadata import MarkdownMetadataValue
from test_pipeline import NUMBERS, SEED, Setup

from emergency_pipeline.planning import report as plan_report
from emergency_pipeline.defs import metadata as md
from emergency_pipeline.emulator import Emulator

# asset -> the table its row count and column schema describe (None: the stage file's own).
TABLES = {"desired_emergency_settings": "desired_settings",
          "emergency_account_snapshot": None,
          "emergency_address_resolution": "address_resolutions",
          "emergency_settings_plan": "emergency_plan",
          "emergency_update_jobs": "emergency_jobs",
          "emergency_operation_outcomes": "operation_outcomes"}


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    with Emulator(numbers=NUMBERS, seed=SEED, api_key="KEY_pipeline_test_not_secret",
                  job_seconds=0.4) as emu:
        setup = Setup(tmp_path_factory.mktemp("meta"), emu)
        result = setup.run()
        materialized = {e.asset_key.to_user_string(): e.materialization.metadata
                        for e in result.get_asset_materialization_events()}
        yield setup, result.run_id, materialized


def _rows(setup: Setup, table: str, run_id: str) -> int:
    return int(setup.store.query(f"SELECT count(*) AS n FROM {table} WHERE run_id = ?",
                                 [run_id])["n"].iloc[0])


def test_each_asset_reports_its_rows_the_duckdb_file_and_its_run(applied) -> None:
    setup, run_id, materialized = applied
    assert set(materialized) == set(TABLES)
    for asset, table in TABLES.items():
        meta = materialized[asset]
        assert meta["duckdb.database"].value == str(Path(setup.database).resolve()), asset
        stage_file = Path(meta["tables"].value)
        assert stage_file.is_file() and run_id in stage_file.parts, asset
        assert meta["run"].run_id == run_id
        if table is None:   # the snapshot: the numbers listed into the run's stage file
            with duckdb.connect(str(stage_file), read_only=True) as con:
                rows = con.execute("SELECT count(*) FROM numbers").fetchall()[0][0]
            assert rows == NUMBERS
        else:
            rows = _rows(setup, table, run_id)
            # The SQL shown runs on the file shown and gives the rows counted.
            assert len(setup.store.query(meta[f"sql_{table}"].value)) == rows, asset
        assert meta["dagster/row_count"].value == rows, asset
        # Tables, never markdown that the UI hides behind "[Show Markdown]".
        assert not [k for k, v in meta.items() if isinstance(v, MarkdownMetadataValue)], asset
    assert materialized["emergency_operation_outcomes"]["dagster/row_count"].value > 100
    assert materialized["emergency_update_jobs"]["dagster/row_count"].value >= 1


def test_the_plan_table_groups_every_number_by_action_and_target(applied) -> None:
    setup, run_id, materialized = applied
    meta = materialized["emergency_settings_plan"]
    table = meta["plan"]
    assert isinstance(table, TableMetadataValue)
    assert [c.name for c in table.schema.columns] == list(md.PLAN_TABLE)
    plan = setup.store.query("SELECT * FROM emergency_plan WHERE run_id = ?", [run_id])
    addresses = setup.store.query("SELECT * FROM account_addresses")
    rows = [r.data for r in table.records]
    assert meta["plan_groups"].value == len(rows)   # the demo-sized plan fits in the table
    assert sum(r["numbers"] for r in rows) == len(plan)
    # The groups, counted here from the table the run wrote.
    changes = plan[plan["action"].isin(["enable", "change_address", "disable"])]
    want = changes.groupby(["action", changes["target_address_id"].fillna("")]).size()
    got = {(r["action"], r["target_address_id"] or ""): r["numbers"] for r in rows
           if r["action"] in ("enable", "change_address", "disable")}
    assert got == want.to_dict()
    skips = plan.loc[plan["action"].eq("skip"), "reason"].value_counts().to_dict()
    assert {r["target_or_reason"]: r["numbers"] for r in rows if r["action"] == "skip"} == skips
    streets = dict(zip(addresses["id"], addresses["street_address"]))
    for r in rows:
        named = [n for n in (r["first_numbers"] or "").split(", ") if n]
        assert r["and_more"] == (0 if r["action"] == "noop" else r["numbers"] - len(named))
        assert len(named) <= md.PLAN_NUMBERS_SHOWN
        if r["action"] in ("enable", "change_address") and r["target_address_id"] in streets:
            # The address as a person reads it, beside its id.
            assert streets[r["target_address_id"]] in r["target_or_reason"], r
    assert any(r["and_more"] > 0 for r in rows)
    # The full list: every planned number, in the CSV the table points at; the steps after
    # the plan point at it too.
    full = pd.read_csv(meta["full_list"].value, dtype=str)
    # The same columns and order as the CLI's list (plan_report.full_list).
    want = plan_report.full_list(plan, addresses)
    assert list(full.columns) == plan_report.LIST_COLUMNS and len(full) == len(plan)
    assert list(full["phone_number"].fillna("")) == list(want["phone_number"].fillna(""))
    assert list(full["action"]) == list(want["action"])
    for later in ("emergency_update_jobs", "emergency_operation_outcomes"):
        assert materialized[later]["plan_full_list"].value == meta["full_list"].value
        assert materialized[later]["sql_emergency_plan"].value == md.run_sql("emergency_plan",
                                                                              run_id)


def test_samples_are_tables_with_short_rows(applied) -> None:
    setup, run_id, materialized = applied
    rejections = materialized["desired_emergency_settings"]["rejections_sample"]
    want = setup.store.query("SELECT reason FROM desired_rejections WHERE run_id = ?", [run_id])
    assert 0 < len(rejections.records) == min(len(want), md.SAMPLE_ROWS)
    # Reasons in full: the UI shows the same text the table holds.
    assert {r.data["reason"] for r in rejections.records} <= set(want["reason"])
    batches = materialized["emergency_update_jobs"]["batches"]
    assert [c.name for c in batches.schema.columns] == ["job_id", "job_status", "state",
                                                         "numbers", "enabled", "address_id"]
    jobs = setup.store.query("SELECT job_id, numbers FROM emergency_jobs WHERE run_id = ?",
                             [run_id])
    assert len(batches.records) == min(len(jobs), md.SAMPLE_ROWS)
    assert {(r.data["job_id"], r.data["numbers"]) for r in batches.records} <= set(
        jobs.itertuples(index=False, name=None))


def test_asset_specs_carry_kinds_owners_tags_and_the_tables_columns(applied) -> None:
    setup, run_id, materialized = applied
    graph = setup.defs.resolve_asset_graph()
    for asset, table in TABLES.items():
        node = graph.get(AssetKey(asset))
        assert "duckdb" in node.kinds and node.owners == md.OWNERS, asset
        assert node.tags.get("domain") == "e911", asset
        declared = [c.name for c in node.metadata["dagster/column_schema"].columns]
        if table is None:
            with duckdb.connect(materialized[asset]["tables"].value, read_only=True) as con:
                actual = [r[0] for r in con.execute("DESCRIBE numbers").fetchall()]
        else:
            actual = list(setup.store.query(f"SELECT * FROM {table} LIMIT 0").columns)
        # The schema the UI shows is the table's, column for column.
        assert sorted(declared) == sorted(actual), asset
    touching = {a for a in TABLES if "telnyx" in graph.get(AssetKey(a)).kinds}
    assert touching == {"emergency_account_snapshot", "emergency_address_resolution",
                        "emergency_update_jobs"}


def test_a_plan_only_run_shows_the_batches_it_would_submit(tmp_path: Path) -> None:
    with Emulator(numbers=NUMBERS, seed=SEED, api_key="KEY_pipeline_test_not_secret") as emu:
        setup = Setup(tmp_path, emu)
        result = setup.run(apply=False)
    meta = {e.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()}
    jobs = meta["emergency_update_jobs"]
    assert jobs["dagster/row_count"].value == 0 and jobs["applied"].value is False
    rows = [r.data for r in jobs["batches"].records]
    assert len(rows) == jobs["batches_planned"].value > 0
    plan = setup.store.query("SELECT * FROM emergency_plan WHERE run_id = ?", [result.run_id])
    changes = plan["action"].isin(["enable", "change_address", "disable"])
    assert sum(r["numbers"] for r in rows) == changes.sum()
    assert Path(jobs["plan_full_list"].value).is_file()
