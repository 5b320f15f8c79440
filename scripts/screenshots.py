"""Re-make the README's screenshots of the Dagster UI (docs/*.png).

    .venv/bin/python scripts/screenshots.py            # needs chromium (apt-get install chromium)

Runs the demo into a temporary DAGSTER_HOME and database (the repo's data/ and .dagster_home
are left alone), starts the Dagster webserver on a free loopback port, and lets headless
Chromium save each asset page of PAGES as a PNG. Not part of `make test`: CI has no browser.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SOURCE = "data/desired_state.csv"          # the demo's partition key
# (PNG under docs/, the asset, the tab of its page, the window's height): the events tab
# shows a materialization's metadata at full width, the overview its definition.
PAGES = [
    ("ui-plan.png", "emergency_settings_plan", "events", 2300),
    ("ui-outcomes.png", "emergency_operation_outcomes", "events", 1500),
    ("ui-outcomes-overview.png", "emergency_operation_outcomes", "overview", 1000),
    ("ui-jobs.png", "emergency_update_jobs", "events", 1300),
]
# The UI's first-visit dialog would cover the page.
NO_NUX = "\nnux:\n  enabled: false\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"no answer from {url} after {seconds:.0f} s")
        time.sleep(0.5)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise SystemExit("no chromium: apt-get install -y chromium")


def screenshot(browser: str, url: str, png: Path, width: int, height: int) -> None:
    """One page, headless; the virtual time budget lets the app load its data first."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
             f"--screenshot={png}", f"--window-size={width},{height}",
             "--virtual-time-budget=15000", url],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs"), help="folder of the PNGs")
    # 1600: the plan's table fits the metadata panel without a column cut off.
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    browser = chromium()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="emergency-screenshots-"))
    database, home = work / "emergency.duckdb", work / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(home), "EMERGENCY_PIPELINE_DUCKDB": str(database)}
    demo = subprocess.run([BIN / "emergency-pipeline", "demo", "--database", str(database),
                           "--dagster-home", str(home), "--job-seconds", "0.5",
                           "--desired", SOURCE], cwd=REPO, env=env, capture_output=True,
                          text=True)
    if demo.returncode:
        raise SystemExit(f"the demo failed:\n{demo.stdout}\n{demo.stderr}")
    with open(home / "dagster.yaml", "a") as config:
        config.write(NO_NUX)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Its own session: stopped with everything it started, and only that.
    server = subprocess.Popen([BIN / "dagster-webserver", "-w", "workspace.yaml", "-h",
                               "127.0.0.1", "-p", str(port)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        wait_for(f"{base}/server_info", 120)
        partition = urllib.parse.quote(SOURCE, safe="")
        for png, asset, tab, height in PAGES:
            # The demo's account is the repo's component `telnyx`: its keys are prefixed.
            url = f"{base}/assets/telnyx/{asset}?view={tab}&partition={partition}"
            screenshot(browser, url, out / png, args.width, height)
            print(f"{out / png}  <- {url}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
