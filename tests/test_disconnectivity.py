"""Disconnectivity trees and lowest barriers: a hand-made graph with known merges, and random
graphs against a brute-force minimax (breadth-first search below every threshold)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from critpoints.landscape.disconnectivity import disconnectivity_tree, lowest_barriers

ENERGIES = {1: 0.0, 2: 0.5, 3: 0.2, 4: 1.0, 5: 0.1, 6: 2.0}
EDGES = [
    (1, 3, 1.0, 10),
    (3, 2, 0.8, 11),
    (2, 1, 1.5, 12),  # above the path 2-3-1 (at most 1.0): no merge
    (5, 4, 1.2, 13),
    (4, 1, 2.0, 14),
    (1, 1, 0.5, 15),  # a saddle between two images of one minimum: no merge
    (3, 5, 3.0, 16),
]


def test_hand_made_graph_merges_at_the_minimax_heights_with_the_lower_branch_left():
    tree = disconnectivity_tree(ENERGIES, EDGES)
    assert tree.merge_heights() == [0.8, 1.0, 1.2, 2.0]
    merges = [node for node in tree.nodes if node.children]
    assert [node.saddle for node in merges] == [11, 10, 13, 14]
    assert tree.order == (1, 3, 2, 5, 4, 6)
    assert len(tree.roots) == 2 and tree.component(tree.roots[1]) == [6]
    top = tree.nodes[tree.roots[0]]
    assert top.height == 2.0 and top.size == 5 and top.lowest == 0.0
    x = tree.positions()
    leaves = {node.leaf: index for index, node in enumerate(tree.nodes) if node.leaf is not None}
    assert [x[leaves[b]] for b in tree.order] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert x[tree.roots[0]] == pytest.approx(((0.0 + (1.0 + 2.0) / 2) / 2 + (3.0 + 4.0) / 2) / 2)


def test_barriers_to_the_target_are_the_minimax_heights_minus_the_energies():
    barriers = lowest_barriers(ENERGIES, EDGES, targets=[1])
    assert barriers == {3: (1.0, 10), 2: (1.0, 10), 5: (2.0, 14), 4: (2.0, 14)}
    assert 6 not in barriers


def test_an_edge_below_its_minimum_or_to_an_unknown_basin_is_refused():
    with pytest.raises(ValueError, match="below its end 4"):
        disconnectivity_tree(ENERGIES, [(4, 1, 0.5, 7)])
    with pytest.raises(ValueError, match="not a basin"):
        lowest_barriers(ENERGIES, [(4, 9, 5.0, 7)], targets=[1])


def brute_minimax(energies, edges, a, b):
    """Lowest H such that a and b are joined by edges of height <= H (breadth-first search), or None."""
    for level in sorted({height for _, _, height, _ in edges}):
        reached, frontier = {a}, [a]
        while frontier:
            node = frontier.pop()
            for u, v, height, _ in edges:
                if height <= level:
                    for here, there in ((u, v), (v, u)):
                        if here == node and there not in reached:
                            reached.add(there)
                            frontier.append(there)
        if b in reached:
            return level
    return None


@pytest.mark.parametrize("seed", range(5))
def test_random_graphs_agree_with_brute_force_minimax(seed):
    rng = np.random.default_rng(seed)
    basins = list(range(9))
    energies = {b: float(rng.uniform(0, 1)) for b in basins}
    edges = []
    for saddle in range(14):
        a, b = (int(v) for v in rng.choice(basins, size=2, replace=False))
        edges.append((a, b, max(energies[a], energies[b]) + float(rng.uniform(0, 1)), 100 + saddle))
    tree = disconnectivity_tree(energies, edges)
    parents = {child: index for index, node in enumerate(tree.nodes) for child in node.children}
    leaf = {node.leaf: index for index, node in enumerate(tree.nodes) if node.leaf is not None}

    def ancestors(index):
        chain = [index]
        while chain[-1] in parents:
            chain.append(parents[chain[-1]])
        return chain

    for a, b in itertools.combinations(basins, 2):
        common = [n for n in ancestors(leaf[a]) if n in set(ancestors(leaf[b]))]
        expected = brute_minimax(energies, edges, a, b)
        assert (tree.nodes[common[0]].height if common else None) == expected
    targets = [0, 1]
    barriers = lowest_barriers(energies, edges, targets)
    for basin in basins[2:]:
        heights = [h for h in (brute_minimax(energies, edges, basin, t) for t in targets) if h is not None]
        assert barriers.get(basin, (None,))[0] == (min(heights) if heights else None)
