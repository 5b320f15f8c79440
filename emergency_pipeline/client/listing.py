"""Paginated listing: the first page tells the total, the rest are fetched concurrently."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from .errors import TelnyxAPIError
from .transport import Transport

# on_page(page_number, total_pages, records_of_that_page), called once per page, one at a
# time (list_all's own on_page gets the count of pages done instead of the number).
PageCallback = Callable[[int, int, list[dict]], None]


def _page_params(params: dict | None, number: int, size: int) -> dict:
    out = dict(params or {})
    out["page[number]"] = number
    out["page[size]"] = size
    return out


def _meta(body: Any) -> tuple[list[dict], int, int | None]:
    data = body.get("data") if isinstance(body, dict) else None
    meta = body.get("meta") if isinstance(body, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    records = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
    total_pages = meta.get("total_pages")
    total_results = meta.get("total_results")
    return (records, int(total_pages) if total_pages is not None else 1,
            int(total_results) if total_results is not None else None)


def concurrently(transport: Transport, fn: Callable[[Any], Any], items: Sequence[Any]) -> None:
    """fn(item) for each item on up to max_concurrency threads; the first failure is raised
    and the calls not yet started are cancelled."""
    if not items:
        return
    workers = min(transport.config.max_concurrency, len(items))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="telnyx") as pool:
        futures = [pool.submit(fn, item) for item in items]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        for f in done:
            f.result()   # re-raise the first failure (a TelnyxAPIError)


def count(transport: Transport, path: str, *, what: str, params: dict | None = None) -> int:
    """How many records a listing holds (one request: a page of one)."""
    body = transport.get(path, _page_params(params, 1, 1), what=f"{what} count")
    records, total_pages, total_results = _meta(body)
    return total_results if total_results is not None else total_pages * len(records)


def get_each(transport: Transport, path: str, ids: Sequence[str], *, what: str) -> list[dict]:
    """GET path/{id} for each id, concurrently; the records found (an id the API does not
    know, 404, is left out), in the order of `ids`."""
    found: dict[str, dict] = {}
    done = [0]
    lock = threading.Lock()
    step = max(1, len(ids) // 10)

    def fetch(ident: str) -> None:
        try:
            body = transport.get(f"{path}/{ident}", what=f"{what} {ident}")
        except TelnyxAPIError as exc:
            if exc.status != 404:
                raise
            body = None
        data = body.get("data") if isinstance(body, dict) else None
        with lock:
            if isinstance(data, dict):
                found[ident] = data
            done[0] += 1
            if done[0] % step == 0:
                transport.log.info(f"{what}: {done[0]} of {len(ids)} fetched")

    concurrently(transport, fetch, list(ids))
    return [found[i] for i in ids if i in found]


@dataclass(frozen=True)
class FirstPage:
    """A listing's first page: its records and what its meta says of the rest (enough to
    choose between paging on and fetching records one by one)."""
    records: list[dict]
    total_pages: int
    total_results: int | None


def _projector(key: str, fields: Sequence[str] | None) -> Callable[[list[dict]], list[dict]]:
    keep = None if fields is None else (key, *[f for f in fields if f != key])

    def project(records: list[dict]) -> list[dict]:
        return records if keep is None else [{f: r.get(f) for f in keep} for r in records]

    return project


def first_page(transport: Transport, path: str, *, what: str, params: dict | None = None,
               key: str = "id", fields: Sequence[str] | None = None) -> FirstPage:
    """Page 1 at the configured page size (only `fields` of each record when given)."""
    body = transport.get(path, _page_params(params, 1, transport.config.page_size),
                         what=f"{what} page 1")
    records, total_pages, total_results = _meta(body)
    return FirstPage(_projector(key, fields)(records), total_pages, total_results)


def each_page(
    transport: Transport,
    path: str,
    *,
    what: str,
    on_page: PageCallback,
    params: dict | None = None,
    key: str = "id",
    fields: Sequence[str] | None = None,
    first: FirstPage | None = None,
) -> tuple[int, int | None]:
    """Every page of a listing, handed to on_page one at a time and not kept (a million
    numbers stream through in pages of 250); only `fields` of each record when given (a
    number record has some thirty fields). Returns (total_pages, total_results announced).
    `first`: page 1, already fetched with the same params and fields.

    A page that fails is retried by the transport; a page that still fails fails the listing
    (an incomplete account snapshot would be worse than none).
    """
    size = transport.config.page_size
    log = transport.log
    if first is None:
        first = first_page(transport, path, what=what, params=params, key=key, fields=fields)
    total_pages, total_results = first.total_pages, first.total_results
    project = _projector(key, fields)
    lock = threading.Lock()
    done = 1
    step = max(1, total_pages // 10)
    if total_pages:
        log.info(f"{what}: page 1 of {total_pages} fetched"
                 + (f" ({total_results} records in all)" if total_results is not None else ""))
    else:
        log.info(f"{what}: none")
    on_page(1, total_pages, first.records)

    def fetch(number: int) -> int:
        nonlocal done
        got = transport.get(path, _page_params(params, number, size),
                            what=f"{what} page {number}/{total_pages}")
        records, pages_now, _ = _meta(got)
        records = project(records)
        with lock:
            done += 1
            if pages_now != total_pages:
                log.warning(f"{what}: page {number} reports {pages_now} pages, "
                            f"the first said {total_pages} (account changed while listing)")
            # Progress every tenth only: under Dagster each log line is an event written to
            # the run's storage, and a line per page cost seconds at a million numbers.
            if done % step == 0 or done == total_pages:
                log.info(f"{what}: {done} of {total_pages} pages fetched")
            on_page(number, total_pages, records)
        return number

    concurrently(transport, fetch, range(2, total_pages + 1))
    return total_pages, total_results


def list_all(
    transport: Transport,
    path: str,
    *,
    what: str,
    params: dict | None = None,
    on_page: PageCallback | None = None,
    key: str = "id",
    fields: Sequence[str] | None = None,
    first: FirstPage | None = None,
) -> list[dict]:
    """Every record of a listing, each once (by `key`), in page order (each_page, kept)."""
    pages: dict[int, list[dict]] = {}

    def keep(number: int, total: int, records: list[dict]) -> None:
        pages[number] = records
        if on_page:
            on_page(len(pages), total, records)

    total_pages, total_results = each_page(transport, path, what=what, on_page=keep,
                                           params=params, key=key, fields=fields, first=first)
    seen: set[Any] = set()
    out: list[dict] = []
    duplicates = 0
    for number in sorted(pages):
        for record in pages[number]:
            ident = record.get(key)
            if ident is not None and ident in seen:
                duplicates += 1
                continue
            seen.add(ident)
            out.append(record)
    log = transport.log
    if duplicates:
        log.warning(f"{what}: {duplicates} records appeared on two pages (kept once)")
    if total_results is not None and len(out) != total_results:
        log.warning(f"{what}: got {len(out)} records, the API announced {total_results}")
    log.info(f"{what}: {len(out)} records from {total_pages} pages")
    return out


def list_recent(
    transport: Transport,
    path: str,
    *,
    what: str,
    params: dict | None = None,
    newer_than: Callable[[dict], bool],
) -> list[dict]:
    """Pages of a newest-first listing, sequentially, until a record fails `newer_than`."""
    size = transport.config.page_size
    out: list[dict] = []
    seen: set[Any] = set()
    number = 1
    while True:
        body = transport.get(path, _page_params(params, number, size),
                             what=f"{what} page {number}")
        records, total_pages, _ = _meta(body)
        reached_older = False
        for record in records:
            if not newer_than(record):
                reached_older = True      # newest first: later pages hold older ones only
                continue
            if record.get("id") not in seen:
                seen.add(record.get("id"))
                out.append(record)
        if reached_older or number >= total_pages or not records:
            return out
        number += 1
