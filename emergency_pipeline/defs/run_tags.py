"""The run tags that say which account a run is for and whether it applies."""

ACCOUNT_TAG = "emergency_pipeline/account"
# The one apply switch: a run tag whose value is the account's name (absent: plan only).
# Every step reads it from the run, so no run can apply in one step and plan in another;
# and its value lets a deployment's run queue bound apply runs per account
# (`applyLimitPerUniqueValue`, deploy/dagster.yaml) while plan-only runs never queue.
APPLY_TAG = "emergency_pipeline/apply"
# The account of the single-account path (environment variables, no component).
DEFAULT_ACCOUNT = "telnyx"


def apply_tags(account: str = DEFAULT_ACCOUNT, apply: bool = True) -> dict[str, str]:
    """The run tags that make a run of `account` apply (apply=False: none, it plans)."""
    return {APPLY_TAG: account} if apply else {}
