"""``map_landscape``: a setting's minima, saddles and the edges between them, kept in a database.

One call is one *run* of the landscape database (critpoints.landscape.database). It works in
phases, each committed in batches from this process:

1. **explore**: Newton from the seeded starts that no earlier run of the setting has done.
   Start k of (seed, init) is the same in every call, so a call with more restarts, or after an
   interruption, does only the rest. A fraction of the starts descends first (saddle-free
   Newton steps), as in ``enumerate_critical_points``. Every converged point is matched to the
   known symmetry orbits (critpoints.landscape.catalogue): a known orbit has its count raised, a
   new one is classified, labelled and stored as a minimum, a manifold (a flat set of minima)
   or a saddle (index >= 1).
2. **points**: with ``minima="explore"`` the minima-first search (critpoints.landscape.explore)
   runs, and its minima and flat sets, then the points given by the caller (from any other
   search), are polished by Newton and stored the same way (without counts: counts are this
   tool's random starts).
3. **connect**: every index-1 saddle not yet connected is descended from both sides
   (critpoints.landscape.connections); the two basins it reaches become an edge.
4. **search**: saddles are searched between pairs of basins (Newton from the local maxima of L
   on the geodesic from one to the nearest symmetry image of the other): first each basin with
   its ``neighbours`` nearest basins, then, while the basins fall into groups that no known
   saddle joins, the two closest basins of different groups. Each new index-1 saddle is
   connected at once; searched pairs are recorded and not searched again.

Ctrl-C, or a worker process that dies, marks the run ``interrupted`` and re-raises; what was
committed stays, and the same call again continues from there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from critpoints import _validation as check
from critpoints.landscape.catalogue import Catalogue, may_lie_on_manifold
from critpoints.landscape.classification import DEFAULT_EIGENVALUE_TOLERANCE
from critpoints.landscape.connections import (
    CONNECTION_DESCENT_ITERATIONS,
    CONNECTION_STEP,
    Connection,
    connect_saddles,
    search_starts,
)
from critpoints.landscape.database import LandscapeDatabase
from critpoints.landscape.disconnectivity import disconnectivity_tree
from critpoints.landscape.engine import DESCENT_ITERATIONS
from critpoints.landscape.explore import explore_minima
from critpoints.landscape.graph import BASIN_ROLES, LandscapeGraph
from critpoints.landscape.initialization import initial_points
from critpoints.landscape.labels import DEFAULT_TAU_GOOD
from critpoints.landscape.points import describe_point
from critpoints.landscape.result import CriticalPoint
from critpoints.landscape.symmetry_images import nearest_image
from critpoints.landscape.system import LossSystem, loss_system
from critpoints.losses.population_loss import population_loss
from critpoints.model.setting import Setting
from critpoints.solver.batch_runner import BatchRunner
from critpoints.solver.newton import NewtonOptions, NewtonResult, Status
from critpoints.solver.restarts import InProcessExecutor, solve_from_starts

__all__ = ["map_landscape", "role_of"]


def role_of(point: CriticalPoint) -> str:
    """The role of a stationary point in the graph: "minimum", "manifold" (index 0 with zero
    eigenvalues that no symmetry explains: a flat set of minima) or "saddle" (index >= 1)."""
    if point.kind == "minimum":
        return "minimum"
    if point.index == 0:
        return "manifold"
    return "saddle"


def _init_key(init: Any) -> str:
    """A text naming the start family, the same in every call (arrays by a hash of their bytes)."""
    if isinstance(init, (np.ndarray, list)):
        return "array:" + hashlib.sha256(np.ascontiguousarray(init, dtype=np.float64).tobytes()).hexdigest()[:16]
    return json.dumps(init)


def _descends(index: int, fraction: float) -> bool:
    """Whether start ``index`` descends first: a ``fraction`` of the starts, spread evenly over
    the indices (the same for a start whatever the number of restarts of the call)."""
    return math.floor((index + 1) * fraction) > math.floor(index * fraction)


def _ranges(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted indices as half-open ranges of consecutive ones."""
    ranges: list[tuple[int, int]] = []
    for index in sorted(indices):
        if ranges and ranges[-1][1] == index:
            ranges[-1] = (ranges[-1][0], index + 1)
        else:
            ranges.append((index, index + 1))
    return ranges


#: Where ``map_landscape`` takes its minima from.
MINIMA_SOURCES = ("restarts", "explore")

#: Keywords of ``explore_minima`` that ``map_landscape`` passes on.
EXPLORE_OPTIONS = ("initial_starts", "moves_per_minimum", "patience", "max_rounds", "max_runs", "max_seconds")


def _explore_options(minima: str, options: dict[str, Any] | None) -> dict[str, Any]:
    if options is None:
        return {}
    if minima != "explore":
        raise ValueError(
            f"explore_options are options of the minima-first search; they need minima='explore', not {minima!r}"
        )
    unknown = sorted(set(options) - set(EXPLORE_OPTIONS))
    if unknown:
        raise ValueError(f"unknown explore_options {unknown}; known: {list(EXPLORE_OPTIONS)}")
    return dict(options)


def _newton_options(solver_options: dict[str, Any]) -> NewtonOptions:
    known = {f.name for f in dataclasses.fields(NewtonOptions)}
    unknown = sorted(set(solver_options) - known)
    if unknown:
        raise ValueError(f"unknown solver option(s) {unknown}; known: {sorted(known)}")
    return NewtonOptions(**solver_options)


class _Mapper:
    """The state of one ``map_landscape`` call: the database, the run, the known orbits."""

    def __init__(
        self,
        database: LandscapeDatabase,
        setting: Setting,
        setting_id: int,
        run_id: int,
        *,
        executor: Any,
        options: NewtonOptions,
        step: float,
        tau_good: float,
        eigenvalue_tolerance: float,
        orbit_tolerance: float,
        progress: bool,
    ) -> None:
        self.database = database
        self.setting = setting
        self.setting_id = setting_id
        self.run_id = run_id
        self.loss = population_loss(setting)
        self.system = LossSystem(self.loss)
        self.runner = BatchRunner(loss_system, (setting,), executor)
        self.options = options
        self.descending = dataclasses.replace(
            options, descent_iterations=options.descent_iterations or DESCENT_ITERATIONS
        )
        self.connecting = dataclasses.replace(
            options, descent_iterations=options.descent_iterations or CONNECTION_DESCENT_ITERATIONS
        )
        self.step = step
        self.tau_good = tau_good
        self.eigenvalue_tolerance = eigenvalue_tolerance
        self.progress = progress
        self.catalogue = Catalogue(self.loss, orbit_tolerance)
        for record in database.points(self.setting_id):
            self.catalogue.add(record.id, record.role, record.theta, record.point.loss)
        self.distances: dict[tuple[int, int], tuple[float, np.ndarray]] = {}

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A database transaction; points registered in it are forgotten if it rolls back."""
        mark = len(self.catalogue)
        try:
            with self.database.transaction():
                yield
        except BaseException:
            self.catalogue.forget_after(mark)
            raise

    # -- storing points (inside a transaction) ---------------------------------------

    def store(self, theta: np.ndarray, value: float, count: int) -> int:
        """The id of the orbit of the stationary point ``theta``, stored first if new; ``count``
        starts of this run are added to its sightings."""
        point_id = self.catalogue.same_orbit_as(theta, value)
        if point_id is None:
            point = describe_point(
                self.loss, theta, 0, tau_good=self.tau_good, eigenvalue_tolerance=self.eigenvalue_tolerance
            )
            role = role_of(point)
            if may_lie_on_manifold(role, point):
                point_id = self.catalogue.same_manifold_as(theta, point.loss)
            if point_id is None:
                point_id = self.database.add_point(self.setting_id, self.run_id, role, theta, point)
                self.catalogue.add(point_id, role, theta, point.loss)
        if count:
            self.database.add_sighting(self.run_id, point_id, count)
        return point_id

    def store_runs(self, runs: Sequence[NewtonResult], count: bool) -> list[int]:
        """Store the converged runs (inside a transaction); returns their point ids, in order."""
        self.database.add_newton_statuses(self.run_id, Counter(str(run.status) for run in runs))
        return [self.store(run.theta, run.value, int(count)) for run in runs if run.status == Status.CONVERGED]

    # -- phases ----------------------------------------------------------------------

    def close(self, failed: bool) -> None:
        """Shut the pool down (pending work cancelled after a failure)."""
        self.runner.close(failed)

    def explore(self, n_restarts: int, seed: int, init: Any, descent_fraction: float, batch_size: int | None) -> None:
        """Phase 1: Newton from the seeded starts not yet done, committed per batch.

        Without a ``batch_size``: 8 starts per CPU in this process, 32 per CPU in a pool."""
        if n_restarts == 0:
            return
        starts = initial_points(self.loss, n_restarts, np.random.default_rng(seed), init)
        key = _init_key(init)
        done = self.database.explored(self.setting_id, seed, key)
        todo = [k for k in range(n_restarts) if k not in done]
        workers = max(1, os.cpu_count() or 1)
        first = 0
        with tqdm(total=len(todo), disable=not self.progress or None, unit="start", desc="explore") as bar:
            while first < len(todo):
                size = batch_size or (32 if self.runner.pooled else 8) * workers
                batch = todo[first : first + size]
                options = [self.descending if _descends(k, descent_fraction) else self.options for k in batch]
                runs = self.runner.solve(starts[batch], options, upcoming=len(todo) - first - len(batch))
                with self.transaction(), threadpool_limits(1):
                    self.store_runs(runs, count=True)
                    for start, stop in _ranges(batch):
                        self.database.add_explored(self.run_id, seed, key, start, stop)
                first += len(batch)
                bar.update(len(batch))

    def add_points(self, points: np.ndarray) -> None:
        """Phase 2: points from another search, polished by Newton, stored without counts."""
        runs = self.runner.solve(np.array([self.loss.manifold.project(p) for p in points]), self.options)
        with self.transaction(), threadpool_limits(1):
            self.store_runs(runs, count=False)

    def search_minima(self, seed: int, options: dict[str, Any]) -> list[str]:
        """Phase 1b: the minima-first search (critpoints.landscape.explore); its minima and flat
        sets are stored as points from another search. Skipped when a finished run of the
        setting already made the same search; returns a note on what was done."""
        for run in self.database.runs(self.setting_id):
            done = run.parameters.get("minima") == "explore" and run.parameters.get("explore") == options
            if run.id != self.run_id and run.status == "finished" and done and run.parameters.get("seed") == seed:
                return [f"minima-first search: done by run {run.id}, not repeated"]
        fields = dataclasses.asdict(self.descending)
        result = explore_minima(
            self.setting,
            seed,
            executor=self.runner.pool or self.runner.requested,
            progress=self.progress,
            tau_good=self.tau_good,
            eigenvalue_tolerance=self.eigenvalue_tolerance,
            orbit_tolerance=self.catalogue.orbit_tolerance,
            **options,
            **fields,
        )
        found = [self.loss.pack(**point.params) for point in result.points]
        found += [self.loss.pack(**manifold.params) for manifold in result.manifolds]
        if found:
            self.add_points(np.array(found))
        search = result.metadata
        return [
            f"minima-first search: {len(result.points)} minima and {len(result.manifolds)} flat sets in "
            f"{search['rounds']} rounds ({search['runs']} descents, {search['seconds']:.1f} s; {search['stopped']}); "
            f"minima {result.completeness.describe()}"
        ]

    def connect(self, saddle_ids: Sequence[int] | None = None, batch_size: int = 16) -> int:
        """Phase 3: descend from both sides of every index-1 saddle not yet connected (or of the
        given ones); returns the number of new edges."""
        pending = [
            record
            for record in self.database.points(self.setting_id, unconnected=True)
            if saddle_ids is None or record.id in saddle_ids
        ]
        edges = 0
        for first in range(0, len(pending), batch_size):
            batch = pending[first : first + batch_size]
            connections = connect_saddles(
                loss_system,
                (self.setting,),
                [record.theta for record in batch],
                system=self.system,
                step=self.step,
                options=self.connecting,
                tolerance=self.eigenvalue_tolerance,
                executor=self.runner.executor,
            )
            with self.transaction(), threadpool_limits(1):
                for record, connection in zip(batch, connections):
                    edges += self.record_connection(record.id, connection)
        return edges

    def record_connection(self, saddle_id: int, connection: Connection | None) -> int:
        """Store the edge of one connection, or why there is none (inside a transaction)."""
        if connection is None:
            self.database.set_connection(saddle_id, "failed: not an index-1 saddle when re-classified")
            return 0
        ends = []
        for side, run in zip(("+v", "-v"), connection.ends):
            if run.status != Status.CONVERGED:
                self.database.set_connection(saddle_id, f"failed: the descent along {side} ended {run.status}")
                return 0
            end = self.store(run.theta, run.value, 0)
            if self.catalogue.roles[end] not in BASIN_ROLES:
                self.database.set_connection(saddle_id, f"failed: the descent along {side} reached saddle #{end}")
                return 0
            ends.append(end)
        height = self.catalogue.values[saddle_id]
        barriers = (height - self.catalogue.values[ends[0]], height - self.catalogue.values[ends[1]])
        self.database.add_edge(
            self.setting_id, self.run_id, saddle_id, (ends[0], ends[1]), barriers, connection.eigenvalue
        )
        self.database.set_connection(saddle_id, "connected")
        return 1

    def distance(self, a: int, b: int) -> tuple[float, np.ndarray]:
        """Distance from basin a to the nearest image of basin b, and that image."""
        if (a, b) not in self.distances:
            image = nearest_image(self.loss.symmetries, self.catalogue.thetas[a], self.catalogue.thetas[b])
            self.distances[a, b] = (float(np.linalg.norm(image - self.catalogue.thetas[a])), image)
        return self.distances[a, b]

    def search_pair(self, a: int, b: int) -> None:
        """Newton from the maxima of L between basins a and b; connect the index-1 saddles reached."""
        starts = search_starts(self.system, self.catalogue.thetas[a], self.distance(a, b)[1])
        runs = solve_from_starts(
            loss_system, (self.setting,), starts, options=self.options, executor=InProcessExecutor(), progress=False
        )
        with self.transaction(), threadpool_limits(1):
            found = self.store_runs(runs, count=False)
            saddles = sorted({i for i in found if self.catalogue.roles[i] == "saddle"})
            self.database.add_search(self.run_id, (a, b), len(saddles))
        self.connect(saddles)

    def search(self, neighbours: int, max_searches: int) -> list[str]:
        """Phase 4: saddle searches between basins; returns notes on what is left."""
        searched = set(self.database.searches(self.setting_id))
        done = 0
        with tqdm(total=max_searches, disable=not self.progress or None, unit="pair", desc="search") as bar:

            def run(pair: tuple[int, int]) -> None:
                nonlocal done
                self.search_pair(*pair)
                searched.add((min(pair), max(pair)))
                done += 1
                bar.update(1)

            basins = self.basins()
            nearest: set[tuple[int, int]] = set()
            for a in basins:
                others = sorted((b for b in basins if b != a), key=lambda b: self.distance(*self.ordered(a, b))[0])
                nearest.update((min(a, b), max(a, b)) for b in others[:neighbours])
            for pair in sorted(nearest, key=lambda pair: self.distance(*self.ordered(*pair))[0]):
                if done >= max_searches:
                    break
                if pair not in searched:
                    run(self.ordered(*pair))
            while done < max_searches:
                groups = self.groups()
                candidates = [
                    (self.distance(*self.ordered(a, b))[0], self.ordered(a, b))
                    for a, b in combinations(self.basins(), 2)
                    if groups[a] != groups[b] and (min(a, b), max(a, b)) not in searched
                ]
                if not candidates:
                    break
                run(min(candidates)[1])
        groups = self.groups()
        if len(set(groups.values())) > 1:
            return [
                f"after {done} saddle searches in this run, the basins fall into {len(set(groups.values()))} "
                "groups that no known saddle joins"
            ]
        return []

    def ordered(self, a: int, b: int) -> tuple[int, int]:
        """The pair with the lower basin first (the reference of the alignment)."""
        return (a, b) if (self.catalogue.values[a], a) <= (self.catalogue.values[b], b) else (b, a)

    def basins(self) -> list[int]:
        return self.catalogue.with_role(*BASIN_ROLES)

    def groups(self) -> dict[int, int]:
        """Basin id -> the root of its group joined by known edges."""
        basins = self.basins()
        edges = [
            (e.end_a, e.end_b, self.catalogue.values[e.saddle_id], e.saddle_id)
            for e in self.database.edges(self.setting_id)
        ]
        tree = disconnectivity_tree({b: self.catalogue.values[b] for b in basins}, edges)
        return {basin: root for root in tree.roots for basin in tree.component(root)}


def map_landscape(
    setting: Setting,
    database: str | Path | LandscapeDatabase | None = None,
    n_restarts: int = 200,
    seed: int = 0,
    init: Any = "gaussian",
    *,
    minima: str = "explore",
    explore_options: dict[str, Any] | None = None,
    points: ArrayLike | None = None,
    connect: bool = True,
    search: bool = True,
    neighbours: int = 1,
    max_searches: int = 100,
    descent_fraction: float = 0.5,
    step: float = CONNECTION_STEP,
    batch_size: int | None = None,
    executor: Any = None,
    progress: bool = True,
    tau_good: float = DEFAULT_TAU_GOOD,
    eigenvalue_tolerance: float = DEFAULT_EIGENVALUE_TOLERANCE,
    orbit_tolerance: float = 1e-6,
    **solver_options: Any,
) -> LandscapeGraph:
    """Minima, saddles and the saddles that join minima, for one setting, stored in a database.

    Parameters
    ----------
    setting : Setting
        A setting with a loss (not the ``ncl_predictor`` field, which has none to climb).
    database : str, Path, LandscapeDatabase or None
        The SQLite file to add to (created if absent), an open database, or None for one in
        memory (lost at return). A file is resumed: starts already done, pairs already
        searched and saddles already connected are not done again.
    n_restarts, seed, init
        Newton starts of the explore phase, as for ``enumerate_critical_points``; start k of
        (seed, init) is the same in every call.
    minima : {"explore", "restarts"}
        Where the minima come from. "explore" (the default): the Newton starts above and the
        minima-first search :func:`~critpoints.landscape.explore.explore_minima` (seeded with
        ``seed``), whose minima and flat sets are stored as points from another search.
        Random restarts miss minima with small basins (claim 3 at d = 6: 9 of the 11 minima
        from 1000 starts); the minima-first search hops between minima and finds them, so the
        graph has every minimum to connect, for a few seconds more at d = 6. Restarts still
        give basin counts and most index-1 saddles directly; ``n_restarts=0`` leaves the
        minima to the search. A search already finished by an earlier run of the setting with
        the same seed and options is not repeated. "restarts": the Newton starts only.
    explore_options : dict, optional
        Keywords of ``explore_minima`` (``initial_starts``, ``moves_per_minimum``, ``patience``,
        ``max_rounds``, ``max_runs``, ``max_seconds``); only with ``minima="explore"``.
    points : array (K, n), optional
        Stationary points (or points near them) from another search, added without counts.
    connect : bool
        Connect the index-1 saddles (descents on both sides).
    search : bool
        Search for saddles between pairs of basins (see the module docstring; only with
        ``connect``, since the searches connect the saddles they find).
    neighbours : int
        Each basin is searched with this many nearest basins (by the distance to the nearest
        symmetry image), besides the searches that join separate groups.
    max_searches : int
        Pairs searched in this call at most.
    descent_fraction : float
        Fraction of the starts that descend L (saddle-free Newton) before Newton.
    step : float
        Step off a saddle along its unstable direction, relative to max(1, ||s||).
    batch_size : int, optional
        Starts solved and committed together (the most an interruption loses); default
        8 per CPU in this process, 32 per CPU in a pool.
    executor, progress
        As for ``enumerate_critical_points``. None: this process, until a batch timed here
        shows that the starts left take longer than twice the start-up of a pool of local
        processes, which then runs them (critpoints.solver.batch_runner).
    tau_good, eigenvalue_tolerance, orbit_tolerance
        Labels, classification and orbit matching, as for ``enumerate_critical_points``.
        Points stored by earlier runs keep their labels.
    **solver_options
        Fields of :class:`critpoints.solver.newton.NewtonOptions`.

    Returns
    -------
    LandscapeGraph
        Everything the database holds for the setting after the call.

    Raises
    ------
    ValueError
        For the ``ncl_predictor`` field, bad options, or a database file that is not a landscape
        database of this schema version.
    KeyboardInterrupt, concurrent.futures.process.BrokenProcessPool
        Re-raised after marking the run ``interrupted``; the database keeps what was committed.
    """
    if not isinstance(setting, Setting):
        raise TypeError(f"setting must be a critpoints.Setting, got {type(setting).__name__}")
    if setting.loss.is_field:
        raise ValueError(
            f"loss {setting.loss} is a stop-gradient field, not the gradient of a loss: its zeros have no "
            "barriers between them, so there is no landscape graph to map (enumerate_critical_points lists them)"
        )
    n_restarts = check.integer("n_restarts", n_restarts, minimum=0)
    seed = check.integer("seed", seed, minimum=0)
    neighbours = check.integer("neighbours", neighbours, minimum=0)
    max_searches = check.integer("max_searches", max_searches, minimum=0)
    descent_fraction = check.real("descent_fraction", descent_fraction, low=0.0, high=1.0)
    step = check.real("step", step, low=0.0, high=1.0, low_open=True)
    batch_size = None if batch_size is None else check.integer("batch_size", batch_size, minimum=1)
    options = _newton_options(solver_options)
    minima = check.choice("minima", minima, MINIMA_SOURCES)
    explore_options = _explore_options(minima, explore_options)
    extra = None if points is None else np.atleast_2d(check.finite_array("points", points, ndim=None))
    parameters = {
        "n_restarts": n_restarts,
        "seed": seed,
        "init": _init_key(init),
        "points": 0 if extra is None else len(extra),
        "minima": minima,
        "explore": explore_options,
        "connect": connect,
        "search": search,
        "neighbours": neighbours,
        "max_searches": max_searches,
        "descent_fraction": descent_fraction,
        "step": step,
        "tau_good": tau_good,
        "eigenvalue_tolerance": eigenvalue_tolerance,
        "orbit_tolerance": orbit_tolerance,
        "solver_options": solver_options,
    }
    owned = not isinstance(database, LandscapeDatabase)
    store = database if isinstance(database, LandscapeDatabase) else LandscapeDatabase(database)
    try:
        with store.transaction():
            setting_id = store.add_setting(setting)
            run_id = store.begin_run(setting_id, parameters)
        notes: list[str] = []
        mapper = _Mapper(
            store,
            setting,
            setting_id,
            run_id,
            executor=executor,
            options=options,
            step=step,
            tau_good=tau_good,
            eigenvalue_tolerance=eigenvalue_tolerance,
            orbit_tolerance=orbit_tolerance,
            progress=progress,
        )
        try:
            mapper.explore(n_restarts, seed, init, descent_fraction, batch_size)
            if minima == "explore":
                notes += mapper.search_minima(seed, explore_options)
            if extra is not None and len(extra):
                mapper.add_points(extra)
            if connect:
                mapper.connect()
            if connect and search:
                notes += mapper.search(neighbours, max_searches)
        except BaseException:
            mapper.close(failed=True)
            with store.transaction():
                store.end_run(run_id, "interrupted")
            raise
        mapper.close(failed=False)
        with store.transaction():
            store.end_run(run_id, "finished")
        return LandscapeGraph.from_database(store, setting, tuple(notes), mapper.loss.layout)
    finally:
        if owned:
            store.close()
