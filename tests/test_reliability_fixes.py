"""Regressions for bugs the soak found (reliability/soak.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from emergency_pipeline.store import Store


def test_appending_an_empty_frame_to_an_existing_table(tmp_path: Path) -> None:
    # A second run of a sheet without bad rows appends no desired_rejections: it used to fail
    # the run with DuckDB's "connection has an unfinished result" (ResourceInUseException).
    store = Store(str(tmp_path / "o.duckdb"))
    store.write("t", pd.DataFrame({"a": [1]}))
    assert store.write("t", pd.DataFrame({"a": pd.Series([], dtype="int64")})) == "database"
    assert store.query("SELECT count(*) AS n FROM t")["n"].iloc[0] == 1
