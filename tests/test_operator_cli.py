"""What operators tripped on with `emergency-pipeline run` (issue 27): a child process
against the emulator, as in test_cli_run."""

from __future__ import annotations

import csv
from pathlib import Path

from _emulator_support import allowing
from test_cli_run import Cli, cli  # noqa: F401 - the fixture

from emergency_pipeline.cli.run_report import EXIT_CHANGES, EXIT_OK, EXIT_REJECTED


def _sheet(path: Path, good: list[dict], bad: int) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone_number", "emergency_enabled", "emergency_address_id"])
        for n in good:
            w.writerow([n["phone_number"], "true" if n["emergency_enabled"] else "false",
                        n["emergency_address_id"] or ""])
        for k in range(bad):
            w.writerow([f"not a number {k}", "true", ""])
    return path


def test_a_mostly_rejected_sheet_exits_with_its_own_code(cli: Cli, emulator) -> None:
    same = allowing(emulator, 2, emergency_enabled=True, emergency_status="active")
    sheet = _sheet(cli.tmp / "mostly_bad.csv", same, bad=10)
    out = cli("run", str(sheet), "--quiet")
    assert out.returncode == EXIT_REJECTED, out.stdout + out.stderr
    assert EXIT_REJECTED not in (EXIT_OK, EXIT_CHANGES, 1)
    assert "10 rejected" in out.stdout                      # the headline counts them
    assert "already matches" not in out.stdout
    assert "rejected_rows_share" in out.stdout + out.stderr  # the failed check, named
    assert "10 of 12 rows rejected" in out.stdout + out.stderr


def test_plan_limit_zero_gives_counts_and_keeps_the_exit_code(cli: Cli, emulator) -> None:
    off = allowing(emulator, 3, emergency_enabled=True, emergency_status="active")
    for n in off:
        n["emergency_enabled"], n["emergency_address_id"] = False, None
    sheet = _sheet(cli.tmp / "disable3.csv", off, bad=0)
    out = cli("run", str(sheet), "--quiet", "--plan-limit", "0")
    assert out.returncode == EXIT_CHANGES, out.stdout + out.stderr
    assert "no summary" not in out.stderr
    assert "Plan: 3 to change (disable 3)" in out.stdout
    assert "- disable E911: 3 numbers" in out.stdout
    assert off[0]["phone_number"] not in out.stdout          # counts only
    assert "and 3 more" not in out.stdout


def test_an_unusable_sheet_names_its_path_once(cli: Cli) -> None:
    empty = cli.tmp / "header_only.csv"
    empty.write_text("phone_number,emergency_enabled\n")
    all_bad = _sheet(cli.tmp / "all_bad.csv", [], bad=2)
    for sheet in (empty, all_bad):   # refused before the run / by its first step
        out = cli("run", str(sheet), "--quiet")
        assert out.returncode == 1
        line = next(x for x in out.stderr.splitlines() if x.startswith("error: "))
        assert line.count(str(sheet)) == 1, line
        message = line.split("desired state not usable: ", 1)[1]
        assert len(message) - len(str(sheet)) <= 210, line


def test_an_apply_says_what_it_applied_and_the_log_counts_agree(cli: Cli, emulator) -> None:
    on = allowing(emulator, 2, emergency_enabled=True, emergency_status="active")
    for n in on:
        n["emergency_enabled"], n["emergency_address_id"] = False, None
    sheet = _sheet(cli.tmp / "two.csv", [*on, on[0]], bad=1)    # one exact duplicate
    out = cli("run", str(sheet), "--apply", EMERGENCY_PIPELINE_MAX_REJECTED_SHARE="0.5")
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert "1 identical duplicate collapsed" in text
    assert "Applied: 2 changes submitted (disable 2 " in out.stdout
    assert "results: " in text and "rejected 1" in text          # the log, as the summary
