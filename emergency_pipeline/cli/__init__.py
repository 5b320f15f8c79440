"""The `emergency-pipeline` console script: one sub-command per concern."""

from __future__ import annotations

import argparse
import gc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emergency-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    # Each concern registers its own sub-command, so this file stays a table of contents.
    from emergency_pipeline.cli.e911_coverage import add_parser as add_coverage
    from emergency_pipeline.emulator.cli import add_parser as add_emulator
    from emergency_pipeline.cli.demo import add_parser as add_demo
    from emergency_pipeline.cli.dev import add_parser as add_dev
    from emergency_pipeline.cli.history import add_parser as add_history
    from emergency_pipeline.cli.partitions import add_parser as add_partitions
    from emergency_pipeline.cli.run import add_parser as add_run

    add_emulator(sub)
    add_demo(sub)
    add_run(sub)
    add_partitions(sub)
    add_dev(sub)
    add_history(sub)
    add_coverage(sub)
    args = parser.parse_args(argv)
    status = int(args.func(args) or 0)
    # Nothing is left to collect that matters at exit; without this the interpreter's last
    # full collection walks every object of Dagster, pandas and DuckDB (0.7 s a run).
    gc.freeze()
    return status

