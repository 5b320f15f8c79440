"""Figures: the safety store's calls of one apply run, on SQLite and on a real PostgreSQL.

    python benchmarks/safety_store_calls.py [--batches 100] [--per-batch 100] [--wave 10]
                                            [--repeat 3]

Replays what a run of N batches asks of the store (applying/submission.py's order): take the lease,
read the open batches and job ids, then per wave record it (fenced), confirm() before each
POST, record the job ids, close the finished batches with their numbers' results, and at the
end read the run's batches, mark them published and look for unpublished ones. PostgreSQL is
started from Debian's server binaries (tests/pg_server.py) with fsync on, like SQLite's
synchronous=FULL, on loopback. Prints per kind of call its count and milliseconds, and the
totals, side by side; the best of --repeat runs, each on a fresh store.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pg_server import PgServer  # noqa: E402

from emergency_pipeline.applying.number_result import NumberResult  # noqa: E402
from emergency_pipeline.planning.batching import batch_of  # noqa: E402
from emergency_pipeline.safety_store import BatchClose, held, open_safety_store  # noqa: E402

ACCOUNT = "http://127.0.0.1:8080/v2#0123456789abcdef"


def one_run(url: str, batches: int, per_batch: int, wave_size: int) -> dict[str, list[float]]:
    spent: dict[str, list[float]] = defaultdict(list)

    def timed(kind, call, *args, **kwargs):
        started = time.perf_counter()
        out = call(*args, **kwargs)
        spent[kind].append(time.perf_counter() - started)
        return out

    store = timed("open store", open_safety_store, url)
    ledger, run = store.ledger, "bench-run"
    all_batches = [batch_of([str(b * per_batch + i) for i in range(per_batch)], True,
                            f"addr-{b % 7}", "id") for b in range(batches)]
    started = time.perf_counter()
    with held(store.lease, ACCOUNT, run, wait_seconds=0, release_on_exit=True) as fence:
        spent["acquire (held)"].append(time.perf_counter() - started)
        timed("open_batches", ledger.open_batches, ACCOUNT)
        timed("job_ids", ledger.job_ids, ACCOUNT)
        for start in range(0, batches, wave_size):
            wave = all_batches[start:start + wave_size]
            timed("record (fenced)", ledger.record, wave, run_id=run, account=ACCOUNT,
                  source="/srv/sheet.xlsx", outcomes_db="/srv/emergency.duckdb", fence=fence)
            for _ in wave:
                timed("confirm (per POST)", fence.confirm)
            timed("submitted", ledger.submitted,
                  [((run, b.batch_id), f"job-{b.batch_id}", "pending", None) for b in wave],
                  by_run=run)
            timed("close (with results)", ledger.close,
                  [BatchClose((run, b.batch_id), "finished", f"job-{b.batch_id}", "success",
                              [NumberResult(i, "applied", finished_at="t")
                               for i in b.identifiers]) for b in wave], by_run=run)
        mine = timed("batches_of_run", ledger.batches_of_run, run)
        timed("mark_published", ledger.mark_published, [b.key for b in mine])
        timed("unpublished", ledger.unpublished, ACCOUNT, exclude_run=run)
    store.close()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--per-batch", type=int, default=100)
    parser.add_argument("--wave", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server = PgServer(fsync=True).start()
    try:
        best: dict[str, dict[str, list[float]]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("sqlite", "postgresql"):
                runs = []
                for i in range(args.repeat):
                    url = (str(Path(tmp) / f"s{i}" / "safety.sqlite") if name == "sqlite"
                           else server.new_database())
                    runs.append(one_run(url, args.batches, args.per_batch, args.wave))
                best[name] = min(runs, key=lambda r: sum(map(sum, r.values())))
    finally:
        server.stop()
    print(f"{args.batches} batches of {args.per_batch} numbers, waves of {args.wave} "
          f"(best of {args.repeat}); ms in total (calls)")
    print(f"{'call':<24}{'sqlite':>16}{'postgresql':>16}")
    for kind in best["sqlite"]:
        cells = [f"{sum(best[n][kind]) * 1000:9.1f} ({len(best[n][kind]):3d})" for n in best]
        print(f"{kind:<24}{cells[0]:>16}{cells[1]:>16}")
    totals = [sum(map(sum, best[n].values())) * 1000 for n in best]
    print(f"{'total':<24}{totals[0]:>10.1f} ms{totals[1]:>13.1f} ms")


if __name__ == "__main__":
    main()
