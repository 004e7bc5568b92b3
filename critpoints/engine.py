"""``enumerate_critical_points``: Newton from many starts, one entry per symmetry orbit.

The layers: the setting's loss (critpoints.population_loss) is wrapped as a
:class:`~critpoints.newton.StationarySystem`; the generic solver
(critpoints.newton, critpoints.restarts) runs from every start; converged points are
deduplicated by orbit (critpoints.orbits), classified by their spectrum with symmetry zero
modes removed (critpoints.classification) and labelled from the ground truth
(critpoints.labels) into a :class:`~critpoints.result.CriticalPointSet`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np

from . import _validation as check
from .classification import DEFAULT_EIGENVALUE_TOLERANCE, classify_spectrum, symmetry_complement
from .initialization import initial_points
from .labels import DEFAULT_TAU_GOOD, label_point
from .newton import NewtonOptions, Status
from .orbits import canonical_point, orbit_key, same_orbit
from .population_loss import PopulationLoss, population_loss
from .restarts import solve_from_starts
from .result import Completeness, CriticalPoint, CriticalPointSet
from .setting import Setting


#: Saddle-free Newton descent steps for the starts that descend first.
DESCENT_ITERATIONS = 50


class LossSystem:
    """A setting's loss as the equations the solver solves: grad L = 0, or P F = 0 for a field."""

    def __init__(self, loss: PopulationLoss) -> None:
        self.loss = loss
        self.manifold = loss.manifold
        self.is_gradient = not loss.is_field

    def value(self, theta: np.ndarray) -> float:
        """L(theta)."""
        return self.loss.value(theta)

    def residual(self, theta: np.ndarray) -> np.ndarray:
        """The Riemannian gradient, or the projected field."""
        return self.loss.gradient(theta) if self.is_gradient else self.loss.field(theta)

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray:
        """The Riemannian Hessian, or the covariant Jacobian of the field (ambient coordinates)."""
        return self.loss.hessian(theta) if self.is_gradient else self.loss.jacobian(theta)


def loss_system(setting: Setting) -> LossSystem:
    """Build the solver's system for ``setting`` (module level, so worker processes can call it)."""
    return LossSystem(population_loss(setting))


class OrbitDatabase:
    """Converged points grouped by symmetry orbit, with the number of starts reaching each."""

    def __init__(self, loss: PopulationLoss, tolerance: float) -> None:
        self.loss = loss
        self.tolerance = tolerance
        self.keys: list[np.ndarray] = []
        self.points: list[np.ndarray] = []
        self.counts: list[int] = []

    def add(self, theta: np.ndarray) -> int:
        """Record a converged point; returns the index of its orbit."""
        key = orbit_key(self.loss.symmetries, theta)
        for index, known in enumerate(self.keys):
            if same_orbit(key, known, self.tolerance):
                self.counts[index] += 1
                return index
        self.keys.append(key)
        self.points.append(canonical_point(self.loss.symmetries, theta))
        self.counts.append(1)
        return len(self.keys) - 1


def describe_point(
    loss: PopulationLoss, theta: np.ndarray, count: int, *, tau_good: float, eigenvalue_tolerance: float
) -> CriticalPoint:
    """Classify and label one stationary point."""
    system = LossSystem(loss)
    basis = loss.manifold.tangent_basis(theta)
    matrix = loss.hessian_in_basis(theta) if system.is_gradient else loss.jacobian_in_basis(theta)
    complement, modes = symmetry_complement(
        basis, loss.symmetry_generators(theta), scale=max(1.0, float(np.linalg.norm(theta)))
    )
    spectrum = classify_spectrum(
        matrix, complement, modes, is_gradient=system.is_gradient, tolerance=eigenvalue_tolerance
    )
    params = loss.unpack(theta)
    views = None if loss.measure is None else np.concatenate([loss.measure.anchor, loss.measure.x2])
    label = label_point(loss.setting, params, views=views, tau_good=tau_good)
    return CriticalPoint(
        loss=loss.value(theta),
        grad_norm=float(np.linalg.norm(system.residual(theta))),
        kind=spectrum.kind,
        index=spectrum.index,
        nullity=spectrum.nullity,
        smallest_eigenvalue=spectrum.smallest,
        largest_eigenvalue=spectrum.largest,
        label=label.label,
        alignment=label.alignment,
        recovered=label.recovered,
        dead=label.dead,
        duplicated=label.duplicated,
        nonsmooth=label.nonsmooth,
        params=params,
        count=count,
    )


def enumerate_critical_points(
    setting: Setting,
    n_restarts: int = 200,
    seed: int = 0,
    init: Any = "gaussian",
    executor: Any = None,
    progress: bool = True,
    *,
    deflation: bool = False,
    descent_fraction: float = 0.5,
    tau_good: float = DEFAULT_TAU_GOOD,
    eigenvalue_tolerance: float = DEFAULT_EIGENVALUE_TOLERANCE,
    orbit_tolerance: float = 1e-6,
    certify: bool = False,
    **solver_options: Any,
) -> CriticalPointSet:
    """All stationary points Newton reaches from ``n_restarts`` seeded starts, one per orbit.

    Parameters
    ----------
    setting : Setting
    n_restarts : int
        Number of starts.
    seed : int
        Seed of the one generator that draws every start: the same seed gives the same table.
    init : str, tuple or array
        Start family (critpoints.initialization): "gaussian", ("gaussian", scale),
        ("warm_start", c), "uniform", or user-supplied theta(s).
    executor : optional
        None: local processes; or any concurrent.futures-style executor; or a
        dask.distributed Client.
    progress : bool
        A progress bar over restarts (shown only on a terminal).
    deflation : bool
        Deflate converged points so later batches of starts look elsewhere
        (Farrell, Birkisson and Funke 2015).
    descent_fraction : float
        Fraction of the starts (the first ones) that descend the loss by saddle-free Newton
        steps before the Newton phase (``NewtonOptions.descent_iterations``, default 50 for
        them): plain Newton mostly lands on saddles, descent first reaches the minima.
        Ignored for the predictor field, which has no loss to descend.
    tau_good : float
        Alignment threshold of the labels "good" and "recovered".
    eigenvalue_tolerance : float
        Eigenvalues within this fraction of max(1, spectral radius) count as zero.
    orbit_tolerance : float
        Relative tolerance under which two orbit keys are the same orbit.
    certify : bool
        Certify every point in interval arithmetic (critpoints.certify; needs the
        ``certify`` extra, python-flint): a Krawczyk test for exactly one critical point
        in a box (in a slice transversal to continuous symmetry orbits, with Lagrange
        multipliers under a constraint) and the Morse index from the interval Hessian.
        Fills ``certified`` ("yes" or "no: <reason>"), ``certified_index`` and
        ``certified_radius`` of each point.
    **solver_options
        Fields of :class:`critpoints.newton.NewtonOptions` (tol, max_iterations, flat_tol, ...).

    Returns
    -------
    CriticalPointSet
        Points (converged runs only), lowest loss first; restart statuses; a Chao1
        completeness estimate.

    Notes
    -----
    A run counts as stationary only if ||grad L|| (Riemannian; the projected field for
    ncl_predictor) <= tol * max(1, |L(theta_0)|). Runs that stall with a small non-zero
    gradient are counted as ``gradient_flat`` and never listed.
    """
    if not isinstance(setting, Setting):
        raise TypeError(f"setting must be a critpoints.Setting, got {type(setting).__name__}")
    known = {f.name for f in dataclasses.fields(NewtonOptions)}
    unknown = sorted(set(solver_options) - known)
    if unknown:
        raise ValueError(f"unknown solver option(s) {unknown}; known: {sorted(known)}")
    options = NewtonOptions(**solver_options)
    descent_fraction = check.real("descent_fraction", descent_fraction, low=0.0, high=1.0)
    descending = dataclasses.replace(options, descent_iterations=options.descent_iterations or DESCENT_ITERATIONS)
    loss = population_loss(setting)
    starts = initial_points(loss, n_restarts, np.random.default_rng(seed), init)
    n_descending = int(round(descent_fraction * len(starts)))
    per_start = [descending] * n_descending + [options] * (len(starts) - n_descending)
    runs = solve_from_starts(
        loss_system, (setting,), starts, options=per_start, executor=executor, progress=progress, deflate=deflation
    )
    statuses = Counter(str(run.status) for run in runs)
    database = OrbitDatabase(loss, orbit_tolerance)
    for run in runs:
        if run.status == Status.CONVERGED:
            database.add(run.theta)
    points = [
        describe_point(loss, theta, count, tau_good=tau_good, eigenvalue_tolerance=eigenvalue_tolerance)
        for theta, count in zip(database.points, database.counts)
    ]
    if certify:
        points = [_certified(loss, theta, point) for theta, point in zip(database.points, points)]
    points.sort(key=lambda point: point.loss)
    return CriticalPointSet(
        setting=setting.describe(),
        points=tuple(points),
        status_counts={status.value: statuses.get(status.value, 0) for status in Status},
        completeness=Completeness.from_counts(database.counts),
        metadata={
            "n_restarts": n_restarts,
            "seed": seed,
            "init": init if isinstance(init, (str, tuple)) else "user arrays",
            "deflation": deflation,
            "descent_fraction": descent_fraction,
            "tau_good": tau_good,
            "symmetries": loss.symmetries.describe(),
            "expectation": loss.expectation,
            "empirical": loss.empirical,
            "tol": options.tol,
            "eigenvalue_tolerance": eigenvalue_tolerance,
            **({"certified": sum(point.certified == "yes" for point in points)} if certify else {}),
        },
    )


def _certified(loss: PopulationLoss, theta: np.ndarray, point: CriticalPoint) -> CriticalPoint:
    """``point`` with its certification fields filled (critpoints.certify.certify_point)."""
    from .certify import certify_point

    certificate = certify_point(loss, theta)
    return dataclasses.replace(
        point,
        certified=certificate.describe(),
        certified_index=certificate.index,
        certified_radius=certificate.radius,
    )
