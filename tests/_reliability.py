"""The reliability/ scripts, loaded by path for the tests (they are run by path, not imported)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

RELIABILITY = Path(__file__).resolve().parents[1] / "reliability"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, RELIABILITY / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module     # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
