"""The safety store's tables: one DDL text for SQLite and PostgreSQL, and its version.

Times are DOUBLE PRECISION seconds since the epoch on the store's clock (SQLite: this host's
time.time(); PostgreSQL: the server's clock_timestamp()), so both stores share every SQL text.
`{serial}` is the only word that differs (an explicit, ever-growing event number instead of
SQLite's rowid).
"""

from __future__ import annotations

from typing import Any

from emergency_pipeline.safety_store.location import StoreUnavailable

SCHEMA_VERSION = 1
# Any constant: serialises two processes creating the tables of a fresh PostgreSQL database at
# once (a transaction-scoped lock, released at COMMIT).
_PG_DDL_LOCK = 0x45504C53  # "EPLS"

DDL = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS lease (
    account TEXT PRIMARY KEY, run_id TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    token BIGINT NOT NULL, acquired_at DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL, released_at DOUBLE PRECISION, took_over TEXT
);
CREATE TABLE IF NOT EXISTS batches (
    run_id TEXT NOT NULL, batch_id TEXT NOT NULL, account TEXT NOT NULL, source TEXT,
    outcomes_db TEXT, emergency_enabled INTEGER, emergency_address_id TEXT, id_kind TEXT,
    identifiers TEXT, number_count INTEGER, state TEXT NOT NULL, job_id TEXT,
    job_status TEXT, detail TEXT, recorded_at DOUBLE PRECISION,
    submitted_at DOUBLE PRECISION, closed_at DOUBLE PRECISION,
    published_at DOUBLE PRECISION, telnyx_recorded_at DOUBLE PRECISION,
    sent_by DOUBLE PRECISION, PRIMARY KEY (run_id, batch_id)
);
CREATE INDEX IF NOT EXISTS batches_open ON batches (account, state);
CREATE TABLE IF NOT EXISTS batch_events (
    run_id TEXT, batch_id TEXT, by_run TEXT, event TEXT, job_id TEXT, job_status TEXT,
    detail TEXT, at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS number_results (
    run_id TEXT NOT NULL, batch_id TEXT NOT NULL, identifier TEXT NOT NULL, result TEXT,
    reason TEXT, job_id TEXT, job_status TEXT, error_code TEXT, error_title TEXT,
    error_detail TEXT, error_pointer TEXT, finished_at TEXT,
    PRIMARY KEY (run_id, batch_id, identifier)
);
CREATE TABLE IF NOT EXISTS to_verify (
    account TEXT NOT NULL, number_id TEXT NOT NULL, phone_number TEXT,
    target_enabled INTEGER NOT NULL, target_address_id TEXT, run_id TEXT NOT NULL,
    recorded_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (account, number_id)
);
CREATE TABLE IF NOT EXISTS address_events (
    seq {serial}, account TEXT NOT NULL, address_key TEXT NOT NULL, run_id TEXT,
    event TEXT, address_id TEXT, fields TEXT, detail TEXT, at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS address_events_key ON address_events (account, address_key, seq);
CREATE TABLE IF NOT EXISTS legacy_imports (
    path TEXT PRIMARY KEY, batches INTEGER, at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS account_names (
    base_url TEXT NOT NULL, name TEXT NOT NULL, account TEXT NOT NULL,
    at DOUBLE PRECISION, PRIMARY KEY (base_url, name)
)
"""

SERIAL = {"sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT", "postgresql": "BIGSERIAL PRIMARY KEY"}
_EXISTS = {"sqlite": "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
           "postgresql": "SELECT count(to_regclass(?))"}


def install(backend: Any) -> None:
    """Create the tables on first use; refuse a store written by a newer version of the code."""
    with backend.transaction() as con:
        if backend.kind == "postgresql":
            con.execute("SELECT pg_advisory_xact_lock(?)", (_PG_DDL_LOCK,))
        version = None
        if con.execute(_EXISTS[backend.kind], ("schema_version",)).fetchone()[0]:
            row = con.execute("SELECT max(version) FROM schema_version").fetchone()
            version = None if row is None else row[0]
        if version is not None and version > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"the safety store {backend.describe()} has schema version {version}, newer "
                f"than this code's {SCHEMA_VERSION}: upgrade emergency_pipeline on this host "
                "(every host of a deployment runs the same version)")
        if version == SCHEMA_VERSION:
            return
        for statement in DDL.format(serial=SERIAL[backend.kind]).split(";"):
            if statement.strip():
                con.execute(statement)
        con.execute("DELETE FROM schema_version")
        con.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
