"""A setting's loss as the equations the solver solves, and the compiled driver bound to its kernels.

:class:`LossSystem` adapts a :class:`~critpoints.losses.population_loss.PopulationLoss` to
the solver's :class:`~critpoints.solver.types.StationarySystem` protocol: the residual is
the Riemannian gradient grad L (or the projected stop-gradient field P F of
``ncl_predictor``) and its Jacobian the Riemannian Hessian (or the field's covariant
Jacobian). Where the loss has numba kernels (the closed-form losses without constraint),
the system also carries the compiled Newton driver bound to them
(critpoints.solver.compiled), so the solver runs without Python calls.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from critpoints.losses import closed_form, symmetries
from critpoints.losses._generated import closed_form_kernels
from critpoints.losses.closed_form import flat_gradient, flat_hessian, flat_rotation_generators, flat_value
from critpoints.losses.population_loss import PopulationLoss, population_loss
from critpoints.model.setting import Setting
from critpoints.solver.compiled import CompiledKernels, refresh_binding_cache, run_all


@njit(cache=True)
def _closed_form_newton(data, starts, reals, integers):
    """The compiled Newton driver on the closed-form kernels (a loss's ``flat_kernel_data``)."""
    return run_all(flat_value, flat_gradient, flat_hessian, flat_rotation_generators, data, starts, reals, integers)


_binding_checked = False


def compiled_closed_form_newton():
    """The compiled Newton driver on the closed-form kernels, its on-disk cache checked
    against the kernels' sources once per process (at first use, not at import)."""
    global _binding_checked
    if not _binding_checked:
        refresh_binding_cache(_closed_form_newton, (closed_form, closed_form_kernels, symmetries))
        _binding_checked = True
    return _closed_form_newton


class LossSystem:
    """A setting's loss as the equations the solver solves: grad L = 0, or P F = 0 for a field."""

    def __init__(self, loss: PopulationLoss) -> None:
        self.loss = loss
        self.manifold = loss.manifold
        self.is_gradient = not loss.is_field
        data = loss.flat_kernel_data
        #: The compiled driver on the loss's numba kernels where it has them (the solver
        #: then runs compiled, critpoints.solver.compiled); None otherwise.
        self.compiled_kernels = None if data is None else CompiledKernels(compiled_closed_form_newton(), data)

    def value(self, theta: np.ndarray) -> float:
        """L(theta)."""
        return self.loss.value(theta)

    def residual(self, theta: np.ndarray) -> np.ndarray:
        """The Riemannian gradient, or the projected field."""
        return self.loss.gradient(theta) if self.is_gradient else self.loss.field(theta)

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray:
        """The Riemannian Hessian, or the covariant Jacobian of the field (ambient coordinates)."""
        return self.loss.hessian(theta) if self.is_gradient else self.loss.jacobian(theta)

    def null_directions(self, theta: np.ndarray) -> np.ndarray:
        """The generators of the loss's continuous symmetries at theta, shape (n, k).

        Column j is the tangent d/dt g_j(t) theta at t = 0 of a one-parameter symmetry
        group g_j (O(m) rotations, rescalings); the solver steps orthogonally to them.
        """
        return self.loss.symmetry_generators(theta)


def loss_system(setting: Setting) -> LossSystem:
    """Build the solver's system for ``setting`` (module level, so worker processes can call it)."""
    return LossSystem(population_loss(setting))
