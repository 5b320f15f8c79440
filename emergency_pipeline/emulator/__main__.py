"""`python -m emergency_pipeline.emulator ...`: the emulator command without the dispatcher
(and without importing the rest of the project: it starts faster and smaller)."""

from __future__ import annotations

import argparse
import sys

from emergency_pipeline.emulator.cli import add_parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emergency_pipeline.emulator")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    args = parser.parse_args(["emulator", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
