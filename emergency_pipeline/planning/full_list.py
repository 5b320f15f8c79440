"""The whole plan as CSV next to the analytics file (`<database folder>/plans/<run_id>.csv`),
written by DuckDB from the plan's stage file: report.full_list's columns and order, where the
`run` command and the UI's metadata both point."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from emergency_pipeline.planning.report import address_texts, plan_csv_path
from emergency_pipeline.stage_files import StageRef, attached, spill_early

FULL_LIST_SQL = """
SELECT action, phone_number, number_id, target_enabled, target_address_id,
    CASE WHEN NOT coalesce(target_enabled, false) OR target_address_id IS NULL THEN ''
         ELSE coalesce(t.text, address_given, 'not an address of the account')
    END AS target_address,
    reason, current_enabled, current_address_id, address_given, source_file, source_row, extras
FROM p.plan LEFT JOIN texts t ON t.id = target_address_id
ORDER BY CASE action WHEN 'enable' THEN 0 WHEN 'change_address' THEN 1 WHEN 'disable' THEN 2
                     WHEN 'skip' THEN 3 WHEN 'noop' THEN 4 ELSE 5 END,
         target_address_id NULLS LAST, phone_number NULLS LAST
"""


def write_full_list(plan: StageRef, addresses: pd.DataFrame | None, database: str,
                    run_id: str) -> Path | None:
    """The CSV's path, or None where the folder is not writable (the history's
    emergency_plan then gives the same rows)."""
    path = plan_csv_path(database, run_id)
    texts = pd.DataFrame(list(address_texts(addresses).items()), columns=["id", "text"])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".csv.tmp")
        with attached({"texts": texts}, p=plan) as con:
            spill_early(con)
            con.execute(f"COPY ({FULL_LIST_SQL}) TO '{tmp}' (HEADER)")
        tmp.replace(path)
    except (OSError, duckdb.IOException):
        return None
    return path
