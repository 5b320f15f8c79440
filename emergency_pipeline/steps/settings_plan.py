"""Step 4, `emergency_settings_plan`: one action per desired number, planned in SQL
(planning/plan.py) over the resolution's and the snapshot's stage files; the history's
emergency_plan and the full list as CSV."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from emergency_pipeline.planning.full_list import write_full_list
from emergency_pipeline.planning.plan import plan_views, write_plan
from emergency_pipeline.stage_files import StageRef, attach
from emergency_pipeline.steps.context import RunContext

SKIP_REASONS_SHOWN = 50


@dataclass(frozen=True)
class PlanStep:
    ref: StageRef
    counts: dict[str, int]
    by_action: dict[str, int]
    skip_reasons: pd.DataFrame = field(compare=False)     # reason, numbers
    addresses: pd.DataFrame = field(compare=False)        # the resolution's, for the texts
    full_list: Path | None                                # None: not writable beside the file


def plan_changes(run: RunContext, resolution: StageRef, snapshot: StageRef) -> PlanStep:
    rows = max(resolution.rows, snapshot.rows)
    with run.stages.building("plan", rows) as con:
        attach(con, r=resolution, s=snapshot)
        plan_views(con, "r.accepted", "s.numbers", "r.addresses", "s.in_flight")
        write_plan(con, "plan")
        by_action = dict(con.execute("SELECT action, count(*) FROM plan GROUP BY ALL "
                                     "ORDER BY ALL").fetchall())
        skips = con.execute(
            "SELECT reason, count(*) AS numbers FROM plan WHERE action = 'skip' GROUP BY ALL "
            f"ORDER BY numbers DESC, reason LIMIT {SKIP_REASONS_SHOWN}").df()
        con.execute("DETACH r")
        con.execute("DETACH s")
    counts = {"desired_numbers": sum(by_action.values()),
              **{f"action_{a}": int(n) for a, n in by_action.items()}}
    ref = run.stages.ref("plan", counts)
    run.analytics.copy_from("emergency_plan", ref.path, run.stamped_select("src.plan"),
                            rows=counts["desired_numbers"])
    run.log.info("plan: " + (", ".join(f"{a} {n}" for a, n in by_action.items())
                             or "no rows"))
    addresses = resolution.read("addresses")
    full_list = write_full_list(ref, addresses, run.analytics.database, run.run_id)
    return PlanStep(ref, counts, {a: int(n) for a, n in by_action.items()}, skips, addresses,
                    full_list)
