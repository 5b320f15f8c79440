"""Is a spreadsheet usable at all, before it becomes a partition (issue 27)?

A file with no bytes, a header alone, or without its phone or flag column is never an
instruction: the run would fail at its first step, and its partition would stay in the UI
(red, with every check failed) for a source that was never planned. The first chunk of each
file is enough to tell: the same readers and column matching as a run, nothing validated."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .columns import FLAG, PHONE, describe_aliases, match_columns
from .csv_stream import Reparse
from .errors import DesiredStateError
from .readers import DUCKDB_SUFFIXES, Counts, list_sources, readers, source_name

_FIRST_CHUNK_ROWS = 1_000


def unusable_reason(source: str | Path, sheet: str | None = None) -> str | None:
    """Why the source cannot be a desired state (one line with the fix), or None. DuckDB
    sources are left to the run (their table or query comes with the run's config)."""
    if Path(source).suffix.lower() in DUCKDB_SUFFIXES:
        return None
    try:
        sources = list_sources(source, sheet=sheet)
    except DesiredStateError as exc:
        return str(exc)
    for path, kind in sources:
        if kind == "duckdb":
            continue
        try:
            problem = _first_chunk_problem(path, kind, sheet)
        except DesiredStateError as exc:    # raised before the first chunk (an empty file)
            problem = str(exc)
        if problem:
            return problem
    return None


def _first_chunk_problem(path: Path, kind: str, sheet: str | None) -> str | None:
    with tempfile.TemporaryDirectory(prefix="usable-") as work:
        for reader in readers(path, kind, sheet=sheet, table=None, query=None,
                              chunk_rows=_FIRST_CHUNK_ROWS, workdir=Path(work)):
            counts = Counts(source_name(path, kind, None))
            try:
                raw = next(iter(reader(counts)), None)
            except Reparse:
                continue
            except DesiredStateError as exc:
                return str(exc)
            if raw is None:
                return f"{path}: no data rows"
            m = match_columns(raw.headers)
            for canonical, header in ((PHONE, m.phone), (FLAG, m.flag)):
                if header is None:
                    return (f"{raw.source_file}: no {canonical} column (columns found: "
                            f"{', '.join(raw.headers)[:80]}): name a column {canonical} (or "
                            f"{describe_aliases(canonical)})")
            return None
    return None
