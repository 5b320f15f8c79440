"""The sample desired state in data/: a realistic hand-edited spreadsheet for the demo account.

It is written from the emulator's account for a seed, so its numbers exist there; a share of
rows is bad on purpose (the demo shows their rejections), a few numbers are not in the
account, and the formats vary the way real sheets do. Some rows give their address by its
fields instead of its id (issue 7): account addresses spelled differently (abbreviations,
case, ZIP+4, the state's name), one new valid address shared by three rows (created once),
one address the emulator finds invalid (a ZIP that is not the city's: it suggests the right
one), and one row whose id and city disagree.

    python -m emergency_pipeline.samples.demo_sheet --numbers 3000 --seed 2026 --out data/desired_state.csv
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path
from typing import TYPE_CHECKING

import phonenumbers

if TYPE_CHECKING:   # the emulator's account loads on use: `demo` is registered for every command
    from emergency_pipeline.emulator.account import Account

DEMO_NUMBERS = 3000
DEMO_SEED = 2026
SITES = ["HQ", "Warehouse", "Call centre", "Branch 12", "Remote"]
ADDRESS_COLUMNS = {"street_address": "Street", "extended_address": "Suite",
                   "locality": "City", "administrative_area": "State",
                   "postal_code": "ZIP", "business_name": "Company",
                   "first_name": "Contact First Name", "last_name": "Contact Last Name"}
FIELDNAMES = ["phone_number", "E911 Enabled", "Address ID", *ADDRESS_COLUMNS.values(),
              "site", "ticket", "note"]
_RESPELL = (("Avenue", "Ave."), ("Street", "St"), ("Road", "Rd."), ("Boulevard", "Blvd"),
            ("Drive", "Dr"), ("Floor", "Fl."))
_STATE_NAMES = {"TX": "Texas", "IL": "Illinois", "CO": "Colorado", "WA": "Washington",
                "GA": "Georgia", "MA": "Massachusetts"}
# A site the generated account does not have: the demo creates it (once, for three rows).
# Telnyx needs a contact's names to create it: one row gives them for the place.
NEW_SITE = [{"Street": "1 Main Street", "City": "Springfield", "State": "IL", "ZIP": "62701",
             "Company": "Acme Springfield Depot", "Contact First Name": "Dana",
             "Contact Last Name": "Lee"},
            {"Street": "1 main st.", "City": "SPRINGFIELD", "State": "Illinois",
             "ZIP": "62701-0001", "Company": "Acme Springfield Depot"},
            {"Street": "1 Main St", "City": "Springfield", "State": "IL", "ZIP": "62701",
             "Company": "Acme Springfield Depot"}]
# Dallas is 75201 (the emulator knows): invalid, with the right ZIP suggested.
INVALID_SITE = {"Street": "500 Commerce Street", "City": "Dallas", "State": "TX",
                "ZIP": "75301", "Company": "Acme Dallas Annex"}


def respelled(address: dict, variant: int) -> dict[str, str]:
    """An account address as a person might type it: same place, different spelling."""
    street, suite = address["street_address"], address.get("extended_address") or ""
    state, zip_ = address["administrative_area"], address["postal_code"]
    if variant % 2 == 0:
        for long, short in _RESPELL:
            street, suite = street.replace(long, short), suite.replace(long, short)
    else:
        street, suite = street.upper(), suite.lower()
    if variant % 3 == 1:
        zip_ = f"{zip_}-{1000 + variant:04d}"           # ZIP+4 against the account's ZIP
    if variant % 3 == 2:
        state = _STATE_NAMES.get(state, state)
    return {"Street": street, "Suite": suite, "City": address["locality"].lower()
            if variant % 2 else address["locality"], "State": state, "ZIP": zip_}


def _national(e164: str) -> str:
    return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.NATIONAL)


def sample_rows(account: Account, rows: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    address_ids = [a["id"] for a in account.addresses]
    numbers = list(account.iter_numbers())
    chosen = rng.sample(numbers, min(rows, len(numbers)))
    out = []
    for i, n in enumerate(chosen):
        roll = rng.random()
        ident = n["phone_number"]
        if roll < 0.10:
            ident = _national(ident)            # "(201) 555-0100", as people type them
        elif roll < 0.15:
            ident = n["id"]                     # a Telnyx number id
        if n["emergency_enabled"] and rng.random() < 0.5:
            enabled, addr = "yes", n["emergency_address_id"]            # already right: noop
        elif rng.random() < 0.75:
            enabled, addr = rng.choice(["TRUE", "yes", "1", "on"]), rng.choice(address_ids)
        else:
            enabled, addr = rng.choice(["FALSE", "no", "0", "off"]), ""
        out.append({"phone_number": ident, "E911 Enabled": enabled, "Address ID": addr,
                    "site": rng.choice(SITES), "ticket": f"OPS-{4000 + i}", "note": ""})
    # Addresses by their fields: every 8th row that enables with an address of the account.
    by_id = {a["id"]: a for a in account.addresses}
    with_address = [r for r in out if r["Address ID"] and r["E911 Enabled"] not in
                    ("FALSE", "no", "0", "off")]
    for k, row in enumerate(with_address[::8]):
        row.update(respelled(by_id[row["Address ID"]], k), **{"Address ID": ""})
        row["note"] = "address by its fields"
    spare = [r for r in with_address if r["Address ID"]]
    for row, site in zip(spare[-3:], NEW_SITE):
        row.update(site, **{"Address ID": "", "note": "a new site: created once"})
    if len(spare) > 5:
        spare[-4].update(INVALID_SITE, **{"Address ID": "", "note": "ZIP not the city's"})
        spare[-5].update({"City": "Nowhere", "note": "id and city disagree"})
    # Rows bad on purpose, as they turn up in real sheets.
    bad = [
        {"phone_number": "+1 555 0100", "E911 Enabled": "yes", "Address ID": address_ids[0],
         "note": "too short: not a phone number"},
        {"phone_number": "1.97E+10", "E911 Enabled": "yes", "Address ID": address_ids[0],
         "note": "Excel ate the number"},
        {"phone_number": numbers[0]["phone_number"], "E911 Enabled": "maybe",
         "Address ID": address_ids[0], "note": "unreadable flag"},
        {"phone_number": numbers[1]["phone_number"], "E911 Enabled": "yes", "Address ID": "",
         "note": "enabled without an address"},
        {"phone_number": numbers[2]["phone_number"], "E911 Enabled": "no",
         "Address ID": address_ids[1], "note": "disabled with an address"},
        {"phone_number": "+12025550143", "E911 Enabled": "yes", "Address ID": address_ids[0],
         "note": "not a number of this account"},
        {"phone_number": numbers[3]["phone_number"], "E911 Enabled": "yes",
         "Address ID": "999999999", "note": "address not in the account"},
    ]
    conflict = numbers[4]["phone_number"]
    bad += [
        {"phone_number": conflict, "E911 Enabled": "yes", "Address ID": address_ids[0],
         "note": "conflicts with the next row"},
        {"phone_number": conflict, "E911 Enabled": "no", "Address ID": "",
         "note": "conflicts with the previous row"},
    ]
    for row in bad:
        row.setdefault("site", "Branch 7")
        row.setdefault("ticket", "OPS-3999")
    out[5:5] = bad
    out.append(dict(out[-1]))                   # an identical duplicate: collapses into one
    return out


def write_sample(path: Path, numbers: int = DEMO_NUMBERS, seed: int = DEMO_SEED,
                 rows: int | None = None) -> Path:
    from emergency_pipeline.emulator.account import Account

    account = Account.generate(numbers, seed=seed)
    data = sample_rows(account, rows or max(1, numbers // 6), seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDNAMES)
        writer.writeheader()
        writer.writerows(data)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=DEMO_NUMBERS)
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--out", type=Path, default=Path("data/desired_state.csv"))
    args = parser.parse_args()
    print(write_sample(args.out, args.numbers, args.seed))


if __name__ == "__main__":
    main()
