"""A real safety store and a real held lease for tests that drive submission directly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from emergency_pipeline.safety_store import HeldLease, Ledger, held, open_safety_store


@contextmanager
def fenced(path: Path, account: str = "acct", run_id: str = "ours"
           ) -> Iterator[tuple[Ledger, HeldLease]]:
    """The ledger of a SQLite safety store at `path`, and the account's lease held by run_id
    (what an apply step holds while it submits). The ledger stays usable afterwards."""
    store = open_safety_store(str(path))
    with held(store.lease, account, run_id, wait_seconds=0, release_on_exit=True) as hold:
        yield store.ledger, hold
