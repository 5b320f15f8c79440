"""Regressions for bugs the soak found (reliability/soak.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from emergency_pipeline.analytics.store import Store


def test_appending_an_empty_frame_to_an_existing_table(tmp_path: Path) -> None:
    # A second run of a sheet without bad rows appends no desired_rejections: it used to fail
    # the run with DuckDB's "connection has an unfinished result" (ResourceInUseException).
    store = Store(str(tmp_path / "o.duckdb"))
    store.write("t", pd.DataFrame({"a": [1]}))
    assert store.write("t", pd.DataFrame({"a": pd.Series([], dtype="int64")})) == "database"
    assert store.query("SELECT count(*) AS n FROM t")["n"].iloc[0] == 1


def test_checks_pass_on_a_persistent_instance_with_several_sources(tmp_path: Path) -> None:
    # With a persistent DAGSTER_HOME (fs IO manager), unpartitioned checks loaded all
    # partitions of their asset as a dict, and every run of a second source failed.
    from dagster import DagsterInstance
    from dagster_duckdb import DuckDBResource

    from emergency_pipeline.definitions import build_definitions
    from emergency_pipeline.launch import run_job
    from emergency_pipeline.defs.resources import TelnyxResource
    from emergency_pipeline.emulator import Emulator
    from emergency_pipeline.samples.demo_sheet import write_sample

    key = "KEY_reliability_test"
    with Emulator(numbers=300, seed=4, api_key=key, job_seconds=0.2) as emu, \
            DagsterInstance.local_temp(str(_mkdir(tmp_path / "home"))) as instance:
        defs = build_definitions({
            "telnyx": TelnyxResource(api_key=key, base_url=emu.base_url),
            "duckdb": DuckDBResource(database=str(tmp_path / "o.duckdb"))})
        for name, seed in (("a.csv", 4), ("b.csv", 5), ("a.csv", 4)):
            source = str(write_sample(tmp_path / name, 300, seed, rows=40))
            result = run_job(source, False, defs=defs, instance=instance)
            assert result.success, [e.message for e in result.all_events if e.is_failure]


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
