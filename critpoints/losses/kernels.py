"""The generated kernels a loss family names, resolved for the evaluators.

A family's record (critpoints.model.families) names its pair kernel phi(A, B, C) and,
optionally, the module that holds it; the package's own kernels are generated from
derivations/pointwise_losses.py into :mod:`critpoints.losses._generated.pointwise_kernels`.
Each kernel ``<name>`` comes with ``<name>_first`` and ``<name>_table``; the evaluators call
the table over arrays of couplings.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, NamedTuple

from critpoints.model.families import PairTerm

#: The module of the package's generated pointwise kernels.
GENERATED = "critpoints.losses._generated.pointwise_kernels"


def kernel_module(name: str | None) -> ModuleType:
    """The module ``name`` of generated pointwise kernels (None: the package's own)."""
    return importlib.import_module(GENERATED if name is None else name)


def kernel_table(kernel: str, module: str | None = None) -> Any:
    """The numba function ``<kernel>_table(A, B, C, inv_norm_r, inv_norm_c, inv_tau, shift, out)``."""
    source = kernel_module(module)
    table = getattr(source, f"{kernel}_table", None)
    if table is None:
        raise ValueError(
            f"no generated kernel {kernel!r} in {source.__name__}; it has {', '.join(getattr(source, 'KERNELS', ()))}"
        )
    return table


class PairKernel(NamedTuple):
    """A family's pair term, ready to evaluate: constant + scale * sum_n w_n phi(r_n, c_n).

    Attributes
    ----------
    table : numba dispatcher
        ``<kernel>_table`` of the pointwise function phi.
    inv_tau : float
        The constant ``inv_tau`` passed to the kernel (1 / temperature, or 1).
    scale, constant : float
    """

    table: Any
    inv_tau: float
    scale: float
    constant: float

    @classmethod
    def of(cls, term: PairTerm, temperature: float | None) -> PairKernel:
        """The kernel of ``term`` at the given temperature (None for a family without one)."""
        inv_tau = 1.0 / temperature if temperature is not None else 1.0
        return cls(kernel_table(term.kernel, term.kernels), inv_tau, term.coefficient(temperature), term.constant)
