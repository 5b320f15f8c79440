"""The fence's residual window: from the moment a job POST's lease confirmation returns to
the moment the emulator has the request, on the SQLite and the PostgreSQL safety store.

A run confirms its lease token in the store right before each job POST (the client's
before_post hook, after every pacing wait). What no check on the sending side can close is a
pause between that confirmation and the bytes on the wire: this prints how long that stretch
is, and how long the confirmation itself takes.

    .venv/bin/python benchmarks/fence_window.py --posts 300
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from emergency_pipeline.client import ClientConfig, TelnyxClient  # noqa: E402
from emergency_pipeline.emulator import Emulator  # noqa: E402
from emergency_pipeline.safety_store import held, open_safety_store  # noqa: E402

KEY = "bench-key"


def _ms(values: list[float]) -> str:
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))] * 1000  # noqa: E731
    return (f"median {statistics.median(values) * 1000:.2f} ms, p99 {pick(0.99):.2f} ms, "
            f"max {values[-1] * 1000:.2f} ms")


def measure(url: str, posts: int) -> tuple[list[float], list[float]]:
    store = open_safety_store(url)
    arrivals: list[float] = []
    with Emulator(numbers=posts + 100, seed=5, api_key=KEY, job_seconds=0.05) as emu:
        app = emu._app
        dispatch = app.dispatch

        def timed(name, *args):   # the emulator has read the request when it dispatches it
            if name == "create_job":
                arrivals.append(time.time())
            return dispatch(name, *args)

        app.dispatch = timed
        numbers = [n["phone_number"] for n in emu.numbers()
                   if n["status"] == "active"][:posts]
        address = emu.addresses()[0]["id"]
        confirmed: list[float] = []
        confirm_took: list[float] = []
        with TelnyxClient(ClientConfig(api_key=KEY, base_url=emu.base_url,
                                       max_concurrency=1)) as client, \
                held(store.lease, "bench", "bench-run", wait_seconds=0) as hold:

            def fence() -> None:
                began = time.time()
                hold.confirm()
                confirmed.append(time.time())
                confirm_took.append(confirmed[-1] - began)

            for number in numbers:
                client.submit_update_emergency_settings([number], True, address,
                                                        before_post=fence)
    store.close()
    return [a - c for a, c in zip(arrivals, confirmed)], confirm_took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=300)
    args = parser.parse_args()
    from pg_server import PgServer

    with tempfile.TemporaryDirectory() as tmp:
        stores = [("sqlite", str(Path(tmp) / "safety.sqlite"))]
        pg = PgServer().start()
        try:
            stores.append(("postgresql", pg.new_database()))
            for kind, url in stores:
                window, took = measure(url, args.posts)
                print(f"{kind:10s} {args.posts} POSTs, one at a time")
                print(f"  confirm -> request at the server: {_ms(window)}")
                print(f"  the confirmation itself:          {_ms(took)}")
        finally:
            pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
