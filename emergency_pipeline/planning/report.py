"""The plan as a reviewer reads it, like `terraform plan` (pure: DataFrames in, text out).

    groups = plan_groups(plan, addresses)          # one row per (action, target): for tables
    text = render_plan(plan, addresses, limit=10, full_list="data/plans/<run>.csv")
    has_changes(plan)                              # any enable / disable / change_address

`plan` has the columns of the analytics table `emergency_plan` (phone_number, number_id,
action, reason, target_enabled, target_address_id, address_given, source_file, source_row,
...); `addresses` those of `account_addresses` (id, street_address, locality, ...). A target
address reads as "1 Main St, Springfield, IL 62701 (id 1315...)"; an address the run would
create (a `new-address-...` placeholder) reads as the sheet gave it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from emergency_pipeline.addressing import fields as addr
from emergency_pipeline.planning.plan import ACTIONABLE_SQL

CHANGES = ("enable", "change_address", "disable")
# terraform's marks: + create, ~ update, - destroy; skips are shown apart, with their reason.
_MARK = {"enable": "+", "change_address": "~", "disable": "-", "skip": "!"}
_TITLE = {"enable": "enable E911", "change_address": "change the E911 address",
          "disable": "disable E911", "skip": "skip"}
GROUP_COLUMNS = ["action", "target_enabled", "target_address_id", "target_address", "reason",
                 "numbers", "first_numbers"]
# Rows of the full list, in the order a person reads them.
LIST_COLUMNS = ["action", "phone_number", "number_id", "target_enabled", "target_address_id",
                "target_address", "reason", "current_enabled", "current_address_id",
                "address_given", "source_file", "source_row", "extras"]


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and v != v) or v is pd.NA or v in ("", "None", "nan")


def address_texts(addresses: pd.DataFrame | None) -> dict[str, str]:
    """Address id -> "name, street, city, state postal, country" as a person reads it: the
    form the plan gives an address the run would create, so both read alike."""
    if addresses is None or addresses.empty or "id" not in addresses:
        return {}
    out = {}
    for rec in addresses.to_dict("records"):
        fields = {k: v for k, v in rec.items()
                  if k in (addr.NAME, *addr.PLACE_FIELDS) and not _missing(v)}
        if not _missing(rec["id"]):
            out[str(rec["id"])] = addr.describe(fields)
    return out


def _target_address(plan: pd.DataFrame, known: dict[str, str]) -> pd.Series:
    given = plan["address_given"] if "address_given" in plan else pd.Series(None, index=plan.index)

    def one(address_id: object, enabled: object, as_given: object) -> str:
        if not _as_bool(enabled) or _missing(address_id):
            return ""
        text = known.get(str(address_id)) or ("" if _missing(as_given) else str(as_given))
        return text or "not an address of the account"
    return pd.Series([one(a, e, g) for a, e, g in zip(plan["target_address_id"],
                                                      plan["target_enabled"], given)],
                     index=plan.index, dtype=object)


def _as_bool(v: object) -> bool:
    return str(v).strip().lower() in ("true", "1")


def _number(row: pd.Series) -> str:
    phone, nid = row["phone_number"], row["number_id"]
    if _missing(phone):
        return f"id {nid}"
    return f"{phone} (id {nid})" if not _missing(nid) else str(phone)


def full_list(plan: pd.DataFrame, addresses: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every planned row with the target address as text (what the CSV holds)."""
    out = plan.assign(target_address=_target_address(plan, address_texts(addresses)))
    for c in LIST_COLUMNS:
        if c not in out:
            out[c] = None
    order = {a: i for i, a in enumerate((*CHANGES, "skip", "noop"))}
    out = out.assign(_o=out["action"].map(order).fillna(len(order)))
    return out.sort_values(["_o", "target_address_id", "phone_number"], kind="stable")[
        LIST_COLUMNS].reset_index(drop=True)


def plan_groups(plan: pd.DataFrame, addresses: pd.DataFrame | None = None,
                limit: int = 10, totals: dict[tuple, int] | None = None) -> pd.DataFrame:
    """One row per change (action and target address) and per skip reason, with its count
    and its first `limit` numbers; noops are one row. Ordered enable, change, disable, skip.

    `totals` ((action, address key, skip reason) -> numbers): the group sizes when `plan`
    holds only each group's first rows (a big plan stays in DuckDB; see group_sql)."""
    rows = full_list(plan, addresses)
    if rows.empty:
        return pd.DataFrame(columns=GROUP_COLUMNS)
    change = rows["action"].isin(CHANGES)
    rows = rows.assign(_key=rows["target_address_id"].where(change, "").fillna(""),
                       _why=rows["reason"].where(rows["action"].eq("skip"), "").fillna(""))
    by = ["action", "_key", "_why"]
    # Only the numbers shown are named: row by row, naming a million would take a minute.
    firsts = rows.groupby(by, sort=False).head(limit)
    rows["_n"] = firsts.apply(_number, axis=1) if len(firsts) else None
    groups = []
    for (action, key, why), g in rows.groupby(by, sort=False):
        # A skip or noop group mixes targets: it names none.
        changes = action in CHANGES
        groups.append({
            "action": action,
            "target_enabled": bool(_as_bool(g["target_enabled"].iloc[0])) if changes else None,
            "target_address_id": key or None,
            "target_address": g["target_address"].iloc[0] if changes else "",
            "reason": why or None,
            "numbers": len(g) if totals is None else totals.get((action, key, why), len(g)),
            "first_numbers": list(g["_n"].dropna().head(limit)) if action != "noop" else [],
        })
    out = pd.DataFrame(groups, columns=GROUP_COLUMNS)
    order = out["action"].map({a: i for i, a in enumerate((*CHANGES, "skip", "noop"))})
    out = out.assign(_o=order.fillna(len(CHANGES) + 2), _m=-out["numbers"])
    return out.sort_values(["_o", "_m"], kind="stable")[GROUP_COLUMNS].reset_index(drop=True)


def _action_counts(plan: pd.DataFrame, totals: dict[tuple, int] | None) -> pd.Series:
    if totals is not None:
        by: dict[str, int] = {}
        for (action, _, _), n in totals.items():
            by[action] = by.get(action, 0) + n
        return pd.Series(by, dtype=int)
    return plan["action"].value_counts() if len(plan) else pd.Series(dtype=int)


def has_changes(plan: pd.DataFrame, totals: dict[tuple, int] | None = None) -> bool:
    return bool(_action_counts(plan, totals).reindex(list(CHANGES)).fillna(0).sum())


def headline(plan: pd.DataFrame, totals: dict[tuple, int] | None = None,
             rejected: int = 0) -> str:
    """`rejected`: the sheet's rows the run rejected (they are not in the plan, but a plan
    that leaves most of the sheet out must not read as complete)."""
    counts = _action_counts(plan, totals)
    changes = [f"{a} {int(counts[a])}" for a in CHANGES if a in counts]
    total = sum(int(counts.get(a, 0)) for a in CHANGES)
    return (f"Plan: {total} to change" + (f" ({', '.join(changes)})" if changes else "")
            + f", {int(counts.get('noop', 0))} unchanged, {int(counts.get('skip', 0))} skipped"
            + (f", {rejected} rejected" if rejected else "") + ".")


def render_plan(plan: pd.DataFrame, addresses: pd.DataFrame | None = None, *, limit: int = 10,
                full_list_at: str | Path | None = None,
                totals: dict[tuple, int] | None = None, rejected: int = 0) -> str:
    """The plan as text: a headline, then each change group with its target address and its
    first `limit` numbers ("and N more"; limit 0: the counts only), then the skips by
    reason, then where the rest is."""
    lines = [headline(plan, totals, rejected)]
    if not has_changes(plan, totals) and rejected:
        lines.append(f"No changes for the accepted rows; {rejected} "
                     f"{'row was' if rejected == 1 else 'rows were'} rejected (reasons below): "
                     "fix them and run again.")
    elif not has_changes(plan, totals):
        lines.append("No changes: the account already matches the desired state"
                     + (" (apart from the skipped numbers below)." if
                        (plan["action"] == "skip").any() else "."))
    groups = plan_groups(plan, addresses, limit, totals)
    for g in groups.itertuples(index=False):
        if g.action == "noop":
            continue
        lines.append("")
        title = f"{_MARK.get(g.action, ' ')} {_TITLE.get(g.action, g.action)}"
        if g.action == "skip":
            lines.append(f"{title}: {g.numbers} {_plural(g.numbers)}: {g.reason}")
        elif g.target_enabled:
            lines.append(f"{title}: {g.numbers} {_plural(g.numbers)} -> {g.target_address} "
                         f"(address id {g.target_address_id})")
        else:
            lines.append(f"{title}: {g.numbers} {_plural(g.numbers)}")
        lines += [f"    {n}" for n in g.first_numbers]
        if limit and g.numbers > len(g.first_numbers):
            lines.append(f"    and {g.numbers - len(g.first_numbers)} more")
    if full_list_at is not None:
        lines += ["", f"Full list: {full_list_at}"]
    return "\n".join(lines)


# A plan's groups in SQL, over a relation `plan`: each group's first `?` rows (in the order
# plan_groups shows them) with the group's size (_total), so that a million-row plan never
# leaves DuckDB to be printed. A top-N aggregate per group, not a window over every row: the
# window held the whole plan (a million rows: +507 MB and 2.3 s, against +70 MB and 0.4 s).
# (A struct orders its NULL fields last, as ORDER BY does.)
_GROUP_SQL = f"""
WITH q AS (
    SELECT *,
        CASE WHEN action IN ({ACTIONABLE_SQL})
             THEN coalesce(target_address_id, '') ELSE '' END AS _key,
        CASE WHEN action = 'skip' THEN coalesce(reason, '') ELSE '' END AS _why
    FROM plan)
SELECT unnest(_heads, recursive := true), _total FROM (
    SELECT count(*) AS _total,
           min_by(q, struct_pack(a := target_address_id, p := phone_number), ?) AS _heads
    FROM q GROUP BY action, _key, _why)
"""


def group_sql(relation: str) -> str:
    """_GROUP_SQL over `relation` (a table, or a filtered subquery in parentheses)."""
    return _GROUP_SQL.replace("FROM plan)", f"FROM {relation})")


def heads_and_totals(heads: pd.DataFrame) -> tuple[pd.DataFrame, dict[tuple, int]]:
    """group_sql's rows -> (the plan rows to show, the group sizes)."""
    totals = {(a, k, w): int(n) for a, k, w, n in
              heads[["action", "_key", "_why", "_total"]].drop_duplicates().itertuples(
                  index=False)}
    return heads.drop(columns=["_key", "_why", "_total"]), totals


def _plural(n: int) -> str:
    return "number" if n == 1 else "numbers"


def write_full_list(plan: pd.DataFrame, addresses: pd.DataFrame | None, path: str | Path) -> Path:
    """The whole plan as CSV (one row per desired number), for the reviewer who wants all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full_list(plan, addresses).to_csv(path, index=False)
    return path


def plan_csv_path(database: str | Path, run_id: str) -> Path:
    """Where a run's full plan goes: next to the database, in plans/."""
    return Path(database).resolve().parent / "plans" / f"{run_id}.csv"


def plan_sql(run_id: str) -> str:
    return f"SELECT * FROM emergency_plan WHERE run_id = '{run_id}' ORDER BY action, phone_number"
