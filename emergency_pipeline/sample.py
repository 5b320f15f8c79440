"""The sample desired state in data/: a realistic hand-edited spreadsheet for the demo account.

It is written from the emulator's account for a seed, so its numbers exist there; a share of
rows is bad on purpose (the demo shows their rejections), a few numbers are not in the
account, and the formats vary the way real sheets do.

    python -m emergency_pipeline.sample --numbers 3000 --seed 2026 --out data/desired_state.csv
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

import phonenumbers

from emergency_pipeline.emulator.account import Account

DEMO_NUMBERS = 3000
DEMO_SEED = 2026
SITES = ["HQ", "Warehouse", "Call centre", "Branch 12", "Remote"]


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
    account = Account.generate(numbers, seed=seed)
    data = sample_rows(account, rows or max(1, numbers // 6), seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["phone_number", "E911 Enabled", "Address ID",
                                                "site", "ticket", "note"])
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
