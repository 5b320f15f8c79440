"""Raw tables -> accepted rows, rejections (one per problem), and collapsed duplicates.

Accounting: every non-blank input row ends in exactly one of
  accepted      (one row),
  duplicates    (an identical copy of an accepted row: same number, same flag, same address;
                 extra columns may differ and the first row's are kept), or
  rejected      (one row per problem, so count distinct (source_file, source_row)).
Duplicates span chunks and files, so they are resolved in SQL (staging.py) on the key and
target given here.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from emergency_pipeline.addressing import fields as addr

from .columns import (ADDRESS, CONTACT_FIELDS, COUNTRY, FLAG, PHONE, ColumnMatch,
                      describe_aliases, match_columns)
from .excel import FIX as EXCEL_FIX
from .excel import mangled_id
from .phones import clean, map_distinct, parse_phones
from .readers import DesiredStateError, RawTable

FLAG_WORDS = {
    "true": True, "yes": True, "y": True, "1": True, "on": True, "enabled": True,
    "false": False, "no": False, "n": False, "0": False, "off": False, "disabled": False,
}

ACCEPTED_COLUMNS = ["source_file", "source_row", "phone_number", "number_id",
                    "emergency_enabled", "emergency_address_id", "extras", "address_fields",
                    "address_columns"]
# phone_number: E.164 where the cell parses as one (else the cell as written), so a look-up
# by E.164 finds rejected rows too; extras: the sheet's other columns, as for accepted rows.
REJECTED_COLUMNS = ["source_file", "source_row", "column", "value", "reason", "fix",
                    "phone_number", "extras"]
DUPLICATE_COLUMNS = ["source_file", "source_row", "phone_number", "number_id",
                     "duplicate_of_file", "duplicate_of_row"]

_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\u2028\u2029]')


def _json_str(values: pd.Series) -> pd.Series:
    """JSON string literals, vectorised: plain values are quoted, the rest go through json."""
    v = values.astype(object)
    out = '"' + v + '"'
    if _NEEDS_ESCAPE.search("a".join(v.tolist())) is None:   # the usual case: nothing to escape
        return out
    odd = np.fromiter((_NEEDS_ESCAPE.search(s) is not None for s in v), bool, len(v))
    if odd.any():
        out[odd] = v[odd].map(lambda s: json.dumps(s, ensure_ascii=False))
    return out


def extras_json(cells: pd.DataFrame, headers: tuple[str, ...]) -> pd.Series:
    if not headers:
        return pd.Series(["{}"] * len(cells), index=cells.index, dtype=object)
    out = pd.Series(["{"] * len(cells), index=cells.index, dtype=object)
    for i, h in enumerate(headers):
        key = json.dumps(h, ensure_ascii=False)
        out = out + ((", " if i else "") + key + ": ") + _json_str(cells[h].astype(object))
    return out + "}"


def empty_rejected() -> pd.DataFrame:
    return typed(pd.DataFrame({c: [] for c in REJECTED_COLUMNS}), REJECTED_COLUMNS)


def typed(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    df = df[columns].copy()
    for c in columns:
        if c in ("source_row", "duplicate_of_row"):
            df[c] = df[c].astype("int64")
        elif c == "emergency_enabled":
            df[c] = df[c].astype(bool)
        else:
            df[c] = df[c].astype("str")
    return df.reset_index(drop=True)


def _problem(raw: RawTable, mask: np.ndarray, column: str, value: pd.Series, reason,
             fix, phone: pd.Series, extras: pd.Series) -> pd.DataFrame:
    """One rejection per masked row; reason and fix are text or Series aligned to the table."""
    idx = np.flatnonzero(mask)

    def pick(x):
        return x.to_numpy(dtype=object)[idx] if isinstance(x, pd.Series) else x

    return pd.DataFrame({
        "source_file": raw.source_file,
        "source_row": raw.rows[idx],
        "column": column,
        "value": value.to_numpy(dtype=object)[idx],
        "reason": pick(reason),
        "fix": pick(fix),
        "phone_number": phone.to_numpy(dtype=object)[idx],
        "extras": extras.to_numpy(dtype=object)[idx],
    })


def validate_table(raw: RawTable, region: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accepted, rejected) of one table, before duplicates are looked at."""
    m: ColumnMatch = match_columns(raw.headers)
    n = len(raw.cells)
    problems: list[pd.DataFrame] = []
    for canonical, header in ((PHONE, m.phone), (FLAG, m.flag)):
        if header is None:
            # A sheet without its number or flag column is never an instruction: the run stops.
            raise DesiredStateError(
                f"{raw.source_file}: no {canonical} column (columns found: "
                f"{', '.join(raw.headers)}): name a column {canonical} (or one of: "
                f"{describe_aliases(canonical)})")
    raw_phone = clean(raw.cells[m.phone])
    parsed = parse_phones(raw_phone, region)
    # What rejections show as the number: E.164 where the cell parses, else the cell.
    phone = parsed["e164"].where(parsed["e164"].notna(), raw_phone).astype(object)
    extras = extras_json(pd.DataFrame({h: clean(raw.cells[h]).to_numpy() for h in m.extras},
                                      index=range(n)), m.extras)
    flag_raw = clean(raw.cells[m.flag])
    flag = map_distinct(flag_raw, lambda s: FLAG_WORDS.get(s.casefold()))
    address = clean(raw.cells[m.address]) if m.address else pd.Series([""] * n, dtype=object)
    # Address fields (issue 7): a row may name its address by street, city, ... instead of id.
    given = {f: clean(raw.cells[h]) for f, h in m.address_fields}
    place = [v for f, v in given.items() if f not in (COUNTRY, *CONTACT_FIELDS)]
    has_fields = (np.logical_or.reduce([(v != "").to_numpy() for v in place])
                  if place else np.zeros(n, bool))
    missing = {f: (given[f] == "").to_numpy() if f in given else np.ones(n, bool)
               for f in addr.REQUIRED_FIELDS}
    incomplete = has_fields & np.logical_or.reduce(list(missing.values()))

    bad_phone = parsed["reason"].notna().to_numpy()
    flag_missing = (flag_raw == "").to_numpy()
    flag_bad = flag.isna().to_numpy() & ~flag_missing
    enabled = (flag == True).to_numpy()  # noqa: E712 (object column of True/False/None)
    disabled = (flag == False).to_numpy()  # noqa: E712
    has_addr = (address != "").to_numpy()
    by_fields = has_fields & ~has_addr
    words = "true/false, yes/no, y/n, 1/0, on/off or enabled/disabled"
    addr_col = m.header(ADDRESS)

    address_mangled = map_distinct(address, mangled_id)
    bad_address_id = address_mangled.notna().to_numpy()

    def problem(mask, column, value, reason, fix):
        problems.append(_problem(raw, mask, column, value, reason, fix, phone, extras))

    problem(bad_phone, m.phone, raw_phone, parsed["reason"], parsed["fix"])
    problem(flag_missing, m.flag, flag_raw, "missing emergency_enabled flag", f"write {words}")
    problem(flag_bad, m.flag, flag_raw, "unreadable emergency_enabled flag", f"write {words}")
    problem(bad_address_id, addr_col, address, address_mangled, EXCEL_FIX)
    problem(enabled & ~has_addr & ~has_fields, addr_col, address,
            "emergency enabled without an address",
        "give the emergency_address_id of a validated address of the account, or the address "
        "(street, city, state, postal code, country), or set the flag to false")
    problem(disabled & has_addr, addr_col, address,
        "emergency disabled but an address is given (ambiguous: which one was meant?)",
        "clear the address to disable, or set the flag to true to enable with it")
    problem(disabled & has_fields & ~has_addr, m.header(addr.STREET),
        given.get(addr.STREET, pd.Series([""] * n, dtype=object)),
        "emergency disabled but an address is given (ambiguous: which one was meant?)",
        "clear the address columns to disable, or set the flag to true to enable with it")
    for f, absent in missing.items():
        problem(
            enabled & by_fields & incomplete & absent, m.header(f),
            pd.Series([""] * n, dtype=object), f"the address has no {f}",
            "give street, city (locality) and postal code, with state and country, or an "
            "emergency_address_id")
    rejected = typed(pd.concat(problems, ignore_index=True), REJECTED_COLUMNS)

    ok = ~(bad_phone | bad_address_id | flag_missing | flag_bad | (enabled & ~has_addr & ~has_fields)
           | (disabled & has_addr) | (disabled & has_fields) | (enabled & by_fields & incomplete))
    idx = np.flatnonzero(ok)
    accepted = pd.DataFrame({
        "source_file": raw.source_file,
        "source_row": raw.rows[idx],
        "phone_number": parsed["e164"].to_numpy(dtype=object)[idx],
        "number_id": parsed["number_id"].to_numpy(dtype=object)[idx],
        "emergency_enabled": enabled[idx],
        "emergency_address_id": address.to_numpy(dtype=object)[idx],
        "extras": extras.to_numpy(dtype=object)[idx],
    })
    accepted["emergency_address_id"] = accepted["emergency_address_id"].where(
        accepted["emergency_address_id"] != "", None)
    use_fields = has_fields[idx] & enabled[idx]
    accepted["address_fields"] = _address_json(given, idx, use_fields, region)
    # The sheet's own headers, so a later rejection of the address names the column it shows.
    headers = json.dumps({ADDRESS: addr_col, **{f: h for f, h in m.address_fields}})
    accepted["address_columns"] = np.where(use_fields, headers, None)
    return typed(accepted, ACCEPTED_COLUMNS), rejected


def _address_json(given: dict[str, pd.Series], idx: np.ndarray, use: np.ndarray,
                  region: str) -> np.ndarray:
    """The address fields of each accepted row as JSON text (None when the row gives none);
    the country defaults to the sheet's region."""
    out = np.full(len(idx), None, dtype=object)
    if not given or not use.any():
        return out
    cols = {f: v.to_numpy(dtype=object)[idx] for f, v in given.items()}
    for k in np.flatnonzero(use):
        fields = {f: cols[f][k] for f in cols}
        if not fields.get(COUNTRY):
            fields[COUNTRY] = region
        out[k] = addr.fields_json(fields)
    return out


def _place_text(fields_json: str) -> str:
    key = addr.address_key(json.loads(fields_json))
    return key.text if key is not None else fields_json


def duplicate_key(accepted: pd.DataFrame) -> pd.Series:
    """What makes two accepted rows the same number: the E.164 number, or the number id."""
    return accepted["phone_number"].where(accepted["phone_number"].notna(),
                                          "id:" + accepted["number_id"].astype(object))


def address_place(accepted: pd.DataFrame) -> pd.Series:
    """The address given by fields, as text ("" when the row gives none): part of what a row
    asks for when duplicates are compared (staging.py)."""
    fields = accepted["address_fields"]
    return map_distinct(fields.astype(object).where(fields.notna(), ""),
                        lambda t: _place_text(t) if t else "")
