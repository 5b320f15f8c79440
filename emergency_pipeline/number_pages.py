"""The account snapshot, streamed into the run's tables page by page.

A million numbers must not become a million Python dicts held at once: each page of 250 is
turned into a small Arrow table (six typed columns) as it arrives, and the pages are
written to DuckDB once listed, a number seen on two pages kept once.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from emergency_pipeline.client import TelnyxClient
from emergency_pipeline.stage_files import stage_threads

NUMBER_SCHEMA = pa.schema([
    ("id", pa.string()), ("phone_number", pa.string()), ("status", pa.string()),
    ("emergency_enabled", pa.bool_()), ("emergency_address_id", pa.string()),
    ("emergency_status", pa.string()),
])


def _column(records: list[dict], name: str, kind: pa.DataType) -> pa.Array:
    values = [r.get(name) for r in records]
    try:
        # The usual page: every value already of its type, converted in one C++ call.
        return pa.array(values, type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    if kind == pa.bool_():
        values = [v if isinstance(v, bool) or v is None else str(v).lower() == "true"
                  for v in values]
    else:
        values = [None if v is None else str(v) for v in values]
    return pa.array(values, type=kind)


def page_table(records: list[dict]) -> pa.Table:
    """One page of number records as an Arrow table of NUMBER_SCHEMA (pure); the records'
    other fields are left out."""
    return pa.Table.from_arrays([_column(records, f.name, f.type) for f in NUMBER_SCHEMA],
                                schema=NUMBER_SCHEMA)


# Pages are appended to DuckDB this many at a time (50,000 numbers): memory stays bounded by
# a chunk, not the account (5,000,000 numbers held as Arrow pages until the end, then
# concatenated, cost gigabytes).
PAGES_PER_CHUNK = 200


def list_numbers_into(client: TelnyxClient, con: duckdb.DuckDBPyConnection,
                      table: str = "numbers") -> dict[str, Any]:
    """Every number of the account into `table` of con; returns the listing's counts."""
    raw = f"_{table}_pages"
    con.register("empty_numbers", NUMBER_SCHEMA.empty_table())
    con.execute(f'CREATE TEMP TABLE "{raw}" AS SELECT *, 0::BIGINT AS _seq FROM empty_numbers')
    con.unregister("empty_numbers")
    chunk: list[pa.Table] = []
    listed = 0

    def flush() -> None:
        if chunk:
            con.register("chunk", pa.concat_tables(chunk))
            con.execute(f'INSERT INTO "{raw}" SELECT * FROM chunk')
            con.unregister("chunk")
            chunk.clear()

    def keep(number: int, _total: int, records: list[dict]) -> None:
        # Called one page at a time (listing.each_page holds its lock), so the connection is
        # never used by two threads at once.
        nonlocal listed
        part = page_table(records)
        listed += part.num_rows
        # Listing order: page number, then place on the page.
        seq = range(number * 1_000_000, number * 1_000_000 + part.num_rows)
        chunk.append(part.append_column("_seq", pa.array(seq, pa.int64())))
        if len(chunk) >= PAGES_PER_CHUNK:
            flush()

    # No field projection: page_table keeps only its columns, and each page's records are
    # dropped once converted.
    total_pages, announced = client.each_phone_number_page(keep)
    flush()
    con.execute(f"SET threads = {stage_threads(listed)}")   # the connection's size is known now
    # A number that moved between pages while listing shows twice: keep its first sighting.
    # (Grouped to the first position and joined back: cheaper than a window over every row.)
    con.execute(f'CREATE TABLE "{table}" AS SELECT * EXCLUDE (_seq) FROM "{raw}" SEMI JOIN '
                f'(SELECT min(_seq) AS _seq FROM "{raw}" GROUP BY id) USING (_seq) ORDER BY _seq')
    con.execute(f'DROP TABLE "{raw}"')
    kept = con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]
    if announced is not None and kept != announced:
        client.log.warning(f"phone numbers: got {kept}, the API announced {announced}")
    client.log.info(f"phone numbers: {kept} records from {total_pages} pages")
    return {"numbers": kept, "pages": total_pages, "listed": listed}
