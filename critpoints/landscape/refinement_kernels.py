"""numba kernels of the signed-graph isomorphism test (critpoints.landscape.signed_isomorphism).

Colours and pair labels are 64-bit integers; signatures are combined by a hash. A hash
collision can only merge two colour classes (a coarser colouring): the colouring stays
invariant under every isomorphism, so the search stays exact, only less pruned.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_INCREMENT = np.uint64(0x632BE59BD9B4E019)
_SHIFT_RIGHT = np.uint64(29)


@njit(cache=True)
def mix(seed, value):
    """A 64-bit hash of the pair (seed, value) (both uint64)."""
    h = (seed ^ (value + _INCREMENT)) * _MULTIPLIER
    return h ^ (h >> _SHIFT_RIGHT)


@njit(cache=True)
def refine(colours: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, bool]:
    """Colour refinement of two graphs at once, with shared colour names.

    Parameters
    ----------
    colours : int64 (2, n)
        Colours of the vertices of graph 0 and graph 1.
    labels : uint64 (2, n, n)
        Pair labels (invariant under the isomorphisms sought).

    Returns
    -------
    colours : int64 (2, n)
        The stable refinement, colours numbered 0, 1, ... in the order of (old colour,
        signature hash).
    ok : bool
        False when the two graphs' colour counts differ (no isomorphism respects them).
    """
    n = colours.shape[1]
    current = colours.copy()
    distinct = _count_distinct(current)
    buffer = np.empty(n, dtype=np.uint64)
    hashes = np.empty(2 * n, dtype=np.uint64)
    old = np.empty(2 * n, dtype=np.int64)
    while True:
        for graph in range(2):
            for x in range(n):
                for y in range(n):
                    buffer[y] = mix(np.uint64(current[graph, y]), labels[graph, x, y])
                buffer.sort()
                h = np.uint64(n)
                for y in range(n):
                    h = mix(h, buffer[y])
                hashes[graph * n + x] = h
                old[graph * n + x] = current[graph, x]
        order = np.argsort(hashes, kind="mergesort")
        order = order[np.argsort(old[order], kind="mergesort")]
        refined = np.empty(2 * n, dtype=np.int64)
        colour = 0
        for rank in range(2 * n):
            index = order[rank]
            if rank > 0:
                previous = order[rank - 1]
                if old[index] != old[previous] or hashes[index] != hashes[previous]:
                    colour += 1
            refined[index] = colour
        counts = np.zeros((2, colour + 1), dtype=np.int64)
        for index in range(2 * n):
            counts[index // n, refined[index]] += 1
        for c in range(colour + 1):
            if counts[0, c] != counts[1, c]:
                return current, False
        current = refined.reshape(2, n)
        if colour + 1 == distinct:
            return current, True
        distinct = colour + 1


@njit(cache=True)
def _count_distinct(colours: np.ndarray) -> int:
    values = np.sort(colours.ravel())
    count = 1
    for index in range(1, values.size):
        count += values[index] != values[index - 1]
    return count


@njit(cache=True)
def signs_and_verify(
    edges_a: np.ndarray, edges_b: np.ndarray, signed: np.ndarray, mapping: np.ndarray, threshold: float
) -> tuple[np.ndarray, bool]:
    """Signs s with E_b[x, y] = s_x s_y E_a[phi(x), phi(y)], propagated along non-zero pairs and verified.

    ``signed`` are graph b's free signs (the others are +1); phi = ``mapping``. Returns the
    signs and whether every weight agrees within ``threshold``.
    """
    n, _, channels = edges_b.shape
    signs = np.zeros(n)
    stack = np.empty(n, dtype=np.int64)
    top = 0
    for x in range(n):
        if not signed[x]:
            signs[x] = 1.0
            stack[top] = x
            top += 1
    for start in range(n + 1):
        if start > 0:
            if signs[start - 1] != 0.0:
                continue
            signs[start - 1] = 1.0
            stack[top] = start - 1
            top += 1
        while top > 0:
            top -= 1
            x = stack[top]
            for y in range(n):
                if signs[y] != 0.0:
                    continue
                largest = 0.0
                product = 0.0
                for c in range(channels):
                    value = edges_a[mapping[x], mapping[y], c]
                    largest = max(largest, abs(value))
                    product += value * edges_b[x, y, c]
                if largest > threshold:
                    signs[y] = signs[x] * (-1.0 if product < 0.0 else 1.0)
                    stack[top] = y
                    top += 1
    for x in range(n):
        for y in range(n):
            for c in range(channels):
                if abs(signs[x] * signs[y] * edges_a[mapping[x], mapping[y], c] - edges_b[x, y, c]) > threshold:
                    return signs, False
    return signs, True
