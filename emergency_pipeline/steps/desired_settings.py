"""Step 1, `desired_emergency_settings`: the desired-state source read into the run's stage
file (accepted rows, rejected rows with row, column and fix), and both into the history."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from emergency_pipeline.desired_state import DesiredStateError, write_desired_state
from emergency_pipeline.stage_files import StageRef
from emergency_pipeline.steps.context import RunContext, StepFailed

REJECTIONS_SHOWN = 20


@dataclass(frozen=True)
class SheetOptions:
    sheet: str | None = None         # an XLSX's sheet (default: the active one if visible)
    default_region: str = "US"       # for national-format numbers
    table: str | None = None         # when the source is a DuckDB file
    query: str | None = None


@dataclass(frozen=True)
class DesiredStep:
    ref: StageRef
    counts: dict[str, int]
    sheets_read: tuple[str, ...]
    rejections_sample: pd.DataFrame = field(compare=False)


def read_desired_state(run: RunContext, options: SheetOptions) -> DesiredStep:
    try:
        with run.stages.building("desired") as con:
            # Read into the stage file chunk by chunk: memory bounded by the chunk, not the
            # sheet (5,000,000 rows stay under a gigabyte).
            desired = write_desired_state(run.source, con, sheet=options.sheet,
                                          default_region=options.default_region,
                                          table=options.table, query=options.query)
            sample = con.execute(
                "SELECT source_file, source_row, \"column\", value, reason, fix FROM rejected "
                f"LIMIT {REJECTIONS_SHOWN}").df()
    except DesiredStateError as exc:
        # An unreadable or empty source is never an instruction: stop before planning.
        text = str(exc)   # most errors start with the file already: name it once
        raise StepFailed("desired state not usable: " + (
            text if text.startswith(run.source) else f"{run.source}: {text}")) from None
    counts = desired.counts()
    ref = run.stages.ref("desired", counts)
    run.analytics.copy_from("desired_settings", ref.path, run.stamped_select("src.accepted"),
                            rows=counts["accepted"])
    run.analytics.copy_from("desired_rejections", ref.path,
                            run.stamped_select("src.rejected"), rows=counts["rejected_rows"])
    dups = counts["collapsed_duplicates"]
    run.log.info(f"desired state from {run.source}: {counts['accepted']} rows accepted, "
                 f"{counts['rejected_rows']} rejected by the sheet's checks (the address "
                 f"step may reject more; the outcomes count all), {dups} identical "
                 f"duplicate{'' if dups == 1 else 's'} collapsed"
                 + (f"; sheets read: {', '.join(desired.sheets_read)}" if desired.sheets_read
                    else ""))
    return DesiredStep(ref, counts, tuple(desired.sheets_read), sample)
