"""The disable guard (design rule 2)."""

from __future__ import annotations

import pytest

from emergency_pipeline.planning.disable_guard import SafetyGuardError, check_disable_guard


@pytest.mark.parametrize("disables,size,count,share,allow,refused", [
    (0, 1000, 0, 0.0, False, False),
    (10, 1000, 10, 0.01, False, False),       # exactly at both limits: allowed
    (11, 1000, 10, 0.5, False, True),         # over the count
    (10, 100, 50, 0.05, False, True),         # over the share
    (500, 1000, 10, 0.01, True, False),       # over both, but allow_mass_disable
    (1, 0, 10, 0.5, False, True),             # an empty account: any disable is all of it
])
def test_guard_table(disables, size, count, share, allow, refused):
    if refused:
        with pytest.raises(SafetyGuardError):
            check_disable_guard(disables, size, count, share, allow=allow)
    else:
        result = check_disable_guard(disables, size, count, share, allow=allow)
        assert result.disables == disables
        assert result.allowed == (allow and result.exceeded)


def test_message_gives_figures_and_settings():
    with pytest.raises(SafetyGuardError) as err:
        check_disable_guard(600, 5000, 100, 0.05)
    msg = str(err.value)
    for part in ("600 numbers", "12.0%", "5000-number account", "max_disable_count=100",
                 "max_disable_share=0.05", "allow_mass_disable"):
        assert part in msg


@pytest.mark.parametrize("count,share", [(-1, 0.1), (10, -0.1), (10, 1.5)])
def test_settings_are_validated(count, share):
    with pytest.raises(ValueError):
        check_disable_guard(1, 10, count, share)
