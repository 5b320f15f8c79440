"""Addresses given by their fields -> address ids of the account: matched, or created.

For the accepted rows that give an address by its fields (`address_fields`, JSON text):
- a row that gives an id the account does not have is rejected (a typo, or an id a
  spreadsheet rounded: the plan must not guess);
- a row that also gives an id is checked against that address of the account; rows whose
  fields disagree with it are rejected;
- the other rows are grouped by place (addresses.address_key), and each distinct place is
  matched against the account: one match gives its id; several are ambiguous, and the rows
  are rejected with the candidates' ids;
- a place with no match is validated (POST /addresses/actions/validate, on plan-only runs
  too): invalid ones reject their rows with Telnyx's errors and its suggestion; valid ones
  are created once (POST /addresses) on an apply run, or shown as `would_create` with a
  placeholder id (`new-address-...`) that the plan carries and nothing ever submits.

Creation never doubles an address: the intent is recorded in the address ledger
(safety_store/ledger.py) before the POST; a run that finds an intent still open (its creation was never recorded)
lists the account's addresses again and matches by fields before creating; after an
ambiguous failure the client does the same before sending again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from emergency_pipeline.addressing import fields as addr
from emergency_pipeline.client import AddressRejected, TelnyxAPIError
from emergency_pipeline.desired_state.validate import REJECTED_COLUMNS
from emergency_pipeline.safety_store import Ledger

PLACEHOLDER_PREFIX = "new-address-"
RESOLUTION_COLUMNS = ["address_key", "address_given", "status", "address_id", "candidates",
                      "rows", "phone_numbers", "errors", "suggested", "detail"]
# status: matched, matched_by_id, created, adopted, would_create, ambiguous, invalid,
#         disagrees, failed


def _now() -> datetime:
    return datetime.now(timezone.utc)


def is_placeholder(address_id: Any) -> bool:
    return isinstance(address_id, str) and address_id.startswith(PLACEHOLDER_PREFIX)


@dataclass(frozen=True)
class Resolution:
    accepted: pd.DataFrame     # the accepted rows, ids filled in; + address_given, address_note
    rejected: pd.DataFrame     # rows rejected for their address (REJECTED_COLUMNS)
    addresses: pd.DataFrame    # the account's addresses, + created ones and placeholders
    table: pd.DataFrame        # one row per distinct address of the sheet (RESOLUTION_COLUMNS)

    def counts(self) -> dict[str, int]:
        by = self.table["status"].value_counts() if len(self.table) else {}
        return {f"addresses_{s}": int(n) for s, n in dict(by).items()}


def _errors_text(errors: list[dict] | tuple) -> str:
    parts = []
    for e in errors:
        get = e.get if isinstance(e, dict) else (lambda k, e=e: getattr(e, k, None))
        source = get("source") if isinstance(e, dict) else None
        pointer = (source or {}).get("pointer") if isinstance(source, dict) else get("pointer")
        text = " ".join(str(p) for p in (get("code"), get("title")) if p)
        detail = get("detail") or get("description")
        if detail:
            text += f": {detail}"
        if pointer:
            text += f" (at {pointer})"
        parts.append(text)
    return "; ".join(parts)


def resolve_addresses(accepted: pd.DataFrame, account_addresses: list[dict] | pd.DataFrame,
                      client: Any, ledger: Ledger | None, *, apply: bool, run_id: str,
                      log: Any, contact: addr.ContactDefaults | None = None,
                      account: str = "") -> Resolution:
    """`contact`: names for new addresses whose rows give none (Telnyx requires first name,
    last name and business name to create one). `account`: the account's key in the ledger
    (client/account_identity.py), whose creation intents this run sees and adds to."""
    if ledger is not None and not account:
        raise ValueError("the address ledger is per account: pass account=")
    acc = accepted.reset_index(drop=True).copy()
    if isinstance(account_addresses, pd.DataFrame):
        known = [{k: (None if pd.isna(v) else v) for k, v in r.items()}
                 for r in account_addresses.to_dict("records")]
    else:
        known = [dict(a) for a in account_addresses]
    index = addr.AddressIndex(known)
    given = acc["address_fields"] if "address_fields" in acc else pd.Series(
        [None] * len(acc), dtype=object)
    fields_of = [json.loads(t) if isinstance(t, str) and t else None for t in given]
    acc["address_given"] = [addr.describe(f) if f else None for f in fields_of]
    acc["address_note"] = None
    ids = acc["emergency_address_id"].astype(object).where(
        acc["emergency_address_id"].notna(), None).tolist()
    reject_rows: list[dict] = []
    rejected_pos: set[int] = set()
    table: list[dict] = []
    extra_addresses: list[dict] = []

    def reject(pos: int, column: str, value: str, reason: str, fix: str) -> None:
        rejected_pos.add(pos)
        reject_rows.append({
            "source_file": acc.at[pos, "source_file"], "source_row": acc.at[pos, "source_row"],
            "column": sheet_header(pos, column), "value": value, "reason": reason, "fix": fix,
            "phone_number": acc.at[pos, "phone_number"]
            if pd.notna(acc.at[pos, "phone_number"]) else acc.at[pos, "number_id"],
            "extras": acc.at[pos, "extras"] if "extras" in acc else "{}"})

    def sheet_header(pos: int, column: str) -> str:
        """The column as the row's sheet names it (the canonical name when unknown)."""
        names = acc.at[pos, "address_columns"] if "address_columns" in acc else None
        return json.loads(names).get(column, column) if isinstance(names, str) else column

    def refused_or_unsettled(positions: list[int], refused: bool, reason: str,
                             note: str) -> None:
        """Telnyx refused the address: its rows are rejected. No clear answer: they go on
        without an id (the plan skips them) and a re-run tries again."""
        for p in positions:
            if refused:
                reject(p, addr.STREET, acc.at[p, "address_given"], reason,
                       "correct the address fields")
            else:
                ids[p] = None
                acc.at[p, "address_note"] = note

    def numbers_of(positions: list[int]) -> str:
        shown = [str(acc.at[p, "phone_number"] if pd.notna(acc.at[p, "phone_number"])
                     else acc.at[p, "number_id"]) for p in positions[:5]]
        return ", ".join(shown) + (f" and {len(positions) - 5} more" if len(positions) > 5 else "")

    # 0. An id the account does not have is a mistake in the sheet: rejected, with the fix.
    for pos, given_id in enumerate(ids):
        if given_id is not None and str(given_id) not in index.by_id:
            reject(pos, "emergency_address_id", str(given_id),
                   f"address id {given_id} is not one of the account's addresses",
                   "use the id of an address of the account (table account_addresses, or "
                   "GET /v2/addresses), or give the address by its fields")

    # 1. An id and fields: they must agree.
    groups: dict[str, list[int]] = {}
    for pos, fields in enumerate(fields_of):
        if not fields or pos in rejected_pos:
            continue
        if ids[pos] is not None:
            have = index.by_id[str(ids[pos])]
            wrong = [f for f in addr.disagreements(fields, have) if f != addr.NAME]
            status = "disagrees" if wrong else "matched_by_id"
            if wrong:
                reject(pos, "emergency_address_id", str(ids[pos]),
                       f"the address fields disagree with address {ids[pos]} of the account "
                       f"({', '.join(wrong)}: the account has {addr.describe(have)})",
                       "give either the emergency_address_id or the address fields, or make "
                       "them agree")
            table.append({"address_key": (addr.address_key(fields) or addr.address_key(have)
                                          or addr.PlaceKey(*[""] * 7)).text,
                          "address_given": acc.at[pos, "address_given"], "status": status,
                          "address_id": str(ids[pos]), "rows": 1,
                          "phone_numbers": numbers_of([pos])})
            continue
        key = addr.address_key(fields)
        groups.setdefault(key.group if key else addr.fields_json(fields), []).append(pos)

    open_intents = (ledger.open_address_intents(account)
                    if (ledger is not None and apply and groups)
                    else set())
    fresh: addr.AddressIndex | None = None

    def relist() -> addr.AddressIndex:
        return addr.AddressIndex(client.list_addresses())

    # 2. Each distinct place once.
    for key, positions in groups.items():
        fields = dict(fields_of[positions[0]])
        for name in (addr.NAME, addr.FIRST, addr.LAST):  # any row of the place may name them
            given_names = [fields_of[p][name] for p in positions if fields_of[p].get(name)]
            if given_names and not fields.get(name):
                fields[name] = given_names[0]
        row = {"address_key": key, "address_given": addr.describe(fields),
               "rows": len(positions), "phone_numbers": numbers_of(positions)}
        found = index.find(fields)
        if found.status == "none" and key in open_intents:
            # An earlier run recorded this creation and never saw its answer: look again.
            fresh = fresh or relist()
            found = fresh.find(fields)
            if found.status != "none":
                extra_addresses.append(dict(fresh.by_id[found.ids[0]]))
                log.warning(f"address {row['address_given']}: found {found.ids[0]}, created by "
                            "an earlier run whose answer was not recorded")
        if found.status == "matched":
            table.append({**row, "status": "matched", "address_id": found.address_id})
            for p in positions:
                ids[p] = found.address_id
            continue
        if found.status == "ambiguous":
            table.append({**row, "status": "ambiguous", "candidates": ", ".join(found.ids)})
            for p in positions:
                reject(p, addr.STREET, acc.at[p, "address_given"],
                       f"the address matches {len(found.ids)} addresses of the account: "
                       f"{', '.join(found.ids)}",
                       "give the emergency_address_id of the one meant")
            continue
        # 3. Not in the account: validate, then create (apply) or show (plan only).
        try:
            result = client.validate_address(fields)
        except TelnyxAPIError as exc:
            invalid = isinstance(exc, AddressRejected)
            text = "; ".join(e.describe() for e in exc.errors) or str(exc)
            table.append({**row, "status": "invalid" if invalid else "failed", "errors": text})
            refused_or_unsettled(positions, invalid, f"Telnyx refused the address: {text}",
                                 f"the address could not be validated: {exc}")
            continue
        if result.get("result") != "valid":
            text = _errors_text(result.get("errors") or [])
            suggested = {k: v for k, v in (result.get("suggested") or {}).items() if v}
            changed = {k: v for k, v in suggested.items()
                       if addr.normalise_text(v) != addr.normalise_text(fields.get(k))}
            hint = (", ".join(f"{k} {v!r}" for k, v in changed.items()) if changed else None)
            table.append({**row, "status": "invalid", "errors": text,
                          "suggested": addr.describe({**fields, **suggested}) if changed else None})
            for p in positions:
                reject(p, addr.STREET, acc.at[p, "address_given"],
                       f"the address is not valid for emergency use: {text}",
                       f"Telnyx suggests {hint}: {addr.describe({**fields, **suggested})}"
                       if hint else "correct the address (no suggestion was offered)")
            continue
        fields, missing = addr.creation_fields(fields, contact)
        if missing:
            table.append({**row, "status": "invalid",
                          "errors": "a new address needs " + ", ".join(missing)})
            for p in positions:
                columns = acc.at[p, "address_columns"] if "address_columns" in acc else None
                reject(p, missing[0], "", "not an address of the account; creating it "
                       f"needs {', '.join(missing)}",
                       _missing_fix(missing, json.loads(columns) if isinstance(columns, str)
                                    else {}))
            continue
        if not apply:
            placeholder = PLACEHOLDER_PREFIX + hashlib.sha1(key.encode()).hexdigest()[:10]
            table.append({**row, "status": "would_create", "address_id": placeholder})
            extra_addresses.append({"id": placeholder, **fields})
            for p in positions:
                ids[p] = placeholder
            continue
        created = _create(client, ledger, account, key, fields, run_id, log)
        if isinstance(created, str):    # an error text
            rejected_now = created.startswith("rejected:")
            text = created.split(":", 1)[1].strip()
            table.append({**row, "status": "invalid" if rejected_now else "failed",
                          "errors": text})
            refused_or_unsettled(positions, rejected_now,
                                 f"Telnyx refused to create the address: {text}",
                                 f"the address could not be created ({text}); "
                                 "a re-run looks for it before creating it")
            continue
        address, adopted = created
        table.append({**row, "status": "adopted" if adopted else "created",
                      "address_id": str(address["id"])})
        extra_addresses.append(address)
        for p in positions:
            ids[p] = str(address["id"])

    acc["emergency_address_id"] = pd.Series(ids, dtype=object)
    keep = [p for p in range(len(acc)) if p not in rejected_pos]
    out = acc.iloc[keep].reset_index(drop=True)
    rejected = pd.DataFrame(reject_rows, columns=REJECTED_COLUMNS)
    rejected["source_row"] = rejected["source_row"].astype("int64")
    all_addresses = pd.DataFrame(known + extra_addresses)
    if all_addresses.empty:
        all_addresses = pd.DataFrame(columns=["id"])
    return Resolution(out, rejected, all_addresses, _table(table))


def _missing_fix(missing: list[str], columns: dict[str, str]) -> str:
    """The fix for a new address that lacks fields: fill the cells when the sheet has the
    column (they were blank), else add the column; short (one line of the summary)."""
    blank = [columns[f] for f in missing if columns.get(f)]
    absent = [f for f in missing if not columns.get(f)]
    ways = []
    if blank:
        ways.append(f"fill the blank {', '.join(blank)} cell{'s' if len(blank) > 1 else ''}")
    if absent:
        ways.append(f"add {'a column' if len(absent) == 1 else 'columns'} {', '.join(absent)}")
    names = any(f in (addr.FIRST, addr.LAST, addr.NAME) for f in missing)
    return " and ".join(ways) + (", or set default_<name> in the config of "
                                 "emergency_address_resolution" if names else "")


def _table(rows: list[dict]) -> pd.DataFrame:
    """One row per distinct address and status (rows that name an id come one by one)."""
    frame = pd.DataFrame(rows, columns=RESOLUTION_COLUMNS)
    if frame.empty:
        return frame
    frame = frame.astype(object).where(frame.notna(), None)
    keys = ["address_key", "status", "address_id"]
    grouped = frame.fillna({"address_id": ""}).groupby(keys, sort=False, dropna=False).agg({
        "address_given": "first", "candidates": "first", "rows": "sum",
        "phone_numbers": lambda s: ", ".join(s.dropna())[:300], "errors": "first",
        "suggested": "first", "detail": "first"}).reset_index()
    grouped["address_id"] = grouped["address_id"].replace("", None)
    return grouped[RESOLUTION_COLUMNS]


def _create(client: Any, ledger: Ledger | None, account: str, key: str, fields: dict,
            run_id: str, log: Any) -> tuple[dict, bool] | str:
    """(address, adopted), or 'rejected: ...' / 'failed: ...'."""
    def find_existing() -> dict | None:
        found = addr.AddressIndex(client.list_addresses())
        match = found.find(fields)
        return dict(found.by_id[match.ids[0]]) if match.ids else None

    if ledger is not None:
        ledger.record_address(key, run_id, "recorded", fields,   # before the POST (docstring)
                              account=account)
    try:
        made = client.create_address(fields, find_existing)
    except AddressRejected as exc:
        text = "; ".join(e.describe() for e in exc.errors) or str(exc)
        if ledger is not None:
            ledger.record_address(key, run_id, "rejected", fields, detail=text, account=account)
        return f"rejected: {text}"
    except TelnyxAPIError as exc:
        # Left `recorded`: the next run lists the addresses before creating it again.
        log.warning(f"address {addr.describe(fields)}: {exc}")
        return f"failed: {exc}"
    if ledger is not None:
        ledger.record_address(key, run_id, "adopted" if made.adopted else "created", fields,
                              address_id=made.address_id, account=account)
    return made.address, made.adopted
