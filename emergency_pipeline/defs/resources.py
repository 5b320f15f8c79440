"""Dagster resources: the Telnyx API (key from TELNYX_API_KEY), the DuckDB analytics file,
and the pipeline's state (the account lease, the ledgers, the runs' working tables)."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import httpx
from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource
from pydantic import Field

from emergency_pipeline.client import ClientConfig, TelnyxClient
from emergency_pipeline.telnyx_contract import DEFAULT_BASE_URL, DEFAULT_MAX_CONCURRENCY
from emergency_pipeline.stage_files import RunTables
from emergency_pipeline.client.account_identity import (
    AccountIdentity, identify_account, normalise_base_url,
)
from emergency_pipeline.safety_store import (
    AccountLease, AccountNames, Ledger, SafetyStore, shared_safety_store,
)
from emergency_pipeline.analytics.store import Store

DEFAULT_DATABASE = "data/emergency.duckdb"
LEASE_STALE_ENV = "EMERGENCY_PIPELINE_LEASE_STALE_SECONDS"
FENCE_ENV = "EMERGENCY_PIPELINE_FENCE_SECONDS"


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

    account_name: str | None = Field(
        default=None, description="The account's name, for people (the history, the coverage "
        "report, logs) and for the lease where the key may not list the organization's users "
        "(default: the base URL's host). $TELNYX_ACCOUNT in the code location.")

    def identity(self, names: AccountNames | None = None) -> AccountIdentity:
        """The account behind the key (client/account_identity.py): one request, once a process.
        `names`: the safety store's names of accounts (PipelineStorage.safety_store().names)."""
        cache_key = (normalise_base_url(self.base_url), _digest(self.api_key),
                     self.account_name)
        found = _IDENTITIES.get(cache_key)
        if found is None:
            with self.client(logging.getLogger("emergency_pipeline.account")) as client:
                found = identify_account(client, self.base_url, self.account_name, names)
            _IDENTITIES[cache_key] = found
        return found

    def account(self, names: AccountNames | None = None) -> str:
        """What the lease and the ledger are keyed by: the account, never the key (rule 3)."""
        return self.identity(names).key

    def account_label(self) -> str:
        """The account for people: its configured name, else the base URL's host[:port]."""
        if self.account_name:
            return self.account_name
        url = httpx.URL(self.base_url)
        return url.host + (f":{url.port}" if url.port else "")

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


# One identity per (URL, key, name) and process: every step asks for it.
_IDENTITIES: dict[tuple[str, str, str | None], AccountIdentity] = {}


def _digest(key: str) -> str:
    return hashlib.sha256(b"emergency_pipeline/identity-cache\0" + key.strip().encode()
                          ).hexdigest()


def state_dir_for(database: str) -> str:
    """Default state folder: beside the analytics file (data/emergency.duckdb ->
    data/emergency.state/), so each deployment has its own ledger and run tables."""
    path = Path(database)
    return str(path.with_name(path.stem + ".state"))


class PipelineStorage(ConfigurableResource):
    """Where the run's state lives: the runs' working tables (`directory`, beside the
    analytics file) and the deployment's safety store (the account lease and the ledgers,
    `store_url`: one per deployment, shared by every run of every account on it)."""

    directory: str = Field(description="The runs' working tables: runs/<run_id>/.")
    store_url: str | None = Field(default=None, description="The safety store: a PostgreSQL "
                                  "URL (several machines or users) or a SQLite file. Default "
                                  "$EMERGENCY_PIPELINE_STATE_URL, else "
                                  "$DAGSTER_HOME/emergency_pipeline/safety.sqlite.")
    lease_wait_seconds: float = Field(default=600.0, description="How long an apply run "
                                      "waits for another run's lease before it fails.")
    lease_stale_seconds: float = Field(default=120.0, description="A lease whose heartbeat "
                                       "is older than this may be taken over.")
    fence_seconds: float = Field(default=20.0, description="A run sends a job only if it "
                                 "confirmed its lease in the store less than this long ago; "
                                 "at most a third of lease_stale_seconds.")
    keep_run_tables_days: float = Field(default=7.0, description="Runs' working tables are "
                                        "dropped after this many days.")
    history_url: str | None = Field(default=None, description="Where each run's history "
                                    "rows also go as Parquet files (a folder, s3://, gs://; "
                                    "analytics/parquet_history.py). Default $EMERGENCY_PIPELINE_HISTORY_URL; "
                                    "unset: the analytics file alone.")

    def tables(self, run_id: str) -> RunTables:
        return RunTables(self.directory, run_id)

    def safety_store(self) -> SafetyStore:
        """The deployment's safety store (StoreUnavailable names the path and the fix), opened
        once a process: every step and check asks for it, and PostgreSQL keeps connections."""
        return shared_safety_store(self.store_url, stale_after=self.lease_stale_seconds)

    def ledger(self) -> Ledger:
        return self.safety_store().ledger

    def lease(self) -> AccountLease:
        return self.safety_store().lease


def store_for(duckdb: DuckDBResource) -> Store:
    """The outcomes store on the DuckDB resource's file.

    The store opens connections itself rather than through DuckDBResource.get_connection,
    whose fixed ~100 s lock backoff would stall a run behind an analyst's open file; the
    store waits briefly and spools instead (see analytics/store.py)."""
    wait = float(os.environ.get("EMERGENCY_PIPELINE_LOCK_WAIT_SECONDS", "0.5"))
    return Store(duckdb.database, dict(duckdb.connection_config), lock_wait_seconds=wait)


def store_at(database: str) -> Store:
    """The analytics store of another run's file (publishing its results)."""
    return store_for(DuckDBResource(database=database))


def lease_timing_from_env() -> dict[str, float]:
    """The takeover time and the fence from $EMERGENCY_PIPELINE_LEASE_STALE_SECONDS and
    $EMERGENCY_PIPELINE_FENCE_SECONDS (a short takeover for soaks and drills; unset: the
    resource's defaults). The fence defaults to a third of a shorter takeover time."""
    out: dict[str, float] = {}
    for name, field in ((LEASE_STALE_ENV, "lease_stale_seconds"),
                        (FENCE_ENV, "fence_seconds")):
        raw = os.environ.get(name, "").strip()
        if not raw:
            continue
        try:
            out[field] = float(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a number of seconds: set it to e.g. "
                             f"{120 if field == 'lease_stale_seconds' else 20}, or unset it"
                             ) from None
        if not 0 < out[field] < float("inf"):
            raise ValueError(f"{name}={raw!r} must be a positive number of seconds")
    if "lease_stale_seconds" in out and "fence_seconds" not in out:
        out["fence_seconds"] = min(PipelineStorage.model_fields["fence_seconds"].default,
                                   out["lease_stale_seconds"] / 3)
    return out
