"""Step 3, `emergency_address_resolution`: addresses given by their fields -> ids, matched in
the account, or validated by Telnyx and (when the run applies) created once
(addressing/resolution.py); rows with a bad or ambiguous address are rejected. The stage file
`resolution` holds accepted, rejected, addresses and resolutions; the history's
address_resolutions gets the resolutions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from emergency_pipeline.addressing.fields import ContactDefaults
from emergency_pipeline.addressing.resolution import resolve_addresses
from emergency_pipeline.stage_files import StageRef, attach
from emergency_pipeline.steps.context import RunContext

# Accepted rows the resolution must see: an address by its fields, or an id the account
# lacks (rejected with the fix).
NEEDS_RESOLUTION = ("address_fields IS NOT NULL OR (emergency_address_id IS NOT NULL AND "
                    "emergency_address_id NOT IN (SELECT id FROM s.addresses "
                    "WHERE id IS NOT NULL))")


@dataclass(frozen=True)
class ResolutionStep:
    ref: StageRef
    counts: dict[str, int]
    resolutions: pd.DataFrame = field(compare=False)   # one row per distinct address


def resolve_sheet_addresses(run: RunContext, desired: StageRef, snapshot: StageRef, *,
                            contact: ContactDefaults, ledger_account: str) -> ResolutionStep:
    """`contact`: names for new addresses whose rows give none. `ledger_account`: the
    account's key in the address ledger, when the run applies ("" otherwise)."""
    with run.client() as client, \
            run.stages.building("resolution", rows=desired.rows) as con:
        attach(con, d=desired, s=snapshot)
        con.execute("CREATE TEMP VIEW acc AS SELECT *, row_number() OVER () AS _order "
                    "FROM d.accepted")
        # Only rows with an address by its fields, or an id the account lacks, need work:
        # the others (a million, on a big account) go through inside DuckDB untouched.
        todo = con.execute(f"SELECT * FROM acc WHERE {NEEDS_RESOLUTION}").df()
        res = resolve_addresses(
            todo, con.execute("SELECT * FROM s.addresses").df(), client,
            run.ledger() if run.applies else None, apply=run.applies, run_id=run.run_id,
            log=run.log, account=ledger_account, contact=contact)
        if len(todo):   # the resolved rows go back to their places
            con.register("resolved", as_text(res.accepted))
            con.execute("CREATE TABLE accepted AS SELECT * EXCLUDE (_order) FROM ("
                        f"SELECT * FROM acc WHERE NOT ({NEEDS_RESOLUTION}) "
                        "UNION ALL BY NAME SELECT * FROM resolved) ORDER BY _order")
            con.unregister("resolved")
        else:   # the rows as they came: no sort of every row to put none back (2 s at 5M)
            con.execute("CREATE TABLE accepted AS SELECT *, NULL::VARCHAR AS address_given, "
                        "NULL::VARCHAR AS address_note FROM d.accepted")
        for name, frame in (("rejected", res.rejected), ("addresses", res.addresses),
                            ("resolutions", res.table)):
            con.register("frame", as_text(frame))
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
        con.unregister("frame")
        con.execute("DETACH d")
        con.execute("DETACH s")
    counts = {"distinct_addresses": len(res.table), **res.counts(),
              "rows_rejected_for_their_address": len(
                  res.rejected[["source_file", "source_row"]].drop_duplicates())}
    ref = run.stages.ref("resolution", counts)
    if len(res.table):
        run.analytics.write("address_resolutions", run.stamp(res.table).assign(
            recorded_at=datetime.now(timezone.utc)))
    run.log.info("addresses by their fields: " + (
        ", ".join(f"{k[10:]} {v}" for k, v in res.counts().items()) or "none in the sheet"))
    return ResolutionStep(ref, counts, res.table)


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns as pandas text, so that DuckDB types a column holding only None as
    VARCHAR (it would guess a number, and refuse to union it with text)."""
    out = frame.copy()
    for c in out.columns:
        if out[c].dtype == object and out[c].map(lambda v: v is None or isinstance(v, str)).all():
            out[c] = out[c].astype("str")
    return out
