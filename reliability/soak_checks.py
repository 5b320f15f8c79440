"""The soak's promise checks, from the emulator (the account's truth) and the outcomes rows of
every DuckDB file the soak's runs wrote.

  dup_in_flight  two jobs holding the same number whose in-flight periods overlap (rule 3)
  crossed        a succeeded outcome whose target is not its run's sheet's, or whose job (as
                 the emulator holds it) applied another target than the row records
  lost           a number an ended job reports (successful / failed_operations) with no
                 outcome row carrying that job id and that result (rule 5)
  bad_results    a desired number of a run that ended by itself (exit 0) without exactly
                 one outcome row of that run, or rows for numbers not in its sheet (rule 5)
  wrong_state    a succeeded outcome of the number's latest successful job whose number's
                 settings now differ from the run's sheet
  twice          a run with two outcome rows for one number, in all the files (the
                 multi-host soak: killed and failed runs included)
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from emergency_pipeline.emulator import Emulator

Target = tuple[bool, str | None]


def _parse(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def duplicate_in_flight(jobs: list[dict[str, Any]], new: set[str] | None = None
                        ) -> list[tuple[str, str, str]]:
    """(number id, job a, job b) for every pair of jobs holding one number whose in-flight
    periods overlap, keeping pairs with a job in `new` (all when None). A job's period runs
    from created_at to the updated_at of its terminal status (the moment the emulator first
    saw it end), or on for ever while in flight."""
    spans: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for job in jobs:
        start = _parse(job["created_at"])
        end = _parse(job["updated_at"]) if job["status"] not in ("pending", "in_progress") \
            else float("inf")
        ids = {op["id"] for key in ("successful_operations", "failed_operations",
                                    "pending_operations") for op in job.get(key, [])}
        for number_id in ids:
            spans[number_id].append((start, end, job["id"]))
    found = []
    for number_id, periods in spans.items():
        periods.sort()
        for i, (s1, e1, j1) in enumerate(periods):
            for s2, _e2, j2 in periods[i + 1:]:
                if s2 >= e1:
                    break
                if new is None or j1 in new or j2 in new:
                    found.append((number_id, j1, j2))
    return found


class Sheets:
    """Desired targets per sheet path, by number id (read once)."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self._cache: dict[str, dict[str, Target]] = {}

    def targets(self, source: str) -> dict[str, Target]:
        if source not in self._cache:
            with open(source, newline="", encoding="utf-8") as fh:
                want = {}
                for row in csv.DictReader(fh):
                    on = row["emergency_enabled"] == "yes"
                    want[self.emu.number(row["phone_number"])["id"]] = (
                        on, row["emergency_address_id"] if on else None)
            self._cache[source] = want
        return self._cache[source]


def job_targets(emu: Emulator) -> dict[str, Target]:
    """What each job the emulator holds was asked to apply (the emulator's record of it)."""
    state = emu.engine
    with state.lock:
        addresses = state.account.addresses
        return {j.id: (j.request.enable, None if j.request.address is None
                       else str(addresses[j.request.address]["id"])) for j in state.job_order}


@dataclass(frozen=True)
class Row:
    database: str
    run_id: str
    source: str
    number_id: str | None
    target: Target
    result: str
    reason: str
    job_id: str | None
    batch_id: str | None
    recorded_at: Any


def outcome_rows(emu: Emulator, databases: Iterable[Path]) -> list[Row]:
    """Every outcome row of these files that names a number (by id or E.164)."""
    rows: list[Row] = []
    for db in databases:
        if not Path(db).exists():
            continue
        con = duckdb.connect(str(db), read_only=True)
        try:
            if not con.execute("SELECT count(*) FROM information_schema.tables WHERE "
                               "table_name = 'operation_outcomes'").fetchone()[0]:
                continue
            got = con.execute(
                "SELECT run_id, source, number_id, phone_number, target_enabled, "
                "target_address_id, result, reason, job_id, batch_id, recorded_at "
                "FROM operation_outcomes").fetchall()
        finally:
            con.close()
        for (run_id, source, number_id, phone, on, address, result, reason, job_id, batch_id,
             recorded_at) in got:
            if number_id is None and phone is not None:
                try:
                    number_id = emu.number(phone)["id"]
                except KeyError:
                    pass
            rows.append(Row(str(db), run_id, source, None if number_id is None
                            else str(number_id), (bool(on), address if on else None),
                            result, reason or "", job_id, batch_id, recorded_at))
    return rows


def bad_results(rows: list[Row], run_id: str, want: dict[str, Target]) -> int:
    """Desired numbers without exactly one row of the run, plus rows for strangers."""
    per_number = Counter(r.number_id for r in rows if r.run_id == run_id)
    bad = sum(1 for n in want if per_number.get(n, 0) != 1)
    return bad + sum(c for n, c in per_number.items() if n not in want)


def twice(rows: list[Row], run_ids: set[str]) -> list[str]:
    """One line per (run, number) of these runs with more than one outcome row in all the
    files: a killed run's results land once, wherever they land, whoever publishes them."""
    seen = Counter((r.run_id, r.number_id) for r in rows
                   if r.run_id in run_ids and r.number_id is not None)
    return [f"run {run} number {number}: {n} rows" for (run, number), n in seen.items()
            if n > 1]


def crossed(rows: list[Row], sheets: Sheets, jobs: dict[str, Target]) -> list[str]:
    """One line per succeeded row that records another target than its run's sheet asked,
    or whose job applied another target than the row records."""
    found = []
    for r in rows:
        if r.result != "succeeded" or r.number_id is None:
            continue
        asked = sheets.targets(r.source).get(r.number_id)
        applied = jobs.get(str(r.job_id))
        if asked != r.target or (applied is not None and applied != r.target):
            found.append(f"run {r.run_id} ({Path(r.source).name}) number {r.number_id}: "
                         f"sheet asks {asked}, row records {r.target}, job {r.job_id} "
                         f"applied {applied}; batch {r.batch_id}; reason {r.reason!r}")
    return found


def wrong_state(emu: Emulator, rows: list[Row], sheets: Sheets,
                jobs: list[dict[str, Any]]) -> list[str]:
    """Succeeded rows whose job is the number's latest successful one, yet the number's
    settings differ from what the row's sheet asked (a later job may rightly change it)."""
    latest: dict[str, str] = {}
    for job in sorted(jobs, key=lambda j: j["created_at"]):
        for op in job.get("successful_operations", []):
            latest[op["id"]] = job["id"]
    found = []
    for r in rows:
        if r.result != "succeeded" or r.number_id is None or latest.get(r.number_id) != r.job_id:
            continue
        now = emu.number(r.number_id)
        have = (bool(now["emergency_enabled"]), now["emergency_address_id"])
        asked = sheets.targets(r.source).get(r.number_id)
        if have != asked:
            found.append(f"run {r.run_id} number {r.number_id}: job {r.job_id} succeeded, "
                         f"sheet asks {asked}, account has {have}")
    return found


class LostResults:
    """Every ended job's per-number results must reach some outcome row with that job id and
    result. Jobs are checked once they end; a job whose numbers are still shown `pending` in
    it (a run stopped following it) waits for a later run instead of counting as lost."""

    def __init__(self) -> None:
        self.checked: set[str] = set()

    def check(self, jobs: list[dict[str, Any]], rows: list[Row]) -> tuple[list[str], int]:
        """(one line per lost number result, jobs left waiting)."""
        recorded: set[tuple[str, str, str]] = set()
        pending_in: set[str] = set()
        for r in rows:
            if r.job_id and r.number_id:
                recorded.add((str(r.job_id), r.number_id, r.result))
                if r.result == "pending":
                    pending_in.add(str(r.job_id))
        lost, waiting = [], 0
        for job in jobs:
            if job["id"] in self.checked or job["status"] in ("pending", "in_progress"):
                continue
            missing = [(op["id"], result) for key, result in (
                ("successful_operations", "succeeded"), ("failed_operations", "failed"))
                for op in job.get(key, []) if (job["id"], op["id"], result) not in recorded]
            if missing and job["id"] in pending_in:
                waiting += 1
                continue
            self.checked.add(job["id"])
            lost += [f"job {job['id']} ({job['status']}) number {n}: {result} never recorded"
                     for n, result in missing]
        return lost, waiting


@dataclass(frozen=True)
class Findings:
    """What the promise checks found for one pair's runs (one line per finding)."""

    dup_in_flight: list[str]
    crossed: list[str]
    lost: list[str]
    bad_results: int
    wrong_state: list[str]
    results: dict[str, int]          # outcome results of the `counted` runs

    def details(self) -> list[str]:
        return ([f"DUPLICATE {x}" for x in self.dup_in_flight]
                + [f"CROSSED {x}" for x in self.crossed] + [f"LOST {x}" for x in self.lost]
                + [f"WRONG_STATE {x}" for x in self.wrong_state])


def check_runs(emu: Emulator, databases: Iterable[Path], runs: Iterable[Any],
               counted: Iterable[Any], lost: LostResults, known_jobs: set[str]) -> Findings:
    """The five promise checks over a pair's `runs` (soak_children.Child: run_id, source,
    completed), the jobs the emulator made since `known_jobs` (updated here) and every
    outcome row of `databases`; `counted`: the runs whose results are tallied."""
    runs = list(runs)
    jobs = emu.jobs()
    new_jobs = {j["id"] for j in jobs} - known_jobs
    known_jobs |= new_jobs
    sheets = Sheets(emu)
    rows = outcome_rows(emu, databases)
    ours = {c.run_id for c in runs if c.run_id}
    pair_rows = [r for r in rows if r.run_id in ours]
    bad = sum(bad_results(rows, c.run_id, sheets.targets(str(c.source)))
              for c in runs if c.completed and c.run_id)
    lost_lines, _waiting = lost.check(jobs, rows)
    counted_ids = {c.run_id for c in counted}
    return Findings(
        dup_in_flight=[f"number {n}: jobs {j1} and {j2}"
                       for n, j1, j2 in duplicate_in_flight(jobs, new_jobs)],
        crossed=crossed(pair_rows, sheets, job_targets(emu)), lost=lost_lines,
        bad_results=bad, wrong_state=wrong_state(emu, pair_rows, sheets, jobs),
        results=dict(Counter(r.result for r in rows if r.run_id in counted_ids)))
