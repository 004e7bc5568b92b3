"""Shared test helpers: import of the derivation scripts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Every loss family with its options, as (loss, keyword arguments of Setting).
LOSS_FAMILIES = [
    ("spectral", {}),
    ("infonce", {"temperature": 0.5}),
    ("ncl_squared", {}),
    ("ncl_cosine", {}),
    ("ncl_cosine", {"tied": True}),
    ("ncl_predictor", {}),
    ("ncl_predictor", {"normalize": False}),
]
DERIVATIONS = ROOT / "derivations"


def load_derivation(name: str):
    """Import derivations/<name>.py as a module (the folder is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, DERIVATIONS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def derivation():
    """Fixture returning :func:`load_derivation`."""
    return load_derivation
