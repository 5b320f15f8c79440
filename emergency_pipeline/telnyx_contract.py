"""Facts of the Telnyx API that more than one module relies on.

Everything here comes from ../shared/telnyx/openapi-subset.json (or the Telnyx docs where the
spec is silent); keeping them in one place stops the emulator, the client and the plan from
drifting apart.
"""

from __future__ import annotations

DEFAULT_BASE_URL = "https://api.telnyx.com/v2"

JOB_TYPE = "update_emergency_settings"
JOB_TYPES = (JOB_TYPE, "delete_phone_numbers", "update_phone_numbers")   # filter[type]
JOB_PATH = "/phone_numbers/jobs/update_emergency_settings"
MAX_NUMBERS_PER_JOB = 1000
# The spec documents 500 pending/in-progress jobs of this type per account; configurable.
DEFAULT_MAX_JOBS_IN_FLIGHT = 500
# Requests in the air at once (a choice, not the API's): listing pages wait mostly on the
# network; the pacer keeps to the rate limit the headers announce.
DEFAULT_MAX_CONCURRENCY = 16
MAX_PAGE_SIZE = 250

JOB_IN_FLIGHT_STATUSES = frozenset({"pending", "in_progress"})
JOB_TERMINAL_STATUSES = frozenset({"completed", "failed", "expired"})

EMERGENCY_STATUSES = frozenset(
    {"active", "deprovisioning", "disabled", "provisioning", "provisioning-failed"}
)
# A change submitted while the previous one is still being carried out would race it.
EMERGENCY_STATUSES_IN_TRANSITION = frozenset({"provisioning", "deprovisioning"})

NUMBER_STATUSES = frozenset(
    {
        "purchase-pending", "purchase-failed", "port-pending", "port-failed", "active",
        "deleted", "emergency-only", "ported-out", "port-out-pending",
        "requirement-info-pending", "requirement-info-under-review",
        "requirement-info-exception", "provision-pending",
    }
)
# The values filter[status] of GET /phone_numbers accepts (fewer than the statuses above).
NUMBER_STATUS_FILTERS = ("purchase-pending", "purchase-failed", "port-pending", "active",
                         "deleted", "port-failed", "emergency-only", "ported-out",
                         "port-out-pending")
# Statuses whose numbers can have their emergency settings changed. The others are not (yet,
# or any more) live on the account's network, and Telnyx fails the operation for them.
NUMBER_STATUSES_ALLOWING_EMERGENCY = frozenset({"active", "emergency-only", "port-out-pending"})

# Error codes (Telnyx docs and the spec's examples).
CODE_INVALID = "10015"          # 422 validation error
CODE_UNAUTHORIZED = "10009"     # 401
CODE_FORBIDDEN = "10006"        # 403
CODE_NOT_FOUND = "10005"        # 404
CODE_RATE_LIMITED = "10011"     # 429
