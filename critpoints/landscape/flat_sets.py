"""Non-isolated critical sets: tested as manifolds and reported as one entry each.

At a stationary point the Hessian restricted to the complement of the symmetry generators
(critpoints.landscape.classification) may still have zero eigenvalues. Then the point may lie
on a set of critical points of positive dimension — e.g. the flat global-minimum set of
``ncl_cosine`` with a symrelu encoder (derivations/CLAIMS.md, claim 2: a union of
full-dimensional strata, one per activation pattern of the thresholded columns, glued along
lower-dimensional faces), or InfoNCE at M = I with one-hot latents. Listing its points as if
they were isolated orbits lists a new "orbit" for almost every start, and makes a Chao1
estimate over them meaningless.

**Local test.** :func:`continue_flat_directions` tests the set near a point x: for each extra
null direction v of the Hessian (unit, tangent) the point y = R_x(h v) is corrected by Newton
(critpoints.solver.newton), for h = +-CONTINUATION_STEP, then +-CONTINUATION_STEP / 10 (a
point on the edge of a set continues only one way, or not far). The direction *continues* when
Newton converges at y' with the loss unchanged (to ``LOSS_TOLERANCE``) and y' stays at distance
>= h/2 from x (it did not fall back onto x, as it does at a degenerate but isolated point). The
number of directions that continue is the set's local dimension (beyond the symmetry orbits).

**Merging** (derivations/MODEL.md §6, "Flat critical sets"). Two points a, b at one loss
level c lie on one connected critical set when :func:`critical_path` finds a path of critical
points at level c from a to an image g b of b under the symmetry group near a
(critpoints.landscape.symmetry_images): a chain of nodes, consecutive nodes at most ``spacing``
apart (default PATH_SPACING max(1, |a|)), each critical at level c. The path is the geodesic
from a to g b, relaxed:

* sets of minima (index 0): as a *string* (E, Ren and Vanden-Eijnden, J. Chem. Phys. 126,
  164103, 2007): the interior nodes take gradient steps on L (Barzilai-Borwein lengths, a step
  taken only where it lowers L; the ends fixed) and are redistributed at equal arc length every
  REDISTRIBUTE_EVERY steps, so the string slides onto the set and bends from one stratum of it
  into the next; the few nodes left just above the level in a badly conditioned valley are
  finished by saddle-free Newton descent. The string gives up when a node falls below the level
  (the path enters lower ground, out of which steps that only descend do not climb) or when its
  highest node stops coming down (a node on a plateau above the level, where the gradient
  vanishes);
* other critical sets (index >= 1): each node is corrected by Newton (which converges to
  critical points of any index), and a link longer than ``spacing`` between two corrected nodes
  is bisected (its geodesic midpoint corrected), up to MAX_PATH_NODES nodes.

A node counts as critical at level c when |L - c| <= LOSS_TOLERANCE max(1, |c|) and either the
gradient is at the solver's tolerance, or — for sets of minima, where a node may sit on a kink
of the piecewise-polynomial loss and its one-sided gradient need not vanish — no step along
-grad L of the lengths PROBE_STEPS lowers L below c by more than that tolerance (the node is a
numerical local minimiser along its steepest descent direction). Soundness: every node is
critical at level c, so the path is a chain in the critical set at level c with links shorter
than ``spacing``; two components of that set farther apart than ``spacing`` are never chained —
``spacing`` is the resolution of the merge. The straight segment between the points is not the
test: on a curved or stratified set it leaves the set, and between two minima of equal value
it samples the barrier only at its points.

**Entries.** Each new point is tested against every entry known at its level (its first point,
to a few images of the new point, then a few of its latest points:
:meth:`FlatSetPaths.joins_group`); a point joined to several entries merges them, so a run
costs a few path tests per point and entry, not one per pair of runs. Entries of minima
(started by a point of index 0) are tested with the string, and any point at their level may
join them (a degenerate point whose negative eigenvalue is a rounding error, or one on the
set's boundary: the string does not descend from it); entries of index k >= 1 are joined only
by points of index k. A point that joins no entry starts one if the local test finds a manifold
there; an entry reached by a path from another point is a set of positive dimension even when
its first point failed the local test (a flat direction that Newton cannot follow, e.g. on a
kink). Points of one entry may lie on strata of different dimensions: the entry reports the
largest dimension that the local test finds at its points (tested in decreasing order of
nullity, an upper bound of the dimension, until no point can raise it), the extreme transverse
eigenvalues over its points, and its kind: "critical manifold" (index >= 1), "flat minimum set"
(index 0, some point with transverse eigenvalues), "flat region" (the Hessian zero on the whole
tangent space at every point). Runs that ended on it are counted by the label of the point each
reached.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from critpoints.landscape.classification import DEFAULT_EIGENVALUE_TOLERANCE, symmetry_complement
from critpoints.landscape.connections import geodesic
from critpoints.landscape.critical_manifold import CriticalManifold
from critpoints.landscape.orbits import normalise_scalings
from critpoints.landscape.result import CriticalPoint
from critpoints.landscape.symmetry_images import near_images
from critpoints.landscape.system import LossSystem
from critpoints.losses.batched import BatchedLoss, BatchedSpheres
from critpoints.losses.population_loss import PopulationLoss
from critpoints.solver.newton import NewtonOptions, StationarySystem, Status, newton_stationary

__all__ = [
    "FlatSetPaths",
    "FlatTest",
    "batched_evaluator",
    "continue_flat_directions",
    "critical_path",
    "merge_flat_sets",
    "split_flat_sets",
]

#: Continuation step h, relative to max(1, ||theta||).
CONTINUATION_STEP = 1e-2

#: Null directions tested per point (a random orthonormal selection beyond this many).
MAX_DIRECTIONS = 24

#: Longest link of a path between two points of one set, relative to max(1, ||theta||): the
#: resolution of the merge (components of a critical set farther apart are never joined).
PATH_SPACING = 0.05

#: Most nodes of a path (ends included).
MAX_PATH_NODES = 96

#: A new point tries paths to a known group of minima from the group's first point to this many
#: of its own nearest symmetry images (to a group of index >= 1, to one), then from this many of
#: the group's latest points.
IMAGE_TRIES = 6
MEMBER_TRIES = 2

#: Gradient steps of the string, and how often it is redistributed at equal arc length.
STRING_ITERATIONS = 600
REDISTRIBUTE_EVERY = 10

#: The string gives up when its highest node has not come down by this factor in this many steps.
PROGRESS_EVERY = 100
PROGRESS_FACTOR = 0.5

#: Nodes left above the level by the string are finished by Newton when they are at most this
#: many and within this window of the level (relative to max(1, |L|)); otherwise the path fails.
MAX_POLISHED = 8
POLISH_WINDOW = 1e-4

#: Lengths of the steps along -grad L (relative to max(1, ||theta||)) that must not lower L
#: below the level at a node of a set of minima.
PROBE_STEPS = (1e-3, 1e-5, 1e-7)

#: The loss is constant on the set to this tolerance, relative to max(1, |L|).
LOSS_TOLERANCE = 1e-9

_CORRECTION = NewtonOptions(max_iterations=30)
_DESCENT = NewtonOptions(max_iterations=30, descent_iterations=50)

#: Values and Riemannian gradients of the rows of an (R, n) array.
Evaluator = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class FlatTest:
    """Outcome of :func:`continue_flat_directions` at one point.

    Attributes
    ----------
    nullity : int
        Extra null directions of the Hessian (beyond the symmetry generators).
    continued : int
        Directions tested along which the critical set continues.
    tested : int
        Directions tested (min(nullity, MAX_DIRECTIONS)).
    index : int
        Negative transverse eigenvalues.
    smallest, largest : float
        Extreme transverse eigenvalues (nan if none).
    """

    nullity: int
    continued: int
    tested: int
    index: int
    smallest: float
    largest: float

    @property
    def is_manifold(self) -> bool:
        """Every tested null direction continues."""
        return self.nullity > 0 and self.continued == self.tested

    @property
    def kind(self) -> str:
        """The kind of the set: "flat region", "flat minimum set" or "critical manifold".

        "flat region" when there is no transverse direction (the Hessian is zero on the whole
        tangent space beyond the symmetries: whether the set holds minima depends on its
        boundary, which no second-order test sees); "flat minimum set" when the transverse
        spectrum is positive; "critical manifold" otherwise.
        """
        if np.isnan(self.smallest):
            return "flat region"
        return "flat minimum set" if self.index == 0 else "critical manifold"


def _null_directions(loss: PopulationLoss, theta: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit ambient tangent vectors spanning the extra null space, and the transverse eigenvalues."""
    basis = loss.manifold.tangent_basis(theta)
    hessian = loss.hessian_in_basis(theta)
    complement, _ = symmetry_complement(
        basis, loss.symmetry_generators(theta), scale=max(1.0, float(np.linalg.norm(theta)))
    )
    full = np.abs(np.linalg.eigvalsh(0.5 * (hessian + hessian.T))).max(initial=0.0)
    reduced = complement.T @ hessian @ complement
    values, vectors = np.linalg.eigh(0.5 * (reduced + reduced.T))
    null = np.abs(values) <= tolerance * max(1.0, float(full))
    return basis @ complement @ vectors[:, null], values[~null]


def _corrected(system: StationarySystem, theta: np.ndarray, options: NewtonOptions = _CORRECTION):
    """Newton from theta: the converged point, or None."""
    result = newton_stationary(system, theta, options)
    return result.theta if result.status == Status.CONVERGED else None


def continue_flat_directions(
    loss: PopulationLoss,
    theta: np.ndarray,
    *,
    eigenvalue_tolerance: float = DEFAULT_EIGENVALUE_TOLERANCE,
    rng: np.random.Generator | None = None,
) -> FlatTest:
    """Whether the critical set through ``theta`` continues along each extra null direction.

    Parameters
    ----------
    loss : PopulationLoss
        A loss with a gradient (not the predictor field).
    theta : ndarray
        A stationary point.
    eigenvalue_tolerance : float
        As in critpoints.landscape.classification.
    rng : numpy Generator, optional
        Chooses the directions when there are more than ``MAX_DIRECTIONS`` (default seed 0).

    Returns
    -------
    FlatTest
    """
    if loss.is_field:
        raise ValueError("loss must be a gradient system; the predictor field has no loss to hold constant")
    system = LossSystem(loss)
    directions, transverse = _null_directions(loss, theta, eigenvalue_tolerance)
    nullity = directions.shape[1]
    if nullity > MAX_DIRECTIONS:
        rotation, _ = np.linalg.qr((rng or np.random.default_rng(0)).standard_normal((nullity, MAX_DIRECTIONS)))
        directions = directions @ rotation
    value = loss.value(theta)
    step = CONTINUATION_STEP * max(1.0, float(np.linalg.norm(theta)))
    continued = 0
    for direction in directions.T:
        for length in (step, -step, step / 10, -step / 10):  # a point on the edge of a set continues one way
            moved = _corrected(system, loss.manifold.retract(theta, length * direction))
            if (
                moved is not None
                and abs(loss.value(moved) - value) <= LOSS_TOLERANCE * max(1.0, abs(value))
                and np.linalg.norm(moved - theta) >= abs(length) / 2
            ):
                continued += 1
                break
    return FlatTest(
        nullity=nullity,
        continued=continued,
        tested=directions.shape[1],
        index=int(np.sum(transverse < 0)),
        smallest=float(transverse.min()) if transverse.size else float("nan"),
        largest=float(transverse.max()) if transverse.size else float("nan"),
    )


# ---------------------------------------------------------------------------- paths inside a critical set


def _looping_evaluator(system: StationarySystem) -> Evaluator:
    def evaluate(thetas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.array([system.value(theta) for theta in thetas]),
            np.array([system.residual(theta) for theta in thetas]).reshape(thetas.shape),
        )

    return evaluate


def batched_evaluator(loss: PopulationLoss) -> Evaluator | None:
    """Values and Riemannian gradients of many points at once (critpoints.losses.batched), for
    a loss over a finite measure; None for the closed-form losses and the predictor field."""
    if loss.is_field or loss.measure is None:
        return None
    batched, spheres = BatchedLoss(loss), BatchedSpheres(loss.manifold)

    def evaluate(thetas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        result = batched.evaluate(thetas)
        return result.value, spheres.tangent(thetas, result.full)

    return evaluate


def _project(system: StationarySystem, points: np.ndarray) -> np.ndarray:
    return BatchedSpheres(system.manifold).project(points)


def _links(nodes: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.diff(nodes, axis=0), axis=1)


def _redistributed(system: StationarySystem, nodes: np.ndarray, count: int) -> np.ndarray:
    """``count`` points at equal arc length along the polygon through ``nodes`` (ends kept),
    projected onto the manifold."""
    lengths = _links(nodes)
    arc = np.concatenate([[0.0], np.cumsum(lengths)])
    targets = np.linspace(0.0, arc[-1], count)
    link = np.clip(np.searchsorted(arc, targets, side="right") - 1, 0, len(lengths) - 1)
    fraction = (targets - arc[link]) / np.where(lengths[link] > 0, lengths[link], 1.0)
    points = _project(system, nodes[link] + fraction[:, None] * (nodes[link + 1] - nodes[link]))
    points[0], points[-1] = nodes[0], nodes[-1]
    return points


def _node_count(length: float, spacing: float) -> int:
    """Nodes of a string of this length: links of about half the spacing, at most MAX_PATH_NODES."""
    return int(min(MAX_PATH_NODES, max(3, np.ceil(2.0 * length / spacing) + 1)))


def _relaxed_string(
    system: StationarySystem, start: np.ndarray, end: np.ndarray, level: float, spacing: float, evaluate: Evaluator
) -> np.ndarray:
    """The geodesic from start to end relaxed as a string on L (see the module docstring).

    Each interior node steps along -grad L with its own Barzilai-Borwein step length
    s.s / s.y (s, y its last move and change of gradient; valleys of these losses are badly
    conditioned, where a fixed step crawls), at most half the spacing long; a step that does not
    lower L is not taken, and the node's step length is halved.
    """
    tolerance = LOSS_TOLERANCE * max(1.0, abs(level))
    nodes = geodesic(system.manifold, start, end, _node_count(float(np.linalg.norm(end - start)), spacing))
    steps = np.full(len(nodes), 0.1)
    longest = spacing / 2  # the longest gradient step a node takes
    previous: tuple[np.ndarray, np.ndarray] | None = None
    checked = np.inf  # the highest node at the last progress check
    for iteration in range(STRING_ITERATIONS):
        values, gradients = evaluate(nodes)
        if np.all(np.abs(values - level) <= tolerance) and _links(nodes).max() <= spacing:
            break
        if values.min() < level - tolerance:
            break  # the path dips below the level: the steps, which only descend, cannot bring it back
        if iteration % PROGRESS_EVERY == 0:
            highest = float(values.max() - level)
            if highest > PROGRESS_FACTOR * checked:
                break  # stuck: e.g. a node on a plateau above the level, where the gradient vanishes
            checked = highest
        gradients[0] = gradients[-1] = 0.0
        if previous is not None:
            moved, change = nodes - previous[0], gradients - previous[1]
            curvature, length = np.sum(moved * change, axis=1), np.sum(moved * moved, axis=1)
            usable = (curvature > 0.0) & (length > 0.0)
            steps = np.where(usable, np.clip(length / np.where(usable, curvature, 1.0), 1e-6, 1e4), steps)
        previous = (nodes, gradients)
        moves = steps[:, None] * gradients
        norms = np.linalg.norm(moves, axis=1)
        moves *= np.minimum(1.0, longest / np.maximum(norms, 1e-300))[:, None]
        trials = _project(system, nodes - moves)
        better = evaluate(trials)[0] < values
        nodes = np.where(better[:, None], trials, nodes)
        steps = np.where(better, steps, 0.5 * steps)
        if iteration % REDISTRIBUTE_EVERY == REDISTRIBUTE_EVERY - 1:
            count = max(len(nodes), _node_count(float(_links(nodes).sum()), spacing))
            if count != len(nodes):
                steps = np.interp(np.linspace(0.0, 1.0, count), np.linspace(0.0, 1.0, len(nodes)), steps)
            nodes = _redistributed(system, nodes, count)
            previous = None
    values, _ = evaluate(nodes)
    off = np.flatnonzero(np.abs(values - level) > tolerance)
    if len(off) <= MAX_POLISHED and np.all(np.abs(values[off] - level) <= POLISH_WINDOW * max(1.0, abs(level))):
        for index in off:  # nodes close to the level, in a valley too badly conditioned for the steps
            nodes[index] = newton_stationary(system, nodes[index], _DESCENT).theta
    return nodes


def _local_minimisers(system: StationarySystem, nodes: np.ndarray, level: float, evaluate: Evaluator) -> bool:
    """Whether every node is at the level and no probe step along -grad L lowers it (module docstring)."""
    tolerance = LOSS_TOLERANCE * max(1.0, abs(level))
    values, gradients = evaluate(nodes)
    if np.any(np.abs(values - level) > tolerance):
        return False
    norms = np.linalg.norm(gradients, axis=1)
    moving = norms > _CORRECTION.tol * max(1.0, abs(level))
    if not moving.any():
        return True
    directions = gradients[moving] / norms[moving, None]
    for length in PROBE_STEPS:
        probes = np.array(
            [
                system.manifold.retract(node, -length * max(1.0, float(np.linalg.norm(node))) * direction)
                for node, direction in zip(nodes[moving], directions)
            ]
        )
        if np.any(evaluate(probes)[0] < level - tolerance):
            return False
    return True


def _newton_path(
    system: StationarySystem, start: np.ndarray, end: np.ndarray, level: float, spacing: float
) -> np.ndarray | None:
    """Geodesic nodes corrected by Newton, gaps bisected until every link is at most ``spacing``."""
    tolerance = LOSS_TOLERANCE * max(1.0, abs(level))

    def corrected(theta: np.ndarray) -> np.ndarray | None:
        result = newton_stationary(system, theta, _CORRECTION)
        if result.status != Status.CONVERGED or abs(result.value - level) > tolerance:
            return None
        return result.theta

    count = _node_count(float(np.linalg.norm(end - start)), spacing)
    nodes = [start]
    for theta in geodesic(system.manifold, start, end, count)[1:-1]:
        moved = corrected(theta)
        if moved is None:
            return None
        nodes.append(moved)
    nodes.append(end)
    link = 0
    while link < len(nodes) - 1:
        if np.linalg.norm(nodes[link + 1] - nodes[link]) <= spacing:
            link += 1
            continue
        if len(nodes) >= MAX_PATH_NODES:
            return None
        middle = corrected(geodesic(system.manifold, nodes[link], nodes[link + 1], 3)[1])
        if middle is None:
            return None
        nodes.insert(link + 1, middle)
    return np.array(nodes)


def critical_path(
    system: StationarySystem,
    start: np.ndarray,
    end: np.ndarray,
    *,
    minimum: bool,
    spacing: float | None = None,
    evaluate: Evaluator | None = None,
) -> np.ndarray | None:
    """A path of critical points at the level of ``start`` from ``start`` to ``end``, or None.

    Parameters
    ----------
    system : StationarySystem
        A gradient system (critpoints.solver.newton); its residual is the Riemannian gradient.
    start, end : ndarray, shape (n,)
        Critical points (``end`` already moved by the caller to the symmetry image it wants).
    minimum : bool
        Whether the set is a set of minima (transverse index 0): the path is then a string
        relaxed by gradient descent; otherwise geodesic nodes corrected by Newton.
    spacing : float, optional
        Longest link between consecutive nodes (default ``PATH_SPACING * max(1, |start|)``).
    evaluate : callable, optional
        ``evaluate(points) -> (values, riemannian_gradients)`` for an (R, n) array (a batched
        evaluator, :func:`batched_evaluator`); default one point at a time through ``system``.

    Returns
    -------
    ndarray (K, n) or None
        The nodes, start and end included, each critical at the level (module docstring), with
        links of at most ``spacing``; None when no such path was found.
    """
    if not system.is_gradient:
        raise ValueError("system must be a gradient system; a vector field has no level set to stay on")
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    evaluate = evaluate or _looping_evaluator(system)
    spacing = PATH_SPACING * max(1.0, float(np.linalg.norm(start))) if spacing is None else float(spacing)
    (level, end_value), _ = evaluate(np.array([start, end]))
    if abs(end_value - level) > LOSS_TOLERANCE * max(1.0, abs(level)):
        return None
    if not minimum:
        return _newton_path(system, start, end, level, spacing)
    nodes = _relaxed_string(system, start, end, level, spacing, evaluate)
    if _links(nodes).max() > spacing or not _local_minimisers(system, nodes, level, evaluate):
        return None
    return nodes


class FlatSetPaths:
    """Path tests between points of one loss (the system and the batched evaluator built once).

    Parameters
    ----------
    loss : PopulationLoss
        A gradient loss.
    """

    def __init__(self, loss: PopulationLoss) -> None:
        self.loss = loss
        self.system = LossSystem(loss)
        self.evaluate = batched_evaluator(loss)

    def joined(self, reference: np.ndarray, theta: np.ndarray, minimum: bool, images: int = 1) -> bool:
        """Whether :func:`critical_path` joins ``reference`` to one of the ``images`` images of
        ``theta`` nearest to it (critpoints.landscape.symmetry_images), nearest first."""
        symmetries = self.loss.symmetries
        start = normalise_scalings(symmetries, reference)
        candidates = near_images(symmetries, start, normalise_scalings(symmetries, theta))[:images]
        return any(
            critical_path(self.system, start, image, minimum=minimum, evaluate=self.evaluate) is not None
            for _, image in candidates
        )

    def joins_group(self, members: list[np.ndarray], theta: np.ndarray, minimum: bool) -> bool:
        """Whether ``theta`` is joined to a group of points of one set.

        Paths from the group's first point to the nearest image of ``theta`` (for a set of
        minima, to its ``IMAGE_TRIES`` nearest images), then from the group's latest points to
        the nearest image (``MEMBER_TRIES`` of them): a string can fail where it meets a plateau
        above the level, on which gradient steps do not move, and another path may pass beside
        it. The first path found ends the test.
        """
        if self.joined(members[0], theta, minimum, images=IMAGE_TRIES if minimum else 1):
            return True
        return any(self.joined(member, theta, minimum) for member in members[1:][::-1][:MEMBER_TRIES])


# ---------------------------------------------------------------------------- entries of a result


def merge_flat_sets(loss: PopulationLoss, thetas: list[np.ndarray], indices: list[int]) -> list[list[int]]:
    """Groups of indices of points on one connected critical set (see the module docstring).

    Points are tested in the order given, each against every group known so far at its level
    (:meth:`FlatSetPaths.joins_group`); groups that one point joins are merged. A group whose first
    point has index 0 is a set of minima, tested with the string, which any point at its level
    may join (a degenerate point whose smallest eigenvalue is a rounding error below zero, or a
    point on the boundary of the set, where the string does not descend below the level); a
    group of index k >= 1 is joined only by points of index k, along Newton-corrected paths.

    Parameters
    ----------
    loss : PopulationLoss
    thetas : list of ndarray
        Stationary points, in the order they are to be tested (points of index 0 first, so
        that the groups of minima are started by minima).
    indices : list of int
        Their transverse indices.

    Returns
    -------
    list of list of int
        The groups, each in ascending order (its first index is the point that started it).
    """
    paths = FlatSetPaths(loss)
    values = [loss.value(theta) for theta in thetas]
    groups: list[list[int]] = []
    for b, theta in enumerate(thetas):
        joined = []
        for group in groups:
            a = group[0]
            level = abs(values[a] - values[b]) <= LOSS_TOLERANCE * max(1.0, abs(values[a]))
            if level and indices[a] in (0, indices[b]):
                if paths.joins_group([thetas[c] for c in group], theta, minimum=indices[a] == 0):
                    joined.append(group)
        merged = sorted([i for group in joined for i in group] + [b])
        groups = [group for group in groups if all(group is not other for other in joined)] + [merged]
    return sorted(groups)


def _label_runs(points: list[CriticalPoint], members: list[int]) -> Counter:
    runs: Counter = Counter()
    for index in members:
        runs[points[index].label] += points[index].count
    return runs


def _entry(
    loss: PopulationLoss, thetas: list[np.ndarray], points: list[CriticalPoint], members: list[int], tolerance: float
) -> CriticalManifold | None:
    """The entry of one group, or None for a single point that the local test finds isolated.

    The local test runs on the members in decreasing order of nullity (an upper bound of the
    dimension) while one of them could raise the dimension found so far.
    """
    order = sorted(members, key=lambda i: (-points[i].nullity, -points[i].count))
    tests: dict[int, FlatTest] = {}
    dimension = 0
    for i in order:
        if points[i].nullity <= dimension:
            break
        tests[i] = continue_flat_directions(loss, thetas[i], eigenvalue_tolerance=tolerance)
        dimension = max(dimension, tests[i].continued)
    if len(members) == 1 and not tests[members[0]].is_manifold:
        return None
    spectra = [_null_directions(loss, thetas[i], tolerance)[1] for i in members]
    transverse = np.concatenate(spectra)
    index = points[members[0]].index  # the point that started the group: index 0 for a set of minima
    kind = "critical manifold" if index else "flat minimum set" if transverse.size else "flat region"
    widest = max(tests, key=lambda i: (tests[i].continued, points[i].count))
    representative = points[widest]
    return CriticalManifold(
        kind=kind,
        dimension=dimension,
        loss=representative.loss,
        index=index,
        smallest_transverse=float(transverse.min()) if transverse.size else float("nan"),
        largest_transverse=float(transverse.max()) if transverse.size else float("nan"),
        label=representative.label,
        alignment=representative.alignment,
        labels=dict(_label_runs(points, members)),
        count=sum(points[i].count for i in members),
        points=len(members),
        params=representative.params,
    )


def split_flat_sets(
    loss: PopulationLoss,
    thetas: list[np.ndarray],
    points: list[CriticalPoint],
    *,
    eigenvalue_tolerance: float = DEFAULT_EIGENVALUE_TOLERANCE,
) -> tuple[list[CriticalPoint], list[CriticalManifold]]:
    """Separate the points on critical sets of positive dimension from the isolated ones.

    Every ``degenerate`` point (extra null directions) of a gradient loss is a candidate; the
    candidates are merged by :func:`merge_flat_sets` (index 0 first, then most runs first) into
    :class:`CriticalManifold` entries (counts added up; the representative is a point of the
    largest dimension, reached by most runs). A candidate alone in its group stays an isolated
    point unless :func:`continue_flat_directions` finds a manifold there. Returns the isolated
    points (in order) and the entries, lowest loss first.
    """
    if loss.is_field:
        return list(points), []
    candidates = sorted(
        (i for i, point in enumerate(points) if point.nullity), key=lambda i: (points[i].index > 0, -points[i].count)
    )
    groups = merge_flat_sets(loss, [thetas[i] for i in candidates], [points[i].index for i in candidates])
    manifolds = []
    on_sets: set[int] = set()
    for group in groups:
        members = [candidates[i] for i in group]
        entry = _entry(loss, thetas, points, members, eigenvalue_tolerance)
        if entry is not None:
            manifolds.append(entry)
            on_sets.update(members)
    isolated = [point for index, point in enumerate(points) if index not in on_sets]
    return isolated, sorted(manifolds, key=lambda manifold: manifold.loss)
