"""What one account's definitions are built from (AccountSpec), and what may name an account.

Apart from account_defs.py (which builds the definitions) so that account_automation.py, which
account_defs.py calls, can name the type without importing its caller.
"""

import re
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetKey

ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def account_name_problem(name: str) -> str | None:
    """Why `name` cannot name an account (it becomes asset keys, job and resource names, run
    tags and an environment variable's suffix), or None."""
    if not ACCOUNT_NAME.match(name or ""):
        return (f"account name {name!r} must be lowercase letters, digits and _, starting with "
                "a letter, at most 40 characters (e.g. acme_east)")
    return None


@dataclass(frozen=True)
class AccountSpec:
    """What one account's definitions are built from (the component, or the environment)."""

    name: str
    resources: dict[str, Any] = field(compare=False)    # telnyx, duckdb, state, io_manager
    prefixed: bool = True
    inbox: str | None = None                  # the drop folder its sensor watches
    schedule_cron: str | None = None          # its daily (or other) apply of schedule_sheet
    schedule_sheet: str | None = None
    schedule_timezone: str = "UTC"
    # Step name -> {config field: default}: the guard limits, batch settings and contact
    # defaults of this account (the launchpad shows them; run config may still override).
    config_defaults: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)
    executor: str | None = None
    inbox_interval_seconds: int = 30
    coverage_cron: str | None = "0 7 * * *"   # its coverage report's refresh (stopped)

    def __post_init__(self) -> None:
        problem = account_name_problem(self.name)
        if problem:
            raise ValueError(problem)

    def named(self, name: str) -> str:
        """A job's, sensor's, schedule's or partition set's name for this account."""
        return f"{self.name}__{name}" if self.prefixed else name

    def resource_key(self, resource: str) -> str:
        return f"{self.name}_{resource}" if self.prefixed else resource

    def key(self, name: str) -> AssetKey:
        return AssetKey([self.name, name]) if self.prefixed else AssetKey(name)

    def op_name(self, step: str) -> str:
        """The op of a step: the run config's `ops:` key for it."""
        return self.key(step).to_python_identifier()
