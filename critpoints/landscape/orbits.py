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
* **With row-entry permutations** (a separable pair loss on exchangeable data, no O(m), no
  P): the entries of every row of (W, W_t) are permuted by a permutation of that row's own,
  so a point is the multiset of its rows, each row a multiset of entry pairs (W_ij, W_t_ij)
  (up to each pair's sign under entry sign flips, up to the row's sign otherwise), with its
  biases. No graph is needed: the key sorts the sign-invariant entry features
  (|W_ij|, |W_t_ij|, (|W_ij + W_t_ij| - |W_ij - W_t_ij|) / 2) within each row, then each
  resulting column across the rows of every permutable class; the exact test
  (:func:`row_orbit_map`) matches the entries of every pair of rows (an assignment of the p
  entries with every distance within tolerance) and then the rows (an assignment of
  neurons), so it is polynomial and never undecided.
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

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

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
    return _discrete_canonical_order(group, group.flip(theta, signs))


def _row_canonical(group: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    """Signs fixed, each row's entry pairs sorted (largest |W_ij| first), neurons ordered, and
    row t of the rows ordered by alignment max_j |W_ij| / ||w_i|| cyclically shifted by t."""
    blocks = group.layout.unpack(theta)
    if group.entry_sign_flips:
        pairs = np.stack([blocks[name] for name in ("W", "W_t") if name in blocks], axis=-1)
        theta = group.flip_entries(theta, _first_significant_signs(pairs))
    else:  # the row's sign making its entry of largest |W_ij| (the first such) positive
        weights = np.concatenate([blocks[name] for name in ("W", "W_t") if name in blocks], axis=1)
        largest = np.argmax(np.round(np.abs(weights) / ROUNDING), axis=1)
        theta = group.flip(theta, np.where(weights[np.arange(group.m), largest] < 0, -1.0, 1.0))
    blocks = group.layout.unpack(theta)
    pairs = np.stack([blocks[name] for name in ("W", "W_t") if name in blocks], axis=-1)
    rounded = np.round(np.concatenate([np.abs(pairs[..., :1]), pairs], axis=-1) / ROUNDING)
    order = np.stack([np.lexsort(-row.T[::-1]) for row in rounded])  # by |W_ij|, W_ij, W_t_ij descending
    theta = _discrete_canonical_order(group, group.permute_row_entries(theta, order))
    # The alignment labels (derivations/MODEL.md §6) are not invariant under this group: rows with
    # their largest entries in distinct columns make the representative recover as many atoms as
    # any point of the orbit does.
    W = group.layout.unpack(theta)["W"]
    norms = np.linalg.norm(W, axis=1)
    alignment = np.round(np.abs(W[:, 0]) / np.where(norms > 0, norms, 1.0) / ROUNDING)
    ranks = np.empty(group.m, dtype=np.int64)
    ranks[np.argsort(-alignment, kind="stable")] = np.arange(group.m)
    p = W.shape[1]
    shifts = (np.arange(p)[None, :] - ranks[:, None]) % p  # new entry j is sorted entry j - rank
    return group.permute_row_entries(theta, shifts)


def _discrete_canonical_order(group: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    """theta with its neurons ordered lexicographically (rounded features) within each class."""
    blocks = group.layout.unpack(theta)
    features = np.concatenate(
        [blocks[name].reshape(group.m, -1) for name in ("W", "W_t", "b", "b_t") if name in blocks], axis=1
    )
    rounded = np.round(features / ROUNDING)
    permutation = np.arange(group.m)
    for members in group.permutable:
        members = np.asarray(members)
        permutation[members] = members[np.lexsort(rounded[members].T[::-1])]
    return group.permute(theta, permutation)


def canonical_point(group: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    """A representative of the orbit of theta under the neuron symmetries.

    Scalings normalised; signs (of neurons, or of entry pairs under entry sign flips) and
    order of neurons fixed. Under O(m) the point itself is
    returned (after normalising scalings): the orbit is identified by its Gram invariant.
    Under row-entry permutations each row's entries are sorted and then placed so that the
    rows' largest entries fall in distinct columns, the most aligned rows first: the alignment
    labels, which that group does not keep, are those of the orbit's point recovering the most
    atoms (derivations/symmetries.md item 7).
    """
    theta = normalise_scalings(group, theta)
    if group.rotations:
        return theta
    return _row_canonical(group, theta) if group.row_entry_permutations else _discrete_canonical(group, theta)


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


@dataclass(frozen=True)
class RowForm:
    """A point under row-entry permutations: its rows, each a set of entry pairs, and biases.

    Attributes
    ----------
    entries : ndarray, shape (m, p, k)
        Entry (i, j) of the k weight blocks (W, W_t), scalings normalised.
    biases : ndarray, shape (m, l)
        The trainable biases of each neuron (l = 0 with a fixed bias).
    """

    entries: np.ndarray
    biases: np.ndarray

    def scale(self) -> float:
        """max(1, largest |weight|): the size tolerances are relative to."""
        return max(1.0, float(np.abs(self.entries).max(initial=0.0)), float(np.abs(self.biases).max(initial=0.0)))


def row_form(group: SymmetryGroup, theta: np.ndarray) -> RowForm:
    """The rows of theta (scalings normalised) for :func:`row_key` and :func:`row_orbit_map`."""
    blocks = group.layout.unpack(normalise_scalings(group, theta))
    entries = np.stack([blocks[name] for name in ("W", "W_t") if name in blocks], axis=-1)
    biases = [blocks[name][:, None] for name in ("b", "b_t") if name in blocks]
    return RowForm(entries, np.concatenate(biases, axis=1) if biases else np.zeros((group.m, 0)))


def row_key(group: SymmetryGroup, form: RowForm) -> np.ndarray:
    """The orbit key under row-entry permutations: sign-invariant entry features sorted within
    each row, then each column of the result sorted across the rows of every permutable class.

    Every step is 1-Lipschitz in the max norm of (W, W_t, b, b_t): a point within a tolerance
    of an image of another has a key within that tolerance of the other's.
    """
    a = form.entries[..., 0]
    features = [np.abs(a)]
    if form.entries.shape[-1] == 2:
        b = form.entries[..., 1]
        # |b| and the invariant of the pair's sign (|a + b| - |a - b|) / 2 = sign(ab) min(|a|, |b|)
        features += [np.abs(b), (np.abs(a + b) - np.abs(a - b)) / 2.0]
    rows = np.concatenate([np.sort(feature, axis=1) for feature in features] + [form.biases], axis=1)
    return np.concatenate([np.sort(rows[np.asarray(members)], axis=0).ravel() for members in group.permutable])


def _pair_distances(group: SymmetryGroup, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Max-norm distances of the entry pairs x[..., :] and y[..., :] (broadcast over the other axes),
    each pair with its best sign under entry sign flips."""
    channels = range(x.shape[-1])
    distance = np.abs(x[..., 0] - y[..., 0])
    for c in channels[1:]:
        np.maximum(distance, np.abs(x[..., c] - y[..., c]), out=distance)
    if group.entry_sign_flips:
        flipped = np.abs(x[..., 0] + y[..., 0])
        for c in channels[1:]:
            np.maximum(flipped, np.abs(x[..., c] + y[..., c]), out=flipped)
        np.minimum(distance, flipped, out=distance)
    return distance


def _entry_order(form: RowForm) -> np.ndarray:
    """(m, p): each row's entries ordered by their rounded sign-invariant features (a first guess
    of the assignment between two rows, verified before use)."""
    a = form.entries[..., 0]
    b = form.entries[..., -1]
    features = (np.abs(a), np.abs(b), np.abs(a + b) - np.abs(a - b))
    keys = [np.round(feature / ROUNDING) for feature in features]
    return np.stack([np.lexsort([key[i] for key in keys[::-1]]) for i in range(len(a))])


def _entry_assignment(close: np.ndarray) -> np.ndarray | None:
    """A permutation f(e) with close[e, f(e)] for every e, or None."""
    if not (close.any(axis=0).all() and close.any(axis=1).all()):
        return None
    rows, columns = linear_sum_assignment(~close)
    return columns if close[rows, columns].all() else None


def row_orbit_map(
    group: SymmetryGroup, theta_a: np.ndarray, theta_b: np.ndarray, tolerance: float = ORBIT_TOLERANCE
) -> Isomorphism:
    """Under row-entry permutations, the group element mapping theta_a onto theta_b.

    As a relabelling of the m neurons and m p entries (vertex m + i p + j is entry (i, j)):
    neuron i of b is neuron ``mapping[i]`` of a with sign ``signs[i]``, and entry (i, j) of b
    is entry ``mapping[m + i p + j]`` of a with sign ``signs[m + i p + j]`` (relative to the
    neuron's). Rows i of a and k of b are compatible when some permutation of the entries maps
    one onto the other (times the row's sign, or with every pair's sign under entry sign flips)
    within ``tolerance`` relative to the points' size; the rows are then matched by an
    assignment within each permutable class. Exact and polynomial (never undecided).
    """
    return _row_match(group, row_form(group, theta_a), row_form(group, theta_b), tolerance)


def _row_match(group: SymmetryGroup, a: RowForm, b: RowForm, tolerance: float) -> Isomorphism:
    m, p, _ = a.entries.shape
    threshold = tolerance * max(a.scale(), b.scale())
    bias_close = np.abs(a.biases[:, None, :] - b.biases[None, :, :]).max(axis=-1, initial=0.0) <= threshold
    signs = (1.0,) if group.entry_sign_flips else (1.0, -1.0)
    compatible = np.zeros((m, m), dtype=bool)
    row_signs = np.ones((m, m))
    assignments = np.zeros((m, m, p), dtype=np.int64)
    # First the entries of both rows paired in their sorted orders (sufficient, and enough unless
    # near-ties reorder a row), then, if the rows do not match so, every assignment of entries.
    order_a, order_b = _entry_order(a), _entry_order(b)
    rows = np.arange(m)[:, None]
    sorted_a, sorted_b = a.entries[rows, order_a], b.entries[rows, order_b]
    for sign in signs:
        paired = (_pair_distances(group, sorted_a[:, None], sign * sorted_b[None]) <= threshold).all(axis=2)
        first, second = np.nonzero(bias_close & ~compatible & paired)
        assignments[first[:, None], second[:, None], order_a[first]] = order_b[second]
        compatible[first, second], row_signs[first, second] = True, sign
    neurons = _neuron_assignment(group, compatible)
    if neurons is None:
        for sign in signs:
            distances = _pair_distances(group, a.entries[:, None, :, None], sign * b.entries[None, :, None, :])
            close = distances <= threshold
            # necessary: every entry of each row has a partner in the other row
            partnered = np.any(close, axis=3).all(axis=2) & np.any(close, axis=2).all(axis=2)
            candidates = bias_close & ~compatible & partnered
            for i, k in zip(*np.nonzero(candidates)):
                assignment = _entry_assignment(close[i, k])
                if assignment is not None:
                    compatible[i, k], row_signs[i, k], assignments[i, k] = True, sign, assignment
        neurons = _neuron_assignment(group, compatible)
    if neurons is None:
        return Isomorphism(False)
    # neuron k of b is neuron neurons[k] of a; entry e of that row of a is entry assignment[e] of row k
    source = neurons[:, None]
    targets = assignments[neurons, np.arange(m)]  # (m, p), row k: where entry e of a's row goes
    mapping = np.arange(m + m * p)
    mapping[:m] = neurons
    entries_b = m + np.arange(m)[:, None] * p + targets
    mapping[entries_b] = m + source * p + np.arange(p)
    vertex_signs = np.ones(m + m * p)
    vertex_signs[:m] = row_signs[neurons, np.arange(m)]
    x = a.entries[neurons] * vertex_signs[:m, None, None]
    y = np.take_along_axis(b.entries, targets[:, :, None], axis=1)
    vertex_signs[entries_b] = np.where(np.abs(x - y).max(axis=-1) <= threshold, 1.0, -1.0)
    return Isomorphism(True, mapping=mapping, signs=vertex_signs)


def _neuron_assignment(group: SymmetryGroup, compatible: np.ndarray) -> np.ndarray | None:
    """neurons[k] = the row of a matched to row k of b, within each permutable class, or None."""
    neurons = np.arange(len(compatible))
    for members in group.permutable:
        members = np.asarray(members, dtype=np.int64)
        block = compatible[np.ix_(members, members)]
        rows, columns = linear_sum_assignment(~block)
        if not block[rows, columns].all():
            return None
        neurons[members[columns]] = members[rows]
    return neurons


def orbit_graph(group: SymmetryGroup, theta: np.ndarray) -> SignedGraph:
    """The signed graph of theta (scalings normalised) whose signed relabellings are the
    remaining symmetries (the module docstring gives the construction; not used under
    row-entry permutations, whose points are compared as :class:`RowForm`)."""
    theta = normalise_scalings(group, theta)
    return _gram_graph(group, theta) if group.rotations else _neuron_input_graph(group, theta)


def orbit_key(group: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    """A vector equal (up to rounding) for all points of one orbit.

    The weights of :func:`orbit_graph` sorted within blocks of equal kinds
    (:meth:`~critpoints.landscape.signed_isomorphism.SignedGraph.key`), or :func:`row_key`
    under row-entry permutations. Points of different orbits have different keys except on a
    thin set; :func:`same_point_orbit` decides exactly.
    """
    if group.row_entry_permutations:
        return row_key(group, row_form(group, theta))
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
    ``signs[m + j]``; under O(m) the vertices are the inputs; under row-entry permutations
    see :func:`row_orbit_map`.
    """
    if group.row_entry_permutations:
        return row_orbit_map(group, theta_a, theta_b, tolerance)
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
        self._forms: list[SignedGraph | RowForm] = []
        self._stack = np.zeros((0, 0))
        self._scales = np.zeros(0)

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, theta: np.ndarray) -> int | None:
        """The index of the known orbit holding theta, or None."""
        return self._find(self._form(theta))[0]

    def _form(self, theta: np.ndarray) -> SignedGraph | RowForm:
        if self.group.row_entry_permutations:
            return row_form(self.group, theta)
        return orbit_graph(self.group, theta)

    def _key(self, form: SignedGraph | RowForm) -> np.ndarray:
        return row_key(self.group, form) if isinstance(form, RowForm) else form.key()

    def _match(self, known: SignedGraph | RowForm, form: SignedGraph | RowForm) -> Isomorphism:
        if isinstance(known, RowForm) and isinstance(form, RowForm):
            return _row_match(self.group, known, form, self.tolerance)
        assert isinstance(known, SignedGraph) and isinstance(form, SignedGraph)
        return find_isomorphism(known, form, self.tolerance)

    def _find(self, form: SignedGraph | RowForm) -> tuple[int | None, np.ndarray]:
        key = self._key(form)
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
            match = self._match(self._forms[index], form)
            if match.found:
                return int(index), key
            self.undecided += match.undecided
        return None, key

    def add(self, theta: np.ndarray, count: int = 1) -> int:
        """Record a converged point (reached by ``count`` starts); returns the index of its orbit."""
        form = self._form(theta)
        index, key = self._find(form)
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
        self._forms.append(form)
        self.points.append(canonical_point(self.group, theta))
        self.counts.append(count)
        return len(self.keys) - 1
