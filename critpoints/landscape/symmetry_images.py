"""The image of a point under the symmetry group that lies nearest another point.

Two minima are stored as one representative per symmetry orbit (critpoints.landscape.orbits);
a path between the *orbits* is best drawn between a representative of one and the nearest
image g theta of the other. Finding the nearest image exactly is a quadratic assignment
problem over neurons and inputs, so :func:`nearest_image` alternates the exactly solvable
parts from the identity until the distance stops decreasing:

* neurons (when no O(m) acts): a linear assignment (Hungarian method, scipy's
  ``linear_sum_assignment``) of the neurons of theta to those of the reference within each
  class of permutable neurons, each pair with the better of its two signs;
* O(m) (linear encoders): the orthogonal Procrustes solution Q = U V^T of Z_ref Z^T = U S V^T,
  Z = [W, W_t];
* inputs (when the data are invariant under permutations, and sign flips, of the inputs):
  the same assignment over the columns of [W; W_t];
* entry sign flips (one-sparse data): for given permutations the best sign of each entry
  pair (W_ij, W_t_ij) is that of its inner product with the reference's pair, so the two
  assignments above pair neurons (inputs) at the cost with every entry's sign chosen so,
  and the signs are then set entry by entry;
* positive rescalings: each scaling group rescaled to the reference's norm.

Under row-entry permutations (the entries of each row permuted on their own, a separable pair
loss on exchangeable data) the problem separates and is solved exactly
(:func:`_row_nearest`): for every pair of rows (i of theta, k of the reference) the best
matching of their entries is an assignment of the p entries (each pair with its best sign under
entry sign flips; both row signs tried otherwise), and the rows are then matched by an
assignment over these costs within each class of permutable neurons. It comes first among
:func:`near_images`, followed by the ends of the alternation above (images under a subgroup).

The result is an image of ``theta`` under the group (so it has the same loss, spectrum and
labels), not necessarily the nearest one; the saddle searches only need a short path.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from critpoints.losses.symmetries import SymmetryGroup

__all__ = ["near_images", "nearest_image"]

#: Rounds of the alternating assignment at most.
MAX_ROUNDS = 8


def _signed_assignment(plus: np.ndarray, minus: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The permutation and signs of least total cost, from the costs of pairing row i with
    row j as it is (``plus[i, j]``) and flipped (``minus[i, j]``; None: no flips)."""
    cost = plus if minus is None else np.minimum(plus, minus)
    _, order = linear_sum_assignment(cost)
    rows = np.arange(len(order))
    signs = np.ones(len(order)) if minus is None else np.where(minus[rows, order] < plus[rows, order], -1.0, 1.0)
    return order, signs


def _squared_distances(reference: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return ((reference[:, None, :] - rows[None, :, :]) ** 2).sum(axis=2)


def _entry_signed_distances(reference: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Squared distances of rows (branches, n, k) to reference rows (branches, n_ref, k) with the
    sign of every entry pair (over the branches) chosen to match: |a|^2 + |b|^2 - 2 sum_k |a_k . b_k|."""
    products = np.einsum("brk,bnk->rnk", reference, rows)
    squares = (reference**2).sum(axis=(0, 2))[:, None] + (rows**2).sum(axis=(0, 2))[None, :]
    return squares - 2.0 * np.abs(products).sum(axis=2)


def _match_entry_signs(group: SymmetryGroup, reference: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """theta with the sign of each entry pair (W_ij, W_t_ij) making it nearest the reference's."""
    blocks, ref_blocks = group.layout.unpack(theta), group.layout.unpack(reference)
    products = sum(ref_blocks[name] * blocks[name] for name in ("W", "W_t") if name in blocks)
    return group.flip_entries(theta, np.where(products < 0, -1.0, 1.0))


def _align_neurons(group: SymmetryGroup, reference: np.ndarray, theta: np.ndarray) -> np.ndarray:
    ref_blocks, blocks = group.layout.unpack(reference), group.layout.unpack(theta)
    weights = [name for name in ("W", "W_t") if name in blocks]
    if group.rotations:
        z_ref = np.concatenate([ref_blocks[name] for name in weights], axis=1)
        z = np.concatenate([blocks[name] for name in weights], axis=1)
        u, _, vt = np.linalg.svd(z_ref @ z.T)
        return group.rotate(theta, u @ vt)
    biases = [name for name in ("b", "b_t") if name in blocks]
    features = np.concatenate([blocks[n] for n in weights] + [blocks[n][:, None] for n in biases], axis=1)
    ref_features = np.concatenate([ref_blocks[n] for n in weights] + [ref_blocks[n][:, None] for n in biases], axis=1)
    width = sum(blocks[n].shape[1] for n in weights)
    permutation, signs = np.arange(group.m), np.ones(group.m)
    if group.entry_sign_flips:
        branches = np.stack([blocks[n] for n in weights])
        ref_branches = np.stack([ref_blocks[n] for n in weights])
        bias_features = features[:, width:]
        ref_bias_features = ref_features[:, width:]
        for members in group.permutable:
            members = np.asarray(members)
            cost = _entry_signed_distances(ref_branches[:, members], branches[:, members])
            cost += _squared_distances(ref_bias_features[members], bias_features[members])
            order, _ = _signed_assignment(cost, None)
            permutation[members] = members[order]
        return _match_entry_signs(group, reference, group.permute(theta, permutation))
    for members in group.permutable:
        members = np.asarray(members)
        flipped = features[members].copy()
        flipped[:, :width] *= -1.0  # a flip negates the weights of a neuron, not its biases
        plus = _squared_distances(ref_features[members], features[members])
        minus = _squared_distances(ref_features[members], flipped) if group.sign_flips else None
        order, member_signs = _signed_assignment(plus, minus)
        permutation[members] = members[order]
        signs[members] = member_signs
    return group.flip(group.permute(theta, permutation), signs)


def _align_inputs(group: SymmetryGroup, reference: np.ndarray, theta: np.ndarray) -> np.ndarray:
    ref_blocks, blocks = group.layout.unpack(reference), group.layout.unpack(theta)
    weights = [name for name in ("W", "W_t") if name in blocks]
    if group.entry_sign_flips:
        cost = _entry_signed_distances(
            np.stack([ref_blocks[name].T for name in weights]), np.stack([blocks[name].T for name in weights])
        )
        order, _ = _signed_assignment(cost, None)
        p = order.size
        return _match_entry_signs(group, reference, group.act_on_inputs(theta, order, np.ones(p)))
    columns_ref = np.concatenate([ref_blocks[name] for name in weights], axis=0).T
    columns = np.concatenate([blocks[name] for name in weights], axis=0).T
    plus = _squared_distances(columns_ref, columns)
    order, signs = _signed_assignment(
        plus, _squared_distances(columns_ref, -columns) if group.input_sign_flips else None
    )
    return group.act_on_inputs(theta, order, signs)


def _row_nearest(group: SymmetryGroup, reference: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """The image of theta nearest the reference under neuron permutations, neuron or entry signs
    and row-entry permutations: an assignment of entries for every pair of rows, then of rows."""
    blocks, ref_blocks = group.layout.unpack(theta), group.layout.unpack(reference)
    weights = [name for name in ("W", "W_t") if name in blocks]
    rows = np.stack([blocks[name] for name in weights], axis=-1)  # (m, p, k)
    ref_rows = np.stack([ref_blocks[name] for name in weights], axis=-1)
    m, p, _ = rows.shape
    squares = (ref_rows**2).sum(axis=-1)[:, None, :, None] + (rows**2).sum(axis=-1)[None, :, None, :]
    products = np.einsum("kfc,iec->kife", ref_rows, rows)  # (reference row, row, reference entry, entry)
    if group.entry_sign_flips:
        candidates = [(1.0, squares - 2.0 * np.abs(products))]
    else:
        candidates = [(1.0, squares - 2.0 * products), (-1.0, squares + 2.0 * products)]
    biases = [name for name in ("b", "b_t") if name in blocks]
    bias_cost = sum(((ref_blocks[n][:, None] - blocks[n][None, :]) ** 2 for n in biases), np.zeros((m, m)))
    row_cost = np.full((m, m), np.inf)
    row_sign = np.ones((m, m))
    entry_order = np.zeros((m, m, p), dtype=np.int64)
    for sign, cost in candidates:
        for k in range(m):
            for i in range(m):
                order, _ = _signed_assignment(cost[k, i], None)  # reference entry f takes entry order[f]
                total = float(cost[k, i][np.arange(p), order].sum())
                if total < row_cost[k, i]:
                    row_cost[k, i], row_sign[k, i], entry_order[k, i] = total, sign, order
    row_cost += bias_cost
    permutation = np.arange(m)
    for members in group.permutable:
        members = np.asarray(members)
        order, _ = _signed_assignment(row_cost[np.ix_(members, members)], None)
        permutation[members] = members[order]
    neurons = np.arange(m)
    theta = group.flip(group.permute(theta, permutation), row_sign[neurons, permutation])
    theta = group.permute_row_entries(theta, entry_order[neurons, permutation])
    return _match_entry_signs(group, reference, theta) if group.entry_sign_flips else theta


def _match_scalings(group: SymmetryGroup, reference: np.ndarray, theta: np.ndarray) -> np.ndarray:
    for blocks in group.scalings:
        indices = np.concatenate([np.arange(theta.size)[group.layout.slice(name)] for name in blocks])
        norm, target = np.linalg.norm(theta[indices]), np.linalg.norm(reference[indices])
        if norm > 0 and target > 0:
            theta = group.scale(theta, blocks, float(target / norm))
    return theta


def _random_image(group: SymmetryGroup, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """theta under a random element of the discrete part of the group (a start of the alternation)."""
    permutation = np.arange(group.m)
    for members in group.permutable:
        members = np.asarray(members)
        permutation[members] = rng.permutation(members)
    theta = group.permute(theta, permutation)
    if group.input_permutations:
        p = group.layout.shapes["W"][1]
        signs = rng.choice([-1.0, 1.0], size=p) if group.input_sign_flips else np.ones(p)
        theta = group.act_on_inputs(theta, rng.permutation(p), signs)
    return theta


def _signature_start(group: SymmetryGroup, reference: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """theta with its inputs, then its neurons, matched to the reference's by signatures that
    the other symmetries leave alone: the sorted absolute entries of each column of [W; W_t]
    (invariant under neuron permutations and flips), then of each neuron's weights."""
    if group.rotations:
        return theta

    def stacked(point: np.ndarray, axis: int) -> np.ndarray:
        blocks = group.layout.unpack(point)
        return np.concatenate([blocks[name] for name in ("W", "W_t") if name in blocks], axis=axis)

    if group.input_permutations:
        columns = np.sort(np.abs(stacked(theta, 0)), axis=0).T
        order, _ = _signed_assignment(
            _squared_distances(np.sort(np.abs(stacked(reference, 0)), axis=0).T, columns), None
        )
        theta = group.act_on_inputs(theta, order, np.ones(order.size))
    rows, ref_rows = np.sort(np.abs(stacked(theta, 1)), axis=1), np.sort(np.abs(stacked(reference, 1)), axis=1)
    permutation = np.arange(group.m)
    for members in group.permutable:
        members = np.asarray(members)
        order, _ = _signed_assignment(_squared_distances(ref_rows[members], rows[members]), None)
        permutation[members] = members[order]
    return _fix_signs(group, reference, group.permute(theta, permutation))


#: Largest number of neurons for which the neuron signs are chosen by trying every sign vector.
MAX_SIGN_ENUMERATION = 12


def _fix_signs(group: SymmetryGroup, reference: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """theta with the neuron signs s and input signs t maximising sum_ij s_i t_j C_ij,
    C_ij = sum over branches of W_ref[i, j] W[i, j] (neurons and inputs kept in place); under
    entry sign flips, every entry's sign s_ij maximising s_ij C_ij.

    For given s the best t is sign(C^T s); every s is tried for up to MAX_SIGN_ENUMERATION
    neurons, else s starts at sign(C 1) and alternates with t.
    """
    if group.entry_sign_flips:
        return _match_entry_signs(group, reference, theta)
    blocks, ref_blocks = group.layout.unpack(theta), group.layout.unpack(reference)
    products = sum(ref_blocks[name] * blocks[name] for name in ("W", "W_t") if name in blocks)
    if not group.input_sign_flips:
        neuron_signs = np.where(products.sum(axis=1) < 0, -1.0, 1.0)
        input_signs = np.ones(products.shape[1])
    elif group.m <= MAX_SIGN_ENUMERATION:
        candidates = 1.0 - 2.0 * ((np.arange(2**group.m)[:, None] >> np.arange(group.m)) & 1)
        neuron_signs = candidates[np.argmax(np.abs(candidates @ products).sum(axis=1))]
        input_signs = np.where(neuron_signs @ products < 0, -1.0, 1.0)
    else:
        neuron_signs = np.where(products.sum(axis=1) < 0, -1.0, 1.0)
        for _ in range(MAX_ROUNDS):
            input_signs = np.where(neuron_signs @ products < 0, -1.0, 1.0)
            neuron_signs = np.where(products @ input_signs < 0, -1.0, 1.0)
    theta = group.flip(theta, neuron_signs)
    return group.act_on_inputs(theta, np.arange(products.shape[1]), input_signs) if group.input_sign_flips else theta


def _alternate(group: SymmetryGroup, reference: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, float]:
    best = _match_scalings(group, reference, theta)
    best_distance = float(np.linalg.norm(best - reference))
    for _ in range(MAX_ROUNDS):
        trial = _align_neurons(group, reference, best)
        if group.input_permutations:
            trial = _align_inputs(group, reference, trial)
        distance = float(np.linalg.norm(trial - reference))
        if distance >= best_distance * (1.0 - 1e-12):
            break
        best, best_distance = trial, distance
    return best, best_distance


def near_images(
    group: SymmetryGroup, reference: np.ndarray, theta: np.ndarray, restarts: int = 16
) -> list[tuple[float, np.ndarray]]:
    """Distinct images g theta of ``theta`` near ``reference``, nearest first, with their distances.

    The ends of the alternations of :func:`nearest_image` (from theta, from the signature
    match and from ``restarts`` seeded random images), without repeats.
    """
    reference = np.asarray(reference, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    rng = np.random.default_rng(0)
    starts = [theta, _signature_start(group, reference, theta)]
    starts += [_random_image(group, theta, rng) for _ in range(restarts)]
    found: list[tuple[float, np.ndarray]] = []
    if group.row_entry_permutations:
        exact = _row_nearest(group, reference, _match_scalings(group, reference, theta))
        found.append((float(np.linalg.norm(exact - reference)), exact))
    for start in starts:
        image, distance = _alternate(group, reference, start)
        if all(np.abs(image - known).max() > 1e-12 for _, known in found):
            found.append((distance, image))
    return sorted(found, key=lambda pair: pair[0])  # stable: the exact image first among equals


def nearest_image(group: SymmetryGroup, reference: np.ndarray, theta: np.ndarray, restarts: int = 16) -> np.ndarray:
    """An image g theta of ``theta`` under ``group`` close to ``reference`` (see the module docstring).

    Parameters
    ----------
    group : SymmetryGroup
        The symmetries of the loss (critpoints.losses.symmetries).
    reference, theta : ndarray, shape (n,)
    restarts : int
        Alternations started from random images of theta (seeded, so the result is
        reproducible), besides the ones from theta itself and from theta with its inputs and
        neurons matched to the reference's by invariant signatures; the nearest result is
        returned.

    Returns
    -------
    ndarray, shape (n,)
        g theta with ``||g theta - reference||`` no larger than ``||theta - reference||``.
    """
    return near_images(group, reference, theta, restarts)[0][1]
