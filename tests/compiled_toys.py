"""Compiled twins of the gradient toys of tests/toy_systems.py, for the compiled Newton driver.

Each toy's value, gradient, Hessian and null directions are written again as numba kernels
of ``(theta, data)`` with ``data = (kind, parameters)``; :func:`compiled_twin` attaches
them (bound to critpoints.solver.compiled.run_all) to the Python toy, so that the same
system can be solved by the compiled driver and, with the attribute removed, by the
interpreted one.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from numba import njit

from critpoints.solver.compiled import CompiledKernels, refresh_binding_cache, run_all

QUARTIC, VALLEY, CAUCHY, QUARTIC_1D, MEXICAN_HAT, ROTATING_HAT, EXPLODING = range(7)
"""Toy kinds; EXPLODING is x^4 with a NaN gradient everywhere."""


@njit(cache=True)
def _value(theta, data):
    kind, c = data
    if kind == QUARTIC:
        return np.sum((theta**2 - 1.0) ** 2 + c * theta)
    if kind == VALLEY:
        return theta[0] ** 2 + c[0] * theta[1] + 0.5 * c[1] * theta[1] ** 2
    if kind == CAUCHY:
        return 0.5 * math.log1p(theta[0] ** 2)
    if kind == QUARTIC_1D or kind == EXPLODING:
        return theta[0] ** 4
    return (np.dot(theta, theta) - 1.0) ** 2


@njit(cache=True)
def _gradient(theta, data):
    kind, c = data
    if kind == QUARTIC:
        return 4.0 * theta**3 - 4.0 * theta + c
    if kind == VALLEY:
        return np.array([2.0 * theta[0], c[0] + c[1] * theta[1]])
    if kind == CAUCHY:
        return theta / (1.0 + theta**2)
    if kind == QUARTIC_1D:
        return 4.0 * theta**3
    if kind == EXPLODING:
        return np.full(1, np.nan)
    return 4.0 * (np.dot(theta, theta) - 1.0) * theta


@njit(cache=True)
def _hessian(theta, data):
    kind, c = data
    if kind == QUARTIC:
        return np.diag(12.0 * theta**2 - 4.0)
    if kind == VALLEY:
        return np.array([[2.0, 0.0], [0.0, c[1]]])
    if kind == CAUCHY:
        return np.array([[(1.0 - theta[0] ** 2) / (1.0 + theta[0] ** 2) ** 2]])
    if kind == QUARTIC_1D or kind == EXPLODING:
        return np.array([[12.0 * theta[0] ** 2]])
    return 4.0 * (np.dot(theta, theta) - 1.0) * np.eye(2) + 8.0 * np.outer(theta, theta)


@njit(cache=True)
def _null_directions(theta, data):
    kind, _ = data
    if kind == ROTATING_HAT:
        out = np.empty((2, 1))
        out[0, 0] = -theta[1]
        out[1, 0] = theta[0]
        return out
    return np.empty((theta.size, 0))


@njit(cache=True)
def _toy_newton(data, starts, reals, integers):
    return run_all(_value, _gradient, _hessian, _null_directions, data, starts, reals, integers)


refresh_binding_cache(_toy_newton, (sys.modules[__name__],))


def compiled_twin(system, kind: int, parameters=()):
    """``system`` with ``compiled_kernels`` for the toy ``kind`` (its parameters as floats)."""
    system.compiled_kernels = CompiledKernels(_toy_newton, (kind, np.asarray(parameters, dtype=np.float64)))
    return system
