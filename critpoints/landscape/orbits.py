"""Symmetry orbits of stationary points: keys, an exact equivalence test, and a database.

Two points are reported as one when they lie on the same orbit of the setting's symmetry
group (critpoints.losses.symmetries). Positive rescalings are quotiented first: every scaling
group is normalised to unit norm (when its norm is non-zero). What is left acts as follows.

* **Without O(m)**: neuron permutations within the permutable classes, neuron sign flips
  and, when M = I, signed permutations of the inputs. The point is the signed graph
  (critpoints.landscape.signed_isomorphism) whose vertices are the m neurons (a kind per
  permutable class, signed) and the p inputs (one kind, signed when the latent law is
  sign-symmetric, when the inputs are exchangeable; else a kind each, unsigned), with
  weights: neuron-input pairs (W_ij, W_t_ij); neuron-neuron pairs (P_ik, P_ki) and the row
  Gram entries (W W^T, W W_t^T, W_t W_t^T)_ik; input-input pairs the column Gram entries
  (W^T W, ...)_jl; vertex features b_i, b_t_i and the diagonals. Every group
  element is a signed relabelling of this graph, and conversely (the Gram entries are
  implied by W, W_t).
* **With entry sign flips** (one-sparse data, no O(m), no P): each entry pair
  (W_ij, W_t_ij) has its own sign, and its orbit under that sign is fixed by the continuous
  invariants |W_ij|, |W_t_ij| and W_ij W_t_ij (|W_ij| alone for one encoder). The graph above
  is built from these invariant matrices instead of (W, W_t), with unsigned vertices (the
  neuron and input signs are entry flips): its relabellings are the neuron and input
  permutations, and two points are one orbit exactly when their invariant graphs are
  isomorphic. Its Gram channels are those of the invariant matrices.
* **With O(m)** (linear encoders): the Gram matrix G = Z^T Z of Z = [W, W_t, P W, P W_t,
  P^T W, P^T W_t] determines Z up to O(m). Its rows are indexed by (block, input); with
  exchangeable inputs the inputs are the vertices of a signed graph whose pair (j, l)
  carries the block entries G[(a, j), (c, l)]; without, G itself is compared.

:func:`orbit_key` is the graph's key: its weights sorted within blocks of equal kinds, a
vector equal (to rounding) along an orbit, computed in polynomial time, and continuous in
the point. Different orbits may share a key; :func:`same_point_orbit` decides exactly, by
searching for the group element (:func:`~critpoints.landscape.signed_isomorphism.find_isomorphism`),
and :class:`OrbitDatabase` runs it only among points whose keys agree. A search that
exceeds its budget keeps the points apart (they may be reported as two orbits, never
merged wrongly); the database counts such cases in ``undecided``.
"""

from __future__ import annotations

import numpy as np

from critpoints.landscape.signed_isomorphism import Isomorphism, SignedGraph, find_isomorphism
from critpoints.losses.symmetries import SymmetryGroup

#: Entries smaller than this are treated as zero when choosing the signs of a representative.
ROUNDING = 1e-7

#: Default relative tolerance of orbit comparisons.
ORBIT_TOLERANCE = 1e-6


def normalise_scalings(group: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    theta = np.array(theta, dtype=float)
    for blocks in group.scalings:
        indices = np.concatenate([np.arange(theta.size)[group.layout.slice(name)] for name in blocks])
        norm = np.linalg.norm(theta[indices])
        if norm > 0:
            theta[indices] /= norm
    return theta


def transforming_columns(group: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    """Z = [W, W_t, P W, ...]: the blocks on which O(m) acts by left multiplication."""
    blocks = group.layout.unpack(theta)
    columns = [blocks[name] for name in ("W", "W_t") if name in blocks]
    if "P" in blocks:
        columns += [blocks["P"] @ c for c in columns[:]] + [blocks["P"].T @ c for c in columns[:]]
    return np.concatenate(columns, axis=1)


def _first_significant_signs(values: np.ndarray) -> np.ndarray:
    """+-1 per row of ``values`` (last axis) making its first entry above ROUNDING in absolute value positive."""
    significant = np.abs(values) > ROUNDING
    first = np.argmax(significant, axis=-1)[..., None]
    leading = np.take_along_axis(values, first, axis=-1)[..., 0] * significant.any(axis=-1)
    return np.where(leading < 0, -1.0, 1.0)


def _discrete_canonical(group: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    blocks = group.layout.unpack(theta)
    signs = np.ones(group.m)
    if group.entry_sign_flips:  # the first significant entry of every pair (W_ij, W_t_ij) positive
        pairs = np.stack([blocks[name] for name in ("W", "W_t") if name in blocks], axis=-1)
        theta = group.flip_entries(theta, _first_significant_signs(pairs))
    elif group.sign_flips:
        signs = _first_significant_signs(np.concatenate([blocks[name] for name in ("W", "W_t") if name in blocks], 1))
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

    Scalings normalised; signs (of neurons, or of entry pairs under entry sign flips) and
    order of neurons fixed. Under O(m) the point itself is
    returned (after normalising scalings): the orbit is identified by its Gram invariant.
    """
    theta = normalise_scalings(group, theta)
    return theta if group.rotations else _discrete_canonical(group, theta)


def _neuron_input_graph(group: SymmetryGroup, theta: np.ndarray) -> SignedGraph:
    """The signed graph of neurons and inputs whose signed relabellings are the discrete group."""
    blocks = group.layout.unpack(theta)
    weights = [blocks[name] for name in ("W", "W_t") if name in blocks]
    m, p = weights[0].shape
    if group.entry_sign_flips:  # the entry-flip invariants |W|, |W_t|, W * W_t (entrywise)
        products = [weights[0] * weights[1]] if len(weights) == 2 else []
        weights = [np.abs(matrix) for matrix in weights] + products
    # Gram entries of every pair of weight matrices (unordered: (u v^T)_ik is (v u^T)_ki)
    pairs = [(u, v) for a, u in enumerate(weights) for v in weights[a:]]
    neuron_pairs = [blocks["P"], blocks["P"].T] if "P" in blocks else []
    neuron_pairs += [u @ v.T for u, v in pairs]
    input_pairs = [u.T @ v for u, v in pairs]
    biases = [blocks[name] for name in ("b", "b_t") if name in blocks]
    channels = max(len(weights), len(neuron_pairs) + len(biases), len(input_pairs))
    edges = np.zeros((m + p, m + p, channels))
    for channel, matrix in enumerate(weights):
        edges[:m, m:, channel] = matrix
        edges[m:, :m, channel] = matrix.T
    for channel, matrix in enumerate(neuron_pairs):
        edges[:m, :m, channel] = matrix
    for channel, bias in enumerate(biases, start=len(neuron_pairs)):
        edges[np.arange(m), np.arange(m), channel] = bias
    for channel, matrix in enumerate(input_pairs):
        edges[m:, m:, channel] = matrix
    neuron_kinds = np.zeros(m, dtype=np.int64)
    for kind, members in enumerate(group.permutable):
        neuron_kinds[np.asarray(members, dtype=np.int64)] = kind
    first_input_kind = len(group.permutable)
    input_kinds = np.full(p, first_input_kind) if group.input_permutations else first_input_kind + np.arange(p)
    vertex_signs = not group.entry_sign_flips  # else they are entry flips, quotiented in the weights
    signed = np.concatenate([np.full(m, group.sign_flips), np.full(p, group.input_sign_flips)]) & vertex_signs
    return SignedGraph(edges, np.concatenate([neuron_kinds, input_kinds]), signed, np.zeros(0))


def _gram_graph(group: SymmetryGroup, theta: np.ndarray) -> SignedGraph:
    """Under O(m): the inputs as vertices, pair (j, l) carrying the Gram entries G[(a, j), (c, l)]."""
    columns = transforming_columns(group, theta)
    p = group.layout.shapes["W"][1]
    k = columns.shape[1] // p
    gram = (columns.T @ columns).reshape(k, p, k, p).transpose(1, 3, 0, 2).reshape(p, p, k * k)
    blocks = group.layout.unpack(theta)
    rest = np.concatenate([np.zeros(0)] + [blocks[name].ravel() for name in ("b", "b_t") if name in blocks])
    kinds = np.zeros(p, dtype=np.int64) if group.input_permutations else np.arange(p)
    return SignedGraph(gram, kinds, np.full(p, group.input_sign_flips), rest)


def orbit_graph(group: SymmetryGroup, theta: np.ndarray) -> SignedGraph:
    """The signed graph of theta (scalings normalised) whose signed relabellings are the
    remaining symmetries (the module docstring gives the construction)."""
    theta = normalise_scalings(group, theta)
    return _gram_graph(group, theta) if group.rotations else _neuron_input_graph(group, theta)


def orbit_key(group: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    """A vector equal (up to rounding) for all points of one orbit.

    The weights of :func:`orbit_graph` sorted within blocks of equal kinds
    (:meth:`~critpoints.landscape.signed_isomorphism.SignedGraph.key`). Points of different
    orbits have different keys except on a thin set; :func:`same_point_orbit` decides exactly.
    """
    return orbit_graph(group, theta).key()


def same_orbit(key_a: np.ndarray, key_b: np.ndarray, tolerance: float = ORBIT_TOLERANCE) -> bool:
    """Whether two orbit keys agree to ``tolerance`` relative to their size (necessary for one orbit)."""
    if key_a.shape != key_b.shape:
        return False
    scale = max(1.0, float(np.abs(key_a).max(initial=0.0)), float(np.abs(key_b).max(initial=0.0)))
    return bool(np.abs(key_a - key_b).max(initial=0.0) <= tolerance * scale)


def orbit_map(
    group: SymmetryGroup, theta_a: np.ndarray, theta_b: np.ndarray, tolerance: float = ORBIT_TOLERANCE
) -> Isomorphism:
    """The group element mapping theta_a onto theta_b, as a signed relabelling of their graphs.

    For the neuron-input graph (no O(m)), vertex x < m of b is neuron ``mapping[x]`` of a with
    sign ``signs[x]``, and input j of b is input ``mapping[m + j] - m`` of a with sign
    ``signs[m + j]``; under O(m) the vertices are the inputs.
    """
    return find_isomorphism(orbit_graph(group, theta_a), orbit_graph(group, theta_b), tolerance)


def same_point_orbit(
    group: SymmetryGroup, theta_a: np.ndarray, theta_b: np.ndarray, tolerance: float = ORBIT_TOLERANCE
) -> bool:
    """Whether theta_b = g theta_a for some g in the group, up to ``tolerance`` (relative)."""
    return orbit_map(group, theta_a, theta_b, tolerance).found


class OrbitDatabase:
    """Converged points grouped by symmetry orbit, with the number of starts reaching each.

    A new point is compared with the known orbits whose keys agree with its key (a vectorised
    scan), and joins the first for which the exact test (:func:`orbit_map`) finds the group
    element; otherwise it starts a new orbit.

    Attributes
    ----------
    keys, points, counts : lists
        Per orbit: the key, a representative (:func:`canonical_point`) and the number of points added.
    undecided : int
        Exact tests that exceeded their search budget (the points were kept apart).
    """

    def __init__(self, group: SymmetryGroup, tolerance: float = ORBIT_TOLERANCE) -> None:
        self.group = group
        self.tolerance = tolerance
        self.keys: list[np.ndarray] = []
        self.points: list[np.ndarray] = []
        self.counts: list[int] = []
        self.undecided = 0
        self._graphs: list[SignedGraph] = []
        self._stack = np.zeros((0, 0))
        self._scales = np.zeros(0)

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, theta: np.ndarray) -> int | None:
        """The index of the known orbit holding theta, or None."""
        return self._find(orbit_graph(self.group, theta))[0]

    def _find(self, graph: SignedGraph) -> tuple[int | None, np.ndarray]:
        key = graph.key()
        if not self.keys:
            return None, key
        scale = np.maximum(max(1.0, float(np.abs(key).max(initial=0.0))), self._scales[: len(self.keys)])
        # a few coordinates bound the max-norm distance from below: a cheap first filter
        probe = slice(None, None, max(1, key.size // 16))
        near = np.abs(self._stack[: len(self.keys), probe] - key[probe]).max(axis=1) <= self.tolerance * scale
        candidates = np.flatnonzero(near)
        distance = np.abs(self._stack[candidates] - key).max(axis=1) / scale[candidates]
        for index in candidates[np.argsort(distance)]:
            if np.abs(self._stack[index] - key).max() > self.tolerance * scale[index]:
                break
            match = find_isomorphism(self._graphs[index], graph, self.tolerance)
            if match.found:
                return int(index), key
            self.undecided += match.undecided
        return None, key

    def add(self, theta: np.ndarray, count: int = 1) -> int:
        """Record a converged point (reached by ``count`` starts); returns the index of its orbit."""
        graph = orbit_graph(self.group, theta)
        index, key = self._find(graph)
        if index is not None:
            self.counts[index] += count
            return index
        if len(self.keys) == len(self._stack):
            grown = np.zeros((max(8, 2 * len(self._stack)), key.size))
            if self.keys:
                grown[: len(self.keys)] = self._stack[: len(self.keys)]
            self._stack = grown
            self._scales = np.resize(self._scales, len(grown))
        self._stack[len(self.keys)] = key
        self._scales[len(self.keys)] = np.abs(key).max(initial=0.0)
        self.keys.append(key)
        self._graphs.append(graph)
        self.points.append(canonical_point(self.group, theta))
        self.counts.append(count)
        return len(self.keys) - 1
