"""Telnyx's clock as its Date headers show it (rule 3: compare Telnyx's times on its clock)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from emergency_pipeline.client import ClientConfig, TelnyxClient
from emergency_pipeline.client.server_clock import ServerClock
from conftest import API_KEY


def _date(ts: float) -> str:
    return format_datetime(datetime.fromtimestamp(int(ts), timezone.utc), usegmt=True)


def test_answers_narrow_the_offset_to_their_overlap() -> None:
    clock = ServerClock()
    assert clock.estimate() is None and clock.now() is None
    true_offset = -30.4
    for sent in (1000.0, 1000.7, 1001.3, 1002.9):   # answers 50 ms after the request
        server = sent + 0.05 + true_offset
        clock.note(_date(server), sent, sent + 0.05)
        est = clock.estimate()
        assert est.low <= true_offset <= est.high
    assert est.high - est.low < 1.0


def test_a_clock_set_between_answers_starts_a_fresh_estimate() -> None:
    clock = ServerClock()
    clock.note(_date(1000.0), 1000.0, 1000.1)
    clock.note(_date(1600.0), 1001.0, 1001.1)        # the server's clock jumped 10 minutes
    assert 598 < clock.estimate().offset < 600.5


def test_headers_it_cannot_read_change_nothing() -> None:
    clock = ServerClock()
    for bad in (None, "", "yesterday", "Tue, 99 Foo 2026 99:99:99 GMT"):
        clock.note(bad, 1.0, 2.0)
    assert clock.estimate() is None


@pytest.mark.parametrize("skew", [-300.0, -30.0, 30.0, 300.0])
def test_a_moment_of_ours_on_telnyx_clock(emulator_factory, skew: float) -> None:
    emu = emulator_factory(clock_offset_seconds=skew)
    with TelnyxClient(ClientConfig(api_key=API_KEY, base_url=emu.base_url)) as client:
        ours = datetime.now(timezone.utc)
        bound = client.server_since(ours)     # measures the clock first: no answer seen yet
        margin = timedelta(seconds=client.config.clock_margin_seconds + 1.5)
        assert ours + timedelta(seconds=skew) - margin <= bound
        assert bound <= ours + timedelta(seconds=skew)
        assert abs((client.server_now() - ours).total_seconds() - skew) < 2.5
