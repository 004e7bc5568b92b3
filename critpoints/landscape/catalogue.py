"""The stationary points of one setting known so far, matched by symmetry orbit.

A new point is the same as a known one when it lies on the same symmetry orbit (the orbit keys
of critpoints.landscape.orbits agree and the exact test finds the group element), looked up
among the known points of about the same loss. A flat set of minima (role ``manifold``: index 0
with zero eigenvalues that no symmetry explains) is wider than one orbit: a new degenerate
point also joins a known manifold when a chain of critical points at its level joins the
manifold's representative to the image of the point nearest to it — the test of the flat-set
entries of ``enumerate_critical_points`` (critpoints.landscape.flat_sets, derivations/MODEL.md
§6 "Flat critical sets"). Points of other flat sets stay separate manifolds.
"""

from __future__ import annotations

import numpy as np

from critpoints.landscape.flat_sets import FlatSetPaths
from critpoints.landscape.orbits import orbit_key, same_orbit, same_point_orbit
from critpoints.landscape.result import CriticalPoint
from critpoints.losses.population_loss import PopulationLoss

__all__ = ["Catalogue", "may_lie_on_manifold"]

#: Known points whose loss differs by more than this (relative to max(1, |L|)) are not compared.
LOSS_WINDOW = 1e-7


def may_lie_on_manifold(role: str, point: CriticalPoint) -> bool:
    """Whether a new point is tested against the known manifolds: a degenerate point of index 0
    (role "manifold"), or a degenerate saddle, which may lie on a set of minima at its level
    (its negative eigenvalue a rounding error, or on the set's boundary; critpoints.landscape.flat_sets)."""
    return role == "manifold" or (role == "saddle" and point.nullity > 0)


class Catalogue:
    """Known points of one setting by id: role, representative, loss and (lazily) orbit key.

    Parameters
    ----------
    loss : PopulationLoss
    orbit_tolerance : float
        Relative tolerance of :func:`~critpoints.landscape.orbits.same_orbit`.

    Attributes
    ----------
    roles : dict[int, str]
    thetas : dict[int, ndarray]
    values : dict[int, float]
        Role, representative and loss of each known point, in the order they were added.
    """

    def __init__(self, loss: PopulationLoss, orbit_tolerance: float = 1e-6) -> None:
        self.loss = loss
        self.orbit_tolerance = orbit_tolerance
        self._paths: FlatSetPaths | None = None
        #: Points found to lie on each manifold in this process (the stored one first).
        self._members: dict[int, list[np.ndarray]] = {}
        self.roles: dict[int, str] = {}
        self.thetas: dict[int, np.ndarray] = {}
        self.values: dict[int, float] = {}
        self._keys: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.roles)

    def add(self, point_id: int, role: str, theta: np.ndarray, value: float) -> None:
        """Register a stored point."""
        point_id = int(point_id)
        self.roles[point_id] = role
        self.thetas[point_id] = np.asarray(theta, dtype=np.float64)
        self.values[point_id] = float(value)

    def forget_after(self, length: int) -> None:
        """Drop the points added after the first ``length`` (their transaction rolled back)."""
        for point_id in list(self.roles)[length:]:
            for known in (self.roles, self.thetas, self.values, self._keys, self._members):
                known.pop(point_id, None)

    def with_role(self, *roles: str) -> list[int]:
        """Ids of the known points of the given roles, ascending."""
        return sorted(point_id for point_id, role in self.roles.items() if role in roles)

    def key(self, theta: np.ndarray) -> np.ndarray:
        """The orbit key of a point (critpoints.landscape.orbits)."""
        return orbit_key(self.loss.symmetries, theta)

    def _known_key(self, point_id: int) -> np.ndarray:
        if point_id not in self._keys:
            self._keys[point_id] = self.key(self.thetas[point_id])
        return self._keys[point_id]

    def _nearby(self, value: float) -> list[int]:
        window = LOSS_WINDOW * max(1.0, abs(value))
        return [point_id for point_id, known in self.values.items() if abs(known - value) <= window]

    def same_orbit_as(self, theta: np.ndarray, value: float) -> int | None:
        """The id of the known point on the orbit of ``theta`` (loss ``value``), or None.

        Orbit keys that agree are necessary for one orbit; the exact test
        (:func:`~critpoints.landscape.orbits.same_point_orbit`) then finds the group element.
        """
        nearby = self._nearby(value)
        if not nearby:
            return None
        key = self.key(theta)
        for point_id in nearby:
            if same_orbit(key, self._known_key(point_id), self.orbit_tolerance) and same_point_orbit(
                self.loss.symmetries, self.thetas[point_id], theta, self.orbit_tolerance
            ):
                return point_id
        return None

    def same_manifold_as(self, theta: np.ndarray, value: float) -> int | None:
        """The id of a known manifold joined to ``theta`` by a chain of critical points at its
        level (:meth:`critpoints.landscape.flat_sets.FlatSetPaths.joins_group`: from the stored
        point, or from points found on it since), or None."""
        for point_id in self._nearby(value):
            if self.roles[point_id] == "manifold":
                if self._paths is None:
                    self._paths = FlatSetPaths(self.loss)
                members = self._members.setdefault(point_id, [self.thetas[point_id]])
                if self._paths.joins_group(members, theta, minimum=True):
                    members.append(np.asarray(theta, dtype=np.float64))
                    return point_id
        return None
