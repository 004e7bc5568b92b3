"""Isomorphism of signed, coloured, edge-weighted graphs: the exact test behind orbit keys.

The discrete part of a setting's symmetry group (neuron permutations and sign flips, signed
permutations of the inputs when M = I) acts on a point as a group of signed vertex
relabellings of one graph (critpoints.landscape.orbits builds it). A :class:`SignedGraph` has
n vertices, each of a *kind* (vertices map only onto vertices of their kind) and either
*signed* (s_x in {-1, +1} free) or not (s_x = +1), and a vector of C weights on every
ordered pair, E[x, y] in R^C (the diagonal E[x, x] holds vertex features). A pair (phi, s)
maps graph A onto graph B when

    E_B[x, y] = s_x s_y E_A[phi(x), phi(y)]   for all x, y,   kind(phi(x)) = kind(x).

:func:`find_isomorphism` decides whether such a pair exists, up to a tolerance, by
individualisation and refinement (the scheme of McKay's nauty, without automorphism
pruning):

1. sign-invariant labels: each weight's absolute value is clustered jointly over both graphs
   (values closer than the tolerance share a cluster), and the signs of the C weights of
   a pair relative to its first non-zero weight are kept (invariant under s_x s_y);
2. colour refinement (1-dimensional Weisfeiler-Leman) on both graphs at once, with shared
   colour names: a vertex's new colour is its old colour and the multiset of (neighbour
   colour, pair label). A colour whose count differs between the graphs proves them
   non-isomorphic;
3. when some colour holds several vertices, the first A vertex of the smallest such class
   is individualised against each B vertex of that class in turn, and refinement resumes;
4. at a discrete colouring phi is determined; the signs follow by propagation along
   non-zero pairs (one free sign per component without unsigned vertices), and the
   map is verified on every weight.

The answer is exact up to the tolerance: a returned (phi, s) has been verified, and
"not isomorphic" is returned only when the search was exhausted, or — flagged as
``undecided`` — when it exceeded its node budget (callers then keep the two points apart:
never merged wrongly). Refinement makes the search polynomial on the points met here:
generic points refine to discrete colourings at once, and ties from duplicated neurons or
signed atoms are automorphisms, where the first branch succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from critpoints.landscape.refinement_kernels import mix, refine, signs_and_verify

#: Search nodes (individualisations) after which the test gives up as undecided.
MAX_SEARCH_NODES = 2000


@dataclass(frozen=True)
class SignedGraph:
    """A signed, coloured, edge-weighted graph (see the module docstring).

    Attributes
    ----------
    edges : ndarray, shape (n, n, C)
        E[x, y]; transforms as s_x s_y E[phi(x), phi(y)]. The diagonal holds vertex features
        (s_x^2 = 1: they are invariant).
    kinds : ndarray of int, shape (n,)
        Vertices map only onto vertices of the same kind.
    signed : ndarray of bool, shape (n,)
        Whether the vertex's sign is free.
    invariant : ndarray
        Data invariant under the whole group (compared entry by entry).
    """

    edges: np.ndarray
    kinds: np.ndarray
    signed: np.ndarray
    invariant: np.ndarray

    @property
    def n(self) -> int:
        """Number of vertices."""
        return len(self.kinds)

    def scale(self) -> float:
        """max(1, largest |weight|): the size tolerances are relative to."""
        return max(1.0, float(np.abs(self.edges).max(initial=0.0)), float(np.abs(self.invariant).max(initial=0.0)))

    def key(self) -> np.ndarray:
        """A vector invariant under every signed relabelling: weights sorted within blocks.

        The pairs are grouped into blocks by (kind(x), kind(y), x == y, channel); within
        each block the weights are sorted (their absolute values where a signed vertex makes
        the sign a matter of gauge). Sorting is 1-Lipschitz in the max norm, so nearby
        points have nearby keys and the key of a point computed twice agrees to rounding.
        """
        n, _, channels = self.edges.shape
        kinds = np.unique(self.kinds, return_inverse=True)[1].reshape(-1)
        count = int(kinds.max(initial=-1)) + 1
        pair = (kinds[:, None] * count + kinds[None, :]) * 2 + np.eye(n, dtype=np.int64)
        block = (pair[:, :, None] * channels + np.arange(channels)).ravel()
        gauge = self.signed[:, None] | self.signed[None, :]
        np.fill_diagonal(gauge, False)
        values = np.where(gauge[:, :, None], np.abs(self.edges), self.edges).ravel()
        order = np.lexsort((values, block))
        return np.concatenate([values[order], self.invariant])


@dataclass(frozen=True)
class Isomorphism:
    """The outcome of :func:`find_isomorphism`.

    Attributes
    ----------
    found : bool
        Whether a verified map was found.
    mapping : ndarray of int or None
        phi: B vertex x corresponds to A vertex mapping[x].
    signs : ndarray or None
        s, with E_B[x, y] = s_x s_y E_A[phi(x), phi(y)].
    undecided : bool
        The search exceeded its node budget without finding a map (``found`` is False).
    nodes : int
        Search nodes visited.
    """

    found: bool
    mapping: np.ndarray | None = None
    signs: np.ndarray | None = None
    undecided: bool = False
    nodes: int = 0


def _joint_clusters(values: np.ndarray, threshold: float) -> np.ndarray:
    """Cluster ids of ``values`` (last axis: channels, clustered separately): sorted values
    closer than ``threshold`` share an id; the ids are increasing with the values."""
    flat = values.reshape(-1, values.shape[-1])
    order = np.argsort(flat, axis=0, kind="stable")
    ordered = np.take_along_axis(flat, order, axis=0)
    steps = np.vstack([np.zeros((1, flat.shape[1]), dtype=np.int64), (np.diff(ordered, axis=0) > threshold)])
    ids = np.empty_like(order)
    np.put_along_axis(ids, order, np.cumsum(steps, axis=0), axis=0)
    return ids.reshape(values.shape)


def _pair_labels(a: SignedGraph, b: SignedGraph, threshold: float) -> np.ndarray:
    """Labels (2, n, n) of every pair of both graphs, invariant under the sign gauge (hashes
    of the weights' joint clusters and relative signs)."""
    both = np.stack([a.edges, b.edges])
    gauge = np.stack([a.signed[:, None] | a.signed[None, :], b.signed[:, None] | b.signed[None, :]])
    n = a.n
    gauge[:, np.arange(n), np.arange(n)] = False
    magnitude = np.where(gauge[..., None], np.abs(both), both)
    clusters = _joint_clusters(magnitude, threshold)
    signs = np.where(np.abs(both) > threshold, np.sign(both), 0.0).astype(np.int64)
    first = np.take_along_axis(signs, np.argmax(signs != 0, axis=-1)[..., None], axis=-1)
    relative = np.where(gauge[..., None], signs * first, signs)
    codes = (3 * clusters + relative + 1).astype(np.uint64)
    labels = np.zeros(codes.shape[:-1], dtype=np.uint64)
    for channel in range(codes.shape[-1]):
        labels = mix(labels, codes[..., channel])
    return labels


def _verified_signs(a: SignedGraph, b: SignedGraph, mapping: np.ndarray, threshold: float) -> np.ndarray | None:
    """The signs that make ``mapping`` (B vertex x -> A vertex mapping[x]) an isomorphism, or None
    when it maps a signed vertex onto an unsigned one or a weight disagrees by more than threshold."""
    if not np.array_equal(a.signed[mapping], b.signed):
        return None
    signs, verified = signs_and_verify(a.edges, b.edges, b.signed, mapping, threshold)
    return signs if verified else None


def find_isomorphism(
    a: SignedGraph, b: SignedGraph, tolerance: float = 1e-6, max_nodes: int = MAX_SEARCH_NODES
) -> Isomorphism:
    """A signed relabelling mapping graph ``a`` onto graph ``b``, if one exists.

    Parameters
    ----------
    a, b : SignedGraph
    tolerance : float
        Weights agree when they differ by at most ``tolerance * max(a.scale(), b.scale())``.
    max_nodes : int
        Budget of search nodes; beyond it the answer is "not found, undecided".

    Returns
    -------
    Isomorphism
        With ``mapping`` phi and ``signs`` s such that E_B[x, y] = s_x s_y E_A[phi(x), phi(y)]
        for every pair (verified), or ``found=False``.
    """
    if a.edges.shape != b.edges.shape or not np.array_equal(np.sort(a.kinds), np.sort(b.kinds)):
        return Isomorphism(False)
    threshold = tolerance * max(a.scale(), b.scale())
    if a.invariant.shape != b.invariant.shape or np.abs(a.invariant - b.invariant).max(initial=0.0) > threshold:
        return Isomorphism(False)
    n = a.n
    if np.unique(a.kinds).size == n:
        # every vertex has a kind of its own (e.g. the inputs under O(m) without input
        # permutations): the kinds force the relabelling, and only the signs remain to find
        order = np.argsort(a.kinds)
        mapping = order[np.searchsorted(a.kinds[order], b.kinds)]
        signs = _verified_signs(a, b, mapping, threshold)
        if signs is None:
            return Isomorphism(False, nodes=1)
        return Isomorphism(True, mapping=mapping.astype(np.int64), signs=signs, nodes=1)
    labels = _pair_labels(a, b, threshold)
    diagonal = labels[:, np.arange(n), np.arange(n)]
    start = np.unique(
        np.stack([mix(mix(np.uint64(7), k.astype(np.uint64)), d) for k, d in zip((a.kinds, b.kinds), diagonal)])
        + np.stack([a.signed, b.signed]).astype(np.uint64),
        return_inverse=True,
    )[1].reshape(2, n)
    colours, ok = refine(start, labels)
    nodes = 0

    def search(colours: np.ndarray) -> np.ndarray | None:
        nonlocal nodes
        nodes += 1
        counts = np.bincount(colours[0])
        if counts.max() == 1:
            mapping = np.argsort(colours[0])[colours[1]]  # colours are 0..n-1 in both graphs
            signs = _verified_signs(a, b, mapping, threshold)
            return None if signs is None else np.concatenate([mapping, signs])
        cell = int(np.flatnonzero(counts == counts[counts > 1].min())[0])
        pinned = int(np.flatnonzero(colours[0] == cell)[0])
        for candidate in np.flatnonzero(colours[1] == cell):
            if nodes >= max_nodes:
                return None
            trial = colours.copy()
            trial[0, pinned] = trial[1, candidate] = colours.max() + 1
            refined, ok = refine(trial, labels)
            if ok:
                found = search(refined)
                if found is not None:
                    return found
        return None

    found = search(colours) if ok else None
    if found is None:
        return Isomorphism(False, undecided=nodes >= max_nodes, nodes=nodes)
    return Isomorphism(True, mapping=found[:n].astype(np.int64), signs=found[n:], nodes=nodes)
