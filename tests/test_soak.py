"""A small soak inside `make test` (reliability/soak.py; the long run is its --pairs 50):
three pairs of runs of the job in child processes against a faulty emulator, first runs
killed with SIGKILL at random moments, each followed by a resume run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[1] / "reliability" / "soak.py"


def _load():
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module     # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_three_pairs_keep_the_promises(tmp_path: Path) -> None:
    soak = _load()
    lines: list[str] = []
    reports = soak.soak(3, seed=7, numbers=400, rows=80, job_seconds=0.4, kill_share=0.67,
                        kill_window=(5.0, 8.0), follow_choices=(0.0, 30.0),
                        workdir=tmp_path, echo=lines.append)
    text = "\n".join(lines)
    assert len(reports) == 3, text
    for r in reports:
        assert r.resume_rc == 0, text
        assert (r.dup_in_flight, r.bad_results, r.wrong_state) == (0, 0, 0), text
        assert sum(r.results.values()) == r.desired, text
    assert sum(r.jobs_created for r in reports) > 0, text   # the pairs did change something
