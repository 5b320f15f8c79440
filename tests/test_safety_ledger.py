"""The job and address ledger on both stores (a SQLite file, a real PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from emergency_pipeline.applying.number_result import NumberResult
from emergency_pipeline.planning.batching import batch_of
from emergency_pipeline.safety_store import (
    OPEN_STATES, BatchClose, LeaseLost, held, open_safety_store,
)

ACCOUNT = "http://127.0.0.1:8080/v2#0123456789abcdef"
OTHER = "https://api.telnyx.com/v2#fedcba9876543210"
OUT = "/srv/e911/data/emergency.duckdb"


@pytest.fixture
def store(store_url):
    opened = open_safety_store(store_url, stale_after=3, dead_pid_grace=1)
    yield opened
    opened.close()


def _wave(n=3, start=0, kind="id"):
    return [batch_of([str(100 * (start + i) + j) for j in range(5)], True, f"addr-{i}", kind)
            for i in range(n)]


def test_a_batch_through_its_states(store):
    ledger = store.ledger
    wave = _wave()
    before = store.now()
    telnyx_at = datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=timezone.utc)
    ledger.record(wave, run_id="run-a", account=ACCOUNT, source="sheet.xlsx",
                  outcomes_db=OUT, detail="wave 1", telnyx_recorded_at=telnyx_at)
    after = store.now()
    opened = ledger.open_batches(ACCOUNT)
    assert [b.batch for b in opened] == sorted(wave, key=lambda b: b.batch_id)
    first = opened[0]
    assert (first.run_id, first.account, first.source, first.outcomes_db, first.state) == (
        "run-a", ACCOUNT, "sheet.xlsx", OUT, "recorded")
    assert before <= first.recorded_at <= after and first.submitted_at is None
    assert first.telnyx_recorded_at == telnyx_at
    assert ledger.open_batches(OTHER) == []

    keys = [b.key for b in opened]
    ledger.submitted([(keys[0], "job-1", "pending", None)], by_run="run-a")
    ledger.move([keys[1]], "unanswered", by_run="run-a", detail="no answer")
    ledger.move([keys[2]], "abandoned", by_run="run-b", detail="never made")
    states = {b.key: b for b in ledger.batches_of_run("run-a")}
    assert [states[k].state for k in keys] == ["submitted", "unanswered", "abandoned"]
    assert states[keys[0]].job_id == "job-1" and states[keys[0]].submitted_at >= first.recorded_at
    assert {b.key for b in ledger.open_batches(ACCOUNT)} == set(keys[:2])
    assert ledger.job_ids(ACCOUNT) == {"job-1"} and ledger.job_ids(OTHER) == set()

    results = [NumberResult(i, "applied", job_id="job-1", finished_at="t")
               for i in states[keys[0]].batch.identifiers]
    ledger.close([BatchClose(keys[0], "finished", "job-1", "success", results)], by_run="run-b")
    ledger.close([BatchClose(keys[0], "finished", "job-1", "success", results)],
                 by_run="run-b")  # again
    got = ledger.results([keys[0]])
    assert [r.identifier for r in got] == sorted(states[keys[0]].batch.identifiers)
    assert got[0].result == "applied" and got[0].reason is None
    assert (got[0].job_id, got[0].finished_at, got[0].run_id, got[0].batch_id) == (
        "job-1", "t", *keys[0])
    assert [b.key for b in ledger.unpublished(ACCOUNT, exclude_run="run-b")] == [keys[0]]
    assert ledger.unpublished(ACCOUNT, exclude_run="run-a") == []
    ledger.mark_published([keys[0]])
    assert ledger.unpublished(ACCOUNT, exclude_run="run-b") == []
    assert set(OPEN_STATES) == {"recorded", "unanswered", "submitted"}
    with pytest.raises(ValueError, match="close"):
        ledger.move([keys[1]], "finished", by_run="run-a")


def test_recording_again_reopens_and_telnyx_time_is_optional(store):
    ledger = store.ledger
    (batch,) = _wave(1)
    ledger.record([batch], run_id="r", account=ACCOUNT, source=None, outcomes_db=None)
    ledger.move([("r", batch.batch_id)], "abandoned", by_run="r")
    ledger.record([batch], run_id="r", account=ACCOUNT, source=None, outcomes_db=None)
    (again,) = ledger.open_batches(ACCOUNT)
    assert again.state == "recorded" and again.telnyx_recorded_at is None


def test_record_with_the_fence_writes_only_while_the_token_is_current(store):
    lease, ledger = store.lease, store.ledger
    with pytest.raises(LeaseLost):
        with held(lease, ACCOUNT, "ours", wait_seconds=0, heartbeat_seconds=0.2,
                  fence_seconds=1.0) as fence:
            ledger.record(_wave(2), run_id="ours", account=ACCOUNT, source=None,
                          outcomes_db=OUT, fence=fence)
            assert len(ledger.batches_of_run("ours")) == 2
            with pytest.raises(ValueError, match="its own account"):
                ledger.record(_wave(1, start=20), run_id="ours", account=OTHER, source=None,
                              outcomes_db=OUT, fence=fence)
            taker = lease.acquire(ACCOUNT, "theirs", wait_seconds=0,
                                  is_run_finished=lambda run: True)
            assert taker.took_over.run_id == "ours" and not taker.took_over.proven_dead
            with pytest.raises(LeaseLost, match="taken over by run theirs"):
                ledger.record(_wave(2, start=10), run_id="ours", account=ACCOUNT,
                              source=None, outcomes_db=OUT, fence=fence)
            fence.confirm()
    assert len(ledger.batches_of_run("ours")) == 2  # the second wave wrote nothing
    # The taker sees the first wave as open, for it to follow or look up.
    assert {b.run_id for b in ledger.open_batches(ACCOUNT)} == {"ours"}


def test_the_ledger_keeps_the_newest_target_per_number(store):
    ledger = store.ledger
    ledger.defer_verification("acct", "run-1", 100.0, [("1", "+1", True, "A"),
                                                       ("2", "+2", False, None)])
    ledger.defer_verification("other", "run-x", 100.0, [("1", "+1", True, "Z")])
    ledger.defer_verification("acct", "run-2", 200.0, [("1", "+1", True, "B")])
    # An older run's check evaluated again later never brings back its older target.
    assert ledger.defer_verification("acct", "run-1", 100.0, [("1", "+1", True, "A")]) == 0
    rows = {r["number_id"]: r for r in ledger.to_verify("acct", recorded_before=1e12)}
    assert (rows["1"]["target_address_id"], rows["1"]["run_id"]) == ("B", "run-2")
    assert rows["2"]["target_enabled"] is False and rows["2"]["target_address_id"] is None
    # A snapshot taken before run-2 recorded cannot show its target.
    assert [r["number_id"] for r in ledger.to_verify("acct", recorded_before=150.0)] == ["2"]
    # Forgetting a checked row leaves a newer one for the same number.
    assert ledger.verified("acct", [("1", 100.0), ("2", 100.0)]) == 1
    assert [r["run_id"] for r in ledger.to_verify("acct", 1e12)] == ["run-2"]
    assert [r["target_address_id"] for r in ledger.to_verify("other", 1e12)] == ["Z"]
    assert ledger.verified("acct", [("1", float("inf"))]) == 1


def test_a_new_job_for_a_number_supersedes_its_pending_verification(store):
    """A job still in flight when its run ended would land a new target: the older target
    left to verify must not then be reported as disagreeing."""
    ledger = store.ledger
    ledger.defer_verification("acct", "run-1", 100.0, [(str(i), f"+{i}", True, "A")
                                                       for i in range(1, 1205)])
    ledger.defer_verification("other", "run-x", 100.0, [("2", "+2", True, "Z")])
    many = batch_of([str(i) for i in range(5, 1205)], False, None, "id")  # > one IN list
    ledger.record([batch_of(["2"], False, None, "id"), batch_of(["+3"], True, "B", "e164"),
                   many], run_id="run-2", account="acct", source="s.csv", outcomes_db=None)
    assert sorted(r["number_id"] for r in ledger.to_verify("acct", 1e12)) == ["1", "4"]
    # Another account's row for the same id stays.
    assert [r["number_id"] for r in ledger.to_verify("other", 1e12)] == ["2"]
    # Nothing pending: recording a wave leaves the table alone.
    ledger.verified("acct", [("1", 100.0), ("4", 100.0)])
    ledger.record([batch_of(["1"], False, None, "id")], run_id="run-3", account="acct",
                  source="s.csv", outcomes_db=None)
    assert ledger.to_verify("acct", 1e12) == []


def test_address_intents_are_per_account(store):
    ledger = store.ledger
    ledger.record_address("place-1", "crashed", "recorded", {"city": "X"}, account=ACCOUNT)
    ledger.record_address("place-2", "run", "recorded", {}, account=ACCOUNT)
    ledger.record_address("place-2", "run", "created", {}, address_id="a-2", account=ACCOUNT)
    ledger.record_address("place-1", "other-run", "recorded", {}, account=OTHER)
    ledger.record_address("place-1", "other-run", "created", {}, account=OTHER)
    assert ledger.open_address_intents(ACCOUNT) == {"place-1"}
    assert ledger.open_address_intents(OTHER) == set()
    ledger.record_address("place-1", "resumer", "adopted", {}, address_id="a-1",
                          account=ACCOUNT)
    assert ledger.open_address_intents(ACCOUNT) == set()


def test_times_are_the_store_clock(store):
    ledger = store.ledger
    ledger.record(_wave(1), run_id="r", account=ACCOUNT, source=None, outcomes_db=None)
    (batch,) = ledger.open_batches(ACCOUNT)
    assert abs(store.now() - batch.recorded_at) < timedelta(minutes=1)
    assert batch.recorded_at.tzinfo is not None


# The old layout (emergency_pipeline/state/ledger.py before the safety store), as written.
OLD_SCHEMA = """
CREATE TABLE batches (run_id TEXT NOT NULL, batch_id TEXT NOT NULL, account TEXT NOT NULL,
    source TEXT, outcomes_db TEXT, emergency_enabled INTEGER, emergency_address_id TEXT,
    id_kind TEXT, identifiers TEXT, number_count INTEGER, state TEXT NOT NULL, job_id TEXT,
    job_status TEXT, detail TEXT, recorded_at REAL, submitted_at REAL, closed_at REAL,
    published_at REAL, PRIMARY KEY (run_id, batch_id));
CREATE TABLE batch_events (run_id TEXT, batch_id TEXT, by_run TEXT, event TEXT, job_id TEXT,
    job_status TEXT, detail TEXT, at REAL);
CREATE TABLE number_results (run_id TEXT NOT NULL, batch_id TEXT NOT NULL,
    identifier TEXT NOT NULL, result TEXT, reason TEXT, job_id TEXT, job_status TEXT,
    error_code TEXT, error_title TEXT, error_detail TEXT, error_pointer TEXT, finished_at TEXT,
    PRIMARY KEY (run_id, batch_id, identifier));
CREATE TABLE to_verify (account TEXT NOT NULL, number_id TEXT NOT NULL, phone_number TEXT,
    target_enabled INTEGER NOT NULL, target_address_id TEXT, run_id TEXT NOT NULL,
    recorded_at REAL NOT NULL, PRIMARY KEY (account, number_id));
CREATE TABLE address_events (address_key TEXT, run_id TEXT, event TEXT, address_id TEXT,
    fields TEXT, detail TEXT, at REAL);
"""


def _old_ledger(path, wave):
    import json
    import sqlite3
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as con:
        con.executescript(OLD_SCHEMA)
        con.executemany("INSERT INTO batches (run_id, batch_id, account, source, outcomes_db, "
                        "emergency_enabled, emergency_address_id, id_kind, identifiers, "
                        "number_count, state, recorded_at) VALUES (?,?,?,?,?,1,?,?,?,?,?,?)",
                        [("killed", b.batch_id, ACCOUNT, "s.csv", OUT, b.emergency_address_id,
                          b.id_kind, json.dumps(list(b.identifiers)), len(b.identifiers),
                          state, 1.0e9) for b, state in zip(wave, ("finished", "recorded"))])
        con.execute("INSERT INTO batch_events VALUES ('killed', ?, 'killed', 'recorded', "
                    "NULL, NULL, NULL, 1.0e9)", (wave[0].batch_id,))
        con.execute("INSERT INTO number_results (run_id, batch_id, identifier, result) "
                    "VALUES ('killed', ?, ?, 'applied')",
                    (wave[0].batch_id, wave[0].identifiers[0]))
        con.execute("INSERT INTO to_verify VALUES (?, '9', '+9', 1, 'A', 'older', 100.0)",
                    (ACCOUNT,))
        con.execute("INSERT INTO address_events VALUES ('place', 'killed', 'recorded', NULL, "
                    "'{}', NULL, 1.0e9)")
    return path


def test_an_old_ledger_file_is_imported_once(store, tmp_path):
    wave = _wave(2)
    old = _old_ledger(tmp_path / "emergency.state" / "ledger.sqlite", wave)
    ledger = store.ledger
    assert ledger.import_legacy(old, ACCOUNT) == 2
    assert ledger.import_legacy(old, ACCOUNT) is None  # once
    assert ledger.import_legacy(tmp_path / "missing.sqlite", ACCOUNT) is None
    (still_open,) = ledger.open_batches(ACCOUNT)
    assert still_open.key == ("killed", wave[1].batch_id) and still_open.outcomes_db == OUT
    assert still_open.batch == wave[1]
    assert [r.result for r in ledger.results([("killed", wave[0].batch_id)])] == ["applied"]
    assert [r["number_id"] for r in ledger.to_verify(ACCOUNT, 1e12)] == ["9"]
    assert ledger.open_address_intents(ACCOUNT) == {"place"}
    # An old file's batch already in the store (a row written since) is kept as it is.
    ledger.move([still_open.key], "abandoned", by_run="resumer")
    with store.backend.transaction() as con:
        con.execute("DELETE FROM legacy_imports")
    ledger.import_legacy(old, ACCOUNT)
    assert ledger.open_batches(ACCOUNT) == []


def test_an_old_ledger_keyed_by_the_api_key_comes_in_under_the_account(store, tmp_path):
    """The old ledger keyed an account by the base URL and a hash of the API key: its rows of
    this key take the account's identity, so the next apply run resumes them; an old relative
    outcomes file is the one beside the old ledger."""
    from emergency_pipeline.safety_store.legacy import legacy_account_key

    wave = _wave(2)
    old_key = legacy_account_key("https://api.telnyx.com/v2", "KEY_old_layout")
    assert "KEY_old_layout" not in old_key
    old = _old_ledger(tmp_path / "emergency.state" / "ledger.sqlite", wave)
    import sqlite3
    with sqlite3.connect(old) as con:
        con.execute("UPDATE batches SET account = ?, outcomes_db = 'data/emergency.duckdb'",
                    (old_key,))
        con.execute("UPDATE to_verify SET account = ?", (old_key,))
    ledger = store.ledger
    assert ledger.import_legacy(old, "https://api.telnyx.com/v2#org:x",
                                legacy_keys={old_key}) == 2
    (still_open,) = ledger.open_batches("https://api.telnyx.com/v2#org:x")
    assert still_open.outcomes_db == str(tmp_path / "emergency.duckdb")
    assert [r["number_id"] for r in ledger.to_verify("https://api.telnyx.com/v2#org:x", 1e12)
            ] == ["9"]
    assert ledger.open_batches(old_key) == []
