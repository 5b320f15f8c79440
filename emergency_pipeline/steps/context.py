"""What a step knows of its run, built once per step (defs/run_scope.run_context) and passed
down: no step reads Dagster's context, its run tags or raw run config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from emergency_pipeline.analytics.store import Store
from emergency_pipeline.client import TelnyxClient
from emergency_pipeline.duckdb_pool import sql_text
from emergency_pipeline.safety_store import Ledger
from emergency_pipeline.stage_files import RunTables


class StepFailed(Exception):
    """The step cannot go on; the message is the one line people see (what and the fix).
    The asset turns it into the run's failure (defs/run_scope.step_failures)."""


class StepLog(Protocol):
    """Dagster's step log, or any logger: progress lines for the people watching the run."""

    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...
    def error(self, msg: str) -> None: ...


@dataclass(frozen=True)
class RunContext:
    run_id: str
    account: str              # the account's name in the code location (its run tags)
    account_label: str        # the account as history rows and reports name it
    source: str               # the desired-state source: the run's partition key
    applies: bool             # the run's one apply switch (its emergency_pipeline/apply tag)
    log: StepLog
    base_url: str             # the Telnyx API's (named in one-line errors)
    stages: RunTables         # this run's stage files
    analytics: Store          # the analytics DuckDB file people query
    storage_dir: str          # every run's stage files (pruned by age)
    keep_run_tables_days: float
    history_url: str | None   # configured Parquet history, if any (parquet_history.history_url)
    open_client: Callable[[], TelnyxClient]
    open_ledger: Callable[[], Ledger]

    def client(self) -> TelnyxClient:
        """A client of the account's API (a context manager: `with run.client() as c`)."""
        return self.open_client()

    def ledger(self) -> Ledger:
        """The deployment's ledger (the safety store: opened on first use, once a process)."""
        return self.open_ledger()

    @property
    def outcomes_db(self) -> str:
        """The analytics file, absolute: the ledger keeps it, and a run that resumes this one
        from another working folder must find it."""
        return str(Path(self.analytics.database).resolve())

    def stamp(self, frame: pd.DataFrame) -> pd.DataFrame:
        """History rows carry the run and its source."""
        return frame.assign(run_id=self.run_id, source=self.source)

    def stamped_select(self, table: str) -> str:
        """SELECT of a stage table with the run id and source, as the history tables hold it."""
        return (f"SELECT *, {sql_text(self.run_id)} AS run_id, "
                f"{sql_text(self.source)} AS source FROM {table}")

