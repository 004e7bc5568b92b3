"""Non-isolated critical sets: tested as manifolds and reported as one entry each.

At a stationary point the Hessian restricted to the complement of the symmetry generators
(critpoints.landscape.classification) may still have zero eigenvalues. Then the point may lie
on a set of critical points of positive dimension — e.g. the flat global-minimum set of
``ncl_cosine`` with a symrelu encoder (derivations/CLAIMS.md, claim 2: the global minima
contain an open set), or InfoNCE at M = I with one-hot latents. Listing its points as if they
were isolated orbits lists a new "orbit" for almost every start, and makes a Chao1 estimate
over them meaningless.

:func:`continue_flat_directions` tests the set near a point x: for each extra null direction
v of the Hessian (unit, tangent) the point y = R_x(h v) is corrected by Newton (plain Newton
steps, critpoints.solver.newton), for h = +-CONTINUATION_STEP, then +-CONTINUATION_STEP / 10
(a point on the edge of a set continues only one way, or not far). The direction *continues*
when Newton converges at y' with
the loss unchanged (to ``loss_tolerance``) and y' stays at distance >= h/2 from x (it did not
fall back onto x, as it does at a degenerate but isolated point). When every direction
continues, the critical set is locally a manifold of that dimension (beyond the symmetry
orbits); its transverse spectrum (the non-zero eigenvalues) decides its kind: "flat minimum
set" when all are positive, "critical manifold" otherwise, and "flat region" when there is
none (an open set of critical points, such as a dead region; whether it holds minima depends on
its boundary).

:func:`merge_flat_sets` merges points on one connected set: same loss and transverse index, and
joined by a path of critical points from one point to the image of the other nearest to it
under the symmetry group (:func:`critpoints.landscape.symmetry_images.nearest_image`): short
steps towards it inside the set (along the Hessian's null space), each corrected by Newton,
stay critical at the same loss and never jump (:func:`connected_by_critical_path`).
Merging is transitive (a union-find over the pairs tested). The merged points may lie on
strata of different dimensions; the entry reports the largest, and its kind, at a
representative of that dimension.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from critpoints.landscape.classification import DEFAULT_EIGENVALUE_TOLERANCE, symmetry_complement
from critpoints.landscape.critical_manifold import CriticalManifold
from critpoints.landscape.orbits import normalise_scalings
from critpoints.landscape.result import CriticalPoint
from critpoints.landscape.symmetry_images import nearest_image
from critpoints.landscape.system import LossSystem
from critpoints.losses.population_loss import PopulationLoss
from critpoints.solver.newton import NewtonOptions, newton_stationary

#: Continuation step h, relative to max(1, ||theta||).
CONTINUATION_STEP = 1e-2

#: Null directions tested per point (a random orthonormal selection beyond this many).
MAX_DIRECTIONS = 24

#: Step of the walk between two points of one set, relative to max(1, ||theta||), and the most steps.
PATH_STEP = 0.1
MAX_PATH_STEPS = 64

#: Points of a known component a new point tries a path from.
MAX_PATH_TRIES = 3

#: The loss is constant on the set to this tolerance, relative to max(1, |L|).
LOSS_TOLERANCE = 1e-9

_CORRECTION = NewtonOptions(max_iterations=30)


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


def _corrected(system: LossSystem, theta: np.ndarray) -> np.ndarray | None:
    result = newton_stationary(system, theta, _CORRECTION)
    return result.theta if result.converged else None


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


def _set_tangent(loss: PopulationLoss, theta: np.ndarray, tolerance: float) -> np.ndarray:
    """Orthonormal ambient tangent vectors of the Hessian's null space (the set's tangent space,
    symmetry directions included)."""
    basis = loss.manifold.tangent_basis(theta)
    hessian = loss.hessian_in_basis(theta)
    values, vectors = np.linalg.eigh(0.5 * (hessian + hessian.T))
    scale = max(1.0, float(np.abs(values).max(initial=0.0)))
    return basis @ vectors[:, np.abs(values) <= tolerance * scale]


def connected_by_critical_path(
    loss: PopulationLoss,
    start: np.ndarray,
    end: np.ndarray,
    eigenvalue_tolerance: float = DEFAULT_EIGENVALUE_TOLERANCE,
) -> bool:
    """Whether a path of critical points at the loss of ``start`` leads from ``start`` to ``end``.

    A walk inside the critical set: from the current point x, a step of length
    h = min(PATH_STEP max(1, |x|), |end - x|) along the part of end - x tangent to the set (the
    Hessian's null space at x), retracted and corrected by Newton. The path holds when every
    corrected point is critical at the same loss, each correction moves less than half the step
    (the walk follows the set and does not jump to another one), every step brings the walk
    closer to ``end`` by a tenth of the step, and ``end`` is reached within ``MAX_PATH_STEPS``.
    """
    system = LossSystem(loss)
    value = loss.value(start)
    tolerance = LOSS_TOLERANCE * max(1.0, abs(value))
    if abs(loss.value(end) - value) > tolerance:
        return False
    reach = 1e-6 * max(1.0, float(np.linalg.norm(end)))
    current = start
    for _ in range(MAX_PATH_STEPS):
        gap = end - current
        distance = float(np.linalg.norm(gap))
        if distance <= reach:
            return True
        step = min(PATH_STEP * max(1.0, float(np.linalg.norm(current))), distance)
        if step == distance:
            target = end
        else:
            tangent = _set_tangent(loss, current, eigenvalue_tolerance)
            direction = tangent @ (tangent.T @ gap)
            if np.linalg.norm(direction) <= 1e-12:
                return False
            target = loss.manifold.retract(current, step * direction / np.linalg.norm(direction))
        moved = _corrected(system, target)
        if moved is None or abs(loss.value(moved) - value) > tolerance:
            return False
        if np.linalg.norm(moved - target) > 0.5 * step + reach:
            return False  # the correction left the set's neighbourhood: no path along it
        if np.linalg.norm(end - moved) > distance - 0.1 * step:
            return False  # no progress towards the end inside the set
        current = moved
    return False


def merge_flat_sets(loss: PopulationLoss, thetas: list[np.ndarray], tests: list[FlatTest]) -> list[list[int]]:
    """Groups of indices of points on one connected critical set (see the module docstring)."""
    parent = list(range(len(thetas)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    values = [loss.value(theta) for theta in thetas]
    signatures = [test.index for test in tests]
    members: dict[int, list[int]] = {}  # component root -> its first points (the ones paths are tried from)
    for b in range(len(thetas)):
        for a_root in list(members):
            a = members[a_root][0]
            if signatures[a] != signatures[b] or abs(values[a] - values[b]) > LOSS_TOLERANCE * max(1.0, abs(values[a])):
                continue
            for a in members[a_root][:MAX_PATH_TRIES]:
                start = normalise_scalings(loss.symmetries, thetas[a])
                image = nearest_image(loss.symmetries, start, normalise_scalings(loss.symmetries, thetas[b]))
                if connected_by_critical_path(loss, start, image):
                    parent[root(b)] = root(a)
                    break
        joined = root(b)
        if joined == b:
            members[b] = [b]
        else:
            members[joined].append(b)
        # components joined through b: fold their lists into one
        for other in [r for r in members if r != root(r)]:
            members[root(other)] += members.pop(other)
    groups: dict[int, list[int]] = {}
    for i in range(len(thetas)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _label_runs(points: list[CriticalPoint], members: list) -> Counter:
    runs: Counter = Counter()
    for index, _ in members:
        runs[points[index].label] += points[index].count
    return runs


def split_flat_sets(
    loss: PopulationLoss,
    thetas: list[np.ndarray],
    points: list[CriticalPoint],
    *,
    eigenvalue_tolerance: float = DEFAULT_EIGENVALUE_TOLERANCE,
) -> tuple[list[CriticalPoint], list[CriticalManifold]]:
    """Separate the points on critical sets of positive dimension from the isolated ones.

    Every ``degenerate`` point (extra null directions) of a gradient loss is tested by
    :func:`continue_flat_directions`; those on a manifold are merged by :func:`merge_flat_sets`
    into :class:`CriticalManifold` entries (counts added up; the representative is a point of
    the largest dimension, reached by most runs). Returns the isolated points (in order) and
    the manifolds, lowest loss first.
    """
    if loss.is_field:
        return list(points), []
    flat = []
    for index, point in enumerate(points):
        if point.nullity:
            test = continue_flat_directions(loss, thetas[index], eigenvalue_tolerance=eigenvalue_tolerance)
            if test.is_manifold:
                flat.append((index, test))
    groups = merge_flat_sets(loss, [thetas[i] for i, _ in flat], [test for _, test in flat])
    manifolds = []
    for group in groups:
        members = [flat[i] for i in group]
        # the representative: a point of the largest dimension (the set may have strata), most runs first
        index, test = max(members, key=lambda member: (member[1].continued, points[member[0]].count))
        representative = points[index]
        manifolds.append(
            CriticalManifold(
                kind=test.kind,
                dimension=test.continued,
                loss=representative.loss,
                index=test.index,
                smallest_transverse=test.smallest,
                largest_transverse=test.largest,
                label=representative.label,
                alignment=representative.alignment,
                labels=dict(_label_runs(points, members)),
                count=sum(points[i].count for i, _ in members),
                points=len(members),
                params=representative.params,
            )
        )
    on_sets = {index for index, _ in flat}
    isolated = [point for index, point in enumerate(points) if index not in on_sets]
    return isolated, sorted(manifolds, key=lambda manifold: manifold.loss)
