"""Helpers for the client tests: an emulator with our own key, and a fast client config."""

from __future__ import annotations

from contextlib import contextmanager

from emergency_pipeline.client import ClientConfig
from emergency_pipeline.emulator import Emulator, Faults

KEY = "KEY0123-client-test-secret-9f8e7d6c"


@contextmanager
def running_emulator(**kwargs):
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("faults", Faults())
    emu = Emulator(**kwargs)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def fast_config(emu, **overrides) -> ClientConfig:
    """Short waits so that retries and polling do not slow the suite down."""
    settings = dict(
        api_key=KEY, base_url=emu.base_url, connect_timeout=2.0, read_timeout=2.0,
        max_concurrency=8, max_attempts=8, max_retry_seconds=30.0, backoff_base=0.02,
        backoff_max=0.5, adopt_wait_seconds=0.05, poll_interval=0.05, poll_interval_max=0.3,
        late_job_window_seconds=2.0,
    )
    settings.update(overrides)
    return ClientConfig(**settings)
