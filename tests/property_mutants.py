"""How many examples the plan properties need to catch the bugs they were written for.

Not a test: a measuring script (python tests/property_mutants.py [--seeds 20] [--examples 200]).
Each mutant is a small, plausible bug patched into emergency_pipeline.planning.plan for the length of
one run; each property runs under Hypothesis with a seed per run (no shrinking, no database),
and the script prints, per mutant, at which example each seed first failed. From that,
the share of seeds that catch the mutant within a budget of examples: tests/README.md uses
it to choose max_examples.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

from hypothesis import Phase, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from emergency_pipeline.planning import plan as plan_module  # noqa: E402

import test_plan  # noqa: E402


def _sql(attr: str, old: str, new: str):
    text = getattr(plan_module, attr)
    assert old in text, (attr, old)
    return mock.patch.object(plan_module, attr, text.replace(old, new))


def _dup_per_range():
    """Rule 3 looked for inside each range only (the bug ranged planning could bring)."""
    original = plan_module.write_plan
    ranged_dup = plan_module.PLAN_DUP_SQL.replace(
        "FROM acc AS a", "FROM (SELECT * FROM acc WHERE _pos > $lo AND _pos <= $hi) AS a", 1)

    def write_plan(con, table):
        rows = con.execute("SELECT count(*) FROM acc").fetchall()[0][0]
        at = con.execute("SELECT now()").fetchall()[0][0]
        for name, sql in plan_module.PLAN_NUMBERS_SQL.items():
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        select = f"SELECT *, $at::TIMESTAMPTZ AS planned_at FROM ({plan_module.PLAN_RANGE_SQL})"
        for i, (lo, hi) in enumerate(plan_module.plan_ranges(rows)):
            con.execute(f"CREATE OR REPLACE TEMP TABLE plan_dup AS {ranged_dup}",
                        {"lo": lo, "hi": hi})
            con.execute(f"CREATE TABLE {table} AS {select}" if i == 0
                        else f"INSERT INTO {table} {select}", {"lo": lo, "hi": hi, "at": at})
        return rows
    assert original is plan_module.write_plan
    return mock.patch.object(plan_module, "write_plan", write_plan)


RANGE_MUTANTS = {
    "range overlap (>= lo)": lambda: _sql("PLAN_RANGE_SQL", "_pos > $lo", "_pos >= $lo"),
    "range gap (< hi)": lambda: _sql("PLAN_RANGE_SQL", "_pos <= $hi", "_pos < $hi"),
    "rule 3 per range": _dup_per_range,
}
ONCE_MUTANTS = {
    "no rule 3": lambda: _sql("PLAN_DUP_SQL", "HAVING count(*) > 1", "HAVING false"),
    "rule 4 by identifier only": lambda: _sql(
        "PLAN_RANGE_SQL", "OR m_id IN (SELECT identifier FROM in_flight)", ""),
    "no rule 1": lambda: _sql("PLAN_RANGE_SQL", "WHEN NOT known THEN 1", "WHEN false THEN 1"),
    "no reason for a noop disable": lambda: _sql(
        "PLAN_RANGE_SQL", "ELSE 'already disabled' END AS reason", "END AS reason"),
}


def _first_failure(prop, strategies: dict, mutant, run_seed: int, budget: int) -> int | None:
    """The 1-based example at which `prop` first failed under `mutant`, or None."""
    count = [0]
    failed: list[int] = []

    @settings(max_examples=budget, database=None, deadline=None, derandomize=False,
              phases=[Phase.generate])
    @seed(run_seed)
    @given(**strategies)
    def run(**kw):
        count[0] += 1
        try:
            prop(**kw)
        except Exception:
            failed.append(count[0])
            raise

    with mutant():
        with contextlib.suppress(Exception):
            run()
    return failed[0] if failed else None


PROPERTIES = {
    "test_planning_a_range_at_a_time_gives_the_one_plan": (
        test_plan.test_planning_a_range_at_a_time_gives_the_one_plan.hypothesis.inner_test,
        {"world": test_plan.worlds(), "per_range": st.integers(1, 7),
         "repeats": st.lists(st.tuples(st.integers(0, 19), st.booleans()), max_size=4)},
        RANGE_MUTANTS),
    "test_every_desired_row_appears_exactly_once": (
        test_plan.test_every_desired_row_appears_exactly_once.hypothesis.inner_test,
        {"world": test_plan.worlds()}, ONCE_MUTANTS),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--examples", type=int, default=200, help="budget per seed")
    ap.add_argument("--only", default="", help="a property name's substring")
    ap.add_argument("--mutant", default="", help="a mutant label's substring")
    args = ap.parse_args()
    for name, (prop, strategies, mutants) in PROPERTIES.items():
        if args.only not in name:
            continue
        print(name)
        for label, mutant in mutants.items():
            if args.mutant not in label:
                continue
            started = time.monotonic()
            firsts = [_first_failure(prop, strategies, mutant, s, args.examples)
                      for s in range(args.seeds)]
            found = sorted(f for f in firsts if f is not None)
            worst = found[-1] if found else None
            caught = {b: sum(1 for f in found if f <= b) for b in (10, 25, 50, 100, 200)}
            print(f"  {label}: caught by {len(found)}/{args.seeds} seeds within "
                  f"{args.examples}; first failing example median "
                  f"{statistics.median(found) if found else '-'}, worst {worst}; "
                  f"caught within 10/25/50/100/200: {caught[10]}/{caught[25]}/{caught[50]}/"
                  f"{caught[100]}/{caught[200]} ({time.monotonic() - started:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()
