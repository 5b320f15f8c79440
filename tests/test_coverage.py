"""The E911 coverage report (issue 27): numbers changed behind the pipeline's back through the
emulator's control routes, and each category counts them exactly."""

from __future__ import annotations

import csv
from pathlib import Path

import httpx
import pytest
from dagster import DagsterInstance
from dagster_duckdb import DuckDBResource

from emergency_pipeline.definitions import build_definitions
from emergency_pipeline.defs.e911_coverage import COVERAGE_JOB
from emergency_pipeline.launch import run_job
from emergency_pipeline.defs.resources import TelnyxResource
from emergency_pipeline.emulator import Emulator
from emergency_pipeline.analytics.store import Store
from test_cli_run import Cli

KEY = "KEY_coverage_test_not_secret"
NUMBERS = 300


class Account:
    def __init__(self, tmp_path: Path, emu: Emulator) -> None:
        self.emu, self.tmp = emu, tmp_path
        self.database = str(tmp_path / "outcomes.duckdb")
        self.defs = build_definitions({
            "telnyx": TelnyxResource(api_key=KEY, base_url=emu.base_url, account_name="acme"),
            "duckdb": DuckDBResource(database=self.database)})
        self.instance = DagsterInstance.ephemeral()
        self.store = Store(self.database)

    def patch(self, what: str, key: str, **body) -> None:
        r = httpx.patch(f"{self.emu.root_url}/_emulator/{what}/{key}", json=body)
        assert r.status_code == 200, r.text

    def coverage(self) -> tuple[dict[str, int], object]:
        result = self.defs.resolve_job_def(COVERAGE_JOB).execute_in_process(
            instance=self.instance, raise_on_error=False)
        assert result.success
        (event,) = result.get_asset_materialization_events()
        meta = event.materialization.metadata
        keys = ("numbers", "e911_enabled", "active_without_e911", "unmanaged", "drift",
                "address_not_validated")
        return {k: meta[k].value for k in keys}, result

    def expected(self, managed: set[str], drift: set[str], unvalidated: str | None) -> dict:
        live = list(self.emu.numbers())
        return {"numbers": len(live),
                "e911_enabled": sum(n["emergency_enabled"] for n in live),
                "active_without_e911": sum(n["status"] == "active" and not
                                           n["emergency_enabled"] for n in live),
                "unmanaged": len(live) - len(managed), "drift": len(drift),
                "address_not_validated": sum(n["emergency_enabled"] and
                                             n["emergency_address_id"] == unvalidated
                                             for n in live)}


@pytest.fixture
def account(tmp_path: Path):
    with Emulator(numbers=NUMBERS, seed=9, api_key=KEY, job_seconds=0.2) as emu:
        yield Account(tmp_path, emu)


def test_each_category_counts_what_changed_behind_the_pipelines_back(account: Account) -> None:
    emu = account.emu
    x, y = (a["id"] for a in emu.addresses()[:2])
    pool = [n for n in emu.numbers() if n["status"] == "active"
            and n["emergency_status"] in ("active", "disabled")]
    sheet_numbers = pool[:30]
    sheet = account.tmp / "desired.csv"
    with sheet.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone_number", "emergency_enabled", "emergency_address_id"])
        for n in sheet_numbers:
            w.writerow([n["phone_number"], "true", x])
    result = run_job(str(sheet), True, None, defs=account.defs,
                     instance=account.instance)
    assert result.success
    emu.finish_jobs()
    managed = {n["id"] for n in sheet_numbers}

    before, _ = account.coverage()
    assert before == account.expected(managed, set(), None)
    assert before["drift"] == 0 and before["unmanaged"] == NUMBERS - 30

    # Behind the pipeline's back, as in the portal:
    m1, m2 = sheet_numbers[0]["id"], sheet_numbers[1]["id"]
    account.patch("numbers", m1, emergency_enabled=False, emergency_address_id=None)
    account.patch("numbers", m2, emergency_address_id=y)                # moved
    u1 = next(n for n in pool[30:] if n["emergency_enabled"])["id"]
    account.patch("numbers", u1, emergency_enabled=False, emergency_address_id=None)
    u2 = next(n for n in pool[30:] if not n["emergency_enabled"])["id"]
    account.patch("numbers", u2, status="port-pending")                 # no longer active
    account.patch("addresses", y, validate_address=False)

    after, run = account.coverage()
    assert after == account.expected(managed, {m1, m2}, y)
    assert after["active_without_e911"] == before["active_without_e911"] + 2 - 1
    assert after["address_not_validated"] >= 1
    # The views name the numbers; the check warns.
    drift = account.store.query("SELECT number_id FROM coverage_drift")["number_id"]
    assert set(drift) == {m1, m2}
    off = set(account.store.query("SELECT number_id FROM coverage_active_without_e911"
                                  )["number_id"])
    assert {m1, u1} <= off and u2 not in off
    assert set(account.store.query("SELECT number_id FROM coverage_unmanaged")["number_id"]
               ) == {n["id"] for n in emu.numbers()} - managed
    assert len(account.store.query("SELECT * FROM coverage_address_not_validated")) \
        == after["address_not_validated"]
    (check,) = run.get_asset_check_evaluations()
    assert not check.passed and "2 drifted" in check.description
    # The refreshes' counts are kept; the latest coverage replaces the last.
    assert len(account.store.query("SELECT * FROM e911_coverage_runs")) == 2
    assert len(account.store.query("SELECT * FROM e911_coverage")) == NUMBERS
    row = account.store.query("SELECT * FROM e911_coverage WHERE number_id = ?", [m2]).iloc[0]
    assert row["managed_by"] == str(sheet) and row["last_applied_address_id"] == x
    assert row["emergency_address_id"] == y and row["address_validated"] == False  # noqa: E712


def test_the_coverage_command_prints_the_counts_and_writes_the_report(tmp_path: Path,
                                                                     emulator) -> None:
    cli = Cli(tmp_path, emulator.base_url)
    done = cli("coverage", "--quiet", "--out", str(tmp_path / "filed"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"numbers                {len(list(emulator.numbers()))}" in done.stdout
    assert "active_without_e911" in done.stdout and "unmanaged" in done.stdout
    page = next((tmp_path / "filed").glob("*.html")).read_text()
    assert "E911 coverage of account 127.0.0.1:" in page and "unmanaged" in page
    rows = list(csv.DictReader(next((tmp_path / "filed").glob("*.csv")).open()))
    assert rows and all(r["unmanaged"] == "true" for r in rows)   # no sheet ever ran
    assert emulator.stats()["jobs_created"] == 0                      # read-only


def test_the_readme_lists_every_column_of_every_history_table_and_view(account: Account
                                                                       ) -> None:
    test_each_category_counts_what_changed_behind_the_pipelines_back(account)
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    rows = {line.split("`")[1]: line for line in readme.splitlines()
            if line.startswith("| `")}
    tables = account.store.query(
        "SELECT table_name FROM information_schema.tables WHERE table_name NOT LIKE '\\_%' "
        "ESCAPE '\\'")["table_name"]
    missing = []
    for table in tables:
        line = next((v for k, v in rows.items() if table in v.split("|")[1]), None)
        if line is None:
            missing.append(table)
            continue
        if "the columns of `" in line or table == "account_addresses":   # said once
            continue
        cols = account.store.query(f"DESCRIBE {table}")["column_name"]
        missing += [f"{table}.{c}" for c in cols if f"`{c}`" not in line]
    assert not missing, missing
