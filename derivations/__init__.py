"""The derivations behind critpoints: sympy scripts that prove its formulas and emit its kernels.

Each module states one part of the mathematics of derivations/MODEL.md, checks it against
brute force or enumeration in exact arithmetic (``verify()``), and, where the package
evaluates it, emits the generated module (``generate() -> {path: text}``) and checks the
emitted code against sympy (``check_emitted(files)``) before it is written:

==========================  ===========================================================
moments                     second moments of latents and masked views (§1-2)
closed_form_losses          closed-form spectral / ncl_squared of linear encoders (§5)
                            -> critpoints/losses/_generated/closed_form_kernels.py
pointwise_losses            the pointwise functions phi(A, B, C) of the finite-measure
                            evaluators and their chain rule (§4-5)
                            -> critpoints/losses/_generated/pointwise_kernels.py
interval_kernels            the same formulas as ball arithmetic, and exact moments
                            -> critpoints/certify/_generated/interval_kernels.py,
                               critpoints/certify/_generated/exact_moments.py
claims                      the paper's claims as symbolic proofs (§7, CLAIMS.md)
exact_critical_points       every real critical point of small polynomial landscapes
==========================  ===========================================================

``codegen`` holds what the emitting modules share (printers, headers, loading an emitted
module). From the repository root, ``python -m derivations`` verifies every derivation,
regenerates every generated module and leaves the tree unchanged when they are up to
date. The folder is importable from the repository root (and from the tests); it is not
part of the installed package.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Every derivation, in the order they build on each other.
NAMES = (
    "moments",
    "closed_form_losses",
    "pointwise_losses",
    "interval_kernels",
    "claims",
    "exact_critical_points",
)


def load(name: str) -> ModuleType:
    """The derivation module ``derivations.<name>``."""
    if name not in NAMES:
        raise ValueError(f"unknown derivation {name!r}; known: {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")


def modules() -> list[ModuleType]:
    """Every derivation module, in the order of :data:`NAMES`."""
    return [load(name) for name in NAMES]


def generators() -> list[ModuleType]:
    """The derivations that emit generated modules (they define ``generate``)."""
    return [module for module in modules() if hasattr(module, "generate")]
