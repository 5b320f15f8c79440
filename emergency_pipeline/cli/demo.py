"""`emergency-pipeline demo`: the whole job, end to end, on the embedded default.

Starts the emulator with a generated account, applies the sample desired state in data/
through the Dagster job (with a persistent Dagster home in the repo, so that `dagster dev`
afterwards shows the run), prints a summary from DuckDB, and stops the emulator.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from emergency_pipeline.samples.demo_sheet import DEMO_NUMBERS, DEMO_SEED

# The emulator's key for the demo: not a secret, and never a real user's key.
DEMO_KEY = "KEY_emulator_demo"
DEMO_FAULTS = "number_fail_rate=0.03,seed=7"
# The demo's account name in the history: its emulator's port changes from run to run (and
# `make dev` serves it on 8911), so the default label (the API's host:port) would too.
DEMO_ACCOUNT = "demo-emulator"

_WRITTEN_BY = "# Written by `emergency-pipeline demo`."
DAGSTER_YAML = _WRITTEN_BY + """ Two apply runs per account at a time (their tag
# emergency_pipeline/apply names it): one applies, the next waits on the account lease, which
# is what guarantees one at a time (deploy/dagster.yaml says why two, and what the lease
# covers that the queue does not); plan-only runs never wait.
run_queue:
  dequeue_interval_seconds: 1
  tag_concurrency_limits:
    - key: "emergency_pipeline/apply"
      value:
        applyLimitPerUniqueValue: true
      limit: 2
# The daemon (`dagster dev`) fails a run that never starts, and stops one that runs past
# max_runtime_seconds, so that a run whose worker died does not stay STARTED for ever (the
# default run launcher cannot report a dead worker). No resume: a resumed apply would be a
# second run; the next run adopts the open jobs instead. Longer than the longest real run:
# a million-number apply with its 900 s follow.
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_resume_run_attempts: 0
  max_runtime_seconds: 21600
  poll_interval_seconds: 60
telemetry:
  enabled: false
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the main job end to end against the emulator",
                              description=__doc__)
    p.add_argument("--numbers", type=int, default=DEMO_NUMBERS, help="size of the account")
    p.add_argument("--seed", type=int, default=DEMO_SEED)
    p.add_argument("--desired", default="data/desired_state.csv",
                   help="desired-state source (the partition key of the run)")
    p.add_argument("--database", default="data/emergency.duckdb")
    p.add_argument("--dagster-home", default=".dagster_home")
    p.add_argument("--job-seconds", type=float, default=2.0,
                   help="how long the emulator takes to carry out a job")
    p.add_argument("--faults", default=DEMO_FAULTS,
                   help="emulator faults (name=value,...); by default the provider refuses a "
                        "few numbers, so the summary shows failures with Telnyx's errors")
    p.add_argument("--plan-only", action="store_true", help="plan, do not submit")
    p.set_defaults(func=run)


def emulator_state_path(home: Path) -> Path:
    """The demo's emulator account (numbers, addresses) after its run, in its Dagster home."""
    return Path(home) / "emulator_state.json"


def prepare_dagster_home(path: Path) -> Path:
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    # Ours (an earlier demo's) is brought up to date; one a person wrote is left alone.
    if not config.exists() or config.read_text().startswith(_WRITTEN_BY):
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(path)
    return path


def run(args: argparse.Namespace) -> int:
    # Dagster is imported here, not at the top: the console script's other sub-commands
    # (the emulator) should start without it.
    from emergency_pipeline.launch import run_job
    from emergency_pipeline.emulator import Emulator, Faults

    home = prepare_dagster_home(Path(args.dagster_home))
    desired = Path(args.desired)
    if not desired.exists():
        from emergency_pipeline.samples.demo_sheet import write_sample

        write_sample(desired, args.numbers, args.seed)
    with Emulator(numbers=args.numbers, seed=args.seed, api_key=DEMO_KEY,
                  job_seconds=args.job_seconds, faults=Faults.parse(args.faults)) as emu:
        print(f"emulator: {args.numbers} numbers at {emu.base_url}")
        os.environ.update({"TELNYX_API_KEY": DEMO_KEY, "TELNYX_BASE_URL": emu.base_url,
                           "TELNYX_ACCOUNT": DEMO_ACCOUNT,
                           "EMERGENCY_PIPELINE_DUCKDB": args.database})
        config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
        result = run_job(str(desired), apply=not args.plan_only, run_config=config)
        stats = emu.stats()
        # `make dev` serves this account, so the UI starts where the demo left it (issue 27:
        # a fresh one made the first UI apply redo the demo's changes).
        emu.finish_jobs()
        emu.save_state(str(emulator_state_path(home)))
    print(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'}; "
          f"emulator saw {stats['requests']} requests, {stats['jobs_created']} jobs")
    print_summary(args.database, result.run_id)
    print(f"\nDagster home: {home}  (see the run: DAGSTER_HOME={home} "
          f".venv/bin/dagster dev -w workspace.yaml, or `make dev`)")
    return 0 if result.success else 1


def print_summary(database: str, run_id: str, rows_shown: int = 10, width: int = 100) -> None:
    """Results by count, then every failure, skip and rejection reason with its count and the
    sheet rows it concerns (the first `rows_shown`, then "and N more"), wrapped, never cut."""
    from emergency_pipeline.analytics.store import Store

    store = Store(database)
    by_result = store.query(
        "SELECT result, count(*) AS numbers FROM operation_outcomes WHERE run_id = ? "
        "GROUP BY result ORDER BY numbers DESC", [run_id])
    reasons = store.query(
        "SELECT result, coalesce(error_code || ' ' || error_title, reason, '') AS why,"
        "       count(*) AS numbers, count(DISTINCT source_file) AS files,"
        "       list(source_row ORDER BY source_file, source_row) AS rows,"
        "       list(source_file ORDER BY source_file, source_row) AS row_files"
        " FROM operation_outcomes WHERE run_id = ?"
        "   AND result IN ('failed', 'expired', 'pending', 'skipped', 'rejected')"
        " GROUP BY ALL ORDER BY result, numbers DESC, why", [run_id])
    print("\nResults of this run:")
    print(by_result.to_string(index=False))
    if len(reasons):
        print("\nEvery failure, skip and rejection reason (numbers, result, why, rows):")
    for r in reasons.itertuples():
        print(_reason_lines(r, rows_shown, width))
    print(f"\nOutcomes: {Path(database).resolve()} (table operation_outcomes; views "
          "failing_now, latest_applied_outcome_per_number, latest_outcome_per_number, "
          "failures_by_error_code, run_summary: see the README)")


def _reason_lines(r, rows_shown: int, width: int) -> str:
    import textwrap

    rows = list(r.rows)
    files = list(r.row_files)
    named = [f"{Path(f).name} row {n}" if r.files > 1 else str(n)
             for f, n in zip(files[:rows_shown], rows[:rows_shown])]
    label = ("rows " if r.files <= 1 and len(rows) > 1 else "row " if r.files <= 1 else "")
    where = label + ", ".join(named) + (f" and {len(rows) - rows_shown} more"
                                        if len(rows) > rows_shown else "")
    head = f"{r.numbers:>7}  {r.result:<8}  "
    return textwrap.fill(f"{r.why} [{where}]", width=width, initial_indent=head,
                         subsequent_indent=" " * len(head), break_long_words=False,
                         break_on_hyphens=False)
