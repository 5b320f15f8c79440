"""Behaviour unchanged (issue 26): every table a workload leaves, before and after a change.

Runs one workload on two source trees, each with its own emulator, through the console
script only (`emergency-pipeline emulator | run | coverage`, found in each tree's
pyproject.toml, the tree first on PYTHONPATH with this venv), dumps every table (table_dump.py
says which, and what it normalises) and compares the dumps. Exit status 1 when anything
differs.

    .venv/bin/python benchmarks/compare_tables.py                       # demo, 9832d44 vs here
    .venv/bin/python benchmarks/compare_tables.py --workload 100k
    .venv/bin/python benchmarks/compare_tables.py --write-golden tests/golden/demo_tables.json
    .venv/bin/python benchmarks/compare_tables.py --against-golden tests/golden/demo_tables.json

--before takes a git ref (extracted with `git archive` into a temporary folder) or a folder.

The workload, on one emulator (seeded account, no random faults: which numbers a random
fault hits depends on the order in which concurrent jobs are polled):
1. `run SHEET --apply`: the demo sheet (data/desired_state.csv on the demo account: every
   action, skip and rejection, an address created), or the whole 100,000-number account with
   10% changed (half enabled, a quarter disabled, a quarter moved);
2. jobs finished, numbers settled (POST /_emulator/finish_jobs); three numbers the run
   enabled are disabled behind its back (PATCH /_emulator/numbers/...); the provider then
   refuses every number (number_fail_rate=1.0: deterministic);
3. `coverage` (the drift shows); 4. `run SHEET --apply` again: the drifted numbers fail.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import table_dump  # noqa: E402

HERE = Path(__file__).resolve().parents[1]
DEFAULT_BEFORE = "9832d44"
KEY = "KEY_compare_tables_not_secret"
ACCOUNT = "compare-emulator"
DRIFTED = 3
# The emulator's settings: short jobs (the follow polls once a second), settling at once.
JOB_SECONDS = "0.2"


@dataclass(frozen=True)
class Workload:
    name: str
    numbers: int
    seed: int
    changed_share: float | None       # None: the demo sheet
    allow_mass_disable: bool


WORKLOADS = {
    "demo": Workload("demo", 3000, 2026, None, False),     # sample.DEMO_NUMBERS / DEMO_SEED
    "100k": Workload("100k", 100_000, 2026, 0.10, True),
}


@dataclass(frozen=True)
class Tree:
    root: Path
    label: str
    python: str = sys.executable      # this venv, unless the tree needs its own

    def command(self, *args: str) -> list[str]:
        """The tree's own console script (its pyproject's entry point), in this venv."""
        scripts = tomllib.loads((self.root / "pyproject.toml").read_text())["project"]["scripts"]
        module, func = scripts["emergency-pipeline"].split(":")
        code = (f"import sys; sys.argv[0] = 'emergency-pipeline'; from {module} import {func}; "
                f"sys.exit({func}())")
        return [self.python, "-c", code, *args]

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("EMERGENCY_PIPELINE_", "TELNYX_", "EMULATOR_"))
               and k not in ("DAGSTER_HOME", "PYTHONPATH")}
        # The spec check of the test suite, if any, stays on (tests/conftest.py).
        for k in ("TELNYX_EMULATOR_SPEC", "TELNYX_EMULATOR_SPEC_LOG"):
            if k in os.environ:
                env[k] = os.environ[k]
        return {**env, "PYTHONPATH": str(self.root), **extra}

    def check(self) -> None:
        """The package imported is this tree's, not the venv's editable install."""
        out = subprocess.run([self.python, "-c", "import emergency_pipeline as p; "
                              "print(p.__file__)"], env=self.env({}), cwd=self.root.parent,
                             capture_output=True,
                             text=True, check=True).stdout.strip()
        if not Path(out).resolve().is_relative_to(self.root.resolve()):
            raise SystemExit(f"{self.label}: imported {out}, not the tree {self.root}")


def folder_label(folder: Path) -> str:
    """A checkout by its commit, and whether it has changes beyond it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                              text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "no commit"
    return f"tree at {commit}" + (" with changes" if git("status", "--porcelain",
                                                         "--untracked-files=no") else "")


def before_tree(ref: str, scratch: Path, python: str) -> Tree:
    """A folder as it is, else the commit extracted (git archive: nothing to clean up in the
    repository, unlike a worktree left by a killed run)."""
    if Path(ref).is_dir():
        return Tree(Path(ref).resolve(), folder_label(Path(ref)), python)
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", ref],
                            capture_output=True, text=True, check=True).stdout.strip()
    root = scratch / f"tree-{commit}"
    root.mkdir()
    archive = subprocess.Popen(["git", "-C", str(HERE), "archive", commit],
                               stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(root)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise SystemExit(f"git archive {ref} failed")
    return Tree(root, f"commit {commit}", python)


class EmulatorProcess:
    """`emergency-pipeline emulator` of one tree, on a free port."""

    def __init__(self, tree: Tree, w: Workload, log: Path) -> None:
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            tree.command("emulator", "--port", "0", "--numbers", str(w.numbers), "--seed",
                         str(w.seed), "--job-seconds", JOB_SECONDS, "--settle-seconds", "0"),
            env=tree.env({"EMULATOR_API_KEY": KEY}), stdout=subprocess.PIPE, stderr=self.log,
            text=True)
        line = self.proc.stdout.readline()
        found = re.search(r" at (http://\S+/v2)", line)
        if not found:
            self.stop()
            raise SystemExit(f"the emulator did not start: {line!r} (log {log})")
        self.base_url = found.group(1)
        self.port = int(re.search(r":(\d+)/v2", self.base_url).group(1))
        self.admin = httpx.Client(base_url=self.base_url.removesuffix("/v2"), timeout=60)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.log.close()


def changed_sheet(emu: EmulatorProcess, path: Path, share: float, seed: int) -> None:
    """The whole account, `share` of it changed, as samples/changed_share.py makes it (the same
    choice; written here so that the workload owes nothing to the code under comparison)."""
    with httpx.Client(base_url=emu.base_url, timeout=60,
                      headers={"Authorization": f"Bearer {KEY}"}) as api:
        numbers, page = [], 1
        while True:
            body = api.get("/phone_numbers", params={"page[size]": 250,
                                                     "page[number]": page}).json()
            numbers += body["data"]
            if page >= body["meta"]["total_pages"]:
                break
            page += 1
        addresses = [a["id"] for a in api.get("/addresses", params={"page[size]": 250}
                                              ).json()["data"]]
    rng = random.Random(seed)
    ok = [n for n in numbers if n["status"] in ("active", "emergency-only", "port-out-pending")
          and n["emergency_status"] not in ("provisioning", "deprovisioning")]
    want = int(len(numbers) * share)
    enable = rng.sample([n for n in ok if not n["emergency_enabled"]], want // 2)
    moved = rng.sample([n for n in ok if n["emergency_enabled"]], want - len(enable))
    targets = {n["id"]: rng.choice(addresses) for n in enable}
    targets |= {n["id"]: None for n in moved[:len(moved) // 2]}
    for n in moved[len(moved) // 2:]:
        targets[n["id"]] = rng.choice([a for a in addresses if a != n["emergency_address_id"]])
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone_number", "emergency_enabled", "emergency_address_id"])
        for n in numbers:
            on, addr = n["emergency_enabled"], n["emergency_address_id"]
            if n["id"] in targets:
                on, addr = targets[n["id"]] is not None, targets[n["id"]]
            w.writerow([n["phone_number"], "true" if on else "false", (addr or "") if on else ""])


def _cli(tree: Tree, env: dict[str, str], workdir: Path, log: str, *args: str) -> tuple[int, str]:
    """One console-script command; (exit status, its run id)."""
    with (workdir / f"{log}.stderr").open("w") as err:
        done = subprocess.run(tree.command(*args), env=env, cwd=workdir, stdout=subprocess.PIPE,
                              stderr=err, text=True)
    (workdir / f"{log}.stdout").write_text(done.stdout)
    found = re.search(r"^run (\S+): ", done.stdout, re.M)
    if not found:
        raise SystemExit(f"{tree.label}: `{' '.join(args)}` gave no run (exit "
                         f"{done.returncode}); see {workdir}/{log}.stdout and .stderr")
    return done.returncode, found.group(1)


def run_workload(tree: Tree, w: Workload, sheet: Path | None, workdir: Path
                 ) -> tuple[dict, dict[str, int], str]:
    """The workload on a fresh emulator of `tree`: (normalised dump, exit statuses, how long
    the runs and the dump took, as text).
    `sheet`: the changed-state sheet to use (made from this emulator's account if None)."""
    workdir.mkdir(parents=True)
    home = workdir / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    started = time.time()
    emu = EmulatorProcess(tree, w, workdir / "emulator.log")
    try:
        source = workdir / "desired_state.csv"
        if w.changed_share is None:
            shutil.copy(HERE / "data" / "desired_state.csv", source)
        elif sheet is None:
            changed_sheet(emu, source, w.changed_share, w.seed)
        else:
            shutil.copy(sheet, source)
        database = workdir / "analytics.duckdb"
        env = tree.env({"TELNYX_API_KEY": KEY, "TELNYX_BASE_URL": emu.base_url,
                        "TELNYX_ACCOUNT": ACCOUNT, "EMERGENCY_PIPELINE_DUCKDB": str(database),
                        "DAGSTER_HOME": str(home)})
        apply = ["run", source.name, "--apply", "--quiet", "--plan-limit", "0",
                 "--follow-timeout", "600"] + (["--allow-mass-disable"]
                                               if w.allow_mass_disable else [])
        statuses, runs = {}, []
        statuses["apply"], run = _cli(tree, env, workdir, "apply", *apply)
        runs.append(run)
        emu.admin.post("/_emulator/finish_jobs").raise_for_status()
        with duckdb.connect(str(database), read_only=True) as con:
            drift = [r[0] for r in con.execute(
                "SELECT number_id FROM operation_outcomes WHERE result = 'succeeded' AND "
                "target_enabled ORDER BY source_file, source_row LIMIT ?", [DRIFTED]).fetchall()]
        for number in drift:
            emu.admin.patch(f"/_emulator/numbers/{number}", json={
                "emergency_enabled": False, "emergency_address_id": None}).raise_for_status()
        emu.admin.put("/_emulator/faults", json={"number_fail_rate": 1.0}).raise_for_status()
        statuses["coverage"], run = _cli(tree, env, workdir, "coverage", "coverage", "--quiet")
        runs.append(run)
        statuses["apply_again"], run = _cli(tree, env, workdir, "apply_again", *apply)
        runs.append(run)
    finally:
        emu.stop()
    ran = time.time()
    raw = table_dump.raw_dump(database, home / "emergency_pipeline" / "safety.sqlite")
    ctx = table_dump.Context(since=started - 60, until=time.time() + 60, run_ids=tuple(runs),
                             workdir=str(workdir), port=emu.port)
    dump = table_dump.normalise(raw, ctx)
    dump["cli:exit_status"] = {"columns": [["step", "VARCHAR"], ["status", "INTEGER"]],
                               "rows": [json.dumps([k, v]) for k, v in sorted(statuses.items())]}
    took = f"runs {ran - started:.1f}s, dump {time.time() - ran:.1f}s"
    return dict(sorted(dump.items())), statuses, took


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="demo")
    p.add_argument("--before", default=DEFAULT_BEFORE, help="git ref or folder (default "
                   f"{DEFAULT_BEFORE})")
    p.add_argument("--before-python", default=sys.executable, metavar="PATH",
                   help="the Python that runs --before (default: this venv's; another when "
                        "the two trees' dependencies differ)")
    p.add_argument("--after", default=str(HERE), help="folder (default: this checkout)")
    p.add_argument("--write-golden", metavar="PATH", help="run --before only; write its dump")
    p.add_argument("--against-golden", metavar="PATH",
                   help="run --after only; compare it with this dump")
    p.add_argument("--keep", action="store_true", help="keep the work folders (printed)")
    args = p.parse_args(argv)
    w = WORKLOADS[args.workload]
    scratch = Path(tempfile.mkdtemp(prefix=f"compare-tables-{w.name}-"))
    keep = args.keep
    try:
        return _main(args, w, scratch)
    except BaseException:
        keep = True       # what the runs said, for the error's reader
        raise
    finally:
        if keep:
            print(f"work folders kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def _main(args: argparse.Namespace, w: Workload, scratch: Path) -> int:
    after = Tree(Path(args.after).resolve(), folder_label(Path(args.after)))
    if args.against_golden:
        after.check()
        dump, _, took = run_workload(after, w, None, scratch / "after")
        golden, meta = table_dump.read_dump(Path(args.against_golden))
        print(f"{w.name}: {meta.get('tree')} (golden) vs {after.label}: {took}")
        same, report = table_dump.compare(golden, dump)
        print(report)
        return 0 if same else 1
    before = before_tree(args.before, scratch, args.before_python)
    before.check()
    b_dump, _, b_took = run_workload(before, w, None, scratch / "before")
    print(f"{w.name} on {before.label}: {b_took}, {len(b_dump)} tables, "
          f"{sum(len(t['rows']) for t in b_dump.values()):,} rows", flush=True)
    if args.write_golden:
        table_dump.write_dump(b_dump, Path(args.write_golden),
                              {"workload": w.name, "tree": before.label})
        print(f"wrote {args.write_golden}")
        return 0
    after.check()
    a_dump, _, a_took = run_workload(after, w, scratch / "before" / "desired_state.csv",
                                     scratch / "after")
    print(f"{w.name} on {after.label}: {a_took}")
    same, report = table_dump.compare(b_dump, a_dump)
    print(report)
    print("identical" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
