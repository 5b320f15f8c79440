"""`EmergencySettingsComponent`: one Telnyx account of a deployment, as a Dagster component.

    dg scaffold defs emergency_pipeline.EmergencySettingsComponent accounts/acme

writes `accounts/acme/defs.yaml` (scaffolder.py); each instance yields that account's assets
(keys prefixed by the account), checks, jobs, partitions, schedule and sensor
(defs/account_defs.py). The API key is never written down: `api_key` must be a reference to an
environment variable, `{{ env.TELNYX_API_KEY_ACME }}`, which becomes an EnvVar read when a run
starts (so `dg check defs` passes without it, and the key is in no snapshot, UI page or log).
"""

import re
from typing import Annotated, Any, Literal

import dagster as dg
from dagster import EnvVar
from dagster_duckdb import DuckDBResource
from pydantic import Field

from emergency_pipeline.component.scaffolder import EmergencySettingsScaffolder
from emergency_pipeline.telnyx_contract import DEFAULT_BASE_URL, DEFAULT_MAX_JOBS_IN_FLIGHT

# `{{ env.NAME }}` or `{{ env('NAME') }}`: the only ways an API key may be given.
_ENV_REFERENCE = re.compile(
    r"^\s*\{\{\s*env(?:\.([A-Za-z_][A-Za-z0-9_]*)|\(\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]\s*\))"
    r"\s*\}\}\s*$")


def _api_key_variable(context: dg.ResolutionContext, raw: str) -> EnvVar:
    """The environment variable the defs.yaml names for the key (never its value)."""
    found = _ENV_REFERENCE.match(str(raw or ""))
    if not found:
        raise ValueError("api_key must name an environment variable, e.g. "
                         "\"{{ env.TELNYX_API_KEY_ACME }}\": a key written in defs.yaml would "
                         "be in git and in Dagster's UI")
    return EnvVar(found.group(1) or found.group(2))


class Schedule(dg.Resolvable, dg.Model):
    """Apply one sheet on a cron (the schedule starts stopped: turn it on in the UI)."""

    cron: str = Field(description="Cron expression, e.g. '0 6 * * *'.")
    sheet: str = Field(description="The canonical desired-state source (its partition key).")
    timezone: str = "UTC"


class Guard(dg.Resolvable, dg.Model):
    """The limits on disabling E911 in one apply run (rule 2)."""

    max_disable_count: int = 100
    max_disable_share: float = 0.05
    allow_mass_disable: bool = False


class ContactDefaults(dg.Resolvable, dg.Model):
    """Names for new addresses whose sheet row gives none (Telnyx requires them)."""

    first_name: str | None = None
    last_name: str | None = None
    business_name: str | None = None


class Batches(dg.Resolvable, dg.Model):
    max_batch_size: int = Field(default=1000, ge=1, le=1000)
    wave_size: int = Field(default=50, ge=1)
    max_jobs_in_flight: int = Field(default=DEFAULT_MAX_JOBS_IN_FLIGHT, ge=1)
    follow_timeout_seconds: float = 900.0


@dg.scaffold_with(EmergencySettingsScaffolder)
class EmergencySettingsComponent(dg.Component, dg.Resolvable, dg.Model):
    """One Telnyx account: its key, its API, where its history goes, its drop folder and
    schedule, and its limits. Two instances are two accounts that never wait on each other
    (the run queue and the account lease are per account)."""

    account: str = Field(description="The account's name: prefixes its asset keys, names its "
                         "jobs and resources, tags its runs (lowercase, digits, _).")
    api_key: Annotated[Any, dg.Resolver(_api_key_variable, model_field_type=str,
                                        inject_before_resolve=False,
                                        description="\"{{ env.TELNYX_API_KEY_<NAME> }}\"")]
    base_url: str = DEFAULT_BASE_URL
    account_name: str | None = Field(default=None, description="The account for people and "
                                     "for the lease when the key may not list the "
                                     "organization's users (default: `account`).")
    duckdb: str = Field(default="data/emergency.duckdb", description="The analytics file "
                        "(history) this account's runs write.")
    state_dir: str | None = Field(default=None, description="The runs' working tables "
                                  "(default: beside the analytics file).")
    history_url: str | None = Field(default=None, description="Where each run's history also "
                                    "goes as Parquet files, for runs on machines that come and "
                                    "go: a shared folder, s3://..., gs://... (analytics/parquet_history.py).")
    inbox: str | None = Field(default=None, description="Drop folder: every new or changed "
                              "CSV/XLSX in it is applied (the sensor starts stopped).")
    inbox_interval_seconds: int = 30
    schedule: Schedule | None = None
    guard: Guard = Guard()
    contact: ContactDefaults = ContactDefaults()
    batches: Batches = Batches()
    read_timeout_seconds: float = 30.0
    lease_wait_seconds: float = 600.0
    executor: Literal["in_process", "multiprocess"] = Field(
        default="in_process", description="in_process: the six steps in the run's process "
        "(fastest for a linear chain); multiprocess: a process per step.")

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return account_definitions_of(self)

    def _account_name(self) -> str | None:
        """`account` unless account_name is given; an empty account_name (the environment
        path with TELNYX_ACCOUNT unset) means none: the lease then needs the key's
        organization, and the history names the API's host."""
        if self.account_name is None:
            return self.account
        return self.account_name.strip() or None

    def spec(self):
        """The account's AccountSpec (defs/account_defs.py)."""
        from emergency_pipeline.defs.account_spec import AccountSpec
        from emergency_pipeline.defs.io_manager import RunScopedIOManager
        from emergency_pipeline.defs.resources import (
            PipelineStorage, TelnyxResource, lease_timing_from_env, state_dir_for,
        )

        storage = PipelineStorage(directory=self.state_dir or state_dir_for(self.duckdb),
                                  lease_wait_seconds=self.lease_wait_seconds,
                                  history_url=self.history_url or None,
                                  # Soaks and drills shorten the takeover time from the
                                  # environment, as on the single-account path.
                                  **lease_timing_from_env())
        resources = {
            "telnyx": TelnyxResource(api_key=self.api_key, base_url=self.base_url,
                                     read_timeout=self.read_timeout_seconds,
                                     account_name=self._account_name()),
            "duckdb": DuckDBResource(database=self.duckdb),
            "storage": storage,
            "io_manager": RunScopedIOManager(directory=storage.directory),
        }
        contact = self.contact
        return AccountSpec(
            name=self.account, resources=resources, inbox=self.inbox,
            schedule_cron=self.schedule.cron if self.schedule else None,
            schedule_sheet=self.schedule.sheet if self.schedule else None,
            schedule_timezone=self.schedule.timezone if self.schedule else "UTC",
            executor=self.executor, inbox_interval_seconds=self.inbox_interval_seconds,
            config_defaults={
                "emergency_update_jobs": {**self.guard.model_dump(),
                                          **self.batches.model_dump()},
                "emergency_address_resolution": {
                    "default_first_name": contact.first_name,
                    "default_last_name": contact.last_name,
                    "default_business_name": contact.business_name},
            })


def account_definitions_of(component: EmergencySettingsComponent) -> dg.Definitions:
    from emergency_pipeline.definitions import step_templates
    from emergency_pipeline.defs.account_defs import account_definitions

    return account_definitions(component.spec(), step_templates())
