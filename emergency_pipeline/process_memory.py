"""How a process that runs the pipeline uses memory, set once by the code location
(definitions.py), which every such process loads: `run` and `demo`, and Dagster's run workers.

Both settings keep memory the process no longer uses from counting against it; neither
changes what is computed.
"""

from __future__ import annotations

import ctypes

M_ARENA_MAX = -8   # glibc's mallopt parameter


def settle() -> None:
    _few_malloc_arenas()
    _arrow_on_system_malloc()


def _few_malloc_arenas() -> None:
    """At most two malloc arenas: glibc gives each of the client's sixteen threads its own,
    each keeping the memory it freed, which raised a run's peak resident memory for nothing
    (the threads take turns on the GIL anyway). Not glibc: nothing to do."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass


def _arrow_on_system_malloc() -> None:
    """Arrow buffers (the snapshot's pages, pandas' strings) from malloc, not pyarrow's own
    mimalloc pool, which kept about 30 MB it had freed through a whole run."""
    import pyarrow

    pyarrow.set_memory_pool(pyarrow.system_memory_pool())
