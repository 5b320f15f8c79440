"""Another process holding a DuckDB file open, as an analyst's notebook does."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

_HOLD = ("import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'ro'); "
         "print('open', flush=True); sys.stdin.read()")


@contextlib.contextmanager
def held_open(database: str | Path, read_only: bool = True) -> Iterator[subprocess.Popen]:
    """The file open in a child process (read-only, or for writing) for the block."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(database),
                             "ro" if read_only else "rw"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "open", "the holder never opened the file"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
