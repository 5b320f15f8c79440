"""`dg scaffold defs emergency_pipeline.EmergencySettingsComponent accounts/<name>`: a defs.yaml
for one account, every setting written out with its default so that people see what they can
change. The account's name is the folder's name unless `--account` is given."""

from pathlib import Path

import dagster as dg
from pydantic import BaseModel

from emergency_pipeline.telnyx_contract import DEFAULT_BASE_URL, DEFAULT_MAX_JOBS_IN_FLIGHT


class ScaffoldParams(BaseModel):
    account: str | None = None
    base_url: str = DEFAULT_BASE_URL


def defs_yaml_attributes(account: str, base_url: str = DEFAULT_BASE_URL) -> dict:
    """The attributes a new account's defs.yaml starts with."""
    return {
        "account": account,
        "api_key": f"{{{{ env.TELNYX_API_KEY_{account.upper()} }}}}",
        "base_url": base_url,
        "account_name": account,
        "duckdb": "data/emergency.duckdb",
        "inbox": f"data/inbox/{account}",
        "schedule": {"cron": "0 6 * * *", "sheet": f"data/{account}/desired_state.csv",
                     "timezone": "UTC"},
        "guard": {"max_disable_count": 100, "max_disable_share": 0.05,
                  "allow_mass_disable": False},
        "contact": {"first_name": None, "last_name": None, "business_name": None},
        "batches": {"max_batch_size": 1000, "wave_size": 50,
                    "max_jobs_in_flight": DEFAULT_MAX_JOBS_IN_FLIGHT,
                    "follow_timeout_seconds": 900.0},
        "executor": "in_process",
    }


class EmergencySettingsScaffolder(dg.Scaffolder[ScaffoldParams]):
    @classmethod
    def get_scaffold_params(cls) -> type[ScaffoldParams]:
        return ScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[ScaffoldParams]) -> None:
        from emergency_pipeline.defs.account_spec import account_name_problem

        account = request.params.account or Path(request.target_path).name
        problem = account_name_problem(account)
        if problem:
            raise ValueError(f"{problem}: name the folder so, or pass --account")
        dg.scaffold_component(request, defs_yaml_attributes(account, request.params.base_url))
