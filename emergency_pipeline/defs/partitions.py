"""One dynamic partition per desired-state source (a spreadsheet, a folder or a DuckDB file).

The key is the source's path as the run will read it (relative to the code location's working
directory, or absolute), so a backfill over many spreadsheets is a selection of keys."""

from __future__ import annotations

from dagster import DynamicPartitionsDefinition

desired_state_sources = DynamicPartitionsDefinition(name="desired_state_sources")
