"""Newton's method compiled end to end, for systems on R^n whose evaluations are numba kernels.

:func:`critpoints.solver.newton.newton_stationary` drives each iteration from Python: with
evaluations of a few microseconds (the closed-form losses at n = 100), the interpreter's
bookkeeping cost most of each ~0.4 ms iteration. This module runs the same algorithm --
the quotient Newton step (LU when well conditioned, else the minimal-norm eigen-solve with
its stall test), the Armijo search on the merit ``1/2 ||r||^2``, the Levenberg-Marquardt
fallback, the creeping-stall window, the saddle-free descent phase -- as one numba
function over a whole batch of starts. It covers the systems it can: unconstrained
(``R^n``), gradient (symmetric Jacobian), without deflation; :func:`newton_stationary`
uses it for those when the system offers :class:`CompiledKernels`, and runs the
interpreted driver otherwise. Both make the same decisions from the same formulas (the
direct solve is the shared kernel :func:`critpoints.solver.dense_solve.direct_solution`); the
tests run both from the same starts and compare.

The kernels of a system (numba dispatchers; ``data`` is any tuple they accept), bound to
:func:`run_all` as :class:`CompiledKernels` describes:

* ``value(theta, data) -> float``: the loss ``L``;
* ``residual(theta, data) -> ndarray (n,)``: the gradient ``nabla L``;
* ``jacobian(theta, data) -> ndarray (n, n)``: the Hessian ``nabla^2 L``;
* ``null_directions(theta, data) -> ndarray (n, k)``: generators of continuous symmetries
  (``k = 0`` for none), as ``StationarySystem.null_directions`` (critpoints.solver.types).

The engine binds the closed-form losses (critpoints.landscape.engine). numba checks a cached
function against its own source file only, while a binding compiles this module,
critpoints.solver.dense_solve and the kernels' modules into itself: :func:`refresh_binding_cache`
flushes a binding's cache when one of them has changed since it was cached.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from critpoints.solver import dense_solve
from critpoints.solver.dense_solve import direct_solution, exceeds_shift
from critpoints.solver.types import STATUS_CODES, Status

__all__ = [
    "CompiledKernels",
    "lift_null_directions",
    "options_arrays",
    "refresh_binding_cache",
    "run_all",
    "solve_compiled",
]


class CompiledKernels(NamedTuple):
    """A system's compiled driver and its data.

    Attributes
    ----------
    run_all : numba dispatcher
        ``run_all(data, starts, reals, integers)``: a module-level ``@njit(cache=True)``
        function that calls :func:`run_all` with the system's kernels, e.g.::

            @njit(cache=True)
            def my_newton(data, starts, reals, integers):
                return run_all(my_value, my_gradient, my_hessian, my_generators,
                               data, starts, reals, integers)

        The kernels are globals of the binding, not arguments from Python: numba keys
        its on-disk cache by the argument types, and a dispatcher passed as an argument
        types as a different key in every process (it would recompile every time).
        The functions here that take kernels are inlined into the binding (numba IR
        inlining) for the same reason: a dispatcher passed on as a run-time value is a
        process-specific address, which numba refuses to cache.
    data : tuple
        The kernels' data.
    """

    run_all: Any
    data: tuple


# The statuses' integer codes, by name (critpoints.solver.types.STATUS_CODES).
CONVERGED = STATUS_CODES[Status.CONVERGED]
GRADIENT_FLAT = STATUS_CODES[Status.GRADIENT_FLAT]
STALLED = STATUS_CODES[Status.STALLED]
DIVERGED = STATUS_CODES[Status.DIVERGED]
MAX_ITERATIONS = STATUS_CODES[Status.MAX_ITERATIONS]

# Layout of the per-start option arrays (see options_arrays).
_REALS = (
    "tol",
    "flat_tol",
    "divergence_radius",
    "rcond",
    "direct_rcond",
    "armijo",
    "backtrack_factor",
    "lm_initial_damping",
    "lm_damping_factor",
    "stall_decrease",
    "scale",
)
_INTEGERS = ("max_iterations", "max_backtracks", "lm_max_trials", "stall_window", "descent_iterations")
(TOL, FLAT_TOL, RADIUS, RCOND, DIRECT_RCOND, ARMIJO, BACKTRACK, LM_DAMPING, LM_FACTOR, STALL_DECREASE, SCALE) = range(
    len(_REALS)
)
ITERATION_CAP, MAX_BACKTRACKS, LM_TRIALS, STALL_WINDOW, DESCENT = range(len(_INTEGERS))


def refresh_binding_cache(binding: Any, modules: Iterable[ModuleType]) -> None:
    """Flush the on-disk numba cache of ``binding`` if a module compiled into it has changed.

    ``modules`` are the modules of the binding's kernels; this module and
    critpoints.solver.dense_solve are added. Their files' modification times and sizes are kept
    in a stamp file beside the cache; when the stamp differs (or is missing) the cache is
    flushed, and the binding compiles anew at its first call. Without a file-based cache
    (numba's ``_cache`` attribute, not a public interface) nothing is done.
    """
    cache: Any = getattr(binding, "_cache", None)
    directory = getattr(cache, "cache_path", None)
    if directory is None or not hasattr(cache, "flush"):
        return
    files = sorted({inspect.getfile(module) for module in (*modules, dense_solve)} | {__file__})
    stamp = json.dumps([(name, os.stat(name).st_mtime_ns, os.stat(name).st_size) for name in files])
    marker = Path(directory) / f"{binding.__module__}.{binding.__name__}.dependencies"
    try:
        if marker.read_text(encoding="utf-8") == stamp:
            return
    except OSError:
        pass
    cache.flush()
    try:
        marker.write_text(stamp, encoding="utf-8")
    except OSError:  # a read-only installation: flush again next time
        pass


def options_arrays(options: list) -> tuple[np.ndarray, np.ndarray]:
    """Per-start ``NewtonOptions`` as a float array and an int array (one row per start).

    A ``scale`` of ``None`` (per-start ``max(1, |L(theta_0)|)``) is stored as NaN.
    """
    reals = np.array(
        [[math.nan if getattr(o, name) is None else float(getattr(o, name)) for name in _REALS] for o in options],
        dtype=np.float64,
    ).reshape(len(options), len(_REALS))
    integers = np.array([[int(getattr(o, name)) for name in _INTEGERS] for o in options], dtype=np.int64).reshape(
        len(options), len(_INTEGERS)
    )
    return reals, integers


# ---------------------------------------------------------------------------- pieces


@njit(cache=True)
def _norm(vector):
    return math.sqrt(np.dot(vector, vector))


@njit(cache=True)
def _all_finite(array):
    for entry in array.ravel():
        if not np.isfinite(entry):
            return False
    return True


@njit(cache=True, inline="always")
def _safe_value(value, theta, data):
    if not _all_finite(theta):
        return math.nan
    return value(theta, data)


@njit(cache=True)
def lift_null_directions(matrix, directions):
    """``A + c N N^T`` with ``c = ||A||_F / ||N||_F^2``: the quotient Jacobian (the reasons are
    in critpoints.solver.newton._lift_null_directions, which calls this). ``A`` itself when ``N``
    has no columns or is zero; non-finite if the lift overflows."""
    if directions.shape[1] == 0:
        return matrix
    size = np.sum(directions * directions)
    if size == 0.0:
        return matrix
    flat = matrix.ravel()
    return matrix + (math.sqrt(np.dot(flat, flat)) / size) * (directions @ directions.T)


@njit(cache=True)
def _eigen(matrix, rcond):
    """Eigenpairs of the symmetrised matrix, the mask of kept eigenvalues and the largest |lambda|."""
    values, vectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
    largest = np.max(np.abs(values)) if values.size else 0.0
    return values, vectors, np.abs(values) > rcond * largest, largest


@njit(cache=True)
def _merit(residual_norm):
    return 0.5 * residual_norm * residual_norm if np.isfinite(residual_norm) else np.inf


# ---------------------------------------------------------------------------- one start


@njit(cache=True, inline="always")
def _descend(value, residual, jacobian, null_directions, data, theta, tolerance, reals, integers):
    """Saddle-free Newton descent on L (NewtonOptions.descent_iterations)."""
    current = _safe_value(value, theta, data)
    for _ in range(integers[DESCENT]):
        r = residual(theta, data)
        if not np.isfinite(current) or _norm(r) <= tolerance:
            break
        hessian = jacobian(theta, data)
        if not _all_finite(hessian):
            break
        quotient = lift_null_directions(hessian, null_directions(theta, data))
        if not _all_finite(quotient):
            break
        flat = quotient.ravel()
        if exceeds_shift(quotient, reals[RCOND] * math.sqrt(np.dot(flat, flat))):
            break  # positive definite (a sufficient test, without the eigenpairs)
        values, vectors, _, largest = _eigen(quotient, reals[RCOND])
        if values.size and values.min() > reals[RCOND] * largest:
            break  # positive definite: Newton's basin of a minimum
        floor = max(1e-3 * largest, 1e-300)
        coefficients = vectors.T @ r
        step = -(vectors @ (coefficients / np.maximum(np.abs(values), floor)))
        slope = np.dot(r, step)
        accepted = False
        alpha = 1.0
        for _ in range(integers[MAX_BACKTRACKS] + 1):
            trial = theta + alpha * step
            if _all_finite(trial):
                trial_value = _safe_value(value, trial, data)
                if trial_value <= current + reals[ARMIJO] * alpha * slope:
                    theta, current, accepted = trial, trial_value, True
                    break
            alpha *= reals[BACKTRACK]
        if not accepted:
            break
        if _norm(theta) > reals[RADIUS]:
            break
    return theta


@njit(cache=True, inline="always")
def _next_point(residual, data, theta, r, norm, hessian, quotient, tolerance, reals, integers):
    """The accepted next iterate ``(True, theta, r)``, or ``(False, ...)`` for a stall.

    Newton step on the quotient, Armijo search on the merit, then Levenberg-Marquardt.
    """
    merit = 0.5 * norm * norm
    solved, solution = direct_solution(quotient, r, reals[DIRECT_RCOND])
    if not solved:
        values, vectors, kept, largest = _eigen(quotient, reals[RCOND])
        coefficients = vectors.T @ r
        removable = 0.0
        for i in range(values.size):
            if kept[i]:
                removable += coefficients[i] * coefficients[i]
        if math.sqrt(removable) <= tolerance:
            return False, theta, r
        inverse = np.zeros_like(values)
        for i in range(values.size):
            if kept[i]:
                inverse[i] = 1.0 / values[i]
        solution = vectors @ (inverse * coefficients)
    step = -solution
    slope = np.dot(r, hessian @ step)
    if slope < 0.0:
        alpha = 1.0
        for _ in range(integers[MAX_BACKTRACKS] + 1):
            trial = theta + alpha * step
            if _all_finite(trial):
                trial_r = residual(trial, data)
                trial_merit = _merit(_norm(trial_r))
                if trial_merit < merit and trial_merit <= merit + reals[ARMIJO] * alpha * slope:
                    return True, trial, trial_r
            alpha *= reals[BACKTRACK]
    # Levenberg-Marquardt on the true Hessian: (A^2 + lambda I) s = -A r.
    values, vectors, _, largest = _eigen(hessian, reals[RCOND])
    if largest == 0.0:
        return False, theta, r
    coefficients = vectors.T @ r
    damping = reals[LM_DAMPING] * largest * largest
    for _ in range(integers[LM_TRIALS]):
        step = -(vectors @ (values / (values * values + damping) * coefficients))
        slope = np.dot(r, hessian @ step)
        if slope < 0.0:
            trial = theta + step
            if _all_finite(trial):
                trial_r = residual(trial, data)
                trial_merit = _merit(_norm(trial_r))
                if trial_merit < merit and trial_merit <= merit + reals[ARMIJO] * slope:
                    return True, trial, trial_r
        damping *= reals[LM_FACTOR]
    return False, theta, r


@njit(cache=True)
def _stop_status(theta, norm, iterations, scale, reals, integers):
    if not np.isfinite(norm) or not _all_finite(theta):
        return DIVERGED
    if norm <= reals[TOL] * scale:
        return CONVERGED
    if _norm(theta) > reals[RADIUS]:
        return DIVERGED
    if iterations >= integers[ITERATION_CAP]:
        return MAX_ITERATIONS
    return -1


@njit(cache=True)
def _stall_status(norm, scale, reals):
    return GRADIENT_FLAT if norm <= reals[FLAT_TOL] * scale else STALLED


@njit(cache=True, inline="always")
def _run(value, residual, jacobian, null_directions, data, theta0, reals, integers):
    """One start: (theta, status, iterations, residual norm, value, scale)."""
    theta = theta0.copy()
    scale = reals[SCALE]
    if np.isnan(scale):
        first = _safe_value(value, theta, data)
        scale = max(1.0, abs(first)) if np.isfinite(first) else 1.0
    tolerance = reals[TOL] * scale
    if integers[DESCENT] > 0:
        theta = _descend(value, residual, jacobian, null_directions, data, theta, tolerance, reals, integers)
    r = residual(theta, data)
    norm = _norm(r)
    window = integers[STALL_WINDOW]
    history = np.empty(window + 1)  # log ||r|| of the last window + 1 iterates, at iteration % (window + 1)
    history[0] = math.log(norm) if norm > 0.0 else -np.inf
    iterations = 0
    while True:
        status = _stop_status(theta, norm, iterations, scale, reals, integers)
        if status >= 0:
            break
        if iterations >= window and (
            history[iterations % (window + 1)]
            > history[(iterations - window) % (window + 1)] + math.log1p(-reals[STALL_DECREASE])
        ):
            status = _stall_status(norm, scale, reals)
            break
        hessian = jacobian(theta, data)
        if not _all_finite(hessian):
            status = DIVERGED
            break
        quotient = lift_null_directions(hessian, null_directions(theta, data))
        if not _all_finite(quotient):  # the lift overflowed
            status = DIVERGED
            break
        moved, theta, r = _next_point(residual, data, theta, r, norm, hessian, quotient, tolerance, reals, integers)
        if not moved:
            status = _stall_status(norm, scale, reals)
            break
        norm = _norm(r)
        iterations += 1
        history[iterations % (window + 1)] = math.log(norm) if norm > 0.0 else -np.inf
    return theta, status, iterations, norm, _safe_value(value, theta, data), scale


@njit(cache=True, inline="always")
def run_all(value, residual, jacobian, null_directions, data, starts, reals, integers):
    """Newton runs from every row of ``starts`` with the per-start option rows
    (:func:`options_arrays`); see :class:`CompiledKernels` for how to call it.

    Returns ``(thetas, status codes, iterations, residual norms, values, scales)``.
    """
    count, n = starts.shape
    thetas = np.empty((count, n))
    statuses = np.empty(count, dtype=np.int64)
    iterations = np.empty(count, dtype=np.int64)
    norms = np.empty(count)
    values = np.empty(count)
    scales = np.empty(count)
    for k in range(count):
        theta, status, its, norm, val, scale = _run(
            value, residual, jacobian, null_directions, data, starts[k], reals[k], integers[k]
        )
        thetas[k] = theta
        statuses[k] = status
        iterations[k] = its
        norms[k] = norm
        values[k] = val
        scales[k] = scale
    return thetas, statuses, iterations, norms, values, scales


def solve_compiled(kernels: CompiledKernels, starts: np.ndarray, options: list) -> tuple[np.ndarray, ...]:
    """Newton runs from every row of ``starts`` (each with its ``NewtonOptions``), compiled.

    Returns the arrays ``(thetas, status codes, iterations, residual norms, values, scales)``
    with one row / entry per start; :func:`critpoints.solver.newton.newton_runs` turns
    them into :class:`~critpoints.solver.types.NewtonResult` objects.
    """
    reals, integers = options_arrays(options)
    return kernels.run_all(kernels.data, np.ascontiguousarray(starts, dtype=np.float64), reals, integers)
