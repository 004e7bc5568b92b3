"""Couplings of two representations and their pair passes (stage 2 of the finite-measure evaluator).

A coupling term is sum_n w_n phi(r_n, c_n) over couplings n of a row view r_n and a column
view c_n, phi a pointwise function of the invariants A = r.r, B = c.c, C = r.c. The
invariants of every coupling go through the family's generated kernel table
(critpoints.losses._generated.pointwise_kernels, derivations/pointwise_losses.py), whose
columns feed the chain rule of derivations/pointwise_losses.md §3-4: per view, the
representation gradient and the m x m self block; between the two views of a coupling, the
cross block, summed per row and per column view before it meets the Jacobians and is
written into the Hessian directly.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from critpoints.losses._generated.pointwise_kernels import (
    N_DERIVATIVES,
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
from critpoints.losses.kernels import PairKernel
from critpoints.losses.measure.support import Couplings


class Side(NamedTuple):
    """The rows (or the columns) of a coupling term, as the kernels see them.

    Position g has the representation ``rep[key[g]]`` and sums its representation
    gradient and self block into ``grad[key[g]]`` and ``self_block[key[g]]``. Its
    parameter Jacobian is stored by slots (:class:`Slots`): those of index
    ``s = slot_key[g]`` are ``slot_coord[slot_ptr[s]:slot_ptr[s+1]]`` with the values
    ``jac[slot_ptr[s]:slot_ptr[s+1]]`` (one per neuron). Entry alpha < ``n_inputs`` of
    every neuron is the parameter block ``offset + alpha`` of the Hessian
    (:class:`Accumulator`).
    """

    rep: np.ndarray
    key: np.ndarray
    grad: np.ndarray
    self_block: np.ndarray
    slot_key: np.ndarray
    slot_ptr: np.ndarray
    slot_coord: np.ndarray
    jac: np.ndarray
    offset: int
    n_inputs: int


@njit(cache=True)
def squared_norms(rep, key):
    """|rep[key[g]]|^2 of each position g of a side."""
    m = rep.shape[1]
    out = np.empty(key.shape[0])
    for g in range(key.shape[0]):
        x = rep[key[g]]
        total = 0.0
        for i in range(m):
            total += x[i] * x[i]
        out[g] = total
    return out


@njit(cache=True)
def inverse_norm(squared):
    """1/sqrt(A), 0 for a zero representation (A = 0)."""
    return 1.0 / np.sqrt(squared) if squared > 0.0 else 0.0


@njit(cache=True)
def coupling_invariants(rows, cols, row_rep, row_key, col_rep, col_key):
    """A = r.r, B = c.c, C = r.c and the inverse norms 1/|r|, 1/|c| for every coupling n,
    r = row_rep[row_key[rows[n]]], c = col_rep[col_key[cols[n]]] (plain arrays: the call
    types a handful of arguments, not two sides)."""
    n = rows.shape[0]
    row_squared = squared_norms(row_rep, row_key)
    col_squared = squared_norms(col_rep, col_key)
    squared_r = np.empty(n)
    squared_c = np.empty(n)
    inner = np.empty(n)
    inverse_r = np.empty(n)
    inverse_c = np.empty(n)
    for k in range(n):
        squared_r[k] = row_squared[rows[k]]
        squared_c[k] = col_squared[cols[k]]
        inverse_r[k] = inverse_norm(squared_r[k])
        inverse_c[k] = inverse_norm(squared_c[k])
        r = row_rep[row_key[rows[k]]]
        c = col_rep[col_key[cols[k]]]
        total = 0.0
        for i in range(r.shape[0]):
            total += r[i] * c[i]
        inner[k] = total
    return squared_r, squared_c, inner, inverse_r, inverse_c


@njit(cache=True)
def add_self_block(block, own, diagonal, along_own, along_other):
    """block += diagonal I + along_own x x^T + x p^T + p x^T (x = ``own``, p = ``along_other``)."""
    m = own.shape[0]
    for l in range(m):
        block[l, l] += diagonal
        left = along_own * own[l] + along_other[l]
        for k in range(m):
            block[l, k] += left * own[k] + own[l] * along_other[k]


@njit(cache=True)
def mapped(row_map, x, out):
    """out = E^T x for the row map E (``row_map``), or x when there is none (empty)."""
    m = x.shape[0]
    for l in range(m):
        if row_map.shape[0] == 0:
            out[l] = x[l]
        else:
            total = 0.0
            for i in range(m):
                total += row_map[i, l] * x[i]
            out[l] = total


@njit(cache=True)
def any_phi_cc(table):
    """Whether some coupling has phi_CC != 0 (its cross term is summed per row)."""
    for n in range(table.shape[0]):
        if table[n, PHI_CC] != 0.0:
            return True
    return False


@njit(cache=True)
def add_row_cross(hess, row_block, col_offset, y, rho, x, union, n_union, along_r, identity, along_cc, row_map):
    """One row slot's share of :func:`row_pass`'s cross terms, into the row of blocks ``row_block``.

    ``y`` = J_r[:, alpha]; for beta in the union, block (alpha, beta) gets
    y_l (rho_l a[beta, k] + E[k, l] d[beta, k] + x_k T[beta, l, k]).
    """
    m = y.shape[0]
    with_map = row_map.shape[0] > 0
    for u in range(n_union):
        beta = union[u]
        col_block = col_offset + beta
        for l in range(m):
            f = y[l] * rho[l]
            for k in range(m):
                hess[row_block, col_block, l, k] += f * along_r[beta, k]
            if not with_map:
                hess[row_block, col_block, l, l] += y[l] * identity[beta, l]
        if with_map:
            for l in range(m):
                f = y[l]
                for k in range(m):
                    hess[row_block, col_block, l, k] += f * row_map[k, l] * identity[beta, k]
        if along_cc.shape[0] > 0:
            for l in range(m):
                f = y[l]
                for k in range(m):
                    hess[row_block, col_block, l, k] += f * x[k] * along_cc[beta, l, k]


@njit(cache=True)
def row_pass(table, weight, couplings, row, col, row_map, view_order, with_cross, hess):
    """Per row r of a coupling term, c_n its partner in coupling n (derivations/pointwise_losses.md §3-4).

    ``view_order`` >= 1: its representation gradient, >= 2: its self block,

        g_r += sum_n w_n (2 phi_A r + phi_C c_n),
        M_r += sum_n w_n (2 phi_A I + 4 phi_AA r r^T + 2 phi_AC (r c_n^T + c_n r^T) + phi_CC c_n c_n^T),

    the scalars and the vector along c summed over the couplings before the block is
    formed. ``with_cross``: the terms of the cross block X = sum_n J_r^T E^T H_rc^n J_{c_n}
    that are summed per row, H_rc = phi_C I + r (4 phi_AB c + 2 phi_AC r)^T + c (2 phi_BC c + phi_CC r)^T::

        X[(alpha, l), (beta, k)] += J_r[l, alpha] (rho_l a[beta, k] + E[k, l] d[beta, k] + r_k T[beta, l, k]),
        rho = E^T r,  a[beta, k] = sum_n w_n (4 phi_AB c_n + 2 phi_AC r)_k J_{c_n}[k, beta],
        d[beta, k] = sum_n w_n phi_C J_{c_n}[k, beta],  T[beta, l, k] = sum_n w_n phi_CC (E^T c_n)_l J_{c_n}[k, beta],

    beta over the union of the partners' slots; E is the row map (the rows are E u, u the
    encoder output; the identity when ``row_map`` is empty). The term along c is
    summed per column (:func:`col_pass`).
    """
    m = row.rep.shape[1]
    with_cc = with_cross and any_phi_cc(table)
    n_inputs = col.n_inputs
    along = np.empty(m)
    along_r = np.empty((n_inputs, m))
    identity = np.empty((n_inputs, m))
    along_cc = np.empty((n_inputs if with_cc else 0, m, m))
    union = np.empty(n_inputs, dtype=np.int64)
    seen = np.zeros(n_inputs, dtype=np.bool_)
    along_n = np.empty(m)
    rho = np.empty(m)
    sigma = np.empty(m)
    for r in range(couplings.row_ptr.shape[0] - 1):
        item = row.key[r]
        x = row.rep[item]
        grad = row.grad[item]
        diagonal = 0.0
        along_own = 0.0
        for k in range(m):
            along[k] = 0.0
        n_union = 0
        for n in range(couplings.row_ptr[r], couplings.row_ptr[r + 1]):
            w = weight[n]
            position = couplings.cols[n]
            c = col.rep[col.key[position]]
            w_a = 2.0 * w * table[n, PHI_A]
            w_c = w * table[n, PHI_C]
            w_ac = 2.0 * w * table[n, PHI_AC]
            w_cc = w * table[n, PHI_CC]
            if view_order >= 1:
                for k in range(m):
                    grad[k] += w_a * x[k] + w_c * c[k]
            if view_order >= 2:
                diagonal += w_a
                along_own += 4.0 * w * table[n, PHI_AA]
                for k in range(m):
                    along[k] += w_ac * c[k]
                if w_cc != 0.0:
                    block = row.self_block[item]
                    for l in range(m):
                        for k in range(m):
                            block[l, k] += w_cc * c[l] * c[k]
            if not with_cross:
                continue
            w_ab = 4.0 * w * table[n, PHI_AB]
            for k in range(m):
                along_n[k] = w_ab * c[k] + w_ac * x[k]
            if w_cc != 0.0:
                mapped(row_map, c, sigma)
            slots = col.slot_key[position]
            for t in range(col.slot_ptr[slots], col.slot_ptr[slots + 1]):
                beta = col.slot_coord[t]
                if not seen[beta]:
                    seen[beta] = True
                    union[n_union] = beta
                    n_union += 1
                    for k in range(m):
                        along_r[beta, k] = 0.0
                        identity[beta, k] = 0.0
                    if with_cc:
                        along_cc[beta] = 0.0
                y = col.jac[t]
                for k in range(m):
                    along_r[beta, k] += along_n[k] * y[k]
                for k in range(m):
                    identity[beta, k] += w_c * y[k]
                if w_cc != 0.0:
                    for l in range(m):
                        f = w_cc * sigma[l]
                        for k in range(m):
                            along_cc[beta, l, k] += f * y[k]
        if view_order >= 2:
            add_self_block(row.self_block[item], x, diagonal, along_own, along)
        if not with_cross:
            continue
        mapped(row_map, x, rho)
        slots = row.slot_key[r]
        for t in range(row.slot_ptr[slots], row.slot_ptr[slots + 1]):
            add_row_cross(
                hess,
                row.offset + row.slot_coord[t],
                col.offset,
                row.jac[t],
                rho,
                x,
                union,
                n_union,
                along_r,
                identity,
                along_cc,
                row_map,
            )
        for u in range(n_union):
            seen[union[u]] = False


@njit(cache=True)
def col_pass(table, weight, couplings, row, col, row_map, view_order, with_cross, hess):
    """Per column c of a coupling term, r_n its partner in coupling n: as :func:`row_pass`,

        g_c += sum_n w_n (2 phi_B c + phi_C r_n),
        M_c += sum_n w_n (2 phi_B I + 4 phi_BB c c^T + 2 phi_BC (c r_n^T + r_n c^T) + phi_CC r_n r_n^T),

    and (``with_cross``) the term 2 phi_BC c c^T of H_rc, summed per column::

        X[(alpha, l), (beta, k)] += (E^T c)_l b[alpha, l] c_k J_c[k, beta],
        b[alpha, l] = sum_n 2 w_n phi_BC J_{r_n}[l, alpha],

    alpha over the union of the partners' slots.
    """
    m = row.rep.shape[1]
    n_inputs = row.n_inputs
    along = np.empty(m)
    along_c = np.empty((n_inputs, m))
    union = np.empty(n_inputs, dtype=np.int64)
    seen = np.zeros(n_inputs, dtype=np.bool_)
    sigma = np.empty(m)
    scaled = np.empty((col.n_inputs, m))
    for c in range(couplings.col_ptr.shape[0] - 1):
        item = col.key[c]
        x = col.rep[item]
        grad = col.grad[item]
        diagonal = 0.0
        along_own = 0.0
        for k in range(m):
            along[k] = 0.0
        n_union = 0
        for index in range(couplings.col_ptr[c], couplings.col_ptr[c + 1]):
            n = couplings.col_order[index]
            w = weight[n]
            position = couplings.rows[n]
            r = row.rep[row.key[position]]
            w_b = 2.0 * w * table[n, PHI_B]
            w_c = w * table[n, PHI_C]
            w_bc = 2.0 * w * table[n, PHI_BC]
            if view_order >= 1:
                for k in range(m):
                    grad[k] += w_b * x[k] + w_c * r[k]
            if view_order >= 2:
                diagonal += w_b
                along_own += 4.0 * w * table[n, PHI_BB]
                for k in range(m):
                    along[k] += w_bc * r[k]
                w_cc = w * table[n, PHI_CC]
                if w_cc != 0.0:
                    block = col.self_block[item]
                    for l in range(m):
                        for k in range(m):
                            block[l, k] += w_cc * r[l] * r[k]
            if not with_cross or w_bc == 0.0:
                continue
            slots = row.slot_key[position]
            for t in range(row.slot_ptr[slots], row.slot_ptr[slots + 1]):
                alpha = row.slot_coord[t]
                if not seen[alpha]:
                    seen[alpha] = True
                    union[n_union] = alpha
                    n_union += 1
                    for l in range(m):
                        along_c[alpha, l] = 0.0
                for l in range(m):
                    along_c[alpha, l] += w_bc * row.jac[t, l]
        if view_order >= 2:
            add_self_block(col.self_block[item], x, diagonal, along_own, along)
        if n_union == 0:
            continue
        mapped(row_map, x, sigma)
        slots = col.slot_key[c]
        start, stop = col.slot_ptr[slots], col.slot_ptr[slots + 1]
        for t in range(start, stop):
            for k in range(m):
                scaled[t - start, k] = x[k] * col.jac[t, k]
        for u in range(n_union):
            alpha = union[u]
            row_block = row.offset + alpha
            for t in range(start, stop):
                col_block = col.offset + col.slot_coord[t]
                for l in range(m):
                    f = sigma[l] * along_c[alpha, l]
                    for k in range(m):
                        hess[row_block, col_block, l, k] += f * scaled[t - start, k]
            seen[alpha] = False


@njit(cache=True)
def pair_passes(table, weight, couplings, row, col, row_map, view_order, with_cross, hess):
    """sum_n w_n phi_n from the derivative ``table`` of the couplings, and (``view_order``,
    ``with_cross``) the per-view terms and cross block by :func:`row_pass` and :func:`col_pass`.
    The Hessian is the symmetrised ``hess`` (:class:`~critpoints.losses.measure.accumulator.Accumulator`),
    so the cross block is added once."""
    value = 0.0
    for k in range(table.shape[0]):
        value += weight[k] * table[k, PHI]
    if view_order >= 1 or with_cross:
        row_pass(table, weight, couplings, row, col, row_map, view_order, with_cross, hess)
        col_pass(table, weight, couplings, row, col, row_map, view_order, with_cross, hess)
    return value


def pair_term(
    pair: PairKernel,
    couplings: Couplings,
    row: Side,
    col: Side,
    row_map: np.ndarray,
    view_order: int,
    with_cross: bool,
    hess: np.ndarray,
) -> float:
    """sum_n pair.scale w_n phi(r_n, c_n) for the pointwise loss of ``pair`` (its generated
    table of invariant derivatives), with its per-view terms and cross block
    (:func:`pair_passes`). The constant of the pair term is the caller's."""
    squared_r, squared_c, inner, inverse_r, inverse_c = coupling_invariants(
        couplings.rows, couplings.cols, row.rep, row.key, col.rep, col.key
    )
    n = inner.shape[0]
    table = np.empty((n, N_DERIVATIVES))
    pair.table(squared_r, squared_c, inner, inverse_r, inverse_c, pair.inv_tau, np.zeros(n), table)
    weight = pair.scale * couplings.weight
    return pair_passes(table, weight, couplings, row, col, row_map, view_order, with_cross, hess)


#: The row map of rows that are encoder outputs themselves (see :func:`row_pass`).
NO_MAP = np.empty((0, 0))
