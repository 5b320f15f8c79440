"""The plan: one action per accepted desired row, against a snapshot of the account (pure).

Actions: enable, disable, change_address, noop, skip (with a reason). The first rule that applies
decides a row's skip reason:
  1. not in the account (no number with that E.164 / id)
  2. the address is not one of the account's addresses (rows that enable)
  3. the same account number is asked for twice (once by E.164, once by id): identical rows keep
     the first and skip the others; conflicting rows are all skipped
  4. a job is still in flight for the number (design rule 3)
  5. emergency_status is provisioning / deprovisioning (a change would race it)
  6. the number's status does not allow emergency changes (only for rows that would change)
Rules 1-5 skip noop rows too: their "current" values are unsettled or unverifiable.
A number whose emergency_status is provisioning-failed counts as not enabled, so a row that wants
it enabled plans `enable` again. Numbers absent from the desired state never appear.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from emergency_pipeline import contract

ACTIONS = ("enable", "disable", "change_address", "noop", "skip")
ACTIONABLE = ("enable", "disable", "change_address")
PLAN_COLUMNS = [
    "source_file", "source_row", "phone_number", "number_id", "identifier", "id_kind",
    "target_enabled", "target_address_id", "address_given", "current_enabled", "current_address_id",
    "current_emergency_status", "number_status", "action", "reason", "extras",
]


def _text(s: pd.Series) -> pd.Series:
    """Ids and numbers as text (None when missing): an id read as 1.2e18 or 12.0 becomes digits."""
    def one(v):
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)
    if s.dtype == object or str(s.dtype) in ("str", "string"):
        out = s.astype(object)
        return out.where(out.notna(), None)
    return s.astype(object).map(one)


def _flags(s: pd.Series) -> np.ndarray:
    """emergency_enabled of the snapshot as a bool array (missing or unreadable = False)."""
    if pd.api.types.is_bool_dtype(s) and not s.isna().any():
        return s.to_numpy(dtype=bool)
    codes, uniques = pd.factorize(s.to_numpy(dtype=object), use_na_sentinel=False)
    as_bool = np.array([u is True or (isinstance(u, (bool, np.bool_)) and bool(u))
                        or (isinstance(u, str) and u.strip().lower() == "true") for u in uniques]
                       + [False], dtype=bool)
    return as_bool[codes]


def _positions(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each key, the position of its first occurrence in values (-1 when absent)."""
    if len(values) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    ok = pd.notna(values) & ~pd.Series(values).duplicated(keep="first").to_numpy()
    where = np.flatnonzero(ok)
    found = pd.Index(values[ok]).get_indexer(keys)
    return np.where(found >= 0, where[np.maximum(found, 0)], -1)


def _take(values: np.ndarray, pos: np.ndarray) -> np.ndarray:
    out = values[np.maximum(pos, 0)] if len(values) else np.full(len(pos), None, dtype=object)
    out = out.astype(object)
    out[pos < 0] = None
    return out


def _cat(*parts) -> np.ndarray:
    """Elementwise text concatenation of arrays and constants (None shown as "none")."""
    out = None
    for p in parts:
        if isinstance(p, np.ndarray):
            p = pd.Series(p, dtype=object).fillna("none").astype(str).to_numpy(dtype=object)
        out = p if out is None else out + p
    return out


def build_plan(accepted: pd.DataFrame, numbers: pd.DataFrame, addresses: pd.DataFrame,
               in_flight: frozenset[str] | set[str] = frozenset()) -> pd.DataFrame:
    n = len(accepted)
    acc = accepted.reset_index(drop=True)
    phone = _text(acc["phone_number"]).to_numpy(dtype=object)
    nid = _text(acc["number_id"]).to_numpy(dtype=object)
    by_e164 = pd.notna(phone)
    id_kind = np.where(by_e164, "e164", "id").astype(object)
    identifier = np.where(by_e164, phone, nid).astype(object)

    s_id = _text(numbers["id"]).to_numpy(dtype=object)
    s_phone = _text(numbers["phone_number"]).to_numpy(dtype=object)
    pos = np.full(n, -1, dtype=np.int64)
    if by_e164.any():
        pos[by_e164] = _positions(identifier[by_e164], s_phone)
    if (~by_e164).any():
        pos[~by_e164] = _positions(identifier[~by_e164], s_id)
    known = pos >= 0

    m_id, m_phone = _take(s_id, pos), _take(s_phone, pos)
    nstatus = _take(_text(numbers["status"]).to_numpy(dtype=object), pos)
    estatus = _take(_text(numbers["emergency_status"]).to_numpy(dtype=object), pos)
    cur_address = _take(_text(numbers["emergency_address_id"]).to_numpy(dtype=object), pos)
    cur_on = _flags(numbers["emergency_enabled"])[np.maximum(pos, 0)] & known if len(numbers) \
        else np.zeros(n, dtype=bool)
    target_enabled = acc["emergency_enabled"].astype(bool).to_numpy()
    target_address = _text(acc["emergency_address_id"]).to_numpy(dtype=object)

    # The diff, for rows found in the account.
    effectively_on = cur_on & (estatus != "provisioning-failed")
    same_address = pd.Series(cur_address, dtype=object).eq(
        pd.Series(target_address, dtype=object)).to_numpy()
    diff = np.select(
        [target_enabled & ~effectively_on, target_enabled & ~same_address, target_enabled,
         ~target_enabled & cur_on],
        ["enable", "change_address", "noop", "disable"], default="noop").astype(object)

    address_ids = set(_text(addresses["id"]).dropna()) if len(addresses) else set()
    bad_address = target_enabled & ~pd.Series(target_address, dtype=object).isin(
        address_ids).to_numpy()

    # Rule 3: several desired rows resolved to one account number.
    acct_pos = pd.Series(np.where(known, pos, -1 - np.arange(n)))
    twice = known & acct_pos.duplicated(keep=False).to_numpy()
    dup_reason = np.full(n, None, dtype=object)
    if twice.any():
        tgt = pd.Series(target_enabled.astype(str)) + "|" + \
            pd.Series(target_address, dtype=object).fillna("")
        g = pd.DataFrame({"k": acct_pos[twice].to_numpy(), "t": tgt[twice].to_numpy(),
                          "pos": np.flatnonzero(twice)})
        for _, grp in g.groupby("k", sort=False):
            labels = {p: f"{acc.at[p, 'source_file']} row {acc.at[p, 'source_row']}"
                      for p in grp["pos"]}
            first = grp["pos"].iloc[0]
            conflicting = grp["t"].nunique() > 1
            for p in grp["pos"]:
                others = ", ".join(v for q, v in labels.items() if q != p)
                if conflicting:
                    dup_reason[p] = ("conflicting rows for the same account number "
                                     f"(by E.164 and by id): {others}")
                elif p != first:
                    dup_reason[p] = f"the same account number as {labels[first]}"
    flight = np.zeros(n, dtype=bool)
    if in_flight:
        fl = set(map(str, in_flight))
        flight = (pd.Series(identifier, dtype=object).isin(fl).to_numpy()
                  | pd.Series(m_id, dtype=object).isin(fl).to_numpy()
                  | pd.Series(m_phone, dtype=object).isin(fl).to_numpy())
    transition = pd.Series(estatus, dtype=object).isin(
        contract.EMERGENCY_STATUSES_IN_TRANSITION).to_numpy()
    status_ok = pd.Series(nstatus, dtype=object).isin(
        contract.NUMBER_STATUSES_ALLOWING_EMERGENCY).to_numpy()
    changing = np.isin(diff, ACTIONABLE)

    conds = [~known, bad_address, dup_reason != None, flight, transition,  # noqa: E711
             changing & ~status_ok]
    rule = np.select(conds, list(range(1, len(conds) + 1)), default=0)
    action = np.where(rule > 0, "skip", diff).astype(object)
    reason = np.full(n, None, dtype=object)

    def fill(mask, make):
        if mask.any():
            reason[mask] = make(mask)

    fill((rule == 1) & by_e164, lambda k: _cat("not in the account: no number ", identifier[k]))
    fill((rule == 1) & ~by_e164,
         lambda k: _cat("not in the account: no number with id ", identifier[k]))
    fill(rule == 2, lambda k: _cat("address not in the account: ", target_address[k],
                                   " is not one of the account's addresses"))
    if "address_note" in acc:   # why an address given by its fields has no id (resolution)
        note = acc["address_note"].to_numpy(dtype=object)
        fill((rule == 2) & pd.notna(note), lambda k: note[k])
    fill(rule == 3, lambda k: dup_reason[k])
    fill(rule == 4, lambda k: "a job is already in flight for this number")
    fill(rule == 5, lambda k: _cat("emergency_status is ", estatus[k], "; wait until it settles"))
    fill(rule == 6, lambda k: _cat("number status ", nstatus[k],
                                   " does not allow emergency changes"))
    fill(action == "enable", lambda k: "emergency is off (or its provisioning failed): enable")
    fill(action == "disable", lambda k: "emergency is on: disable")
    fill(action == "change_address",
         lambda k: _cat("address ", cur_address[k], " -> ", target_address[k]))
    fill((action == "noop") & target_enabled, lambda k: "already enabled with this address")
    fill((action == "noop") & ~target_enabled, lambda k: "already disabled")

    plan = pd.DataFrame({
        "source_file": acc["source_file"].to_numpy(),
        "source_row": acc["source_row"].astype("int64").to_numpy(),
        "phone_number": np.where(known, m_phone, phone),
        "number_id": np.where(known, m_id, nid),
        "identifier": identifier,
        "id_kind": id_kind,
        "target_enabled": target_enabled,
        "target_address_id": target_address,
        "address_given": acc["address_given"].to_numpy(dtype=object) if "address_given" in acc
        else None,
        "current_enabled": pd.array(np.where(known, cur_on, None), dtype="boolean"),
        "current_address_id": cur_address,
        "current_emergency_status": estatus,
        "number_status": nstatus,
        "action": action,
        "reason": reason,
        "extras": acc["extras"].to_numpy() if "extras" in acc else "{}",
    })
    for c in ("source_file", "phone_number", "number_id", "identifier", "id_kind",
              "target_address_id", "address_given", "current_address_id", "current_emergency_status",
              "number_status", "action", "reason", "extras"):
        plan[c] = plan[c].astype("str")
    return plan[PLAN_COLUMNS]


def plan_summary(plan: pd.DataFrame) -> pd.DataFrame:
    """Numbers by action and target (enabled + address), for a markdown table."""
    if len(plan) == 0:
        return pd.DataFrame(columns=["action", "target_enabled", "target_address_id", "numbers"])
    g = plan.assign(target_address_id=plan["target_address_id"].fillna("-")).groupby(
        ["action", "target_enabled", "target_address_id"], sort=True, dropna=False).size()
    return g.reset_index(name="numbers")


def plan_summary_markdown(plan: pd.DataFrame) -> str:
    s = plan_summary(plan)
    lines = ["| action | target_enabled | target_address_id | numbers |", "|---|---|---|---:|"]
    lines += [f"| {r.action} | {r.target_enabled} | {r.target_address_id} | {r.numbers} |"
              for r in s.itertuples(index=False)]
    return "\n".join(lines)
