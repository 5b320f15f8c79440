"""`emergency-pipeline history views --url URL --out FILE.duckdb`: the analysts' DuckDB file
over the Parquet history every run wrote to URL (EMERGENCY_PIPELINE_HISTORY_URL; analytics/parquet_history.py):
one view per history table across every account, and run_summary, failing_now, ... on top.
Views, not copies: open the file again later and it shows the runs exported since."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("history", help="the analysts' views over the shared history",
                              description=__doc__)
    sub = p.add_subparsers(dest="action", required=True)
    views = sub.add_parser("views", help="write a DuckDB file of views over the history")
    views.add_argument("--url", help="the history location (default "
                       "$EMERGENCY_PIPELINE_HISTORY_URL)")
    views.add_argument("--out", default="data/history.duckdb", help="the DuckDB file to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from emergency_pipeline.analytics.parquet_history import HISTORY_URL_ENV, history_url, make_views

    url = history_url(args.url)
    if not url:
        print(f"error: no history location: pass --url or export {HISTORY_URL_ENV}",
              file=sys.stderr)
        return 1
    found = make_views(url, args.out)
    if not found:
        print(f"error: no history under {url} yet (runs write it at their end when "
              f"{HISTORY_URL_ENV} is set where they run)", file=sys.stderr)
        return 1
    print(f"{args.out}: views {', '.join(found)} over {url}, and the analysts' views "
          "(run_summary, failing_now, ...)")
    return 0
