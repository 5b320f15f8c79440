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
    "target_enabled", "target_address_id", "current_enabled", "current_address_id",
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


def _snapshot(numbers: pd.DataFrame) -> pd.DataFrame:
    snap = pd.DataFrame({
        "s_id": _text(numbers["id"]).to_numpy(dtype=object),
        "s_phone": _text(numbers["phone_number"]).to_numpy(dtype=object),
        "s_status": _text(numbers["status"]).to_numpy(dtype=object),
        "s_enabled": numbers["emergency_enabled"].astype(object).to_numpy(),
        "s_address": _text(numbers["emergency_address_id"]).to_numpy(dtype=object),
        "s_estatus": _text(numbers["emergency_status"]).to_numpy(dtype=object),
    })
    snap["s_enabled"] = snap["s_enabled"].map(lambda v: bool(v) if isinstance(v, (bool, np.bool_))
                                              else (str(v).lower() == "true" if v is not None
                                                    and v == v else False))
    return snap


def build_plan(accepted: pd.DataFrame, numbers: pd.DataFrame, addresses: pd.DataFrame,
               in_flight: frozenset[str] | set[str] = frozenset()) -> pd.DataFrame:
    n = len(accepted)
    acc = accepted.reset_index(drop=True)
    phone = _text(acc["phone_number"]).to_numpy(dtype=object)
    nid = _text(acc["number_id"]).to_numpy(dtype=object)
    by_e164 = np.array([p is not None for p in phone], dtype=bool)
    id_kind = np.where(by_e164, "e164", "id")
    identifier = np.where(by_e164, phone, nid)

    snap = _snapshot(numbers)
    # One lookup table keyed by (kind, key): every number once by E.164 and once by id.
    lookup = pd.concat([
        snap.assign(_kind="e164", _key=snap["s_phone"]),
        snap.assign(_kind="id", _key=snap["s_id"]),
    ], ignore_index=True)
    lookup = lookup[lookup["_key"].notna()].drop_duplicates(["_kind", "_key"], keep="first")
    left = pd.DataFrame({"_kind": id_kind, "_key": identifier, "_pos": np.arange(n)})
    m = left.merge(lookup, on=["_kind", "_key"], how="left", sort=False)
    m = m.sort_values("_pos", kind="stable").reset_index(drop=True)  # keep desired order

    known = m["s_id"].notna().to_numpy() | m["s_phone"].notna().to_numpy()
    target_enabled = acc["emergency_enabled"].astype(bool).to_numpy()
    target_address = _text(acc["emergency_address_id"]).to_numpy(dtype=object)
    cur_enabled = m["s_enabled"].to_numpy(dtype=object)
    cur_address = m["s_address"].to_numpy(dtype=object)
    estatus = m["s_estatus"].to_numpy(dtype=object)
    nstatus = m["s_status"].to_numpy(dtype=object)

    # The diff, for rows found in the account.
    effectively_on = (cur_enabled == True) & (estatus != "provisioning-failed")  # noqa: E712
    same_address = pd.Series(cur_address).eq(pd.Series(target_address)).to_numpy()
    diff = np.select(
        [target_enabled & ~effectively_on, target_enabled & ~same_address, target_enabled,
         ~target_enabled & (cur_enabled == True), ~target_enabled],  # noqa: E712
        ["enable", "change_address", "noop", "disable", "noop"], default="noop").astype(object)

    address_ids = set(_text(addresses["id"]).dropna()) if len(addresses) else set()
    bad_address = target_enabled & ~pd.Series(target_address).isin(address_ids).to_numpy()

    # Rule 3: several desired rows resolved to one account number.
    acct_key = pd.Series(np.where(known, m["s_id"].astype(object).fillna(m["s_phone"]), None))
    twice = known & acct_key.duplicated(keep=False).to_numpy()
    dup_reason = np.full(n, None, dtype=object)
    if twice.any():
        tgt = pd.Series(target_enabled.astype(str)) + "|" + pd.Series(target_address).fillna("")
        g = pd.DataFrame({"k": acct_key[twice], "t": tgt[twice], "pos": np.flatnonzero(twice)})
        conflicting = g.groupby("k")["t"].transform("nunique").to_numpy() > 1
        for k, grp in g.groupby("k", sort=False):
            labels = {p: f"{acc.at[p, 'source_file']} row {acc.at[p, 'source_row']}"
                      for p in grp["pos"]}
            first = grp["pos"].iloc[0]
            conf = bool(conflicting[g.index.get_indexer(grp.index)][0])
            for p in grp["pos"]:
                others = ", ".join(v for q, v in labels.items() if q != p)
                if conf:
                    dup_reason[p] = (f"conflicting rows for the same account number "
                                     f"(by E.164 and by id): {others}")
                elif p != first:
                    dup_reason[p] = f"the same account number as {labels[first]}"
    flight = np.zeros(n, dtype=bool)
    if in_flight:
        fl = set(map(str, in_flight))
        flight = (pd.Series(identifier).isin(fl) | m["s_id"].isin(fl) | m["s_phone"].isin(fl)
                  ).to_numpy()
    transition = pd.Series(estatus).isin(contract.EMERGENCY_STATUSES_IN_TRANSITION).to_numpy()
    status_ok = pd.Series(nstatus).isin(contract.NUMBER_STATUSES_ALLOWING_EMERGENCY).to_numpy()
    changing = np.isin(diff, ACTIONABLE)

    not_found_reason = np.where(by_e164, "not in the account: no number " + pd.Series(
        identifier).fillna("").astype(object) + " in the account's numbers",
        "not in the account: no number with id " + pd.Series(identifier).fillna("").astype(object))
    conds = [~known, known & bad_address, known & (dup_reason != None),  # noqa: E711
             known & flight, known & transition, known & changing & ~status_ok]
    reasons = [
        not_found_reason,
        "address not in the account: " + pd.Series(target_address).fillna("").astype(object)
        + " is not one of the account's addresses",
        dup_reason,
        "a job is already in flight for this number",
        "emergency_status is " + pd.Series(estatus).fillna("").astype(object)
        + "; wait until it settles",
        "number status " + pd.Series(nstatus).fillna("").astype(object)
        + " does not allow emergency changes",
    ]
    skip_reason = np.select(conds, [np.asarray(r, dtype=object) for r in reasons], default=None)
    skip = np.zeros(n, dtype=bool)
    for c in conds:
        skip |= c
    action = np.where(skip, "skip", diff).astype(object)

    reason = skip_reason.astype(object)
    reason[action == "enable"] = "emergency is off (or its provisioning failed): enable"
    reason[action == "disable"] = "emergency is on: disable"
    ca = action == "change_address"
    if ca.any():
        reason[ca] = ("address " + pd.Series(cur_address[ca]).fillna("none").astype(object)
                      + " -> " + pd.Series(target_address[ca]).astype(object)).to_numpy()
    reason[(action == "noop") & target_enabled] = "already enabled with this address"
    reason[(action == "noop") & ~target_enabled] = "already disabled"

    plan = pd.DataFrame({
        "source_file": acc["source_file"].to_numpy(),
        "source_row": acc["source_row"].astype("int64").to_numpy(),
        "phone_number": np.where(known, m["s_phone"].to_numpy(dtype=object), phone),
        "number_id": np.where(known, m["s_id"].to_numpy(dtype=object), nid),
        "identifier": identifier,
        "id_kind": id_kind,
        "target_enabled": target_enabled,
        "target_address_id": target_address,
        "current_enabled": pd.array(np.where(known, cur_enabled, None), dtype="boolean"),
        "current_address_id": cur_address,
        "current_emergency_status": estatus,
        "number_status": nstatus,
        "action": action,
        "reason": reason,
        "extras": acc["extras"].to_numpy() if "extras" in acc else "{}",
    })
    for c in ("source_file", "phone_number", "number_id", "identifier", "id_kind",
              "target_address_id", "current_address_id", "current_emergency_status",
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
