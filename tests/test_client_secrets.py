"""The API key never shows: not in log records (any logger, DEBUG), exception text or repr."""

from __future__ import annotations

import logging
import socket
import traceback

import pytest

from emergency_pipeline.client import (
    ClientConfig, InsecureTransportError, JobRejected, TelnyxAPIError, TelnyxClient,
)
from emergency_pipeline.emulator import Faults

from _client_support import KEY, fast_config, running_emulator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _texts(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


def test_key_is_in_no_log_record_exception_or_repr(caplog):
    caplog.set_level(logging.DEBUG)   # root: every logger, httpx and httpcore included
    for name in ("httpx", "httpcore", "emergency_pipeline"):
        caplog.set_level(logging.DEBUG, logger=name)
    texts: list[str] = []
    log = logging.getLogger("emergency_pipeline.test")
    with running_emulator(numbers=600, seed=31, faults=Faults(
            error_rate=0.2, throttle_rate=0.1, throttle_burst=2, drop_rate=0.1, seed=2)) as emu:
        cfg = fast_config(emu)
        with TelnyxClient(cfg, log=log) as client:
            texts += [repr(cfg), str(cfg), repr(client), repr(client.__dict__)]
            numbers = client.list_phone_numbers()
            emu.set_faults(Faults())
            with pytest.raises(JobRejected) as info:
                client.submit_update_emergency_settings(["+19995550000"], True, "nope")
            texts.append(_texts(info.value))
            with pytest.raises(TelnyxAPIError) as info:
                client.get_job("00000000-0000-0000-0000-000000000000")
            texts.append(_texts(info.value))
        # A wrong key: 401, must not echo either key.
        with TelnyxClient(fast_config(emu, api_key=KEY + "-wrong"), log=log) as client:
            with pytest.raises(TelnyxAPIError) as info:
                client.list_addresses()
            assert info.value.status == 401
            texts.append(_texts(info.value))
    # No server at all: transport failures after retries.
    dead = ClientConfig(api_key=KEY, base_url=f"http://127.0.0.1:{_free_port()}/v2",
                        max_attempts=2, backoff_base=0.01)
    with TelnyxClient(dead, log=log) as client:
        with pytest.raises(TelnyxAPIError) as info:
            client.list_phone_numbers()
        assert info.value.status is None
        assert info.value.__context__ is None and info.value.__cause__ is None
        texts.append(_texts(info.value))

    assert len(numbers) == 600
    records = caplog.records
    assert any(r.name.startswith("httpx") for r in records)          # httpx was captured
    assert any("retry" in r.getMessage() for r in records)          # retries were logged
    for r in records:
        assert KEY not in r.getMessage() and KEY not in repr(r.__dict__), r.name
    assert KEY not in caplog.text
    for text in texts:
        assert KEY not in text


def test_http_to_a_non_loopback_host_is_refused():
    with pytest.raises(InsecureTransportError, match="loopback"):
        ClientConfig(api_key=KEY, base_url="http://api.telnyx.com/v2")
    with pytest.raises(InsecureTransportError) as info:
        ClientConfig(api_key=KEY, base_url="http://192.168.1.20:8080/v2")
    assert KEY not in _texts(info.value)
