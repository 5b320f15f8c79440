"""Which file names may become partition keys (and so run keys, tags and backfill arguments)."""

from __future__ import annotations

import unicodedata

# `,` separates keys in `dagster job backfill --partitions a,b`; `...` is Dagster's range
# syntax (a...b); brackets and quotes confuse selections and shells.
_UNSAFE_TEXT = (",", "...", "[", "]", '"', "'", "`", "|", "\\")
MAX_KEY_LENGTH = 1024


def partition_key_problem(key: str) -> str | None:
    """Why `key` cannot be a partition key, or None if it can."""
    if not key or key != key.strip():
        return "it is empty or starts or ends with a space"
    if len(key) > MAX_KEY_LENGTH:
        return f"it is longer than {MAX_KEY_LENGTH} characters"
    for ch in key:
        # Cc: newline, tab, NUL...; Cf: invisible format marks (bidi overrides, zero width).
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return f"it holds the control or invisible character U+{ord(ch):04X}"
    for text in _UNSAFE_TEXT:
        if text in key:
            return f"it holds {text!r}"
    return None
