"""Canonical forms of symmetry orbits, for deduplicating stationary points.

Two points are reported as one when they lie on the same orbit of the setting's symmetry
group (critpoints.losses.symmetries). The key of theta is computed by

1. normalising every positive-rescaling group to unit norm (when its norm is non-zero);
2. if O(m) acts: the Gram invariant Z^T Z of Z = [W, W_t, P W, P W_t, P^T W, P^T W_t]
   (the blocks that transform as Z -> Q Z), which determines Z up to O(m);
3. otherwise the discrete group: each neuron's sign is chosen so that the first entry of
   its concatenated rows (W, W_t) larger than ``ROUNDING`` in magnitude is positive, then
   neurons are sorted lexicographically within each class of permutable neurons, and P is
   conjugated accordingly.

When the data are invariant under signed permutations R of the inputs (W -> W R), the key
is the lexicographically smallest of the keys of the points theta R. Only the R that
order the inputs by a signature invariant under every other symmetry (the sorted absolute
values of each input's row of the Gram matrix) need to be tried: one ordering for a generic
point, all orderings within groups of inputs with equal signatures otherwise. Up to
``MAX_INPUT_CANDIDATES`` candidates are scanned; a point with more ties (or with p above
``INPUT_SYMMETRY_MAX_P``) is keyed without the input symmetries, so it may be reported as
several orbits, never merged wrongly.

Keys are compared with a tolerance relative to their size.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from critpoints.losses.symmetries import SymmetryGroup

#: Entries smaller than this are treated as zero when choosing signs and orders.
ROUNDING = 1e-7

#: Largest input dimension for which input symmetries are quotiented.
INPUT_SYMMETRY_MAX_P = 8

#: Largest number of (permutation, signs) candidates scanned for one point.
MAX_INPUT_CANDIDATES = 50_000


def _normalise_scalings(group: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    theta = np.array(theta, dtype=float)
    for blocks in group.scalings:
        indices = np.concatenate([np.arange(theta.size)[group.layout.slice(name)] for name in blocks])
        norm = np.linalg.norm(theta[indices])
        if norm > 0:
            theta[indices] /= norm
    return theta


def _transforming_columns(group: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    """Z = [W, W_t, P W, ...]: the blocks on which O(m) acts by left multiplication."""
    blocks = group.layout.unpack(theta)
    columns = [blocks[name] for name in ("W", "W_t") if name in blocks]
    if "P" in blocks:
        columns += [blocks["P"] @ c for c in columns[:]] + [blocks["P"].T @ c for c in columns[:]]
    return np.concatenate(columns, axis=1)


def _rotation_invariant(group: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    gram = _transforming_columns(group, theta).T @ _transforming_columns(group, theta)
    blocks = group.layout.unpack(theta)
    rest = [blocks[name].ravel() for name in ("b", "b_t") if name in blocks]
    return np.concatenate([gram[np.triu_indices_from(gram)]] + rest)


def _discrete_canonical(group: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    blocks = group.layout.unpack(theta)
    rows = np.concatenate([blocks[name] for name in ("W", "W_t") if name in blocks], axis=1)
    signs = np.ones(group.m)
    if group.sign_flips:
        significant = np.abs(rows) > ROUNDING
        first = np.argmax(significant, axis=1)
        leading = rows[np.arange(group.m), first] * significant.any(axis=1)
        signs = np.where(leading < 0, -1.0, 1.0)
    theta = group.flip(theta, signs)
    blocks = group.layout.unpack(theta)
    features = np.concatenate(
        [blocks[name].reshape(group.m, -1) for name in ("W", "W_t", "b", "b_t") if name in blocks], axis=1
    )
    rounded = np.round(features / ROUNDING)
    permutation = np.arange(group.m)
    for members in group.permutable:
        members = np.asarray(members)
        order = np.lexsort(rounded[members].T[::-1])
        permutation[members] = members[order]
    return group.permute(theta, permutation)


def canonical_point(group: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    """A representative of the orbit of theta under the neuron symmetries.

    Scalings normalised; signs and order of neurons fixed. Under O(m) the point itself is
    returned (after normalising scalings): the orbit is identified by its Gram invariant.
    """
    theta = _normalise_scalings(group, theta)
    return theta if group.rotations else _discrete_canonical(group, theta)


def _neuron_key(group: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    theta = canonical_point(group, theta)
    return _rotation_invariant(group, theta) if group.rotations else theta


def _input_candidates(group: SymmetryGroup, theta: np.ndarray) -> list[np.ndarray] | None:
    """Input orderings consistent with the invariant signature, or None if too many."""
    p = group.layout.shapes["W"][1]
    if p > INPUT_SYMMETRY_MAX_P:
        return None
    columns = _transforming_columns(group, _normalise_scalings(group, theta))
    gram = columns.T @ columns  # invariant under neuron permutations, flips and O(m)
    blocks = gram.shape[0] // p
    signature = []
    for j in range(p):
        rows = [np.sort(np.abs(gram[j + b * p])) for b in range(blocks)]
        signature.append(tuple(np.round(np.concatenate(rows) / ROUNDING).astype(np.int64)))
    order = sorted(range(p), key=lambda j: signature[j])
    groups = [list(members) for _, members in itertools.groupby(order, key=lambda j: signature[j])]
    count = math.prod(math.factorial(len(g)) for g in groups) * (2**p if group.input_sign_flips else 1)
    if count > MAX_INPUT_CANDIDATES:
        return None
    return [np.concatenate(choice) for choice in itertools.product(*(itertools.permutations(g) for g in groups))]


def orbit_key(group: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    """A vector equal (up to rounding) for all points of one orbit and different across orbits."""
    candidates = _input_candidates(group, theta) if group.input_permutations else None
    if candidates is None:
        return _neuron_key(group, theta)
    p = group.layout.shapes["W"][1]
    sign_choices = (
        [np.array(s) for s in itertools.product((1.0, -1.0), repeat=p)] if group.input_sign_flips else [np.ones(p)]
    )
    best: np.ndarray | None = None
    best_rounded = None
    for permutation in candidates:
        for signs in sign_choices:
            key = _neuron_key(group, group.act_on_inputs(theta, permutation, signs))
            rounded = tuple(np.round(key / ROUNDING).astype(np.int64))
            if best_rounded is None or rounded < best_rounded:
                best, best_rounded = key, rounded
    assert best is not None  # candidates is never empty
    return best


def same_orbit(key_a: np.ndarray, key_b: np.ndarray, tolerance: float = 1e-6) -> bool:
    """Whether two orbit keys agree to ``tolerance`` relative to their size."""
    scale = max(1.0, float(np.abs(key_a).max(initial=0.0)), float(np.abs(key_b).max(initial=0.0)))
    return bool(np.abs(key_a - key_b).max(initial=0.0) <= tolerance * scale)


class OrbitDatabase:
    """Converged points grouped by symmetry orbit, with the number of starts reaching each."""

    def __init__(self, group: SymmetryGroup, tolerance: float) -> None:
        self.group = group
        self.tolerance = tolerance
        self.keys: list[np.ndarray] = []
        self.points: list[np.ndarray] = []
        self.counts: list[int] = []

    def add(self, theta: np.ndarray) -> int:
        """Record a converged point; returns the index of its orbit."""
        key = orbit_key(self.group, theta)
        for index, known in enumerate(self.keys):
            if same_orbit(key, known, self.tolerance):
                self.counts[index] += 1
                return index
        self.keys.append(key)
        self.points.append(canonical_point(self.group, theta))
        self.counts.append(1)
        return len(self.keys) - 1
