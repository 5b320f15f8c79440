"""History that survives the run's machine: each run's rows as immutable Parquet files in a
shared location, and a DuckDB file of views over them for analysts.

On one machine the analytics DuckDB file (data/emergency.duckdb) is the history and nothing
here runs. Where runs execute on machines that come and go (a container per run), set
EMERGENCY_PIPELINE_HISTORY_URL (or the component's `history_url`) to a folder every run can
reach, or to object storage through pyarrow's filesystems (s3://bucket/prefix,
gs://bucket/prefix): at the end of each run its rows of every history table are written to

    <url>/<table>/account=<account>/<run id>--<writer run id>.parquet

one file per run, table and writer, written whole or not at all (a local file is written under
a temporary name and renamed; an object store's PUT is atomic). Nothing is ever rewritten or
appended to, so two accounts' runs (or any two runs) never wait on each other, and a writer
that dies leaves no half file: its results stay in the safety store's ledger, and the run
that resumes its account publishes them (attributed to the dead run) and exports them in its
own file (the `--<writer run id>` part keeps the names apart).

`emergency-pipeline history views --url URL --out FILE.duckdb` makes the analysts' DuckDB
file: one view per table over every account's files, and the usual views (run_summary,
failing_now, ...; store.VIEWS) on top, so one session queries every account.

What this gives up: the analysts' views read Parquet (a query scans the files, fine up to
millions of rows a table, slower than a native DuckDB table past that; `COPY ... TO` a table
when it matters); the views see a run once its export finished (the end of its outcomes step),
not row by row; and a run whose rows landed in its analytics file's spool (the file held by an
analyst) exports them from the spool, so nothing is missed, but a spool left on a dead
container's disk is lost with it unless the ledger republishes it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

HISTORY_URL_ENV = "EMERGENCY_PIPELINE_HISTORY_URL"
# The history tables that hold one run's rows (each has run_id).
RUN_TABLES = ("desired_settings", "desired_rejections", "address_resolutions",
              "emergency_plan", "emergency_jobs", "operation_outcomes")


def history_url(configured: str | None = None) -> str | None:
    return (configured or os.environ.get(HISTORY_URL_ENV) or "").strip() or None


def _filesystem(url: str) -> tuple[pafs.FileSystem, str]:
    if "://" in url and not url.startswith("file://"):
        return pafs.FileSystem.from_uri(url)
    path = url[len("file://"):] if url.startswith("file://") else url
    return pafs.LocalFileSystem(), str(Path(path).resolve())


def _write(fs: pafs.FileSystem, path: str, table: pa.Table) -> None:
    """`table` at `path`, whole or not at all."""
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"
        pq.write_table(table, temporary, filesystem=fs)
        fs.move(temporary, path)
    else:
        pq.write_table(table, path, filesystem=fs)


def export_runs(store: Any, url: str, account: str, run_ids: list[str],
                writer_run: str) -> dict[str, int]:
    """Write the rows of `run_ids` in every history table of `store` (the analytics file and
    its spool) to `url`; returns rows written per table."""
    fs, root = _filesystem(url)
    written: dict[str, int] = {}
    marks = ", ".join("?" for _ in run_ids)
    for table in RUN_TABLES:
        where, params = f"run_id IN ({marks})", list(run_ids)
        if table == "operation_outcomes":
            # Also the results this run published for a run that stopped first (analytics/publish.py
            # attributes them to that run, and says who recorded them).
            where += " OR reason LIKE ?"
            params.append(f"%recorded by run {writer_run} after%")
        frame = store.read(table, where, params)
        if frame.empty:
            continue
        if "account" not in frame.columns or frame["account"].isna().all():
            frame = frame.assign(account=account)
        for run_id, rows in frame.groupby("run_id", sort=True):
            arrow = pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False)
            _write(fs, f"{root}/{table}/account={account}/{run_id}--{writer_run}.parquet",
                   arrow)
            written[table] = written.get(table, 0) + len(rows)
    return written


def make_views(url: str, out: str) -> list[str]:
    """A DuckDB file at `out` with a view per history table over `url`'s files (every
    account), and schema.VIEWS on top. Returns the tables found."""
    import duckdb

    from emergency_pipeline.analytics.schema import VIEWS

    fs, root = _filesystem(url)
    remote = "://" in url and not url.startswith("file://")
    found = [t for t in RUN_TABLES
             if fs.get_file_info(f"{root}/{t}").type == pafs.FileType.Directory]
    con = duckdb.connect(out)
    try:
        if remote:
            con.execute("INSTALL httpfs; LOAD httpfs;")
        base = url.rstrip("/") if remote else root
        for table in found:
            glob = f"{base}/{table}/*/*.parquet".replace("'", "''")
            con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet("
                        f"'{glob}', hive_partitioning = false, union_by_name = true)")
        if "operation_outcomes" in found:
            con.execute(VIEWS)
    finally:
        con.close()
    return found
