"""Addresses by their fields against the emulator: its endpoints, the client, and the job."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import httpx
import pandas as pd
import pytest
from dagster import DagsterInstance
from dagster_duckdb import DuckDBResource

from _client_support import KEY, fast_config, running_emulator
from _emulator_support import allowing
from emergency_pipeline.addressing import fields as addr
from emergency_pipeline.addressing import matching
from emergency_pipeline.addressing.creation import Created, Failed, Refused, create_once
from emergency_pipeline.addressing.resolution import resolve_addresses
from emergency_pipeline.client import AddressRejected, TelnyxClient
from emergency_pipeline.definitions import build_definitions
from emergency_pipeline.launch import run_job
from emergency_pipeline.defs.resources import TelnyxResource
from emergency_pipeline.emulator import Emulator, Faults
from emergency_pipeline.defs.resources import PipelineStorage, state_dir_for
from emergency_pipeline.analytics.store import Store
from emergency_pipeline.safety_store import open_safety_store

NEW = {"street_address": "1 Main Street", "locality": "Springfield",
       "administrative_area": "IL", "postal_code": "62701", "country_code": "US",
       "business_name": "Acme Springfield Depot", "first_name": "Dana", "last_name": "Lee"}
PLACE = {k: v for k, v in NEW.items() if k in addr.PLACE_FIELDS}   # what validate takes
log = logging.getLogger("test")


def _post(emu: Emulator, path: str, body: dict) -> httpx.Response:
    return httpx.post(emu.base_url + path, json=body, timeout=10,
                      headers={"Authorization": f"Bearer {KEY}"})


# ---- the emulator's endpoints -------------------------------------------------------------

@pytest.mark.spec_violations   # bodies missing what the spec requires, on purpose
def test_emulator_validates_and_creates_addresses():
    with running_emulator(numbers=50) as emu:
        ok = _post(emu, "/addresses/actions/validate", PLACE)
        assert ok.status_code == 200
        assert ok.json()["data"]["result"] == "valid"
        assert ok.json()["data"]["suggested"]["postal_code"] == "62701"

        wrong_zip = _post(emu, "/addresses/actions/validate", {**PLACE, "postal_code": "62799"})
        data = wrong_zip.json()["data"]
        assert data["result"] == "invalid" and data["suggested"]["postal_code"] == "62701"
        assert data["errors"][0]["source"]["pointer"] == "/postal_code"

        zero = _post(emu, "/addresses/actions/validate", {**PLACE, "street_address": "0 Main St"})
        assert zero.json()["data"]["result"] == "invalid"
        assert zero.json()["data"]["errors"][0]["source"]["pointer"] == "/street_address"

        missing = _post(emu, "/addresses/actions/validate", {"street_address": "1 Main St"})
        assert missing.status_code == 422
        errors = missing.json()["errors"]
        assert {e["code"] for e in errors} == {"10015"}
        assert {e["source"]["pointer"] for e in errors} == {"/country_code", "/postal_code"}

        before = len(emu.addresses())
        refused = _post(emu, "/addresses", {**NEW, "postal_code": "62799"})
        assert refused.status_code == 422 and refused.json()["errors"][0]["code"] == "20208"
        # The spec's AddressCreate requires the three names too (an empty one is refused).
        for name in ("business_name", "first_name", "last_name"):
            nameless = _post(emu, "/addresses", {**NEW, name: ""})
            assert nameless.status_code == 422
            assert nameless.json()["errors"][0]["source"]["pointer"] == f"/{name}"
        unnamed = {k: v for k, v in NEW.items() if k not in ("first_name", "last_name")}
        assert _post(emu, "/addresses", unnamed).status_code == 422   # business name alone
        assert len(emu.addresses()) == before

        made = _post(emu, "/addresses", NEW)
        assert made.status_code == 200
        new_id = made.json()["data"]["id"]
        listed = httpx.get(emu.base_url + "/addresses", params={"page[size]": 250},
                           headers={"Authorization": f"Bearer {KEY}"}).json()["data"]
        assert new_id in {a["id"] for a in listed}
        assert emu.stats()["addresses_created"] == 1
        # A job can use it at once.
        number = allowing(emu, 1, emergency_status="disabled")[0]
        job = _post(emu, "/phone_numbers/jobs/update_emergency_settings", {
            "phone_numbers": [number["phone_number"]], "emergency_enabled": True,
            "emergency_address_id": new_id})
        assert job.status_code == 202


# ---- the client -----------------------------------------------------------------------------

def test_client_create_after_a_lost_answer_adopts_instead_of_creating_again():
    with running_emulator(numbers=20, faults=Faults(lose_address_post_rate=1.0, seed=1)) as emu:
        with TelnyxClient(fast_config(emu), log=log) as client:
            def find():
                index = matching.AddressIndex(client.list_addresses())
                hit = index.find(NEW)
                return dict(index.by_id[hit.ids[0]]) if hit.ids else None

            made = client.create_address(NEW, find)
        assert made.adopted
        assert emu.stats()["addresses_created"] == 1
        assert emu.stats()["lost_address_answers"] == 1
        assert made.address_id in {a["id"] for a in emu.addresses()}


def test_client_create_refused_raises_address_rejected_and_validate_tells_why():
    with running_emulator(numbers=20) as emu:
        with TelnyxClient(fast_config(emu), log=log) as client:
            result = client.validate_address({**NEW, "postal_code": "62799"})
            assert result["result"] == "invalid"
            with pytest.raises(AddressRejected) as err:
                client.create_address({**NEW, "street_address": "0 Main St"}, lambda: None)
        assert "/street_address" in str(err.value)
        assert KEY not in str(err.value)
        assert emu.stats()["addresses_created"] == 0


def test_create_once_tells_refused_from_unanswered_and_leaves_only_the_unanswered_open(
        tmp_path: Path):
    # A refusal closes the intent and rejects the rows; no answer must keep it open, so that
    # the next run lists the account's addresses before creating (never two of one place).
    store = open_safety_store(tmp_path / "safety.sqlite")
    ledger, key = store.ledger, addr.address_key(NEW).group
    with running_emulator(numbers=20) as emu:
        with TelnyxClient(fast_config(emu, max_attempts=2), log=log) as client:
            bad = {**NEW, "street_address": "0 Main St"}
            refused = create_once(client, ledger, "acct", "bad", bad, "run-1", log)
            assert isinstance(refused, Refused) and "/street_address" in refused.errors
            emu.set_faults(Faults(drop_rate=1.0, seed=1))    # the POST and the look-up unanswered
            failed = create_once(client, ledger, "acct", key, NEW, "run-1", log)
            assert isinstance(failed, Failed) and KEY not in failed.reason
            assert ledger.open_address_intents("acct") == {key}
            emu.set_faults(Faults())
            made = create_once(client, ledger, "acct", key, NEW, "run-2", log)
        assert isinstance(made, Created) and not made.adopted
        assert made.address_id in {a["id"] for a in emu.addresses()}
        assert emu.stats()["addresses_created"] == 1
    assert ledger.open_address_intents("acct") == set()
    store.close()


# ---- the whole job ----------------------------------------------------------------------------

class Setup:
    def __init__(self, tmp_path: Path, emu: Emulator) -> None:
        self.emu = emu
        self.database = str(tmp_path / "outcomes.duckdb")
        self.desired = str(tmp_path / "desired.csv")
        self.instance = DagsterInstance.ephemeral()
        state = PipelineStorage(directory=state_dir_for(self.database),
                              store_url=str(tmp_path / "safety.sqlite"))
        self.defs = build_definitions({
            "telnyx": TelnyxResource(api_key=KEY, base_url=emu.base_url),
            "duckdb": DuckDBResource(database=self.database), "storage": state})
        self.store = Store(self.database)
        self.ledger = state.ledger()
        self.account = TelnyxResource(api_key=KEY, base_url=emu.base_url).account()
        numbers = allowing(emu, 9, emergency_status="disabled")
        self.numbers = [n["phone_number"] for n in numbers]
        have = emu.addresses()[0]
        self.existing = have
        same_place = {"Street": have["street_address"].upper().replace("STREET", "ST"),
                      "Suite": have["extended_address"].replace("Floor", "Fl."),
                      "City": have["locality"].lower(), "State": have["administrative_area"],
                      "ZIP": have["postal_code"] + "-1234", "Company": ""}
        # The contact's names on one row of the place: its other rows share them.
        new = [{"Street": "1 Main Street", "City": "Springfield", "State": "IL",
                "ZIP": "62701", "Company": "Acme Depot", "First Name": "Dana",
                "Surname": "Lee"},
               {"Street": "1 main st.", "City": "SPRINGFIELD", "State": "Illinois",
                "ZIP": "62701-0001", "Company": ""},
               {"Street": "1 Main St", "City": "Springfield", "State": "IL", "ZIP": "62701",
                "Company": "Acme Depot"}]
        rows = [dict(r) for r in new]
        rows += [dict(same_place), dict(same_place)]
        rows.append({"Street": "500 Commerce Street", "City": "Dallas", "State": "TX",
                     "ZIP": "75301", "Company": "Acme Annex"})                 # invalid
        rows.append({"Address ID": have["id"], "City": "Nowhere"})             # disagrees
        rows.append({"Address ID": have["id"], "City": have["locality"]})      # agrees
        rows.append({"Street": "7 Nowhere Lane", "City": "Madison", "State": "WI",
                     "ZIP": "53703"})                                          # no name
        sheet = pd.DataFrame(rows).fillna("")
        sheet.insert(0, "phone", self.numbers)
        sheet.insert(1, "e911", "yes")
        sheet.to_csv(self.desired, index=False)

    def run(self, apply: bool, **address_config):
        config = {"ops": {"emergency_address_resolution": {"config": dict(address_config)}}}
        result = run_job(self.desired, apply, config, defs=self.defs, instance=self.instance)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        return result

    def outcomes(self, run_id: str) -> pd.DataFrame:
        return self.store.query("SELECT * FROM operation_outcomes WHERE run_id = ? "
                                "ORDER BY source_row", [run_id]).set_index("phone_number")

    def resolutions(self, run_id: str) -> pd.DataFrame:
        return self.store.query("SELECT * FROM address_resolutions WHERE run_id = ?", [run_id])


@pytest.fixture
def setup(tmp_path: Path):
    with Emulator(numbers=300, seed=5, api_key=KEY, job_seconds=0.2) as emu:
        yield Setup(tmp_path, emu)


def _created(setup: Setup) -> list[dict]:
    return [a for a in setup.emu.addresses() if a["locality"] == "Springfield"]


def test_apply_matches_creates_once_and_rejects_with_the_suggestion(setup: Setup) -> None:
    result = setup.run(apply=True)
    assert setup.emu.stats()["addresses_created"] == 1          # three rows, one address
    (new,) = _created(setup)
    assert (new["first_name"], new["last_name"], new["business_name"]) == (
        "Dana", "Lee", "Acme Depot")                            # from the sheet
    out = setup.outcomes(result.run_id)
    n = setup.numbers
    assert out.loc[n[0:3], "target_address_id"].tolist() == [new["id"]] * 3
    assert out.loc[n[0:3], "result"].isin(["succeeded", "pending"]).all()
    assert out.loc[n[3:5], "target_address_id"].tolist() == [setup.existing["id"]] * 2
    assert "1 main st." in out.loc[n[1], "address_given"]            # as the sheet gave it
    assert out.loc[n[5], "result"] == "rejected"
    assert "postal_code '75201'" in out.loc[n[5], "reason"]           # the suggestion
    assert out.loc[n[6], "result"] == "rejected" and "disagree" in out.loc[n[6], "reason"]
    assert out.loc[n[7], "target_address_id"] == setup.existing["id"]
    assert out.loc[n[7], "result"] in ("succeeded", "pending")
    assert out.loc[n[8], "result"] == "rejected"
    assert "needs first_name, last_name, business_name" in out.loc[n[8], "reason"]
    # The fix that applies: the name columns exist and their cells are blank (issue 27).
    assert "fix: fill the blank " in out.loc[n[8], "reason"]
    assert "add " not in out.loc[n[8], "reason"]
    assert "default_<name>" in out.loc[n[8], "reason"]
    assert len(out.loc[n[8], "reason"]) <= 240
    # Each rejection names the column as the sheet heads it, not the canonical field.
    assert out.loc[n[5], "reason"].startswith("column Street:")
    assert out.loc[n[6], "reason"].startswith("column Address ID:")
    assert out.loc[n[8], "reason"].startswith("column First Name:")
    status = setup.resolutions(result.run_id).groupby("status")["rows"].sum().to_dict()
    assert status == {"created": 3, "matched": 2, "invalid": 2, "disagrees": 1,
                      "matched_by_id": 1}
    # Every row has exactly one result.
    assert len(out) == 9

    setup.emu.finish_jobs()
    again = setup.run(apply=True)
    assert setup.emu.stats()["addresses_created"] == 1
    assert set(setup.resolutions(again.run_id)["status"]) == {
        "matched", "invalid", "disagrees", "matched_by_id"}


def test_names_a_sheet_lacks_come_from_the_run_config(setup: Setup) -> None:
    result = setup.run(apply=True, default_first_name="E911", default_last_name="Desk",
                       default_business_name="Acme Sites")
    n = setup.numbers
    out = setup.outcomes(result.run_id)
    assert out.loc[n[8], "result"] in ("succeeded", "pending")   # no names in its row
    (made,) = [a for a in setup.emu.addresses() if a["locality"] == "Madison"]
    assert (made["first_name"], made["last_name"], made["business_name"]) == (
        "E911", "Desk", "Acme Sites")
    (new,) = _created(setup)            # the sheet's own names win over the defaults
    assert (new["first_name"], new["business_name"]) == ("Dana", "Acme Depot")


def test_plan_only_creates_nothing_and_says_what_it_would_create(setup: Setup) -> None:
    before = len(setup.emu.addresses())
    result = setup.run(apply=False)
    assert len(setup.emu.addresses()) == before
    assert setup.emu.stats()["addresses_created"] == 0
    res = setup.resolutions(result.run_id)
    would = res[res["status"] == "would_create"]
    assert len(would) == 1 and int(would["rows"].iloc[0]) == 3
    assert "Springfield" in would["address_given"].iloc[0]
    out = setup.outcomes(result.run_id)
    assert (out.loc[setup.numbers[0:3], "result"] == "planned").all()


def test_rerun_after_a_crash_between_recording_and_the_answer_does_not_create_twice(
        setup: Setup) -> None:
    key = addr.address_key({**NEW, "country_code": "US"}).group
    # The crashed run recorded its intent; its POST reached Telnyx but the answer was lost.
    setup.ledger.record_address(key, "crashed", "recorded", {}, account=setup.account)
    assert _post(setup.emu, "/addresses", NEW).status_code == 200
    (lost,) = _created(setup)
    result = setup.run(apply=True)
    assert setup.emu.stats()["addresses_created"] == 1
    assert len(_created(setup)) == 1
    out = setup.outcomes(result.run_id)
    assert out.loc[setup.numbers[0:3], "target_address_id"].tolist() == [lost["id"]] * 3


def test_rerun_after_a_crash_before_the_post_creates_it_once(setup: Setup) -> None:
    key = addr.address_key({**NEW, "country_code": "US"}).group
    setup.ledger.record_address(key, "crashed", "recorded", {}, account=setup.account)
    setup.run(apply=True)
    assert setup.emu.stats()["addresses_created"] == 1
    con = sqlite3.connect(setup.ledger.path)
    events = [e for (e,) in con.execute("SELECT event FROM address_events ORDER BY rowid")]
    con.close()
    assert events == ["recorded", "recorded", "created"]


def test_an_address_id_the_account_lacks_is_rejected_not_skipped():
    # Issue 15: a mistyped id ended "skipped", absent from the rejected rows' query.
    accepted = pd.DataFrame({
        "source_file": "a.csv", "source_row": [2, 3], "phone_number": ["+19705555098", None],
        "number_id": [None, "1293385034380736105"], "emergency_enabled": True,
        "emergency_address_id": ["111", "999"], "extras": ['{"ticket": "T-1"}', "{}"],
        "address_fields": None, "address_columns": None})
    res = resolve_addresses(accepted, [{"id": "111", "street_address": "1 Main St"}],
                            client=None, ledger=None, apply=False, run_id="r", log=log)
    assert res.accepted["source_row"].tolist() == [2]
    rej = res.rejected.iloc[0]
    assert (rej.source_row, rej.column, rej.value) == (3, "emergency_address_id", "999")
    assert "not one of the account's addresses" in rej.reason and "account_addresses" in rej.fix
    assert rej.phone_number == "1293385034380736105" and rej.extras == "{}"
