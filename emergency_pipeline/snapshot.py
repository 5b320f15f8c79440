"""The account snapshot, streamed into the run's tables page by page.

A million numbers must not become a million Python dicts held at once: each page of 250 is
turned into a small Arrow table (six typed columns) as it arrives, and the pages are
written to DuckDB once listed, a number seen on two pages kept once.
"""

from __future__ import annotations

import threading
from typing import Any

import duckdb
import pyarrow as pa

from emergency_pipeline.client import TelnyxClient

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


def list_numbers_into(client: TelnyxClient, con: duckdb.DuckDBPyConnection,
                      table: str = "numbers") -> dict[str, Any]:
    """Every number of the account into `table` of con; returns the listing's counts."""
    pages: dict[int, pa.Table] = {}
    lock = threading.Lock()

    def keep(number: int, _total: int, records: list[dict]) -> None:
        part = page_table(records)
        with lock:
            pages[number] = part

    # No field projection: page_table keeps only its columns, and each page's records are
    # dropped once converted.
    total_pages, announced = client.each_phone_number_page(keep)
    listed = pa.concat_tables([pages[n] for n in sorted(pages)]) if pages \
        else NUMBER_SCHEMA.empty_table()
    pages.clear()
    listed = listed.append_column("_pos", pa.array(range(listed.num_rows), pa.int64()))
    con.register("listed", listed)
    # A number that moved between pages while listing shows twice: keep its first sighting.
    con.execute(f'CREATE TABLE "{table}" AS SELECT * EXCLUDE (_pos) FROM listed '
                "QUALIFY row_number() OVER (PARTITION BY id ORDER BY _pos) = 1 ORDER BY _pos")
    con.unregister("listed")
    kept = con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]
    if announced is not None and kept != announced:
        client.log.warning(f"phone numbers: got {kept}, the API announced {announced}")
    client.log.info(f"phone numbers: {kept} records from {total_pages} pages")
    return {"numbers": kept, "pages": total_pages, "listed": listed.num_rows}
