"""The one error of the desired-state readers."""

from __future__ import annotations


class DesiredStateError(Exception):
    """The desired state cannot be read or is empty: nothing may be planned from it."""
