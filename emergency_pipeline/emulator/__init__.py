"""A local emulator of the Telnyx endpoints the pipeline uses (a real HTTP server).

The contract is in DEVELOPERS.md ("Emulator"). Beyond it, for tests and tools:
`Emulator(..., settle_seconds=None, addresses=None)` (how long provisioning/deprovisioning
takes after a change, default job_seconds / 2; how many addresses to generate),
`.root_url`, `.faults`, `.job(id)`, `.numbers()`, `.addresses()`,
`.finish_jobs(settle=True)` (settle=False leaves changed numbers provisioning),
`.save_state(path)`, and `DELETE /_emulator/stats` to reset the counters.
Numbers generated in provisioning or deprovisioning stay so (work "in progress" elsewhere);
only the numbers a job or enable_emergency changes settle. A job that ends `failed` or
`expired` reports its unprocessed numbers in failed_operations with the job's error.
POST /addresses and POST /addresses/actions/validate follow address_book.py (street number 0,
or a ZIP or state that is not a known city's, is invalid); `Faults(lose_address_post_rate)`
drops the answer of a creation; stats count `addresses_created`, `lost_address_answers`.
`Emulator(telnyx_shape=..., spec=...)`, `.set_shape()`, `.spec_violations()`: the answer
shapes the spec leaves open (shape.py) and strict mode (conformance.py); DEVELOPERS.md.
`Emulator(clock_offset_seconds=...)`, `.set_clock_offset()`, `.advance(seconds)`: the clock
(clock.py): a skew in every reported time; advance moves jobs on without sleeping.
"""

import importlib
from typing import Any

# Loaded on first use: the console script registers the `emulator` sub-command (emulator/cli.py,
# inside this package) for every command, and loading the emulator itself (its generated
# tables, the HTTP server) cost every `run` 0.14 s.
_EXPORTS = {"DEV_API_KEY": "handle", "Emulator": "handle", "Faults": "faults"}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
