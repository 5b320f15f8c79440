"""The production deployment of deploy/dagster.yaml, tested (issue 25, item 5): a real
PostgreSQL holds Dagster's storage and the accounts' safety store; the webserver and the
daemon run on it; two accounts (two components, two emulators) apply at the same time, and a
backfill of three sheets on one account applies one at a time: the queue starts two apply runs
per account, and the second waits on the account lease."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psycopg
import pytest

from _accounts_project import accounts_project
from _deployment import Deployment
from emergency_pipeline.defs.run_tags import ACCOUNT_TAG, APPLY_TAG
from emergency_pipeline.emulator import Emulator
from emergency_pipeline.samples.demo_sheet import write_sample
from emergency_pipeline.analytics.store import Store

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = {"acme": ("KEY_acme_deploy_not_secret", 400, 31),
            "globex": ("KEY_globex_deploy_not_secret", 400, 32)}


def _times(dep: Deployment, run_id: str) -> tuple[float, float]:
    data = dep.gql("query($id: ID!) { runOrError(runId: $id) { ... on Run { startTime endTime } } }",
                   id=run_id)["runOrError"]
    return data["startTime"], data["endTime"]


def _lease_span(dep: Deployment, run_id: str) -> tuple[float, float]:
    """From the end of the step that takes the account lease to the end of the one that
    releases it."""
    steps = dep.gql("query($id: ID!) { runOrError(runId: $id) { ... on Run { "
                    "stepStats { stepKey endTime } } } }", id=run_id)["runOrError"]["stepStats"]
    end = {s["stepKey"].split("__")[-1]: s["endTime"] for s in steps}
    return end["emergency_account_snapshot"], end["emergency_operation_outcomes"]


@pytest.mark.daemon
def test_two_accounts_apply_at_once_and_a_backfill_queues_on_postgres(tmp_path, pg_server):
    dagster_db, state_db = pg_server.new_database(), pg_server.new_database()
    # Dagster's storage through psycopg2 (dagster-postgres's own driver; SQLAlchemy 2.1 would
    # pick psycopg 3 for a bare postgresql:// URL, whose connections the webserver lost).
    dagster_url = dagster_db.replace("postgresql://", "postgresql+psycopg2://", 1)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    emulators = {name: Emulator(numbers=n, seed=seed, api_key=key, job_seconds=1.0).start()
                 for name, (key, n, seed) in ACCOUNTS.items()}
    try:
        project = accounts_project(tmp_path / "project", {
            name: {"base_url": emu.base_url, "duckdb": str(tmp_path / f"{name}.duckdb"),
                   "inbox": None, "schedule": None}
            for name, emu in emulators.items()})
        env = {**os.environ, "PYTHONPATH": str(project), "DAGSTER_PG_URL": dagster_url,
               "EMERGENCY_PIPELINE_STATE_URL": state_db,
               **{f"TELNYX_API_KEY_{n.upper()}": k for n, (k, _, _) in ACCOUNTS.items()}}
        sheets = {name: str(write_sample(tmp_path / f"{name}.csv", n, seed, rows=60))
                  for name, (_, n, seed) in ACCOUNTS.items()}
        parts = [str(write_sample(tmp_path / f"acme_part{i}.csv", 400, 31, rows=20 + 10 * i))
                 for i in range(3)]
        with Deployment(home, env, cwd=project) as dep:
            # 1. An apply run per account, launched together; and 2. a backfill of three
            #    sheets on one account, launched right after: its apply runs queue behind
            #    acme's first run and go one at a time. The backfill is launched before the
            #    first runs end because the daemon looks at backfills only every 30 s
            #    (Dagster's fixed BackfillDaemon interval): that wait overlaps the runs.
            runs = {}
            for name, sheet in sheets.items():
                dep.add_partition(f"{name}__desired_state_sources", sheet)
                runs[name] = dep.launch(f"{name}__apply_emergency_settings", sheet)
            for part in parts:
                dep.add_partition("acme__desired_state_sources", part)
            backfill = dep.backfill("acme__apply_emergency_settings", parts)
            for name, run_id in runs.items():
                assert dep.wait_run(run_id) == "SUCCESS", name
            (a0, a1), (g0, g1) = (_times(dep, runs[n]) for n in ("acme", "globex"))
            assert a0 < g1 and g0 < a1, "the two accounts' apply runs did not overlap"
            for name, run_id in runs.items():
                assert emulators[name].stats()["jobs_created"] >= 1, name
                out = Store(str(tmp_path / f"{name}.duckdb")).query(
                    "SELECT DISTINCT run_id, account FROM operation_outcomes WHERE run_id = ?",
                    [run_id])
                assert list(out["account"]) == [name], out

            done = dep.wait_backfill(backfill, 3)
            assert sorted(r["status"] for r in done) == ["SUCCESS"] * 3, done
            assert all(r["tags"][APPLY_TAG] == "acme" == r["tags"][ACCOUNT_TAG] for r in done)
            # acme's four apply runs (the first and the backfill's three): the queue starts
            # two at a time, so their processes overlap, but they apply one at a time: each
            # took the lease (its snapshot step ended) only after the one before released it
            # (its outcomes step ended).
            ids = [runs["acme"], *(r["runId"] for r in done)]
            spans = sorted(_times(dep, run_id) for run_id in ids)
            assert any(spans[i][1] > spans[i + 1][0] for i in range(3)), \
                f"the queue never started an apply run beside another: {spans}"
            held = sorted(_lease_span(dep, run_id) for run_id in ids)
            assert all(held[i][1] <= held[i + 1][0] + 1.0 for i in range(3)), \
                f"apply runs of one account applied at the same time: {held}"
            landed = Store(str(tmp_path / "acme.duckdb")).query(
                "SELECT source, count(*) AS n FROM operation_outcomes GROUP BY source")
            assert set(parts) <= set(landed["source"]), landed
    finally:
        for emu in emulators.values():
            emu.stop()
    # Dagster's storage and the safety store were the PostgreSQL databases.
    with psycopg.connect(dagster_db) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 5
    with psycopg.connect(state_db) as con:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert tables, "the safety store made no table in PostgreSQL"
