"""Dagster resources: the Telnyx API (key from TELNYX_API_KEY) and the DuckDB outcomes store."""

from __future__ import annotations

import os
from typing import Any

from dagster import ConfigurableResource, EnvVar
from dagster_duckdb import DuckDBResource
from pydantic import Field

from emergency_pipeline.client import ClientConfig, TelnyxClient
from emergency_pipeline.contract import DEFAULT_BASE_URL
from emergency_pipeline.store import Store

DEFAULT_DATABASE = "data/emergency.duckdb"


class TelnyxResource(ConfigurableResource):
    """The Telnyx API. Point base_url at the emulator to run without touching a real account."""

    api_key: str = Field(description="Telnyx API key; give it as EnvVar('TELNYX_API_KEY').")
    base_url: str = DEFAULT_BASE_URL
    max_concurrency: int = 8
    max_rate: float | None = Field(default=None, description="Requests per second, at most.")
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = Field(default=6, description="Tries per request on 5xx, timeouts and "
                              "dropped connections (429s are waited out apart).")
    max_retry_seconds: float = Field(default=120.0, description="Time one request may retry.")

    def client(self, log: Any) -> TelnyxClient:
        return TelnyxClient(
            ClientConfig(api_key=self.api_key, base_url=self.base_url,
                         connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
                         max_concurrency=self.max_concurrency, max_rate=self.max_rate,
                         max_attempts=self.max_attempts,
                         max_retry_seconds=self.max_retry_seconds),
            log=log,
        )


def store_for(duckdb: DuckDBResource) -> Store:
    """The outcomes store on the DuckDB resource's file.

    The store opens connections itself rather than through DuckDBResource.get_connection,
    whose fixed ~100 s lock backoff would stall a run behind an analyst's open file; the
    store waits briefly and spools instead (see store.py)."""
    wait = float(os.environ.get("EMERGENCY_PIPELINE_LOCK_WAIT_SECONDS", "10"))
    return Store(duckdb.database, dict(duckdb.connection_config), lock_wait_seconds=wait)


def default_resources() -> dict[str, Any]:
    return {
        "telnyx": TelnyxResource(
            api_key=EnvVar("TELNYX_API_KEY"),
            base_url=os.environ.get("TELNYX_BASE_URL", DEFAULT_BASE_URL),
        ),
        "duckdb": DuckDBResource(
            database=os.environ.get("EMERGENCY_PIPELINE_DUCKDB", DEFAULT_DATABASE)
        ),
    }
