"""The account's safety state: the fenced lease and the ledgers, in one store per deployment.

`open_safety_store()` opens the default store (location.py: $EMERGENCY_PIPELINE_STATE_URL,
else the deprecated $EMERGENCY_PIPELINE_LEASE_DIR, else under $DAGSTER_HOME, else
/var/tmp/emergency_pipeline/safety.sqlite), or the one a URL names: a SQLite file for one
machine, PostgreSQL for several machines or users. Tables are created on first use.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone

from emergency_pipeline.safety_store.account_names import AccountNames
from emergency_pipeline.safety_store.fence import HeldLease, held
from emergency_pipeline.safety_store.lease import (
    AccountLease, IsRunFinished, LeaseHolder, LeaseLost, LeaseUnavailable, OnWait, TakeOver,
)
from emergency_pipeline.safety_store.ledger import OPEN_STATES, BatchClose, Ledger, LedgerBatch
from emergency_pipeline.safety_store.location import (
    LEASE_DIR_ENV, STATE_URL_ENV, Location, StoreUnavailable, resolve, scrub,
)
from emergency_pipeline.safety_store.schema import SCHEMA_VERSION, install

__all__ = [
    "AccountLease", "AccountNames", "BatchClose", "HeldLease", "IsRunFinished", "LEASE_DIR_ENV",
    "LeaseHolder", "LeaseLost", "LeaseUnavailable", "Ledger", "LedgerBatch", "OPEN_STATES",
    "OnWait", "SCHEMA_VERSION", "STATE_URL_ENV", "SafetyStore", "StoreUnavailable",
    "TakeOver", "held", "open_safety_store", "shared_safety_store",
]


class SafetyStore:
    """One safety store: `lease` (AccountLease) and `ledger` (Ledger) on one backend."""

    def __init__(self, location: Location, *, stale_after: float = 120.0,
                 dead_pid_grace: float = 10.0, poll_seconds: float = 0.5) -> None:
        self.location = location
        if location.kind == "postgresql":
            from emergency_pipeline.safety_store.postgres_backend import PostgresBackend
            self.backend = PostgresBackend(location)
        else:
            from emergency_pipeline.safety_store.sqlite_backend import SqliteBackend
            self.backend = SqliteBackend(location)
        try:
            install(self.backend)
        except StoreUnavailable:
            self.backend.close()
            raise
        except Exception as exc:  # noqa: BLE001 - not a database, no right to create tables
            self.backend.close()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreUnavailable(
                f"the safety store {self.describe()} cannot be prepared "
                f"({scrub(first, location)}): point {STATE_URL_ENV} at a store this user "
                "may create tables in (PostgreSQL: GRANT CREATE ON SCHEMA public), or let "
                "its owner open it once") from None
        self.lease = AccountLease(self.backend, stale_after=stale_after,
                                  dead_pid_grace=dead_pid_grace, poll_seconds=poll_seconds)
        self.ledger = Ledger(self.backend)
        self.names = AccountNames(self.backend)

    @property
    def kind(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self.location.kind

    def describe(self) -> str:
        """The path, or the URL with its password masked: safe to log."""
        return self.location.describe()

    def now(self) -> datetime:
        """The store's clock (UTC): the one every time it writes and returns is on."""
        return datetime.fromtimestamp(self.backend.now(), timezone.utc)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "SafetyStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SafetyStore({self.describe()!r})"


def open_safety_store(url: str | os.PathLike[str] | None = None, *, stale_after: float = 120.0,
                      dead_pid_grace: float = 10.0, poll_seconds: float = 0.5) -> SafetyStore:
    """Open (creating on first use) the store `url` names, else the default one.

    url: "postgresql://user:pw@host:port/db" (or postgres://), "sqlite:///abs/path.sqlite", or
    a plain path. StoreUnavailable (one line, password masked, with the fix) when it cannot be
    opened, or when it was written by a newer version of this code.
    """
    return SafetyStore(resolve(url), stale_after=stale_after, dead_pid_grace=dead_pid_grace,
                       poll_seconds=poll_seconds)


_SHARED: dict[tuple, SafetyStore] = {}
_SHARED_LOCK = threading.Lock()


def shared_safety_store(url: str | os.PathLike[str] | None = None, *,
                        stale_after: float = 120.0, dead_pid_grace: float = 10.0,
                        poll_seconds: float = 0.5) -> SafetyStore:
    """open_safety_store(), kept for the process: one pool of connections (PostgreSQL) and
    one schema check however many steps and resources ask for it. Do not close() it."""
    location = resolve(url)
    key = (os.getpid(), location, stale_after, dead_pid_grace, poll_seconds)
    with _SHARED_LOCK:
        store = _SHARED.get(key)
        if store is None:
            store = _SHARED[key] = SafetyStore(location, stale_after=stale_after,
                                               dead_pid_grace=dead_pid_grace,
                                               poll_seconds=poll_seconds)
        return store
