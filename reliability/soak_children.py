"""The soak's child processes: `emergency-pipeline run --apply`, killed with SIGKILL at a
chosen point of its Dagster event stream.

A child runs with `--log-level debug`, so its stderr carries Dagster's STEP_START /
STEP_SUCCESS events per step; a thread tails it (copying it to the soak's log) and kills
the child's process group right at, or a few ms after, the line that marks the chosen point.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

STEPS = ("desired_emergency_settings", "emergency_account_snapshot",
         "emergency_address_resolution", "emergency_settings_plan", "emergency_update_jobs",
         "emergency_operation_outcomes")


@dataclass(frozen=True)
class KillPoint:
    """Where to kill: the first stderr line containing `marker`, then `delay` s (a range)."""

    name: str
    marker: str
    delay: tuple[float, float] = (0.0, 0.03)


def _boundaries() -> list[KillPoint]:
    points: list[KillPoint] = []
    for step in STEPS:
        short = step.removeprefix("emergency_")
        # The step key may carry the account's prefix (telnyx__emergency_update_jobs).
        points.append(KillPoint(f"{short}:start", f"{step} - STEP_START - "))
        if step == "emergency_update_jobs":
            # Right after a wave's POSTs: jobs exist, the ledger says submitted, not closed.
            points.append(KillPoint("update_jobs:posted", f"{step} - batches submitted:"))
        if step == "emergency_operation_outcomes":
            # Inside the outcomes step: its inputs are loaded, the body (build the rows,
            # write them, mark the batches published) runs for a few hundred ms.
            points.append(KillPoint("operation_outcomes:inside",
                                    f'{step} - STEP_INPUT - Got input "emergency_update_jobs"',
                                    (0.0, 0.3)))
        points.append(KillPoint(f"{short}:success", f"{step} - STEP_SUCCESS - "))
    return points


# Every stage boundary, two points inside stages, and the old random moment (None marker).
KILL_POINTS: tuple[KillPoint, ...] = (*_boundaries(), KillPoint("random", "", (3.0, 12.0)))
KILL_POINT_NAMES = tuple(p.name for p in KILL_POINTS)
_RUN_ID = re.compile(r" - (?:\w+__)?reconcile_emergency_settings - ([0-9a-f-]{36}) - ")


def kill_point(name: str) -> KillPoint:
    return next(p for p in KILL_POINTS if p.name == name)


class OneKill:
    """Shared by the children of a pair watching for the same kill point: the first to
    reach it is killed, the others run on. (A random victim could be the run that waits for
    the lease and then finds nothing left to do: it never posts, and the pair went unkilled.)"""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken = False

    def take(self) -> bool:
        with self._lock:
            taken, self._taken = self._taken, True
            return not taken


class Child:
    """One `run --apply` child; `kill` (optional) says where to SIGKILL it, `one_kill` (with
    a marker kill point) that only the first child of its pair to get there is killed.

    `act` replaces the SIGKILL at that point (the multi-host soak pauses a run there);
    `wrap` goes before the command (`unshare --uts ...`: another host name), `cwd` is the
    child's working folder."""

    def __init__(self, label: str, source: Path, env: dict[str, str], follow: float,
                 log: Path, kill: KillPoint | None = None,
                 rng: random.Random | None = None, one_kill: OneKill | None = None, *,
                 act: Callable[["Child"], None] | None = None, wrap: Sequence[str] = (),
                 cwd: Path | None = None) -> None:
        self.label, self.source, self.kill, self.one_kill = label, source, kill, one_kill
        self.delay = (rng or random).uniform(*kill.delay) if kill else 0.0
        self.killed_at: str | None = None      # the kill point's name, once killed
        self.run_id: str | None = None         # from the event stream (killed runs too)
        self.failure_lines: list[str] = []     # the CLI's "  step: message" lines
        self.lease_lost_lines: list[str] = []  # its "lost the account lease" ERROR lines
        self.ended_at: float | None = None     # time.time() when its stderr closed (exit)
        self._act = act or Child._sigkill
        self._log = log
        self._lock = threading.Lock()
        cmd = [*wrap, sys.executable, "-m", "emergency_pipeline.cli", "run", str(source),
               "--apply", "--follow-timeout", str(follow), "--log-level", "debug"]
        self.started = time.monotonic()
        self.started_at = time.time()
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self._tail = threading.Thread(target=self._read, daemon=True)
        self._tail.start()
        if kill is not None and not kill.marker:
            threading.Timer(self.delay, self._act, args=(self,)).start()

    def signal(self, sig: int) -> bool:
        """Send sig to the child's process group; False when it has ended."""
        if self.proc.poll() is not None:
            return False
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def _sigkill(self) -> None:
        with self._lock:
            if self.killed_at is None and self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    return
                self.killed_at = (self.kill.name if self.kill.marker
                                  else f"random@{self.delay:.1f}s")

    def _read(self) -> None:
        with self._log.open("ab") as out:
            for raw in self.proc.stderr:
                out.write(f"[{self.label}] ".encode() + raw)
                line = raw.decode(errors="replace")
                if self.run_id is None and (m := _RUN_ID.search(line)):
                    self.run_id = m.group(1)
                if line.startswith("  ") and ":" in line:
                    self.failure_lines.append(line.strip())
                if "lost the account lease" in line:
                    self.lease_lost_lines.append(line.strip())
                if self.kill and self.kill.marker and self.killed_at is None \
                        and self.kill.marker in line \
                        and (self.one_kill is None or self.one_kill.take()):
                    if self.delay:
                        time.sleep(self.delay)   # the child runs on meanwhile
                    self._act(self)
        self.ended_at = time.time()

    def wait(self, timeout: float = 900.0) -> int:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)   # a hung child fails the pair
            self.proc.wait()
        self._tail.join(timeout=10)
        out = self.proc.stdout.read().decode(errors="replace")
        self.proc.stdout.close()
        for line in out.splitlines():   # "run <id>: succeeded|FAILED"
            if line.startswith("run ") and ":" in line:
                self.run_id = line.split()[1].rstrip(":")
        self.seconds = time.monotonic() - self.started
        return self.proc.returncode

    @property
    def completed(self) -> bool:
        """Ran to its end by itself with exit 0: its outcomes must be whole."""
        return self.killed_at is None and self.proc.returncode == 0
