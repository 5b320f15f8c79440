"""The outcomes store on real DuckDB files, with a second process holding the file open."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from _analyst import held_open
from emergency_pipeline.analytics.store import Store


def _frame(n: int, run: str = "r1") -> pd.DataFrame:
    now = datetime.now(timezone.utc)
    return pd.DataFrame({"run_id": [run] * n, "phone_number": [f"+1201555{i:04d}" for i in range(n)],
                         "result": ["succeeded"] * n, "recorded_at": [now] * n})


def test_append_and_views(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "o.duckdb"))
    assert store.write("operation_outcomes", _frame(3)) == "database"
    assert store.write("operation_outcomes", _frame(2, "r2")) == "database"
    summary = store.query("SELECT run_id, desired_rows, succeeded FROM run_summary ORDER BY run_id")
    assert summary.values.tolist() == [["r1", 3, 3], ["r2", 2, 2]]
    latest = store.query("SELECT count(*) FROM latest_outcome_per_number").iloc[0, 0]
    assert latest == 3  # r2's two numbers are also r1's first two


def test_replace_mode_replaces(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "o.duckdb"))
    store.write("account_numbers", pd.DataFrame({"id": ["1", "2"]}), mode="replace")
    store.write("account_numbers", pd.DataFrame({"id": ["3"]}), mode="replace")
    assert store.query("SELECT id FROM account_numbers")["id"].tolist() == ["3"]


def test_a_reader_in_another_process_does_not_lose_writes(tmp_path: Path) -> None:
    db = tmp_path / "o.duckdb"
    store = Store(str(db), lock_wait_seconds=0.3)
    store.write("operation_outcomes", _frame(1, "before"))
    with held_open(db):
        started = time.monotonic()
        assert store.write("operation_outcomes", _frame(4, "during")) == "spool"
        assert time.monotonic() - started < 5
        # The pipeline still sees what it wrote (database read-only + spool).
        runs = store.read("operation_outcomes")["run_id"].value_counts().to_dict()
        assert runs == {"before": 1, "during": 4}
        assert store.flush() == 1  # still held: the spool stays
    assert store.flush() == 0
    counts = store.query("SELECT run_id, count(*) n FROM operation_outcomes GROUP BY 1 ORDER BY 1")
    assert counts.values.tolist() == [["before", 1], ["during", 4]]


def test_spool_is_applied_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "o.duckdb"
    store = Store(str(db), lock_wait_seconds=0.2)
    store.write("job_ledger", pd.DataFrame({"batch_id": ["b0"], "event": ["recorded"]}))
    with held_open(db):
        store.write("job_ledger", pd.DataFrame({"batch_id": ["b1"], "event": ["recorded"]}))
    spooled = list(store.spool_dir.glob("*.duckdb"))
    assert len(spooled) == 1
    kept = spooled[0].read_bytes()
    store.flush()
    # A crash after the commit but before the file was removed leaves the file behind:
    spooled[0].write_bytes(kept)
    store.flush()
    ids = store.query("SELECT batch_id FROM job_ledger ORDER BY batch_id")["batch_id"].tolist()
    assert ids == ["b0", "b1"]
    assert not list(store.spool_dir.glob("*.duckdb"))


def test_other_io_errors_are_not_mistaken_for_a_lock(tmp_path: Path) -> None:
    (tmp_path / "not_a_db.duckdb").write_text("this is not a database file")
    store = Store(str(tmp_path / "not_a_db.duckdb"), lock_wait_seconds=0.1)
    with pytest.raises(duckdb.Error):
        store.write("t", pd.DataFrame({"a": [1]}))
