"""The disable guard (design rule 2): a plan that would switch off emergency service on more
numbers than allowed is refused before anything is submitted, unless the run allows it.

Run config names: max_disable_count, max_disable_share, allow_mass_disable.
"""

from __future__ import annotations

from dataclasses import dataclass


class SafetyGuardError(Exception):
    """The plan disables more numbers than max_disable_count / max_disable_share allow."""


@dataclass(frozen=True)
class GuardResult:
    disables: int
    account_size: int
    share: float
    max_disable_count: int
    max_disable_share: float
    exceeded: bool
    allowed: bool            # True when exceeded but allow_mass_disable was set


def check_disable_guard(disables: int, account_size: int, max_disable_count: int,
                        max_disable_share: float, allow: bool = False) -> GuardResult:
    """Raise SafetyGuardError when the plan's disables (its rows whose action is disable)
    exceed either limit (strictly more than max_disable_count numbers, or strictly more than
    max_disable_share of the account) and `allow` (the run's allow_mass_disable) is not set.
    Otherwise return the figures."""
    if max_disable_count < 0:
        raise ValueError(f"max_disable_count must be >= 0, not {max_disable_count}")
    if not 0.0 <= max_disable_share <= 1.0:
        raise ValueError(f"max_disable_share must be between 0 and 1, not {max_disable_share}")
    disables = int(disables)
    size = max(int(account_size), 0)
    # An account we could not see is treated as if every disable were all of it.
    share = disables / size if size else (1.0 if disables else 0.0)
    over_count = disables > max_disable_count
    over_share = share > max_disable_share
    exceeded = over_count or over_share
    result = GuardResult(disables, size, share, int(max_disable_count),
                         float(max_disable_share), exceeded, exceeded and allow)
    if exceeded and not allow:
        broken = " and ".join(
            s for s, hit in ((f"max_disable_count={max_disable_count}", over_count),
                             (f"max_disable_share={max_disable_share:g} "
                              f"({max_disable_share:.1%})", over_share)) if hit)
        raise SafetyGuardError(
            f"refusing to disable emergency service on {disables} numbers, {share:.1%} of the "
            f"{size}-number account: over {broken} (limits: max_disable_count="
            f"{max_disable_count}, max_disable_share={max_disable_share:g}). Nothing was "
            f"submitted. If this is intended, run with allow_mass_disable: true (or raise the "
            f"limits); if not, check that the desired state is complete.")
    return result
