"""Behaviour unchanged (issue 26): the demo workload leaves every table as 9832d44 did.

benchmarks/compare_tables.py runs the workload (the demo sheet applied on the demo account,
three numbers drifted behind the run's back, the coverage report, the sheet applied again
with the provider refusing every number) through the console script against the real
emulator, dumps every table and view of the analytics DuckDB file, the safety store's tables
and the plan and coverage files, normalised (run ids, job ids, the run's own moments, ports,
paths, host and pid: table_dump.py says why each). This test compares that dump with
tests/golden/demo_tables.json, which the same script wrote from 9832d44, before the package
was restructured.

A change of behaviour that is meant (a new column, another reason text) makes the golden
file again, in the same commit, from the changed tree:

    .venv/bin/python benchmarks/compare_tables.py --before . \\
        --write-golden tests/golden/demo_tables.json
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import compare_tables  # noqa: E402
import table_dump  # noqa: E402

GOLDEN = Path(__file__).with_name("golden") / "demo_tables.json"


def test_every_table_of_the_demo_workload_is_as_before_the_restructuring(tmp_path):
    tree = compare_tables.Tree(ROOT, "this checkout")
    dump, _, _ = compare_tables.run_workload(
        tree, compare_tables.WORKLOADS["demo"], None, tmp_path / "run")
    golden, meta = table_dump.read_dump(GOLDEN)
    same, report = table_dump.compare(golden, dump)
    assert same, (f"tables differ from {GOLDEN.name} ({meta['tree']}), per table rows "
                  f"golden / now:\n{report}\n(the runs' output: {tmp_path / 'run'}; an "
                  "intended change writes the golden file again: see this file's docstring)")
