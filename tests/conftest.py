"""Shared fixtures: a running emulator on a free port (small account, fast jobs)."""

from __future__ import annotations

import pytest

from emergency_pipeline.emulator import Emulator

API_KEY = "test-key-not-secret"


@pytest.fixture
def emulator_factory():
    """make(**Emulator kwargs) -> a started Emulator, stopped after the test."""
    started: list[Emulator] = []

    def make(**kwargs) -> Emulator:
        kwargs.setdefault("api_key", API_KEY)
        kwargs.setdefault("numbers", 300)
        kwargs.setdefault("seed", 7)
        kwargs.setdefault("job_seconds", 0.2)
        emu = Emulator(**kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def emulator(emulator_factory) -> Emulator:
    """300 numbers, seed 7, jobs of 0.2 s, key API_KEY."""
    return emulator_factory()
