"""Which account a key reaches (rule 3: the lease is the account's, not the key's)."""

from __future__ import annotations

import pytest

from emergency_pipeline.client.account_identity import (
    AccountUnknown, identify_account, normalise_base_url,
)
from emergency_pipeline.client import ClientConfig, TelnyxClient


def _identity(emu, key: str, name: str | None = None, url: str | None = None):
    url = url or emu.base_url
    with TelnyxClient(ClientConfig(api_key=key, base_url=url)) as client:
        return identify_account(client, url, name)


def test_two_keys_of_one_account_are_one_account(emulator_factory) -> None:
    emu = emulator_factory(api_key="key-one", extra_api_keys=["key-two"])
    one, two = _identity(emu, "key-one"), _identity(emu, "key-two")
    assert one.key == two.key
    assert "key-one" not in one.key and "key-two" not in two.key
    assert emu.organization.owner_id in one.key


def test_two_accounts_are_two_keys_even_on_one_url_spelling(emulator_factory) -> None:
    a = emulator_factory(api_key="a", seed=1)
    b = emulator_factory(api_key="b", seed=2)
    assert _identity(a, "a").key != _identity(b, "b").key


def test_a_key_that_may_not_list_users_needs_the_configured_name(emulator_factory) -> None:
    emu = emulator_factory(users_listable=False)
    from conftest import API_KEY
    with pytest.raises(AccountUnknown, match="TELNYX_ACCOUNT=") as err:
        _identity(emu, API_KEY)
    assert API_KEY not in str(err.value)
    named = _identity(emu, API_KEY, name="acme-east")
    assert named.key.endswith("#name:acme-east") and named.label == "acme-east"


def test_the_configured_name_labels_a_discovered_account(emulator_factory) -> None:
    emu = emulator_factory()
    from conftest import API_KEY
    found = _identity(emu, API_KEY, name="acme")
    assert found.label == "acme" and "#org:" in found.key


@pytest.mark.parametrize("spelling", [
    "http://localhost:{port}/v2", "http://127.0.0.1:{port}/v2/", "http://127.0.0.1:{port}/v2/.",
    "http://127.0.0.1:{port}/%76%32", "HTTP://LOCALHOST:{port}/v2/../v2",
    "http://[::ffff:127.0.0.1]:{port}/v2", "http://[::1]:{port}/v2",
])
def test_spellings_of_one_base_url_are_one_url(spelling: str) -> None:
    assert normalise_base_url(spelling.format(port=8911)) == "http://loopback:8911/v2"


def test_spellings_the_server_tells_apart_stay_apart() -> None:
    assert normalise_base_url("https://api.telnyx.com/v2") == \
        normalise_base_url("https://API.telnyx.com:443/v2/")
    assert normalise_base_url("https://api.telnyx.com/v2") != \
        normalise_base_url("https://api.telnyx.com/v3")
    assert normalise_base_url("http://127.0.0.1:1/v2") != \
        normalise_base_url("http://127.0.0.1:2/v2")
    # An encoded slash is not a path separator: it stays encoded.
    assert normalise_base_url("https://x.test/a%2Fb") == "https://x.test/a%2Fb"


def test_a_key_refused_the_users_list_meets_the_organization_by_its_name(
        emulator_factory, tmp_path) -> None:
    """One account, two machines: one key may list the organization's users, the other is
    refused (403). Both configure the name `acme`: the first writes down that `acme` is the
    organization, the second finds it, and both take one lease."""
    from emergency_pipeline.safety_store import open_safety_store
    from conftest import API_KEY

    names = open_safety_store(tmp_path / "safety.sqlite").names
    emu = emulator_factory()
    listing = _identity_with(emu, API_KEY, "acme", names)
    assert "#org:" in listing.key
    emu.organization.users_listable = False           # the other machine's key
    refused = _identity_with(emu, API_KEY, "acme", names)
    assert refused.key == listing.key and refused.label == "acme"
    other = _identity_with(emu, API_KEY, "another-name", names)
    assert other.key.endswith("#name:another-name")


def _identity_with(emu, key, name, names):
    with TelnyxClient(ClientConfig(api_key=key, base_url=emu.base_url)) as client:
        return identify_account(client, emu.base_url, name, names)


def test_a_plan_only_run_needs_no_account_identity(emulator_factory, tmp_path) -> None:
    """Only applying needs the account's identity: with a key refused the users list and no
    TELNYX_ACCOUNT, a plan-only run still plans (exit 2: changes planned), and an apply run
    stops before anything is sent, naming the fix."""
    import os
    import subprocess
    import sys

    from conftest import API_KEY
    from emergency_pipeline.samples.demo_sheet import write_sample

    emu = emulator_factory(numbers=600, users_listable=False)
    sheet = write_sample(tmp_path / "d.csv", 600, 7, rows=60)
    env = {**os.environ, "TELNYX_API_KEY": API_KEY, "TELNYX_BASE_URL": emu.base_url,
           "EMERGENCY_PIPELINE_DUCKDB": str(tmp_path / "o.duckdb"),
           "DAGSTER_HOME": str(tmp_path)}
    env.pop("TELNYX_ACCOUNT", None)
    run = [sys.executable, "-m", "emergency_pipeline.cli", "run", str(sheet), "--quiet"]
    planned = subprocess.run(run, env=env, capture_output=True, text=True)
    assert planned.returncode == 2, planned.stdout + planned.stderr
    applied = subprocess.run([*run, "--apply"], env=env, capture_output=True, text=True)
    assert applied.returncode == 1 and "TELNYX_ACCOUNT=" in applied.stdout + applied.stderr
    assert emu.stats()["jobs_created"] == 0
