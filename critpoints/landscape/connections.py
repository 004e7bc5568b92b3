"""Connections: the two minima an index-1 saddle joins, and saddle searches between two minima.

An index-1 saddle s of a loss L on the parameter manifold M has exactly one negative
eigenvalue lambda < 0 of its Riemannian Hessian once the zero modes of the continuous
symmetries are removed (derivations/MODEL.md §6), with a unit tangent eigenvector v. Its
unstable manifold is a curve: two steepest-descent paths leave s, tangent to +v and -v, and
each ends (generically) at a minimum. That pair of minima is the edge s adds to the landscape
graph, with the barrier L(s) - L(end) seen from each end (Wales, "Energy Landscapes", 2003).

Here each side is followed by the solver: from R_s(+-h v) (R the manifold's retraction,
h = ``step * max(1, ||s||)``), saddle-free Newton steps descend L until the Hessian is positive
definite, then Newton converges to the minimum (``NewtonOptions.descent_iterations``,
critpoints.solver.newton). The saddle-free steps are longer than the infinitesimal steps of the
gradient flow but decrease L at every step, so the end is a minimum below the saddle on that side.

Saddles that the random restarts miss are searched between two minima a and b: L is evaluated
on the geodesic from a to b (great circles on each sphere, straight lines on the free
coordinates), and Newton, which converges to stationary points of any index, starts from the
local maxima of L along it. Every index-1 saddle it reaches is then connected as above,
whichever minima it joins.

Everything here works on any gradient :class:`~critpoints.solver.newton.StationarySystem`; the
landscape of a setting (critpoints.landscape.mapping) identifies the ends by symmetry orbit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from critpoints import _validation as check
from critpoints.landscape.classification import (
    DEFAULT_EIGENVALUE_TOLERANCE,
    SpectrumClass,
    classify_spectrum,
    symmetry_complement,
)
from critpoints.solver.newton import NewtonOptions, NewtonResult, StationarySystem
from critpoints.solver.restarts import solve_from_starts

__all__ = [
    "CONNECTION_DESCENT_ITERATIONS",
    "CONNECTION_STEP",
    "Connection",
    "UnstableMode",
    "connect_saddles",
    "descent_starts",
    "geodesic",
    "hessian_modes",
    "path_maxima",
    "search_starts",
    "unstable_mode",
]

#: Default step off the saddle along +-v, relative to max(1, ||s||).
CONNECTION_STEP = 1e-3

#: Default number of saddle-free descent steps from each side of a saddle.
CONNECTION_DESCENT_ITERATIONS = 500


@dataclass(frozen=True)
class UnstableMode:
    """The one descent direction of an index-1 saddle.

    Attributes
    ----------
    eigenvalue : float
        lambda < 0, the negative eigenvalue of the Riemannian Hessian (symmetry modes removed).
    direction : ndarray, shape (n,)
        v, its unit eigenvector as a tangent vector in ambient coordinates.
    spectrum : SpectrumClass
        The classification of the point (kind "saddle", index 1).
    """

    eigenvalue: float
    direction: np.ndarray
    spectrum: SpectrumClass


@dataclass(frozen=True)
class Connection:
    """The two descents from one index-1 saddle.

    Attributes
    ----------
    saddle : ndarray, shape (n,)
    value : float
        L at the saddle.
    eigenvalue : float
        Its negative Hessian eigenvalue.
    ends : tuple of two NewtonResult
        The descents started at R_s(+h v) and R_s(-h v); each ``converged`` run ends at a
        stationary point (the caller checks that it is a minimum).
    """

    saddle: np.ndarray
    value: float
    eigenvalue: float
    ends: tuple[NewtonResult, NewtonResult]


def hessian_modes(
    system: StationarySystem, theta: np.ndarray, tolerance: float = DEFAULT_EIGENVALUE_TOLERANCE
) -> tuple[SpectrumClass, np.ndarray, np.ndarray]:
    """Classification, eigenvalues and eigenvectors of the Riemannian Hessian at ``theta``.

    The Hessian is ``C = Q^T B^T J B Q`` with ``B`` an orthonormal tangent basis, ``J`` the
    system's covariant Jacobian (the Riemannian Hessian in ambient coordinates) and ``Q`` an
    orthonormal basis of the complement of the symmetry generators (``system.null_directions``,
    when the system has them), as in critpoints.landscape.classification.

    Returns
    -------
    spectrum : SpectrumClass
    eigenvalues : ndarray, shape (k,)
        Ascending.
    vectors : ndarray, shape (n, k)
        Unit tangent eigenvectors ``B Q u`` in ambient coordinates, one column per eigenvalue.

    Raises
    ------
    ValueError
        For a system that is not a gradient (a stop-gradient field has no Hessian).
    """
    if not system.is_gradient:
        raise ValueError("the system is a stop-gradient field, not the gradient of a loss: it has no Hessian")
    theta = np.asarray(theta, dtype=np.float64)
    basis = system.manifold.tangent_basis(theta)
    matrix = basis.T @ system.residual_jacobian(theta) @ basis
    matrix = 0.5 * (matrix + matrix.T)
    null_directions = getattr(system, "null_directions", None)
    generators = np.zeros((theta.size, 0)) if null_directions is None else null_directions(theta)
    complement, modes = symmetry_complement(basis, generators, scale=max(1.0, float(np.linalg.norm(theta))))
    spectrum = classify_spectrum(matrix, complement, modes, is_gradient=True, tolerance=tolerance)
    values, vectors = np.linalg.eigh(complement.T @ matrix @ complement)
    return spectrum, values, basis @ complement @ vectors


def unstable_mode(
    system: StationarySystem, theta: np.ndarray, tolerance: float = DEFAULT_EIGENVALUE_TOLERANCE
) -> UnstableMode | None:
    """The negative eigenpair of ``theta`` if it is an index-1 saddle (no zero eigenvalue), else None."""
    spectrum, values, vectors = hessian_modes(system, theta, tolerance)
    if spectrum.kind != "saddle" or spectrum.index != 1:
        return None
    direction = vectors[:, 0] / np.linalg.norm(vectors[:, 0])
    return UnstableMode(eigenvalue=float(values[0]), direction=direction, spectrum=spectrum)


def descent_starts(manifold: Any, theta: np.ndarray, direction: np.ndarray, step: float) -> np.ndarray:
    """The two starts ``R_theta(+h v)`` and ``R_theta(-h v)``, ``h = step * max(1, ||theta||)`` (rows)."""
    size = step * max(1.0, float(np.linalg.norm(theta)))
    return np.array([manifold.retract(theta, sign * size * direction) for sign in (1.0, -1.0)])


def connect_saddles(
    make_system: Callable[..., StationarySystem],
    system_args: tuple,
    saddles: Sequence[np.ndarray],
    *,
    system: StationarySystem | None = None,
    step: float = CONNECTION_STEP,
    options: NewtonOptions | None = None,
    tolerance: float = DEFAULT_EIGENVALUE_TOLERANCE,
    executor: Any = None,
    progress: bool = False,
) -> list[Connection | None]:
    """Descend from both sides of every index-1 saddle in ``saddles``.

    Parameters
    ----------
    make_system, system_args
        The picklable recipe of the system, as for
        :func:`~critpoints.solver.restarts.solve_from_starts` (the descents may run in workers).
    saddles : sequence of ndarray, shape (n,)
        Stationary points; those that are not index-1 saddles give ``None``.
    system : StationarySystem, optional
        ``make_system(*system_args)``, if already built (for the Hessians, in this process).
    step : float
        The step off the saddle, relative to ``max(1, ||s||)``.
    options : NewtonOptions, optional
        Options of the descents; default ``NewtonOptions(descent_iterations=500)``. Runs
        without descent steps are refused (Newton alone would return to the saddle).
    tolerance : float
        Eigenvalue tolerance of the classification (critpoints.landscape.classification).
    executor, progress
        As for :func:`~critpoints.solver.restarts.solve_from_starts`.

    Returns
    -------
    list of Connection or None
        One entry per saddle, in order.
    """
    step = check.real("step", step, low=0.0, high=1.0, low_open=True)
    options = NewtonOptions(descent_iterations=CONNECTION_DESCENT_ITERATIONS) if options is None else options
    if options.descent_iterations == 0:
        raise ValueError(
            "options.descent_iterations must be > 0 for connections (Newton alone converges back to the "
            "saddle), got descent_iterations=0"
        )
    system = make_system(*system_args) if system is None else system
    modes = [unstable_mode(system, np.asarray(theta, dtype=np.float64), tolerance) for theta in saddles]
    starts = [
        descent_starts(system.manifold, theta, mode.direction, step) for theta, mode in zip(saddles, modes) if mode
    ]
    if not starts:
        return [None] * len(modes)
    runs = solve_from_starts(
        make_system, system_args, np.concatenate(starts), options=options, executor=executor, progress=progress
    )
    connections: list[Connection | None] = []
    position = 0
    for theta, mode in zip(saddles, modes):
        if mode is None:
            connections.append(None)
            continue
        theta = np.asarray(theta, dtype=np.float64)
        ends = (runs[position], runs[position + 1])
        position += 2
        connections.append(Connection(theta, float(system.value(theta)), mode.eigenvalue, ends))
    return connections


def geodesic(manifold: Any, start: np.ndarray, end: np.ndarray, count: int) -> np.ndarray:
    """``count`` points from ``start`` to ``end`` (rows, both included) on the manifold.

    The chord ``(1 - t) a + t b`` is projected back onto the manifold: on each sphere that
    traces the shorter great-circle arc (not at constant speed); free coordinates move on the
    straight line. Where the chord passes through zero on a sphere (antipodal blocks) the
    point is taken a little off it.
    """
    count = check.integer("count", count, minimum=2)
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    points = []
    for t in np.linspace(0.0, 1.0, count):
        chord = (1.0 - t) * start + t * end
        try:
            points.append(manifold.project(chord))
        except ValueError:  # a sphere block of the chord vanishes: a and b antipodal there
            tilt = np.roll(start, 1) - np.roll(end, 1)
            points.append(manifold.project(chord + 1e-6 * tilt))
    return np.array(points)


def path_maxima(values: np.ndarray) -> np.ndarray:
    """Indices of the interior local maxima of a sequence (the first of a flat top), highest first."""
    values = np.asarray(values, dtype=np.float64)
    found = []
    for i in range(1, len(values) - 1):
        if values[i] > values[i - 1]:
            j = i
            while j + 1 < len(values) - 1 and values[j + 1] == values[i]:
                j += 1
            if values[j + 1] < values[i]:
                found.append(i)
    return np.array(sorted(found, key=lambda i: -values[i]), dtype=int)


def search_starts(system: StationarySystem, start: np.ndarray, end: np.ndarray, count: int = 65) -> np.ndarray:
    """Starts for a saddle search between two points: the local maxima of L on the geodesic.

    ``count`` points of :func:`geodesic` from ``start`` to ``end``; returns those at interior
    local maxima of ``system.value`` (rows, highest first), or the highest interior point when
    L has no interior maximum on the path.
    """
    path = geodesic(system.manifold, start, end, count)
    values = np.array([system.value(point) for point in path])
    maxima = path_maxima(values)
    if not maxima.size:
        maxima = np.array([1 + int(np.argmax(values[1:-1]))])
    return path[maxima]
