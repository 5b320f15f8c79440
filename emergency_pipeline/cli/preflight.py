"""Checks before a run is launched, each failing in one line with the fix.

A source that is missing, unreadable or unusable (no bytes, a header alone, no phone or flag
column) is refused here, before the account is listed and before it becomes a partition (a
mistyped path or a broken sheet must not stay in the UI forever).
"""

from __future__ import annotations

import os
from pathlib import Path

from emergency_pipeline.client import API_KEY_ENV


class PreflightError(Exception):
    """The run cannot start; the message says why and what to do."""


def check_source(source: str, sheet: str | None = None) -> Path:
    """The source path if it exists and can be read (a file, or a folder that can be listed)
    and is usable as a desired state (desired_state/usable.py)."""
    path = _readable(source)
    from emergency_pipeline.desired_state.usable import unusable_reason

    problem = unusable_reason(source, sheet)
    if problem:
        raise PreflightError(f"desired state not usable: {problem}")
    return path


def _readable(source: str) -> Path:
    path = Path(source)
    if not path.exists():
        near = _near(path)
        raise PreflightError(f"desired-state source {source!r} does not exist"
                             + (f" (in {path.parent or '.'}: {near})" if near else "")
                             + ": check the path (relative to the current folder "
                             f"{Path.cwd()})")
    if path.is_dir():
        try:
            next(iter(path.iterdir()), None)
        except OSError as exc:
            raise PreflightError(f"cannot list the folder {source!r} ({exc.strerror}): "
                                 "check its permissions") from None
        return path
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise PreflightError(f"cannot read {source!r} ({exc.strerror}): check its "
                             "permissions, or close the program that locks it") from None
    return path


def _near(path: Path) -> str:
    """A few files beside a missing one, so a typo is easy to see."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        names = sorted(p.name for p in folder.iterdir()
                       if p.suffix.lower() in (".csv", ".xlsx", ".duckdb") or p.is_dir())
    except OSError:
        return ""
    shown = names[:5]
    return ", ".join(shown) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def check_api_key() -> None:
    if not os.environ.get(API_KEY_ENV, "").strip():
        raise PreflightError(f"{API_KEY_ENV} is not set: export the account's API key "
                             "(for the local emulator: `emergency-pipeline dev` sets it)")


def check_dagster_home() -> Path | None:
    """$DAGSTER_HOME, created when it does not exist yet (Dagster itself refuses to)."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return None
    path = Path(home)
    if not path.is_absolute():
        raise PreflightError(f"DAGSTER_HOME must be an absolute path, got {home!r}: "
                             f"export DAGSTER_HOME={path.resolve()}")
    if path.exists() and not path.is_dir():
        raise PreflightError(f"DAGSTER_HOME={home} is a file, not a folder: point it at a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PreflightError(f"cannot create DAGSTER_HOME={home} ({exc.strerror}): point it "
                             "at a folder you can write") from None
    return path
