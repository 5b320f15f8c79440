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
POST /addresses and POST /addresses/actions/validate follow addresses.py (street number 0,
or a ZIP or state that is not a known city's, is invalid); `Faults(lose_address_post_rate)`
drops the answer of a creation; stats count `addresses_created`, `lost_address_answers`.
`Emulator(telnyx_shape=..., spec=...)`, `.set_shape()`, `.spec_violations()`: the answer
shapes the spec leaves open (shape.py) and strict mode (conformance.py); DEVELOPERS.md.
"""

from emergency_pipeline.emulator.faults import Faults
from emergency_pipeline.emulator.handle import DEV_API_KEY, Emulator

__all__ = ["DEV_API_KEY", "Emulator", "Faults"]
