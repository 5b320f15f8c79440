"""The drop folder: every new or changed CSV/XLSX becomes a partition and a run that applies it.

The cursor maps each file to the hash of the version last launched, and the run key carries
that hash, so each file version runs exactly once, even if the cursor were lost.

Only regular files inside the inbox run: a symlink that resolves outside it (to another
folder, to /etc/passwd) is skipped, and so is a name that cannot be a safe partition key
(a newline, `,`, `...`: see partition_keys.py). Each skip is logged. A sheet that cannot be
a desired state at all (no bytes, a header alone, no phone or flag column) never becomes a
partition either: it is logged once per file version and shown as the tick's skip reason;
dropping a fixed version runs it."""

import hashlib
import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from dagster import (
    DefaultSensorStatus, DynamicPartitionsDefinition, RunRequest, SensorEvaluationContext,
    SensorResult, SkipReason, sensor,
)

from emergency_pipeline.defs.reconcile_job import apply_emergency_settings, apply_tags
from emergency_pipeline.defs.partition_keys import partition_key_problem
from emergency_pipeline.defs.partitions import desired_state_sources
from emergency_pipeline.desired_state.usable import unusable_reason

DEFAULT_INBOX = "data/inbox"
SPREADSHEETS = {".csv", ".xlsx"}
# A file modified this recently may still be being copied in; look again at the next tick.
SETTLE_SECONDS = 2.0


def inbox_dir() -> Path:
    return Path(os.environ.get("EMERGENCY_PIPELINE_INBOX", DEFAULT_INBOX))


def file_version(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _skip_reason(path: Path, inbox: Path) -> str | None:
    """Why a dropped file must not run, or None. `inbox` is resolved."""
    problem = partition_key_problem(path.name) or partition_key_problem(str(path))
    if problem:
        return f"its name cannot be a partition key: {problem}; rename it"
    real = path.resolve()
    if not real.is_relative_to(inbox):
        return f"it is a link to {real}, outside the inbox; copy the file in instead"
    if not stat.S_ISREG(real.stat().st_mode):
        return "it is not a regular file"
    return None


def scan(inbox: Path, seen: dict[str, str], now: float | None = None,
         log: Callable[[str], None] | None = None
         ) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """New or changed spreadsheets as (partition key, version), and the updated cursor.
    Files skipped for safety are reported once per scan through `log`."""
    now = time.time() if now is None else now
    found, cursor = [], dict(seen)
    if not inbox.is_dir():
        return found, cursor
    real_inbox = inbox.resolve()
    for path in sorted(inbox.iterdir()):
        # Office lock files (~$x.xlsx) and hidden files are not spreadsheets people dropped.
        if path.suffix.lower() not in SPREADSHEETS or path.name.startswith(("~$", ".")):
            continue
        try:
            reason = _skip_reason(path, real_inbox)
            if reason is None and now - path.stat().st_mtime < SETTLE_SECONDS:
                continue
            version = None if reason else file_version(path)
        except OSError as exc:      # vanished, dangling link, unreadable
            reason = f"cannot read it ({exc.strerror})"
        if reason:
            if log:
                log(f"inbox: skipped {path.name!r}: {reason}")   # the inbox is named once
            continue
        key = str(path)
        if seen.get(key) != version:
            cursor[key] = version       # an unusable version is reported once, not each tick
            problem = unusable_reason(path)
            if problem:
                if log:
                    log(f"inbox: skipped {path.name!r}: not usable as a desired state "
                        f"({problem}); fix it and drop it again")
                continue
            found.append((key, version))
    return found, cursor


# How often the daemon may look (tests shorten it; a real inbox needs no more than this).
INTERVAL_SECONDS = int(os.environ.get("EMERGENCY_PIPELINE_INBOX_INTERVAL_SECONDS", "30"))


@sensor(job=apply_emergency_settings, minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.STOPPED,
        description="Applies every new or changed CSV/XLSX dropped into "
                    "$EMERGENCY_PIPELINE_INBOX (default data/inbox/).")
def desired_state_inbox(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    return inbox_tick(context, inbox_dir(), desired_state_sources, apply_tags())


def inbox_tick(context: SensorEvaluationContext, inbox: Path,
               partitions: DynamicPartitionsDefinition,
               tags: dict[str, str]) -> SensorResult | SkipReason:
    """One tick of an inbox sensor: a run (with `tags`) per new or changed usable sheet, each
    a partition of `partitions`; the unusable ones reported once, as the skip reason."""
    seen = json.loads(context.cursor) if context.cursor else {}
    skipped: list[str] = []

    def log(line: str) -> None:
        context.log.warning(line)
        skipped.append(line)

    found, cursor = scan(inbox, seen, log=log)
    if not found:
        why = SkipReason("; ".join([f"no new or changed spreadsheet in {inbox}",
                                    *skipped])[:1000])
        if cursor == seen:
            return why
        # Unusable versions are remembered, so that each is reported once.
        return SensorResult(skip_reason=why, cursor=json.dumps(cursor, sort_keys=True))
    # A file removed since the scan never becomes a partition (it would stay in the UI).
    found = [(k, v) for k, v in found if Path(k).is_file()]
    new_keys = [k for k, _ in found
                if not context.instance.has_dynamic_partition(partitions.name, k)]
    return SensorResult(
        run_requests=[RunRequest(partition_key=key, run_key=f"{key}@{version}",
                                 tags={"emergency_pipeline/file_version": version, **tags})
                      for key, version in found],
        dynamic_partitions_requests=[partitions.build_add_request(new_keys)]
        if new_keys else [],
        cursor=json.dumps(cursor, sort_keys=True),
    )
