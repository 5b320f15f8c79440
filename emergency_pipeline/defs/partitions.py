"""One dynamic partition per desired-state source (a spreadsheet, a folder or a DuckDB file).

The key is the source's path as the run will read it (relative to the code location's working
directory, or absolute), so a backfill over many spreadsheets is a selection of keys."""

from __future__ import annotations

from dagster import DagsterInstance, DynamicPartitionsDefinition

desired_state_sources = DynamicPartitionsDefinition(name="desired_state_sources")


def ensure_partition(instance: DagsterInstance, key: str,
                     name: str = desired_state_sources.name) -> None:
    """Add the source's partition (to the partition set `name`: each account has its own)
    unless it exists. Two runs of a new source started together both try to add it; the
    loser's unique-constraint error means it now exists."""
    if instance.has_dynamic_partition(name, key):
        return
    try:
        instance.add_dynamic_partitions(name, [key])
    except Exception:   # noqa: BLE001 - storage-specific IntegrityError types
        if not instance.has_dynamic_partition(name, key):
            raise
