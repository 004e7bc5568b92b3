"""Disconnectivity trees and lowest barriers of a graph of minima joined by saddles.

The graph has basins (minima, and flat sets of minima) as nodes, at their loss E, and one edge
per connecting saddle, at the saddle's loss h >= both ends. Two basins are mutually accessible
below a level H when some path of edges joins them with every saddle on it at most H; the
lowest such H is the height of the *minimax* path between them (Becker and Karplus, J. Chem.
Phys. 106, 1495, 1997; Wales, Miller and Walsh, Nature 394, 758, 1998). Raising H from below,
basins merge exactly when an edge at height H joins two groups for the first time, so the tree
is the single-linkage clustering of the basins by edge height: a union-find over the edges
sorted by height (Kruskal's algorithm; the tree's merges are the edges of a minimum spanning
tree with the edge heights as weights).

The barrier from a basin b to a set of targets T (e.g. the good minima) is
``H(b, T) - E(b)`` with ``H(b, T)`` the lowest minimax height from b to any target: the level at
which b's group first contains a target, found by the same sweep.

Only the edges given are known: heights are upper bounds of the true minimax heights when
saddles are missing, and basins that no known path joins stay in separate trees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["DisconnectivityTree", "TreeNode", "disconnectivity_tree", "lowest_barriers"]


@dataclass(frozen=True)
class TreeNode:
    """A node of a disconnectivity tree.

    Attributes
    ----------
    height : float
        A leaf's energy, or the merge height (the loss of the saddle that joins the children).
    children : tuple of int
        Indices of the two children in :attr:`DisconnectivityTree.nodes` (empty for a leaf).
    leaf : int or None
        The basin's id for a leaf, None for a merge.
    saddle : int or None
        The id of the saddle (edge) that makes the merge.
    lowest : float
        The lowest leaf energy below this node.
    size : int
        Number of leaves below this node.
    """

    height: float
    children: tuple[int, ...]
    leaf: int | None
    saddle: int | None
    lowest: float
    size: int


@dataclass(frozen=True)
class DisconnectivityTree:
    """Basins merged at the heights of their lowest connecting paths (a forest when disconnected).

    Attributes
    ----------
    nodes : tuple of TreeNode
        Leaves first (one per basin), then merges in order of height.
    roots : tuple of int
        One per connected component, lowest leaf energy first.
    order : tuple of int
        Basin ids from left to right: in every merge the child whose lowest leaf is lower (ties:
        smaller id) stands left, and the components follow the roots.
    """

    nodes: tuple[TreeNode, ...]
    roots: tuple[int, ...]
    order: tuple[int, ...]

    def merge_heights(self) -> list[float]:
        """Heights of the merges, ascending."""
        return sorted(node.height for node in self.nodes if node.children)

    def positions(self) -> dict[int, float]:
        """x coordinate of every tree node: leaves at 0, 1, 2, ... in :attr:`order`, a merge at the
        mean of its children's."""
        x: dict[int, float] = {}
        leaf_index = {node.leaf: i for i, node in enumerate(self.nodes) if node.leaf is not None}
        for column, basin in enumerate(self.order):
            x[leaf_index[basin]] = float(column)
        for index, node in enumerate(self.nodes):
            if node.children:
                x[index] = sum(x[child] for child in node.children) / len(node.children)
        return x

    def component(self, root: int) -> list[int]:
        """Basin ids of the leaves below ``root``."""
        stack, found = [root], []
        while stack:
            node = self.nodes[stack.pop()]
            if node.leaf is not None:
                found.append(node.leaf)
            stack.extend(node.children)
        return sorted(found)


class _UnionFind:
    def __init__(self, items: Iterable[int]) -> None:
        self.parent = {item: item for item in items}

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: int, b: int) -> int:
        root_a, root_b = self.find(a), self.find(b)
        self.parent[root_b] = root_a
        return root_a


def _sorted_edges(
    energies: Mapping[int, float], edges: Iterable[tuple[int, int, float, int]], tolerance: float
) -> list[tuple[int, int, float, int]]:
    checked = []
    for a, b, height, saddle in edges:
        for end in (a, b):
            if end not in energies:
                raise ValueError(f"edge of saddle {saddle} ends at {end}, which is not a basin of the graph")
            if height < energies[end] - tolerance * max(1.0, abs(energies[end])):
                raise ValueError(
                    f"edge of saddle {saddle} has height {height!r} below its end {end} at {energies[end]!r}: "
                    "a connecting saddle lies above both minima it joins"
                )
        checked.append((a, b, float(height), saddle))
    return sorted(checked, key=lambda edge: (edge[2], edge[3]))


def disconnectivity_tree(
    energies: Mapping[int, float], edges: Iterable[tuple[int, int, float, int]], tolerance: float = 1e-9
) -> DisconnectivityTree:
    """The single-linkage merge tree of basins by the heights of the edges that join them.

    Parameters
    ----------
    energies : mapping int -> float
        Basin id -> loss of the basin.
    edges : iterable of (a, b, height, saddle)
        Basins a and b joined by the saddle with id ``saddle`` at loss ``height``. Edges from a
        basin to itself, and edges within a group already merged lower, change nothing.
    tolerance : float
        Relative slack of the check ``height >= energy`` of both ends.

    Returns
    -------
    DisconnectivityTree

    Raises
    ------
    ValueError
        For an edge whose end is not in ``energies`` or whose height lies below an end.
    """
    basins = sorted(energies)
    nodes: list[TreeNode] = [TreeNode(float(energies[b]), (), b, None, float(energies[b]), 1) for b in basins]
    first = list(basins)  # the smallest basin id below each tree node: ties in the drawing order
    top = {basin: index for index, basin in enumerate(basins)}  # group representative -> its tree node
    groups = _UnionFind(basins)

    def rank(index: int) -> tuple[float, int]:
        return nodes[index].lowest, first[index]

    for a, b, height, saddle in _sorted_edges(energies, edges, tolerance):
        root_a, root_b = groups.find(a), groups.find(b)
        if root_a == root_b:
            continue
        children = tuple(sorted((top[root_a], top[root_b]), key=rank))
        low, high = (nodes[i] for i in children)
        nodes.append(TreeNode(height, children, None, saddle, low.lowest, low.size + high.size))
        first.append(min(first[i] for i in children))
        top[groups.union(a, b)] = len(nodes) - 1
    roots = sorted({top[groups.find(b)] for b in basins}, key=rank)
    order: list[int] = []
    for root in roots:
        _collect_leaves(nodes, root, order)
    return DisconnectivityTree(nodes=tuple(nodes), roots=tuple(roots), order=tuple(order))


def _collect_leaves(nodes: list[TreeNode], root: int, order: list[int]) -> None:
    """Append the basin ids below ``root`` to ``order``, left to right."""
    stack = [root]
    while stack:
        node = nodes[stack.pop()]
        if node.leaf is not None:
            order.append(node.leaf)
        stack.extend(reversed(node.children))


def lowest_barriers(
    energies: Mapping[int, float],
    edges: Iterable[tuple[int, int, float, int]],
    targets: Iterable[int],
    tolerance: float = 1e-9,
) -> dict[int, tuple[float, int | None]]:
    """For every basin not in ``targets``: the lowest minimax height to any target, and its saddle.

    Parameters
    ----------
    energies, edges, tolerance
        As for :func:`disconnectivity_tree`.
    targets : iterable of int
        Basin ids, e.g. the good minima.

    Returns
    -------
    dict int -> (height, saddle)
        ``height`` is the level at which the basin's group first contains a target (the barrier
        is ``height - energies[basin]``) and ``saddle`` the id of the edge that joins them; basins
        that no known path joins to a target are absent.
    """
    targets = set(targets)
    groups = _UnionFind(sorted(energies))
    reached = {basin: basin in targets for basin in energies}
    members = {basin: [basin] for basin in energies}
    found: dict[int, tuple[float, int | None]] = {}
    for a, b, height, saddle in _sorted_edges(energies, edges, tolerance):
        root_a, root_b = groups.find(a), groups.find(b)
        if root_a == root_b:
            continue
        if reached[root_a] != reached[root_b]:
            for basin in members[root_b] if reached[root_a] else members[root_a]:
                found[basin] = (height, saddle)
        groups.union(a, b)  # root_a stays the representative
        reached[root_a] = reached[root_a] or reached[root_b]
        members[root_a] += members.pop(root_b)
    return found
