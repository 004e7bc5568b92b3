"""``enumerate_critical_points``: Newton from many starts, one entry per symmetry orbit.

The layers: the setting's loss (critpoints.losses.population_loss) is wrapped as a
:class:`~critpoints.solver.newton.StationarySystem`; the generic solver
(critpoints.solver.newton, critpoints.solver.restarts) runs from every start; converged points are
deduplicated by orbit (critpoints.landscape.orbits), classified by their spectrum with symmetry zero
modes removed (critpoints.landscape.classification) and labelled from the ground truth
(critpoints.landscape.labels) into a :class:`~critpoints.landscape.result.CriticalPointSet`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from critpoints import _validation as check
from critpoints.landscape.classification import DEFAULT_EIGENVALUE_TOLERANCE
from critpoints.landscape.initialization import initial_points
from critpoints.landscape.labels import DEFAULT_TAU_GOOD
from critpoints.landscape.orbits import OrbitDatabase
from critpoints.landscape.points import describe_point
from critpoints.landscape.result import Completeness, CriticalPoint, CriticalPointSet
from critpoints.landscape.system import loss_system
from critpoints.losses.population_loss import PopulationLoss, population_loss
from critpoints.model.setting import Setting
from critpoints.solver.restarts import solve_from_starts
from critpoints.solver.types import NewtonOptions, Status

#: Saddle-free Newton descent steps for the starts that descend first.
DESCENT_ITERATIONS = 50


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
        Start family (critpoints.landscape.initialization): "gaussian", ("gaussian", scale),
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
        Certify every point in interval arithmetic (critpoints.certify.certificate; needs the
        ``certify`` extra, python-flint): a Krawczyk test for exactly one critical point
        in a box (in a slice transversal to continuous symmetry orbits, with Lagrange
        multipliers under a constraint) and the Morse index from the interval Hessian.
        Fills ``certified`` ("yes" or "no: <reason>"), ``certified_index`` and
        ``certified_radius`` of each point.
    **solver_options
        Fields of :class:`critpoints.solver.newton.NewtonOptions` (tol, max_iterations, flat_tol, ...).

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
    database = OrbitDatabase(loss.symmetries, orbit_tolerance)
    # Small dense matrices, as in the workers: extra BLAS threads only synchronise.
    with threadpool_limits(1):
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
    """``point`` with its certification fields filled (critpoints.certify.certificate.certify_point)."""
    from critpoints.certify.certificate import certify_point

    certificate = certify_point(loss, theta)
    return dataclasses.replace(
        point,
        certified=certificate.describe(),
        certified_index=certificate.index,
        certified_radius=certificate.radius,
    )
