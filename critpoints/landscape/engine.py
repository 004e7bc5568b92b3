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
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from critpoints import _validation as check
from critpoints._version import __version__
from critpoints.landscape.classification import DEFAULT_EIGENVALUE_TOLERANCE
from critpoints.landscape.flat_sets import split_flat_sets
from critpoints.landscape.initialization import check_init, describe_init, initial_points
from critpoints.landscape.labels import DEFAULT_TAU_GOOD
from critpoints.landscape.options import newton_options, thresholds
from critpoints.landscape.orbits import OrbitDatabase
from critpoints.landscape.points import describe_point
from critpoints.landscape.result import Completeness, CriticalPoint, CriticalPointSet
from critpoints.landscape.system import loss_system
from critpoints.landscape.thresholds import warn_if_threshold_is_coarse
from critpoints.losses.population_loss import PopulationLoss, population_loss
from critpoints.model.setting import Setting
from critpoints.solver.restarts import Interrupted, check_executor, solve_from_starts
from critpoints.solver.types import NewtonResult, Status

#: Saddle-free Newton descent steps for the starts that descend first.
DESCENT_ITERATIONS = 50


def enumerate_critical_points(
    setting: Setting,
    n_restarts: int = 200,
    seed: int | None = 0,
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
    seed : int, None or numpy Generator
        Seed of the one generator that draws every start: the same seed gives the same table.
        ``None`` draws a fresh seed and a Generator gives one; either way the seed used is
        recorded in ``metadata["seed"]``, so the run can be repeated.
    init : str, tuple or array
        Start family (critpoints.landscape.initialization.check_init): "gaussian",
        ("gaussian", scale), ("warm_start", c), "uniform", or user-supplied starts: one
        theta, or ``n_restarts`` rows.
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
        Alignment threshold in (0, 1] of the labels "good" and "recovered".
    eigenvalue_tolerance : float
        Eigenvalues within this fraction, in (0, 1), of max(1, spectral radius) count as zero
        (default critpoints.landscape.classification.DEFAULT_EIGENVALUE_TOLERANCE = 1e-7).
    orbit_tolerance : float
        Relative tolerance in (0, 1) under which two orbit keys are the same orbit.
    certify : bool
        Certify every point in interval arithmetic (critpoints.certify.certificate; needs the
        ``certify`` extra, python-flint): a Krawczyk test for exactly one critical point
        in a box (in a slice transversal to continuous symmetry orbits, with Lagrange
        multipliers under a constraint) and the Morse index from the interval Hessian.
        Fills ``certified`` (True or False, with ``certification_reason``),
        ``certified_index`` and ``certified_radius`` of each point.
    **solver_options
        Fields of :class:`critpoints.solver.newton.NewtonOptions` (tol, max_iterations, flat_tol, ...).

    Returns
    -------
    CriticalPointSet
        Isolated points (converged runs only), lowest loss first; critical sets of positive
        dimension as one entry each in ``manifolds`` (critpoints.landscape.flat_sets);
        restart statuses; a Chao1 completeness estimate over the isolated orbits, and one over
        the isolated minima (``metadata["minima_completeness"]``); the setting and every option
        in ``metadata``.

    Raises
    ------
    ValueError, TypeError
        Naming the option, its value and what is allowed, for any bad option, before any
        work is done; ValueError also when the setting's estimated memory exceeds its
        ``max_memory`` (critpoints.losses.resources).
    critpoints.solver.restarts.Interrupted
        A KeyboardInterrupt (Ctrl-C) raised promptly; its ``partial`` attribute is the
        CriticalPointSet of the runs that had finished (classified when first read).

    Warns
    -----
    UserWarning
        When the stationarity threshold is within three orders of magnitude of the gradient
        norm at the starts (critpoints.landscape.thresholds): runs may then stop where they
        start.

    Notes
    -----
    A run counts as stationary only if ||grad L|| (Riemannian; the projected field for
    ncl_predictor) <= tol * max(1, |L(theta_0)|), with L evaluated at the run's start
    (``NewtonOptions.scale`` fixes the scale instead). Runs that stall with a small
    non-zero gradient are counted as ``gradient_flat`` and never listed.
    """
    began = time.perf_counter()
    if not isinstance(setting, Setting):
        raise TypeError(f"setting must be a critpoints.Setting, got {type(setting).__name__}")
    options = newton_options(solver_options)
    n_restarts = check.integer("n_restarts", n_restarts, minimum=1)
    seed = check.seed("seed", seed)
    init = check_init(init, n_restarts)
    check_executor(executor)
    progress = check.flag("progress", progress)
    deflation = check.flag("deflation", deflation)
    certify = check.flag("certify", certify)
    descent_fraction = check.real("descent_fraction", descent_fraction, low=0.0, high=1.0)
    tau_good, eigenvalue_tolerance, orbit_tolerance = thresholds(tau_good, eigenvalue_tolerance, orbit_tolerance)
    if certify:
        from critpoints.certify.balls import require_flint

        require_flint()
    descending = dataclasses.replace(options, descent_iterations=options.descent_iterations or DESCENT_ITERATIONS)

    loss = population_loss(setting)
    starts = initial_points(loss, n_restarts, np.random.default_rng(seed), init)
    warn_if_threshold_is_coarse(loss, options.tol, options.scale, stacklevel=2)
    n_descending = int(round(descent_fraction * len(starts)))
    per_start = [descending] * n_descending + [options] * (len(starts) - n_descending)
    metadata = {
        "n_restarts": n_restarts,
        "seed": seed,
        "init": describe_init(init),
        "deflation": deflation,
        "descent_fraction": descent_fraction,
        "tau_good": tau_good,
        "eigenvalue_tolerance": eigenvalue_tolerance,
        "orbit_tolerance": orbit_tolerance,
        "certify": certify,
        "solver_options": {name: getattr(options, name) for name in sorted(solver_options)},
        "tol": options.tol,
        "symmetries": loss.symmetries.describe(),
        "expectation": loss.expectation,
        "empirical": loss.empirical,
        "critpoints_version": __version__,
    }
    try:
        runs = solve_from_starts(
            loss_system, (setting,), starts, options=per_start, executor=executor, progress=progress, deflate=deflation
        )
    except Interrupted as interrupted:
        finished = [run for run in interrupted.results if run is not None]
        interrupted.build_partial_with(
            lambda: _result_set(
                loss,
                finished,
                {**metadata, "interrupted": f"{len(finished)} of {n_restarts} runs finished"},
                tau_good=tau_good,
                eigenvalue_tolerance=eigenvalue_tolerance,
                orbit_tolerance=orbit_tolerance,
                certify=False,
                began=began,
            )
        )
        raise
    return _result_set(
        loss,
        runs,
        metadata,
        tau_good=tau_good,
        eigenvalue_tolerance=eigenvalue_tolerance,
        orbit_tolerance=orbit_tolerance,
        certify=certify,
        began=began,
    )


def _result_set(
    loss: PopulationLoss,
    runs: Sequence[NewtonResult],
    metadata: dict,
    *,
    tau_good: float,
    eigenvalue_tolerance: float,
    orbit_tolerance: float,
    certify: bool,
    began: float,
) -> CriticalPointSet:
    """The converged runs deduplicated by orbit, classified, labelled (and certified)."""
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
        points, manifolds = split_flat_sets(loss, database.points, points, eigenvalue_tolerance=eigenvalue_tolerance)
    points.sort(key=lambda point: point.loss)
    minima = Completeness.from_counts([point.count for point in points if point.kind == "minimum"])
    if certify:
        metadata = {**metadata, "certified": sum(bool(point.certified) for point in points)}
    return CriticalPointSet(
        setting=loss.setting,
        points=tuple(points),
        status_counts={status.value: statuses.get(status.value, 0) for status in Status},
        completeness=Completeness.from_counts([point.count for point in points]),
        manifolds=tuple(manifolds),
        metadata={
            **metadata,
            "minima_completeness": dataclasses.asdict(minima),
            "seconds": time.perf_counter() - began,
        },
    )


def _certified(loss: PopulationLoss, theta: np.ndarray, point: CriticalPoint) -> CriticalPoint:
    """``point`` with its certification fields filled (critpoints.certify.certificate.certify_point)."""
    from critpoints.certify.certificate import certify_point

    certificate = certify_point(loss, theta)
    return dataclasses.replace(
        point,
        certified=certificate.certified,
        certification_reason=None if certificate.certified else certificate.reason,
        certified_index=certificate.index,
        certified_radius=certificate.radius,
    )
