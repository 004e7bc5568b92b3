"""The log-sum-exp repulsion of InfoNCE over a pool of views (finite-measure evaluator).

    sum_a wa log sum_j wn_j exp(cos(f_a, f_j) / tau)

with the generated ``exp_cosine`` kernel (derivations/pointwise_losses.py) for the
invariant derivatives of every anchor x negative coupling, weighted by wa wn_j / Z_a. Its
Hessian is sum_a wa Hess Z_a / Z_a - sum_a wa mu_a mu_a^T (derivations/pointwise_losses.md
§6), assembled over the pool of views in which a view can be both anchor and negative
(:class:`~critpoints.losses.measure.support.ViewPool`), each cross term once for both
orders of its two views.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from critpoints.losses._generated import pointwise_kernels as kernels
from critpoints.losses._generated.pointwise_kernels import (
    PHI,
    PHI_A,
    PHI_AA,
    PHI_AB,
    PHI_AC,
    PHI_B,
    PHI_BB,
    PHI_BC,
    PHI_C,
    PHI_CC,
)
from critpoints.losses.measure.pairs import add_self_block, inverse_norm


class PoolCouplings(NamedTuple):
    """The weighted invariant derivatives of the repulsion as P x P matrices over the pool
    (Phi_X[x, y] for the coupling of anchor x and negative y, 0 where there is none;
    ^s: plus the transpose)::

        sym_c = Phi_C^s,  sym_ab = Phi_AB^s,  sym_cc = Phi_CC^s,
        psi_t[y, x] = Psi[x, y] = 2 Phi_AC[x, y] + 2 Phi_BC[y, x],
        b_t = Phi_B^T,  c_t = Phi_C^T,
        diagonal[x] = 2 (sum_y Phi_A[x, y] + sum_y Phi_B[y, x]),
        along_own[x] = 4 (sum_y Phi_AA[x, y] + sum_y Phi_BB[y, x]),
        anchor_a[x] = sum_y Phi_A[x, y].
    """

    sym_c: np.ndarray
    sym_ab: np.ndarray
    sym_cc: np.ndarray
    psi_t: np.ndarray
    b_t: np.ndarray
    c_t: np.ndarray
    diagonal: np.ndarray
    along_own: np.ndarray
    anchor_a: np.ndarray


@njit(cache=True)
def add_transpose(matrix, other):
    """In place: matrix <- matrix + other^T (``other`` may be ``matrix``)."""
    n = matrix.shape[0]
    for i in range(n):
        for j in range(i, n):
            upper = matrix[i, j] + other[j, i]
            lower = matrix[j, i] + other[i, j]
            matrix[i, j] = upper
            matrix[j, i] = lower


@njit(cache=True)
def transpose_in_place(matrix):
    """In place: matrix <- matrix^T."""
    n = matrix.shape[0]
    for i in range(n):
        for j in range(i + 1, n):
            matrix[i, j], matrix[j, i] = matrix[j, i], matrix[i, j]


@njit(cache=True)
def pool_couplings(inv_tau, reps, anchor, anchor_weight, negative, negative_weight, order):
    """sum_a wa log sum_j wn_j exp(cos(f_a, f_j)/tau) and (order >= 1) :class:`PoolCouplings`.

    psi_aj = exp(cos_aj/tau - s_a) with s_a = max_j cos_aj/tau, and its invariant
    derivatives are the generated ``exp_cosine``; the couplings weigh them by
    wa wn_j / Z~_a, Z~_a = sum_j wn_j psi_aj (the shift cancels in every ratio).
    """
    n_pool, m = reps.shape
    n_negatives = negative.shape[0]
    squared = np.empty(n_pool)
    inverse = np.empty(n_pool)
    columns = np.empty((m, n_pool))
    for y in range(n_pool):
        total = 0.0
        for i in range(m):
            total += reps[y, i] * reps[y, i]
            columns[i, y] = reps[y, i]
        squared[y] = total
        inverse[y] = inverse_norm(total)
    size = n_pool if order >= 1 else 0
    phi_b = np.zeros((size, size))
    phi_c = np.zeros((size, size))
    phi_ab = np.zeros((size, size))
    phi_ac = np.zeros((size, size))
    phi_bc = np.zeros((size, size))
    phi_cc = np.zeros((size, size))
    diagonal = np.zeros(size)
    along_own = np.zeros(size)
    anchor_a = np.zeros(size)
    inner = np.empty(n_pool)
    row = np.empty((n_negatives, kernels.N_DERIVATIVES))
    value = 0.0
    for a in range(anchor.shape[0]):
        x = anchor[a]
        inner[:] = 0.0
        for i in range(m):
            f = reps[x, i]
            for y in range(n_pool):
                inner[y] += f * columns[i, y]
        shift = -np.inf
        for j in range(n_negatives):
            y = negative[j]
            shift = max(shift, inv_tau * inner[y] * inverse[x] * inverse[y])
        partition = 0.0
        for j in range(n_negatives):
            y = negative[j]
            d = kernels.exp_cosine(squared[x], squared[y], inner[y], inverse[x], inverse[y], inv_tau, shift)
            for c in range(kernels.N_DERIVATIVES):
                row[j, c] = d[c]
            partition += negative_weight[j] * d[PHI]
        value += anchor_weight[a] * (shift + np.log(partition))
        if order < 1:
            continue
        for j in range(n_negatives):
            y = negative[j]
            d = row[j]
            w = anchor_weight[a] * negative_weight[j] / partition
            phi_b[x, y] += w * d[PHI_B]
            phi_c[x, y] += w * d[PHI_C]
            phi_ab[x, y] += w * d[PHI_AB]
            phi_ac[x, y] += w * d[PHI_AC]
            phi_bc[x, y] += w * d[PHI_BC]
            phi_cc[x, y] += w * d[PHI_CC]
            diagonal[x] += 2.0 * w * d[PHI_A]
            diagonal[y] += 2.0 * w * d[PHI_B]
            along_own[x] += 4.0 * w * d[PHI_AA]
            along_own[y] += 4.0 * w * d[PHI_BB]
            anchor_a[x] += w * d[PHI_A]
    c_t = np.ascontiguousarray(phi_c.T)
    add_transpose(phi_c, phi_c)
    add_transpose(phi_ab, phi_ab)
    add_transpose(phi_cc, phi_cc)
    add_transpose(phi_bc, phi_ac)
    phi_bc *= 2.0
    transpose_in_place(phi_b)
    return value, PoolCouplings(phi_c, phi_ab, phi_cc, phi_bc, phi_b, c_t, diagonal, along_own, anchor_a)


@njit(cache=True)
def times_reps(transposed, reps):
    """(M F)^T (m, P) for M given by its transpose (rows M[:, y]) and F (P, m): axpys over the pool."""
    n_pool, m = reps.shape
    out = np.zeros((m, n_pool))
    for y in range(n_pool):
        for l in range(m):
            f = reps[y, l]
            if f == 0.0:
                continue
            for x in range(n_pool):
                out[l, x] += f * transposed[y, x]
    return out


@njit(cache=True)
def repulsion_views(pc, reps, pool, view_grad, view_self, order):
    """Per pool view x: the gradient and self block of its couplings (as anchor and as negative)::

    g_x += diagonal_x f_x + sum_y Phi_C^s[x, y] f_y,
    M_x += diagonal_x I + along_own_x f_x f_x^T + f_x p_x^T + p_x f_x^T + sum_y Phi_CC^s[x, y] f_y f_y^T,
    p_x = sum_y Psi[x, y] f_y.
    """
    n_pool, m = reps.shape
    along_c = times_reps(pc.sym_c, reps)
    for x in range(n_pool):
        grad = view_grad[pool[x]]
        for l in range(m):
            grad[l] += pc.diagonal[x] * reps[x, l] + along_c[l, x]
    if order < 2:
        return
    along_psi = times_reps(pc.psi_t, reps)
    pairs = np.zeros((m, m, n_pool))
    for y in range(n_pool):
        for l in range(m):
            for k in range(l, m):
                f = reps[y, l] * reps[y, k]
                if f == 0.0:
                    continue
                for x in range(n_pool):
                    pairs[l, k, x] += f * pc.sym_cc[y, x]
    along = np.empty(m)
    for x in range(n_pool):
        block = view_self[pool[x]]
        for l in range(m):
            along[l] = along_psi[l, x]
            for k in range(l, m):
                block[l, k] += pairs[l, k, x]
                if k > l:
                    block[k, l] += pairs[l, k, x]
        add_self_block(block, reps[x], pc.diagonal[x], pc.along_own[x], along)


@njit(cache=True)
def pool_products(pc, reps, pool, slot_ptr, slot_coord, jac, width):
    """Products of pool matrices with the views' Jacobians, as (width, P) arrays (entry
    beta * m + k of view x in column x, ``width`` = n_inputs * m)::

        identity = (Phi_C^s Y)^T,
        combined = (2 Phi_AB^s G + f * (Psi Y))^T,
        mu = (2 Phi_B G + f * (Phi_C Y))^T,

    with Y_y[(beta, k)] = J_y[k, beta], G_y[(beta, k)] = f_y[k] J_y[k, beta] and
    (f * W)[x, (beta, k)] = f_x[k] W[x, (beta, k)]; each is a sum of axpys over the pool.
    """
    n_pool, m = reps.shape
    identity = np.zeros((width, n_pool))
    own = np.zeros((width, n_pool))
    psi = np.zeros((width, n_pool))
    mu_b = np.zeros((width, n_pool))
    mu_c = np.zeros((width, n_pool))
    for y in range(n_pool):
        v = pool[y]
        for t in range(slot_ptr[v], slot_ptr[v + 1]):
            first = slot_coord[t] * m
            for k in range(m):
                plain = jac[t, k]
                if plain == 0.0:
                    continue
                scaled = plain * reps[y, k]
                row = first + k
                # One loop per product: a single fused loop does not vectorise.
                for x in range(n_pool):
                    identity[row, x] += plain * pc.sym_c[y, x]
                for x in range(n_pool):
                    own[row, x] += scaled * pc.sym_ab[y, x]
                for x in range(n_pool):
                    psi[row, x] += plain * pc.psi_t[y, x]
                for x in range(n_pool):
                    mu_b[row, x] += scaled * pc.b_t[y, x]
                for x in range(n_pool):
                    mu_c[row, x] += plain * pc.c_t[y, x]
    for b in range(width):
        k = b % m
        for x in range(n_pool):
            own[b, x] = 2.0 * own[b, x] + reps[x, k] * psi[b, x]
        for x in range(n_pool):
            mu_b[b, x] = 2.0 * mu_b[b, x] + reps[x, k] * mu_c[b, x]
    return identity, own, mu_b


@njit(cache=True)
def repulsion_cross(pc, reps, pool, slot_ptr, slot_coord, jac, identity, combined, dense):
    """Cross terms sum_{x,y} J_x^T T_xy J_y of the repulsion into ``dense`` (the encoder's
    n x n Hessian, row-major, added once: the Hessian is ``dense + dense^T``)::

        T_xy = Phi_C^s/2 I + 2 Phi_AB^s f_x f_y^T + Psi[x, y] f_x f_x^T + Phi_CC^s/2 f_y f_x^T.

    The first three are summed per row x (``identity`` and ``combined`` from
    :func:`pool_products`). The last, K = sum_{x,y} Phi_CC^s (J_x^T f_y)(J_y^T f_x)^T, is
    symmetric with neuron block (k, l) the transpose of block (l, k); half of it is added
    as its blocks l < k and half of the blocks l = k, through
    Z_lk[beta, x] = sum_y Phi_CC^s[x, y] f_y[l] J_y[k, beta] (all k >= l together, so that
    each row of Phi_CC^s is read once per l).
    """
    n_pool, m = reps.shape
    width = dense.shape[0]
    n_inputs = width // m
    row = np.empty(width)
    for x in range(n_pool):
        v = pool[x]
        for b in range(width):
            row[b] = combined[b, x]
        for t in range(slot_ptr[v], slot_ptr[v + 1]):
            first = slot_coord[t] * m
            for l in range(m):
                g = jac[t, l] * reps[x, l]
                target = dense[first + l]
                for b in range(width):
                    target[b] += g * row[b]
                half = 0.5 * jac[t, l]
                for beta in range(n_inputs):
                    target[beta * m + l] += half * identity[beta * m + l, x]
    z = np.empty((m, n_inputs, n_pool))
    for l in range(m):
        z[l:] = 0.0
        for y in range(n_pool):
            v = pool[y]
            if reps[y, l] == 0.0:
                continue
            source = pc.sym_cc[y]
            for t in range(slot_ptr[v], slot_ptr[v + 1]):
                for k in range(l, m):
                    f = reps[y, l] * jac[t, k]
                    if f == 0.0:
                        continue
                    row = z[k, slot_coord[t]]
                    for x in range(n_pool):
                        row[x] += f * source[x]
        for k in range(l, m):
            scale = 0.5 if l == k else 1.0
            for x in range(n_pool):
                v = pool[x]
                for t in range(slot_ptr[v], slot_ptr[v + 1]):
                    g = scale * jac[t, l] * reps[x, k]
                    if g == 0.0:
                        continue
                    target = dense[slot_coord[t] * m + l]
                    for beta in range(n_inputs):
                        target[beta * m + k] += g * z[k, beta, x]


@njit(cache=True, fastmath={"reassoc", "contract"})
def subtract_gram(columns, weight, dense):
    """dense[i, j] -= sum_a weight_a v_a[i] v_a[j] for i < j, half of it for i = j.

    ``columns`` (n, A) holds the vectors v_a as columns; each entry is a dot product over
    the vectors (``reassoc`` lets it vectorise).
    """
    n, n_vectors = columns.shape
    scaled = np.empty(n_vectors)
    for i in range(n):
        for a in range(n_vectors):
            scaled[a] = weight[a] * columns[i, a]
        for j in range(i, n):
            other = columns[j]
            total = 0.0
            for a in range(n_vectors):
                total += scaled[a] * other[a]
            dense[i, j] -= 0.5 * total if j == i else total


@njit(cache=True)
def repulsion_covariance(pc, reps, pool, anchor, anchor_weight, slot_ptr, slot_coord, jac, mu, dense):
    """-sum_a wa mu_a mu_a^T into ``dense`` (upper half, diagonal halved), with wa mu_a the
    parameter gradient of anchor a's couplings,

        J_a^T (2 sum_j Phi_A f_a + sum_j Phi_C f_j) + sum_j J_j^T (2 Phi_B f_j + Phi_C f_a),

    the second sum being column a of ``mu`` (:func:`pool_products`).
    """
    m = reps.shape[1]
    width = dense.shape[0]
    along_c = times_reps(pc.c_t, reps)
    columns = np.empty((width, anchor.shape[0]))
    for b in range(width):
        for a in range(anchor.shape[0]):
            columns[b, a] = mu[b, anchor[a]]
    for a in range(anchor.shape[0]):
        x = anchor[a]
        v = pool[x]
        for t in range(slot_ptr[v], slot_ptr[v + 1]):
            first = slot_coord[t] * m
            for l in range(m):
                columns[first + l, a] += jac[t, l] * (2.0 * pc.anchor_a[x] * reps[x, l] + along_c[l, x])
    subtract_gram(columns, 1.0 / anchor_weight, dense)


@njit(cache=True)
def add_dense(hess, offset, dense):
    """hess[offset + a, offset + b, i, k] += dense[a * m + i, b * m + k]."""
    m = hess.shape[2]
    n_blocks = dense.shape[0] // m
    for a in range(n_blocks):
        for b in range(n_blocks):
            for i in range(m):
                for k in range(m):
                    hess[offset + a, offset + b, i, k] += dense[a * m + i, b * m + k]


@njit(cache=True)
def infonce_repulsion(
    inv_tau,
    pool,
    anchor,
    anchor_weight,
    negative,
    negative_weight,
    rep,
    slot_ptr,
    slot_coord,
    jac,
    n_inputs,
    view_grad,
    view_self,
    hess,
    order,
):
    """sum_a wa log sum_j wn_j exp(cos(f_a, f_j)/tau): the value, and (``order``) the per-view
    terms and the encoder's Hessian blocks (one shared encoder, block offset 0).

    With the weights wa wn_j / Z~_a the couplings give sum_a wa Hess Z_a / Z_a; the
    Hessian of log Z_a also has -mu_a mu_a^T (derivations/pointwise_losses.md §6). The
    couplings are taken over the pool of views (:class:`ViewPool`), each cross term
    once for both orders of its two views.
    """
    reps = np.empty((pool.shape[0], rep.shape[1]))
    for x in range(pool.shape[0]):
        reps[x] = rep[pool[x]]
    value, pc = pool_couplings(inv_tau, reps, anchor, anchor_weight, negative, negative_weight, order)
    if order < 1:
        return value
    repulsion_views(pc, reps, pool, view_grad, view_self, order)
    if order < 2:
        return value
    width = n_inputs * rep.shape[1]
    identity, combined, mu = pool_products(pc, reps, pool, slot_ptr, slot_coord, jac, width)
    dense = np.zeros((width, width))
    repulsion_cross(pc, reps, pool, slot_ptr, slot_coord, jac, identity, combined, dense)
    repulsion_covariance(pc, reps, pool, anchor, anchor_weight, slot_ptr, slot_coord, jac, mu, dense)
    add_dense(hess, 0, dense)
    return value
