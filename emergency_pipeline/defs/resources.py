"""Dagster resources: the Telnyx API (key from TELNYX_API_KEY), the DuckDB analytics file,
and the pipeline's state (the account lease, the ledgers, the runs' working tables)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, EnvVar
from dagster_duckdb import DuckDBResource
from pydantic import Field

from emergency_pipeline.client import ClientConfig, TelnyxClient
from emergency_pipeline.contract import DEFAULT_BASE_URL, DEFAULT_MAX_CONCURRENCY
from emergency_pipeline.run_tables import RunTables
from emergency_pipeline.state.lease import SqliteLease, account_key, default_lease_path
from emergency_pipeline.state.ledger import Ledger
from emergency_pipeline.store import Store

DEFAULT_DATABASE = "data/emergency.duckdb"


class TelnyxResource(ConfigurableResource):
    """The Telnyx API. Point base_url at the emulator to run without touching a real account."""

    api_key: str = Field(description="Telnyx API key; give it as EnvVar('TELNYX_API_KEY').")
    base_url: str = DEFAULT_BASE_URL
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_rate: float | None = Field(default=None, description="Requests per second, at most.")
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = Field(default=6, description="Tries per request on 5xx, timeouts and "
                              "dropped connections (429s are waited out apart).")
    max_retry_seconds: float = Field(default=120.0, description="Time one request may retry.")
    late_job_window_seconds: float | None = Field(
        default=None, description="After a job POST with no answer, how long its job may still "
        "appear (default: twice the read timeout, at least 60 s).")

    account_name: str | None = Field(default=None, description="A name for the account, "
                                     "shown in the history and the coverage report (default: "
                                     "the base URL's host). $TELNYX_ACCOUNT in the code location.")

    def account_label(self) -> str:
        """The account as people name it: account_name, else the API's host[:port]."""
        if self.account_name:
            return self.account_name
        from urllib.parse import urlsplit

        return urlsplit(self.base_url).netloc.rsplit("@", 1)[-1] or self.base_url

    def account(self) -> str:
        """The lease's key for this account: the base URL and a hash of the key."""
        return account_key(self.base_url, self.api_key)

    def client(self, log: Any) -> TelnyxClient:
        return TelnyxClient(
            ClientConfig(api_key=self.api_key, base_url=self.base_url,
                         connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
                         max_concurrency=self.max_concurrency, max_rate=self.max_rate,
                         max_attempts=self.max_attempts,
                         max_retry_seconds=self.max_retry_seconds,
                         late_job_window_seconds=self.late_job_window_seconds),
            log=log,
        )


def state_dir_for(database: str) -> str:
    """Default state folder: beside the analytics file (data/emergency.duckdb ->
    data/emergency.state/), so each deployment has its own ledger and run tables."""
    path = Path(database)
    return str(path.with_name(path.stem + ".state"))


class PipelineState(ConfigurableResource):
    """Where the run's state lives: the ledger and the runs' working tables (`directory`),
    and the machine-wide account lease (`lease_path`)."""

    directory: str = Field(description="Ledger (ledger.sqlite) and runs/<run_id>/ tables.")
    lease_path: str | None = Field(default=None, description="SQLite file of the account "
                                   "lease (default: $EMERGENCY_PIPELINE_LEASE_DIR or the "
                                   "machine's temp folder, shared by every user of it).")
    lease_wait_seconds: float = Field(default=600.0, description="How long an apply run "
                                      "waits for another run's lease before it fails.")
    lease_stale_seconds: float = Field(default=120.0, description="A lease whose heartbeat "
                                       "is older than this is free.")
    keep_run_tables_days: float = Field(default=7.0, description="Runs' working tables are "
                                        "dropped after this many days.")

    def tables(self, run_id: str) -> RunTables:
        return RunTables(self.directory, run_id)

    def ledger(self) -> Ledger:
        return Ledger(Path(self.directory) / "ledger.sqlite")

    def lease(self) -> SqliteLease:
        return SqliteLease(self.lease_path or default_lease_path(),
                           stale_after=self.lease_stale_seconds)


def store_for(duckdb: DuckDBResource) -> Store:
    """The outcomes store on the DuckDB resource's file.

    The store opens connections itself rather than through DuckDBResource.get_connection,
    whose fixed ~100 s lock backoff would stall a run behind an analyst's open file; the
    store waits briefly and spools instead (see store.py)."""
    wait = float(os.environ.get("EMERGENCY_PIPELINE_LOCK_WAIT_SECONDS", "0.5"))
    return Store(duckdb.database, dict(duckdb.connection_config), lock_wait_seconds=wait)


def store_at(database: str) -> Store:
    """The analytics store of another run's file (publishing its results)."""
    return store_for(DuckDBResource(database=database))


def default_resources() -> dict[str, Any]:
    database = os.environ.get("EMERGENCY_PIPELINE_DUCKDB", DEFAULT_DATABASE)
    return {
        "telnyx": TelnyxResource(
            api_key=EnvVar("TELNYX_API_KEY"),
            base_url=os.environ.get("TELNYX_BASE_URL", DEFAULT_BASE_URL),
            read_timeout=float(os.environ.get("TELNYX_READ_TIMEOUT_SECONDS", "30")),
            account_name=os.environ.get("TELNYX_ACCOUNT") or None,
        ),
        "duckdb": DuckDBResource(database=database),
        "state": PipelineState(
            directory=os.environ.get("EMERGENCY_PIPELINE_STATE_DIR", state_dir_for(database)),
            lease_wait_seconds=float(os.environ.get("EMERGENCY_PIPELINE_LEASE_WAIT_SECONDS",
                                                    "600"))),
    }
