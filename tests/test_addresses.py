"""Matching addresses by their fields (pure: no server)."""

from __future__ import annotations

import pytest

from emergency_pipeline.addressing import fields as addr
from emergency_pipeline.addressing import matching
from emergency_pipeline.desired_state.columns import match_columns

ACCOUNT = {"id": "1", "business_name": "Acme", "street_address": "1 Main Street",
           "extended_address": "Suite 200", "locality": "Springfield",
           "administrative_area": "IL", "postal_code": "62701", "country_code": "US"}
NORTH = {"id": "2", "business_name": "Acme North", "street_address": "100 North Lake Shore Drive",
         "extended_address": "Floor 3", "locality": "Saint Louis",
         "administrative_area": "MO", "postal_code": "63101-1234", "country_code": "US"}
BARE = {"id": "3", "business_name": "Acme Bare", "street_address": "9 Elm Road",
        "extended_address": "", "locality": "Austin", "administrative_area": "TX",
        "postal_code": "78701", "country_code": "US"}


def place(street, extended, city, state, postal, country="US", **more):
    return {"street_address": street, "extended_address": extended, "locality": city,
            "administrative_area": state, "postal_code": postal, "country_code": country,
            **more}


@pytest.mark.parametrize("given, expected", [
    # same place, other spellings
    (place("1 Main Street", "Suite 200", "Springfield", "IL", "62701"), "1"),
    (place("1 MAIN ST.", "ste 200", "springfield", "Illinois", "62701-4455"), "1"),
    (place("1  Main   St", "Suite #200", "SPRINGFIELD", "il", "62701"), "1"),
    (place("1 Main St", "Ste. 200", "Springfield", "", "62701", "USA"), "1"),
    (place("100 N Lake Shore Dr", "Fl 3", "St. Louis", "MO", "63101"), "2"),
    (place("100 north lake shore drive", "FLOOR 3", "saint louis", "Missouri", "63101-1234"),
     "2"),
    (place("9 Elm Rd", "", "Austin", "TX", "78701"), "3"),
    (place("9 Elm Rd.", None, "austin", "Texas", "78701", "united states"), "3"),
    # near misses that must not match
    (place("2 Main Street", "Suite 200", "Springfield", "IL", "62701"), None),
    (place("1 Main Street", "Suite 201", "Springfield", "IL", "62701"), None),
    (place("1 Main Street", "", "Springfield", "IL", "62701"), None),
    (place("1 Main Street", "Suite 200", "Springfeld", "IL", "62701"), None),
    (place("1 Main Street", "Suite 200", "Chicago", "IL", "62701"), None),
    (place("1 Main Street", "Suite 200", "Springfield", "IL", "62702"), None),
    (place("1 Main Street", "Suite 200", "Springfield", "MO", "62701"), None),
    (place("1 Main Street", "Suite 200", "Springfield", "IL", "62701", "CA"), None),
    (place("1 Main Avenue", "Suite 200", "Springfield", "IL", "62701"), None),
    (place("100 S Lake Shore Dr", "Fl 3", "St. Louis", "MO", "63101"), None),
    (place("100 N Lake Shore Dr", "Fl 3", "St. Louis", "MO", "63101-9999"), None),
    (place("9 Elm Rd", "Unit 1", "Austin", "TX", "78701"), None),
    (place("19 Elm Rd", "", "Austin", "TX", "78701"), None),
])
def test_matching(given, expected):
    found = matching.AddressIndex([ACCOUNT, NORTH, BARE]).find(given)
    assert found.address_id == expected, (given, found)
    assert found.status == ("matched" if expected else "none")


def test_two_account_addresses_at_one_place_are_ambiguous_unless_the_name_decides():
    twin = {**ACCOUNT, "id": "9", "business_name": "Other Co"}
    index = matching.AddressIndex([ACCOUNT, twin])
    given = place("1 Main St", "Ste 200", "Springfield", "IL", "62701")
    assert index.find(given) == matching.AddressMatch("ambiguous", ("1", "9"))
    assert index.find({**given, "business_name": "other co."}).address_id == "9"


@pytest.mark.parametrize("text, expected", [
    ("1 Main Street", "1 main st"), ("Suite #200", "ste 200"), ("14th Floor", "14th fl"),
    ("600 Congress Avenue", "600 congress ave"), ("  12  W.  5th  Blvd ", "12 w 5th blvd"),
])
def test_normalise_text(text, expected):
    assert addr.normalise_text(text) == expected


def test_postal_codes():
    assert addr.normalise_postal("62701-1234") == ("62701", "1234")
    assert addr.normalise_postal("627011234") == ("62701", "1234")
    assert addr.normalise_postal("sw1a 1aa", "gb") == ("SW1A1AA", "")


def test_a_place_needs_street_city_and_postal_code():
    assert addr.address_key(place("1 Main St", "", "", "IL", "62701")) is None
    assert addr.missing_fields({"street_address": "1 Main St"}) == ["locality", "postal_code"]
    assert addr.address_key(place("1 Main St", "", "Springfield", "IL", "62701", "")
                            ).country == "us"


def test_disagreements_compare_only_the_given_fields():
    assert matching.disagreements({"locality": "springfield", "postal_code": "62701-0001"}, ACCOUNT) \
        == []
    assert matching.disagreements({"locality": "Chicago", "street_address": "1 Main St"},
                              ACCOUNT) == ["locality"]


def test_describe_and_group_key():
    given = place("1 Main St", "Ste 2", "Springfield", "IL", "62701-0001", business_name="Acme")
    assert addr.describe(given) == "Acme, 1 Main St, Ste 2, Springfield, IL 62701-0001, US"
    other = place("1 main street", "suite 2", "springfield", "illinois", "62701")
    assert addr.address_key(given).group == addr.address_key(other).group


@pytest.mark.parametrize("header, field", [
    ("Street", "street_address"), ("street_address", "street_address"),
    ("Address1", "street_address"), ("Address 2", "extended_address"),
    ("Suite", "extended_address"), ("City", "locality"), ("Locality", "locality"),
    ("State", "administrative_area"), ("Province", "administrative_area"),
    ("ZIP", "postal_code"), ("Postcode", "postal_code"), ("Postal Code", "postal_code"),
    ("Country", "country_code"), ("country_code", "country_code"),
    ("Company", "business_name"), ("Site Name", "business_name"), ("name", "business_name"),
    ("First Name", "first_name"), ("given_name", "first_name"), ("Contact First Name",
                                                                 "first_name"),
    ("Last Name", "last_name"), ("Surname", "last_name"), ("family name", "last_name"),
])
def test_address_columns_are_matched_tolerantly(header, field):
    m = match_columns(["phone", "e911", header, "ticket"])
    assert dict(m.address_fields) == {field: header}
    assert m.extras == ("ticket",)


def test_creation_fields_fill_blank_names_from_the_defaults_and_say_what_is_missing():
    sheet = {"street_address": "1 Main St", "locality": "Springfield", "country_code": "US",
             "first_name": "Dana", "last_name": " "}
    body, missing = addr.creation_fields(sheet, addr.ContactDefaults(last_name="Desk"))
    assert (body["first_name"], body["last_name"]) == ("Dana", "Desk")
    assert missing == ["business_name"]          # never sent as an empty string
    assert "business_name" not in body
    body, missing = addr.creation_fields(sheet, addr.ContactDefaults("X", "Y", "Acme"))
    assert missing == [] and body["first_name"] == "Dana"   # the sheet's own name wins
