"""``explore_minima``: a minima-first search that hops between local minima.

Random restarts find minima with large basins and miss those with small ones — at the
claim-3 settings the signed-atom minima with many duplicated neurons (derivations/CLAIMS.md,
claim 3) are reached by almost no random start. One-layer networks have natural moves
between minima, which this search makes (Wales and Doye's basin-hopping in spirit, with
moves of neurons instead of random displacements):

* **copy** a neuron of a known minimum onto another neuron (all branches; slightly
  perturbed): duplicated neurons are what distinguishes the bad minima. Neurons equal up to
  sign form classes, and each distinct copy (an ordered pair of classes) is made once before
  any random pair;
* **re-draw** from the start distribution the neuron that most nearly duplicates another (a
  duplicated neuron is wasted capacity), or one to three random neurons;
* **escape** a known saddle along its most negative curvature direction (both ways).

Round 0 descends from random starts; every later round makes ``moves_per_minimum`` moves
(each kind a third of the time; twice as many from a minimum found in the round before) from
each minimum known so far, and two from each new saddle, each followed by
saddle-free Newton descent and Newton (``NewtonOptions.descent_iterations``;
critpoints.solver.newton). Converged runs are grouped by symmetry orbit
(critpoints.landscape.orbits) and classified by their spectrum (critpoints.landscape.points).
The search stops when ``patience`` consecutive rounds find no new minimum orbit, or when a
budget of rounds, runs or seconds runs out. No start is built from a known answer: every
start is a random draw or a move from a minimum the search found itself.

The result is a :class:`~critpoints.landscape.result.CriticalPointSet` holding the minima
(lowest loss first; ``count`` = runs that ended on each), whose completeness line is the Chao1
estimate over the minima's counts; its metadata records the rounds, the runs, the time, why
the search stopped, and each minimum's Hessian spectrum. Flat critical sets met on the way
(degenerate orbits) are tested and reported as in ``enumerate_critical_points``.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from critpoints import _validation as check
from critpoints._version import __version__
from critpoints.landscape.classification import (
    DEFAULT_EIGENVALUE_TOLERANCE,
    classify_spectrum,
    symmetry_complement,
)
from critpoints.landscape.engine import DESCENT_ITERATIONS
from critpoints.landscape.flat_sets import split_flat_sets
from critpoints.landscape.initialization import initial_points
from critpoints.landscape.labels import DEFAULT_TAU_GOOD
from critpoints.landscape.options import newton_options, thresholds
from critpoints.landscape.orbits import ORBIT_TOLERANCE, OrbitDatabase
from critpoints.landscape.points import describe_point
from critpoints.landscape.result import Completeness, CriticalPointSet
from critpoints.landscape.system import loss_system
from critpoints.losses.population_loss import PopulationLoss, population_loss
from critpoints.model.setting import Setting
from critpoints.solver.batch_runner import BatchRunner
from critpoints.solver.newton import Status
from critpoints.solver.restarts import check_executor

#: Relative size of the noise added to a copied neuron, and of a step off a saddle.
MOVE_NOISE = 0.05
SADDLE_STEP = 0.1


@dataclasses.dataclass
class _Orbit:
    """A converged orbit met by the search: representative, kind, spectrum, and how often it was expanded."""

    theta: np.ndarray
    kind: str
    eigenvalues: np.ndarray
    escape: np.ndarray | None  # unit tangent direction of most negative curvature (saddles)
    expanded: int = 0
    copies: list | None = None  # distinct (source, target) copies not yet made


def _spectrum(loss: PopulationLoss, theta: np.ndarray, tolerance: float) -> tuple[str, np.ndarray, np.ndarray | None]:
    """Kind, eigenvalues (symmetry modes removed) and, at a saddle, the most negative curvature direction."""
    basis = loss.manifold.tangent_basis(theta)
    hessian = loss.hessian_in_basis(theta)
    complement, modes = symmetry_complement(
        basis, loss.symmetry_generators(theta), scale=max(1.0, float(np.linalg.norm(theta)))
    )
    spectrum = classify_spectrum(hessian, complement, modes, is_gradient=True, tolerance=tolerance)
    escape = None
    if spectrum.index > 0:
        reduced = complement.T @ hessian @ complement
        _, vectors = np.linalg.eigh(0.5 * (reduced + reduced.T))
        escape = basis @ (complement @ vectors[:, 0])
    return spectrum.kind, np.sort(spectrum.eigenvalues), escape


class _Moves:
    """Starts made from known orbits (the three moves of the module docstring)."""

    def __init__(self, loss: PopulationLoss, rng: np.random.Generator) -> None:
        self.loss = loss
        self.rng = rng
        self.rows = [name for name in loss.layout.names if name in ("W", "W_t", "b", "b_t")]
        self.m = loss.setting.m

    def _project(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        return self.loss.manifold.project(self.loss.layout.pack(**blocks))

    def copy(self, orbit: _Orbit) -> np.ndarray:
        """Copy one neuron onto another (slightly perturbed).

        Neurons equal up to sign are one class: copying within a class changes nothing, and
        copying between two classes does the same whichever members are chosen. So an orbit's
        distinct copies (one per ordered pair of classes) are made first, in a shuffled order;
        then random pairs.
        """
        if orbit.copies is None:
            classes = self._neuron_classes(orbit.theta)
            pairs = [(a[0], b[0]) for a in classes for b in classes if a is not b]
            orbit.copies = [pairs[index] for index in self.rng.permutation(len(pairs))]
        if orbit.copies:
            source, target = orbit.copies.pop()
        else:
            source, target = self.rng.choice(self.m, size=2, replace=False)
        blocks = self.loss.layout.unpack(orbit.theta)
        for name in self.rows:
            row = blocks[name][source]
            scale = MOVE_NOISE * max(float(np.linalg.norm(row)), 1e-3) / np.sqrt(max(np.size(row), 1))
            blocks[name][target] = row + scale * self.rng.standard_normal(np.shape(row))
        return self._project(blocks)

    def redraw(self, orbit: _Orbit, duplicated: bool) -> np.ndarray:
        """Re-draw the neuron that most nearly duplicates another (``duplicated``), or one to three
        random neurons, from the start distribution."""
        if duplicated:
            neurons = np.array([self._most_duplicated(orbit.theta)])
        else:
            neurons = self.rng.choice(self.m, size=int(self.rng.integers(1, min(3, self.m) + 1)), replace=False)
        fresh = self.loss.layout.unpack(initial_points(self.loss, 1, self.rng)[0])
        blocks = self.loss.layout.unpack(orbit.theta)
        for name in self.rows:
            blocks[name][neurons] = fresh[name][neurons]
        return self._project(blocks)

    def any(self, orbit: _Orbit) -> np.ndarray:
        """One move, each kind a third of the time: the most duplicated neuron re-drawn, a copy,
        random re-draws."""
        draw = self.rng.random()
        if draw < 1 / 3:
            return self.redraw(orbit, duplicated=True)
        return self.copy(orbit) if draw < 2 / 3 else self.redraw(orbit, duplicated=False)

    def _neuron_classes(self, theta: np.ndarray) -> list[list[int]]:
        """Neurons grouped by equality of their rows (all branches) up to sign, to 1e-6."""
        blocks = self.loss.layout.unpack(theta)
        rows = np.concatenate([blocks[name].reshape(self.m, -1) for name in self.rows], axis=1)
        classes: list[list[int]] = []
        for neuron in range(self.m):
            for members in classes:
                other = rows[members[0]]
                if min(np.abs(rows[neuron] - other).max(), np.abs(rows[neuron] + other).max()) <= 1e-6:
                    members.append(neuron)
                    break
            else:
                classes.append([neuron])
        return classes

    def _most_duplicated(self, theta: np.ndarray) -> int:
        """A neuron whose row of W has the largest |cos| with another neuron's (ties drawn at random)."""
        weights = self.loss.unpack(theta)["W"]
        norms = np.linalg.norm(weights, axis=1)
        cosines = np.abs(weights @ weights.T) / np.maximum(np.outer(norms, norms), 1e-300)
        np.fill_diagonal(cosines, -1.0)
        closest = cosines.max(axis=1)
        return int(self.rng.choice(np.flatnonzero(closest >= closest.max() - 1e-9)))

    def escape(self, orbit: _Orbit) -> list[np.ndarray]:
        """Two starts off a saddle, one each way along its most negative curvature direction."""
        assert orbit.escape is not None  # only saddles are escaped
        step = SADDLE_STEP * max(1.0, float(np.linalg.norm(orbit.theta)))
        return [self.loss.manifold.project(orbit.theta + sign * step * orbit.escape) for sign in (1.0, -1.0)]


def explore_minima(
    setting: Setting,
    seed: int = 0,
    *,
    initial_starts: int | None = None,
    moves_per_minimum: int = 8,
    patience: int = 4,
    max_rounds: int | None = None,
    max_runs: int | None = None,
    max_seconds: float | None = None,
    executor: Any = None,
    progress: bool = True,
    tau_good: float = DEFAULT_TAU_GOOD,
    eigenvalue_tolerance: float = DEFAULT_EIGENVALUE_TOLERANCE,
    orbit_tolerance: float = ORBIT_TOLERANCE,
    **solver_options: Any,
) -> CriticalPointSet:
    """The local minima of a setting's loss, found by descent from random starts and hops between minima.

    Parameters
    ----------
    setting : Setting
        A setting with a loss (not the ``ncl_predictor`` field, which has no loss to descend).
    seed : int
        Seed of the one generator behind every start and move: the same seed gives the same table.
    initial_starts : int, optional
        Random starts of round 0 (default 2 m p, at least 20).
    moves_per_minimum : int
        Moves from each known minimum per round (twice as many in the round after it is found).
    patience : int
        Stop after this many consecutive rounds without a new minimum orbit (K).
    max_rounds, max_runs, max_seconds : optional
        Budgets: stop after this many rounds, descents, or seconds (checked between rounds).
    executor : optional
        None: this process, until a timed round shows that a pool of local processes pays for
        its start-up, which then runs every later round (critpoints.solver.batch_runner);
        any concurrent.futures-style executor; or a dask.distributed Client
        (critpoints.solver.restarts.solve_from_starts).
    progress : bool
        A progress bar over the descents (shown only on a terminal).
    tau_good, eigenvalue_tolerance, orbit_tolerance : float
        As in :func:`~critpoints.landscape.engine.enumerate_critical_points`.
    **solver_options
        Fields of :class:`~critpoints.solver.newton.NewtonOptions`; ``descent_iterations``
        defaults to 50 here (every run descends first).

    Returns
    -------
    CriticalPointSet
        The minima, one per orbit, lowest loss first, with ``count`` = descents ending on it;
        ``completeness`` is Chao1 over those counts. ``metadata`` holds ``rounds``, ``runs``,
        ``seconds``, ``stopped`` (the reason), ``new_minima_per_round``, ``saddles`` (saddles
        met), ``other_orbits`` (converged orbits that are not strict minima) and ``spectra``
        (each minimum's Hessian eigenvalues after removing symmetry modes, in the order of the
        points). Degenerate orbits met on the way that lie on critical sets of positive
        dimension are in ``manifolds`` (critpoints.landscape.flat_sets), one entry per set.

    Raises
    ------
    ValueError
        For the predictor field, an unknown solver option, or a bad budget.
    """
    if not isinstance(setting, Setting):
        raise TypeError(f"setting must be a critpoints.Setting, got {type(setting).__name__}")
    if setting.loss.is_field:
        raise ValueError(f"setting loss must have a loss to descend; got {str(setting.loss)!r} (a vector field)")
    options = newton_options(solver_options, descent_iterations=DESCENT_ITERATIONS)
    seed = check.seed("seed", seed)
    progress = check.flag("progress", progress)
    check_executor(executor)
    tau_good, eigenvalue_tolerance, orbit_tolerance = thresholds(tau_good, eigenvalue_tolerance, orbit_tolerance)
    if options.descent_iterations == 0:
        raise ValueError("descent_iterations must be >= 1 for a minima-first search, got 0")
    initial = check.integer("initial_starts", initial_starts, minimum=1) if initial_starts is not None else None
    moves_per_minimum = check.integer("moves_per_minimum", moves_per_minimum, minimum=1)
    patience = check.integer("patience", patience, minimum=1)
    budgets = {
        "max_rounds": None if max_rounds is None else check.integer("max_rounds", max_rounds, minimum=1),
        "max_runs": None if max_runs is None else check.integer("max_runs", max_runs, minimum=1),
        "max_seconds": None if max_seconds is None else check.real("max_seconds", max_seconds, low=0.0, low_open=True),
    }
    loss = population_loss(setting)
    rng = np.random.default_rng(seed)
    moves = _Moves(loss, rng)
    found = _Found(loss, orbit_tolerance, eigenvalue_tolerance)
    statuses: Counter[str] = Counter()
    new_per_round: list[int] = []
    began = time.perf_counter()
    runs = 0
    stopped = ""
    initial = initial or max(20, 2 * setting.m * setting.p)
    starts = initial_points(loss, initial, rng)
    runner = BatchRunner(loss_system, (setting,), executor)
    try:
        with tqdm(disable=not progress or None, unit="descent", desc="minima") as bar:
            while True:
                results = runner.solve(starts, options)
                runs += len(results)
                bar.update(len(results))
                statuses.update(str(result.status) for result in results)
                before = len(found.minima)
                with threadpool_limits(1):
                    for result in results:
                        if result.status == Status.CONVERGED:
                            found.record(result.theta)
                new_per_round.append(len(found.minima) - before)
                bar.set_postfix(minima=len(found.minima), round=len(new_per_round))
                stopped = _stop_reason(new_per_round, patience, runs, began, budgets)
                if stopped:
                    break
                starts = _next_starts(moves, found, moves_per_minimum)
                if not len(starts):
                    stopped = "no moves: no minimum found"
                    break
    finally:
        runner.close()
    search = {
        "search": "minima first (explore_minima)",
        "seed": seed,
        "initial_starts": initial,
        "moves_per_minimum": moves_per_minimum,
        "patience": patience,
        **budgets,
        "solver_options": {name: getattr(options, name) for name in sorted(solver_options)},
        "rounds": len(new_per_round),
        "runs": runs,
        "seconds": round(time.perf_counter() - began, 3),
        "stopped": stopped,
        "new_minima_per_round": new_per_round,
    }
    return _result(setting, found, statuses, search, tau_good)


class _Found:
    """The orbits met so far: minima (with their details), and the other converged orbits."""

    def __init__(self, loss: PopulationLoss, orbit_tolerance: float, eigenvalue_tolerance: float) -> None:
        self.loss = loss
        self.tolerance = eigenvalue_tolerance
        self.minima = OrbitDatabase(loss.symmetries, orbit_tolerance)
        self.others = OrbitDatabase(loss.symmetries, orbit_tolerance)
        self.details: dict[int, _Orbit] = {}  # by index in ``minima``
        self.saddles: list[_Orbit] = []
        self.degenerate: list[int] = []  # indices in ``others`` with extra null directions

    def record(self, theta: np.ndarray) -> None:
        """File a converged point under its orbit, classifying orbits met for the first time."""
        for database in (self.minima, self.others):
            index = database.find(theta) if database.keys else None
            if index is not None:
                database.counts[index] += 1
                return
        kind, eigenvalues, escape = _spectrum(self.loss, theta, self.tolerance)
        orbit = _Orbit(theta=np.array(theta), kind=kind, eigenvalues=eigenvalues, escape=escape)
        if kind == "minimum":
            self.details[self.minima.add(theta)] = orbit
            return
        index = self.others.add(theta)
        if kind == "degenerate":
            self.degenerate.append(index)
        if escape is not None:
            self.saddles.append(orbit)


def _stop_reason(new_per_round, patience, runs, began, budgets) -> str:
    if len(new_per_round) > patience and not any(new_per_round[-patience:]):
        return f"{patience} consecutive rounds without a new minimum"
    if budgets["max_rounds"] is not None and len(new_per_round) >= budgets["max_rounds"]:
        return f"max_rounds = {budgets['max_rounds']} reached"
    if budgets["max_runs"] is not None and runs >= budgets["max_runs"]:
        return f"max_runs = {budgets['max_runs']} reached"
    if budgets["max_seconds"] is not None and time.perf_counter() - began >= budgets["max_seconds"]:
        return f"max_seconds = {budgets['max_seconds']:g} reached"
    return ""


def _next_starts(moves: _Moves, found: _Found, moves_per_minimum: int) -> np.ndarray:
    """The next round's starts: moves from every known minimum and escapes from new saddles."""
    starts = []
    for index in range(len(found.minima)):
        orbit = found.details[index]
        count = 2 * moves_per_minimum if orbit.expanded == 0 else moves_per_minimum  # new minima: twice
        orbit.expanded += 1
        starts += [moves.any(orbit) for _ in range(count)]
    for orbit in found.saddles:
        if orbit.expanded == 0:
            starts += moves.escape(orbit)
            orbit.expanded += 1
    return np.array(starts)


def _result(setting: Setting, found: _Found, statuses: Counter, search: dict, tau_good: float) -> CriticalPointSet:
    """The minima table; degenerate orbits met on the way are tested as flat sets (critpoints.landscape.flat_sets)."""
    loss, tolerance = found.loss, found.tolerance
    with threadpool_limits(1):
        described = [
            (
                describe_point(loss, theta, count, tau_good=tau_good, eigenvalue_tolerance=tolerance),
                found.details[index],
            )
            for index, (theta, count) in enumerate(zip(found.minima.points, found.minima.counts))
        ]
        flat_thetas = [found.others.points[index] for index in found.degenerate]
        flat_points = [
            describe_point(loss, theta, found.others.counts[index], tau_good=tau_good, eigenvalue_tolerance=tolerance)
            for theta, index in zip(flat_thetas, found.degenerate)
        ]
        _, manifolds = split_flat_sets(loss, flat_thetas, flat_points, eigenvalue_tolerance=tolerance)
    described.sort(key=lambda pair: pair[0].loss)
    points = [point for point, _ in described]
    minima = Completeness.from_counts([point.count for point in points])
    return CriticalPointSet(
        setting=setting,
        points=tuple(points),
        status_counts={status.value: statuses.get(status.value, 0) for status in Status},
        completeness=minima,
        manifolds=tuple(manifolds),
        metadata={
            **search,
            "saddles": len(found.saddles),
            "other_orbits": len(found.others),
            "symmetries": loss.symmetries.describe(),
            "expectation": loss.expectation,
            "tau_good": tau_good,
            "eigenvalue_tolerance": tolerance,
            "undecided_orbit_tests": found.minima.undecided + found.others.undecided,
            "spectra": [orbit.eigenvalues.tolist() for _, orbit in described],
            "critpoints_version": __version__,
        },
    )
