"""`emergency-pipeline partitions list|remove`: the desired-state sources known to Dagster.

Each partition is a source path; one that was mistyped or has since been deleted stays in
the UI until removed here (runs and outcomes already recorded are kept).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("partitions", help="list or remove desired-state partitions",
                              description=__doc__)
    p.add_argument("--account", metavar="NAME", help="the account whose partitions (needed "
                   "only when the code location has several)")
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="every partition, and whether its source still exists")
    rm = sub.add_parser("remove", help="remove partitions by key")
    rm.add_argument("keys", nargs="*", metavar="KEY")
    rm.add_argument("--missing", action="store_true",
                    help="also remove every partition whose source no longer exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not os.environ.get("DAGSTER_HOME"):
        print("error: DAGSTER_HOME is not set: export it (the folder `make dev` and "
              "`emergency-pipeline run` use, e.g. $PWD/.dagster_home)", file=sys.stderr)
        return 1
    from dagster import DagsterInstance

    from emergency_pipeline.definitions import defs
    from emergency_pipeline.launch import AccountNotChosen, account_job_name

    try:   # each account has its own partition set
        name = defs.resolve_job_def(account_job_name(defs, args.account)).partitions_def.name
    except AccountNotChosen as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with DagsterInstance.get() as instance:
        keys = list(instance.get_dynamic_partitions(name))
        if args.action == "list":
            for key in keys:
                print(key if Path(key).exists() else f"{key}  (missing: the source is gone)")
            return 0
        unknown = [k for k in args.keys if k not in keys]
        if unknown:
            print(f"error: no partition {', '.join(map(repr, unknown))}: see "
                  "`emergency-pipeline partitions list`", file=sys.stderr)
            return 1
        doomed = list(dict.fromkeys([*args.keys, *(k for k in keys if args.missing
                                                   and not Path(k).exists())]))
        for key in doomed:
            instance.delete_dynamic_partition(name, key)
            print(f"removed {key}")
        if not doomed:
            print("nothing to remove")
    return 0
