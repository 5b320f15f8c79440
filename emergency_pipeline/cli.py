"""The `emergency-pipeline` console script: one sub-command per concern."""

from __future__ import annotations

import argparse
import ctypes
import sys

M_ARENA_MAX = -8   # glibc's mallopt parameter


def _few_malloc_arenas() -> None:
    """At most two malloc arenas: glibc gives each of the client's sixteen threads its own,
    each keeping the memory it freed, which raised a run's peak resident memory for nothing
    (the threads take turns on the GIL anyway). Not glibc: nothing to do."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emergency-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    # Each concern registers its own sub-command, so this file stays a table of contents.
    from emergency_pipeline.emulator.cli import add_parser as add_emulator
    from emergency_pipeline.demo import add_parser as add_demo
    from emergency_pipeline.dev_cli import add_parser as add_dev
    from emergency_pipeline.partitions_cli import add_parser as add_partitions
    from emergency_pipeline.run_cli import add_parser as add_run

    add_emulator(sub)
    add_demo(sub)
    add_run(sub)
    add_partitions(sub)
    add_dev(sub)
    args = parser.parse_args(argv)
    _few_malloc_arenas()
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
