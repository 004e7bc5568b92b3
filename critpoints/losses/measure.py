"""Exact value, gradient and Hessian of every loss when the expectation is a finite sum.

The input is a :class:`~critpoints.data.finite_measure.FiniteMeasure`: weighted pairs of views
(x1[n], x2[n], w[n]), anchors (the law of x1 alone) and negatives (the law of x'). Every
loss of derivations/MODEL.md §4 is then a sum over *couplings* of two representations r, c in R^m
(a pair (f_o(x1), f_t(x2)), or an anchor and a negative) of a pointwise function of the
three invariants A = r.r, B = c.c, C = r.c (derivations/pointwise_losses.py/.md)::

    spectral       L = -2 sum_n w_n f(x1_n).f(x2_n) + <A, B>_F,
                       A = sum_a wa_a f_a f_a^T,  B = sum_j wn_j f_j f_j^T
    infonce(tau)   L = -(1/tau) sum_n w_n cos(f(x1_n), f(x2_n))
                       + sum_a wa_a log sum_j wn_j exp(cos(f(anchor_a), f(neg_j)) / tau)
    ncl_squared    L = sum_n w_n ||f_o(x1_n) - f_t(x2_n)||^2
    ncl_cosine     L = 2 - 2 sum_n w_n <n(f_o(x1_n)), n(f_t(x2_n))>
    ncl_predictor  L_o = 2 - 2 sum_n w_n <n(P u_n), sg n(v_n)>,
                   L_t = 2 - 2 sum_n w_n <sg n(u_n), n(P v_n)>,   u = f_o(x1), v = f_t(x2)

The derivatives are assembled in three stages of numba kernels (derivations/
pointwise_losses.md §4): (1) the encoder on every distinct view, giving the
representation and the entries of its Jacobian that can be nonzero (the view's *slots*:
views of the exact enumeration are masked sparse codes); (2) per coupling term, the
generated pointwise kernels (``critpoints.losses._generated.pointwise_kernels``) for the
invariant derivatives of every coupling, summed per view into representation gradients
and m x m self blocks, and the cross blocks between the two views of a coupling,
summed per row and per column view before they meet the Jacobians and written into the
Hessian directly; the dense anchor x negative repulsion of infonce has its own kernels
over the pool of views; (3) the chain rule of the per-view terms. Within an activation
pattern the encoder is linear in its parameters, so the Hessian is exactly
J^T (d^2 loss) J. The Hessian is accumulated in m x m blocks, one per pair of (encoder,
input coordinate), and only one of each pair of symmetric blocks (:class:`Accumulator`).

Conventions (derivations/pointwise_losses.md):

* kinks of the symmetric ReLU: a pre-activation t exactly at a threshold uses the piece
  entered as t increases, a1 = [t + b >= 0], a2 = [-t + b > 0]; value, gradient and
  Hessian are those of that piece. A zero view has zero representation and zero
  derivatives (sigma_b(0) = 0 for every b and w). With b = 0 this makes the symrelu
  exactly the identity, derivatives included;
* n(0) = 0: a zero representation contributes 0 to every cosine and 0 to its derivatives;
* equal support points are merged (weights added) and zero-weight points dropped, which
  changes nothing but the rounding of the sums.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from critpoints.data.finite_measure import FiniteMeasure
from critpoints.losses._generated import pointwise_kernels as kernels
from critpoints.losses.parameters import ParameterLayout

#: The public interface; the numba kernels of the stages below are its implementation.
__all__ = ["MeasureEvaluator", "accumulation_index", "internal_index", "symrelu_piece"]

FAMILIES = ("spectral", "infonce", "ncl_squared", "ncl_cosine", "ncl_predictor")
ENCODERS = ("linear", "symrelu")
TWO_ENCODER_FAMILIES = ("ncl_squared", "ncl_cosine", "ncl_predictor")

# -----------------------------------------------------------------------------------
# Stage 1: the encoder on every distinct view
# -----------------------------------------------------------------------------------


class Slots(NamedTuple):
    """The parameter entries each view's representation depends on.

    Neuron i of an encoder owns the entries alpha = 0..q-1 of (w_i, b_i) (alpha = p is
    the bias). f_i(x_v) depends on entry alpha only if x_v[alpha] != 0 or alpha is a
    trainable bias: these are the *slots* ``coord[ptr[v]:ptr[v + 1]]`` of view v, in
    increasing order. A zero view has no slot (f = 0 with zero derivatives). Views of the
    exact enumeration are masked sparse codes, so most views have few slots.
    """

    ptr: np.ndarray
    coord: np.ndarray

    @classmethod
    def of_views(cls, views: np.ndarray, trainable_bias: bool) -> Slots:
        """The slots of each row of ``views`` (V, p): its nonzero coordinates, then the bias."""
        nonzero = views != 0
        with_bias = np.any(nonzero, axis=1) & trainable_bias
        occupied = np.concatenate([nonzero, with_bias[:, None]], axis=1)
        ptr = np.concatenate([[0], np.cumsum(np.sum(occupied, axis=1))]).astype(np.int64)
        return cls(ptr, np.nonzero(occupied)[1].astype(np.int64))


@njit(cache=True)
def symrelu_piece(t, b, zero_view):
    """(sigma_b(t), d sigma_b/dt, d sigma_b/db) on the documented one-sided piece.

    a1 = [t + b >= 0], a2 = [-t + b > 0] (at a kink, the piece entered as t increases);
    a zero view (t = w.0 = 0 for every w) gives (0, 0, 0): sigma_b(0) = 0 for every b.
    """
    if zero_view:
        return 0.0, 0.0, 0.0
    up_on = 1.0 if t + b >= 0.0 else 0.0
    down_on = 1.0 if b - t > 0.0 else 0.0
    return up_on * (t + b) - down_on * (b - t), up_on + down_on, up_on - down_on


@njit(cache=True)
def encode(points, slot_ptr, slot_coord, weights, bias, symrelu):
    """Representations and the slots of their parameter Jacobians on a set of views.

    For view x and neuron i with pre-activation t = w_i.x::

        linear   f_i = t,                                  df_i/dw_i = x
        symrelu  f_i = ReLU(t + b_i) - ReLU(-t + b_i)      df_i/dw_i = (a1 + a2) x,
                                                           df_i/db_i = a1 - a2,
        a1 = [t + b_i >= 0],  a2 = [-t + b_i > 0]          (x != 0)

    At a kink this is the piece entered as t increases; for x = 0, f = 0 with zero
    derivatives, since sigma_b(0) = 0 for every b.

    Parameters
    ----------
    points : (V, p) float64
    slot_ptr, slot_coord : the views' :class:`Slots`
    weights : (m, p) float64
    bias : (m,) float64 (ignored for a linear encoder)
    symrelu : bool

    Returns
    -------
    rep : (V, m) float64
        f(x_v).
    jac : (S, m) float64
        jac[s, i] = d f_i(x_v) / d theta_{i, slot_coord[s]} for the slots s of view v
        (f_i depends on no other neuron's parameters).
    """
    n_views, p = points.shape
    m = weights.shape[0]
    columns = np.ascontiguousarray(weights.T)
    rep = np.zeros((n_views, m))
    jac = np.empty((slot_coord.shape[0], m))
    t = np.empty(m)
    slope = np.empty(m)
    bias_slope = np.empty(m)
    for v in range(n_views):
        start, stop = slot_ptr[v], slot_ptr[v + 1]
        for i in range(m):
            t[i] = 0.0
        for s in range(start, stop):
            if slot_coord[s] < p:
                x = points[v, slot_coord[s]]
                for i in range(m):
                    t[i] += columns[slot_coord[s], i] * x
        for i in range(m):
            if symrelu:
                rep[v, i], slope[i], bias_slope[i] = symrelu_piece(t[i], bias[i], start == stop)
            else:
                rep[v, i], slope[i], bias_slope[i] = t[i], 1.0, 0.0
        for s in range(start, stop):
            if slot_coord[s] < p:
                x = points[v, slot_coord[s]]
                for i in range(m):
                    jac[s, i] = slope[i] * x
            else:
                for i in range(m):
                    jac[s, i] = bias_slope[i]
    return rep, jac


# -----------------------------------------------------------------------------------
# Stage 2: invariants of every coupling, summed per view, and the cross blocks
# -----------------------------------------------------------------------------------


class Couplings(NamedTuple):
    """Couplings (row position, column position, weight), sorted by row then column.

    Positions index the distinct row views and column views of the term. The couplings of
    row r are ``row_ptr[r]:row_ptr[r+1]``; those of column c are
    ``col_order[col_ptr[c]:col_ptr[c+1]]``.
    """

    rows: np.ndarray
    cols: np.ndarray
    weight: np.ndarray
    row_ptr: np.ndarray
    col_ptr: np.ndarray
    col_order: np.ndarray

    @classmethod
    def from_lists(
        cls, rows: np.ndarray, cols: np.ndarray, weight: np.ndarray, n_rows: int, n_cols: int
    ) -> Couplings:
        """Merge repeated (row, col) couplings (adding weights), drop zero weights, sort."""
        keep = weight > 0
        key = rows[keep].astype(np.int64) * n_cols + cols[keep].astype(np.int64)
        unique, inverse = np.unique(key, return_inverse=True)
        merged = np.bincount(inverse.ravel(), weights=weight[keep], minlength=len(unique))
        rows, cols = unique // n_cols, unique % n_cols
        row_ptr = np.searchsorted(rows, np.arange(n_rows + 1)).astype(np.int64)
        col_order = np.argsort(cols, kind="stable").astype(np.int64)
        col_ptr = np.searchsorted(cols[col_order], np.arange(n_cols + 1)).astype(np.int64)
        return cls(rows.astype(np.int64), cols.astype(np.int64), merged, row_ptr, col_ptr, col_order)

    def transposed(self) -> Couplings:
        """The same couplings with rows and columns exchanged."""
        n_rows, n_cols = len(self.row_ptr) - 1, len(self.col_ptr) - 1
        return Couplings.from_lists(self.cols, self.rows, self.weight, n_cols, n_rows)


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
def squared_norms(side, n_positions):
    """|rep|^2 of each position of a side."""
    m = side.rep.shape[1]
    out = np.empty(n_positions)
    for g in range(n_positions):
        x = side.rep[side.key[g]]
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
def coupling_invariants(couplings, row, col):
    """A = r.r, B = c.c, C = r.c and the inverse norms 1/|r|, 1/|c| for every coupling n,
    r = row.rep[row.key[rows[n]]], c likewise."""
    n = couplings.rows.shape[0]
    row_squared = squared_norms(row, couplings.row_ptr.shape[0] - 1)
    col_squared = squared_norms(col, couplings.col_ptr.shape[0] - 1)
    squared_r = np.empty(n)
    squared_c = np.empty(n)
    inner = np.empty(n)
    inverse_r = np.empty(n)
    inverse_c = np.empty(n)
    for k in range(n):
        squared_r[k] = row_squared[couplings.rows[k]]
        squared_c[k] = col_squared[couplings.cols[k]]
        inverse_r[k] = inverse_norm(squared_r[k])
        inverse_c[k] = inverse_norm(squared_c[k])
        r = row.rep[row.key[couplings.rows[k]]]
        c = col.rep[col.key[couplings.cols[k]]]
        total = 0.0
        for i in range(r.shape[0]):
            total += r[i] * c[i]
        inner[k] = total
    return squared_r, squared_c, inner, inverse_r, inverse_c


# Columns of the derivative table (the order of the generated kernels' output).
from critpoints.losses._generated.pointwise_kernels import (  # noqa: E402
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

SQUARED_DISTANCE, INNER_PRODUCT, COSINE = range(3)


@njit(cache=True)
def derivative_table(kind, A, B, C, inverse_r, inverse_c, table):
    shift = np.zeros(A.shape[0])
    if kind == SQUARED_DISTANCE:
        kernels.squared_distance_table(A, B, C, inverse_r, inverse_c, 1.0, shift, table)
    elif kind == INNER_PRODUCT:
        kernels.inner_product_table(A, B, C, inverse_r, inverse_c, 1.0, shift, table)
    else:
        kernels.cosine_table(A, B, C, inverse_r, inverse_c, 1.0, shift, table)


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
def pair_term(kind, scale, couplings, row, col, row_map, view_order, with_cross, hess):
    """sum_n scale w_n phi(r_n, c_n) for the generated pointwise loss ``kind``, and its
    per-view terms (``view_order``) and cross block (``with_cross``) by :func:`row_pass`
    and :func:`col_pass`. The Hessian is the symmetrised ``hess`` (:class:`Accumulator`),
    so the cross block is added once."""
    squared_r, squared_c, inner, inverse_r, inverse_c = coupling_invariants(couplings, row, col)
    n = inner.shape[0]
    table = np.empty((n, kernels.N_DERIVATIVES))
    derivative_table(kind, squared_r, squared_c, inner, inverse_r, inverse_c, table)
    weight = scale * couplings.weight
    value = 0.0
    for k in range(n):
        value += weight[k] * table[k, PHI]
    if view_order >= 1 or with_cross:
        row_pass(table, weight, couplings, row, col, row_map, view_order, with_cross, hess)
        col_pass(table, weight, couplings, row, col, row_map, view_order, with_cross, hess)
    return value


# -----------------------------------------------------------------------------------
# The log-sum-exp repulsion of infonce
# -----------------------------------------------------------------------------------


class ViewPool(NamedTuple):
    """The anchors and the negatives of infonce as one set of views.

    ``views``: their indices in :attr:`Support.views` (each once); ``anchor`` /
    ``negative``: the position in ``views`` of each anchor / negative. The exact
    enumeration has the same views (and weights) for both.
    """

    views: np.ndarray
    anchor: np.ndarray
    negative: np.ndarray

    @classmethod
    def of(cls, anchor_views: np.ndarray, negative_views: np.ndarray) -> ViewPool:
        """The pool of the anchors' and negatives' view indices, each distinct view once."""
        views, inverse = np.unique(np.concatenate([anchor_views, negative_views]), return_inverse=True)
        inverse = inverse.ravel().astype(np.int64)
        return cls(views.astype(np.int64), inverse[: len(anchor_views)], inverse[len(anchor_views) :])


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


# -----------------------------------------------------------------------------------
# Stage 3: chain rule of the per-view terms, the spectral and predictor blocks, output
# -----------------------------------------------------------------------------------


@njit(cache=True)
def chain_views(item_grad, item_self, slot_ptr, slot_coord, jac, offset, grad, hess, order):
    """sum_v J_v^T g_v into ``grad`` and the upper half of sum_v J_v^T M_v J_v into ``hess``.

    With the parameter blocks b = offset + alpha (:class:`Accumulator`)::

        grad[b * m + i] += g_v[i] J_v[i, alpha],
        hess[offset + alpha, offset + beta, i, k] += M_v[i, k] J_v[i, alpha] J_v[k, beta]

    for the slots alpha <= beta of v, halved for alpha = beta (the Hessian is the
    symmetrised sum, :meth:`Accumulator.hessian`).
    """
    m = jac.shape[1]
    scaled = np.empty((m, m))
    for v in range(slot_ptr.shape[0] - 1):
        start, stop = slot_ptr[v], slot_ptr[v + 1]
        g = item_grad[v]
        for t in range(start, stop):
            first = (offset + slot_coord[t]) * m
            for i in range(m):
                grad[first + i] += g[i] * jac[t, i]
        if order < 2:
            continue
        block = item_self[v]
        for b in range(start, stop):
            for i in range(m):
                for k in range(m):
                    scaled[i, k] = block[i, k] * jac[b, k]
            col_block = offset + slot_coord[b]
            for a in range(start, b + 1):
                row_block = offset + slot_coord[a]
                half = 0.5 if a == b else 1.0
                for i in range(m):
                    f = half * jac[a, i]
                    for k in range(m):
                        hess[row_block, col_block, i, k] += f * scaled[i, k]


@njit(cache=True)
def jacobian_moment(rep, views, weight, slot_ptr, slot_coord, jac, n_inputs):
    """U[l, alpha, i] = sum_a weight_a f_a[l] J_a[i, alpha] over the views ``views``."""
    m = rep.shape[1]
    out = np.zeros((m, n_inputs, m))
    for index in range(views.shape[0]):
        v = views[index]
        for t in range(slot_ptr[v], slot_ptr[v + 1]):
            alpha = slot_coord[t]
            for l in range(m):
                f = weight[index] * rep[v, l]
                for i in range(m):
                    out[l, alpha, i] += f * jac[t, i]
    return out


@njit(cache=True)
def spectral_cross(first, second, offset, hess):
    """Cross block sum_{a,j} J_a^T d^2<A,B>/df_a df_j J_j of the spectral repulsion.

    d^2/df_a df_j = 2 wa wn ((f_a.f_j) I + f_j f_a^T) separates into
    X[(alpha, i), (beta, k)] = 2 delta_ik sum_l U[l, alpha, i] V[l, beta, i] + 2 U[k, alpha, i] V[i, beta, k]
    with U = :func:`jacobian_moment` of the anchors (``first``) and V of the negatives.
    """
    m, n_inputs = first.shape[0], first.shape[1]
    for alpha in range(n_inputs):
        for beta in range(n_inputs):
            block = hess[offset + alpha, offset + beta]
            for i in range(m):
                total = 0.0
                for l in range(m):
                    total += first[l, alpha, i] * second[l, beta, i]
                block[i, i] += 2.0 * total
                for k in range(m):
                    block[i, k] += 2.0 * first[k, alpha, i] * second[i, beta, k]


@njit(cache=True)
def predictor_mixed(
    row_grad, row_self, predictor, u, row_view, slot_ptr, slot_coord, jac, offset, predictor_offset, hess
):
    """Block between the encoder of the rows u and P for couplings phi(P u_r, c).

    With g_r = d phi/d(P u) and M_r the self block in P u (summed per row)::

        H[(alpha, l), P_kj] = sum_r J_r[l, alpha] ((P^T M_r)[l, k] u_r[j] + delta_lj g_r[k]),

    the second term from the bilinear map (P, u) -> P u. P_kj is neuron k of the
    predictor's parameter block ``predictor_offset + j``.
    """
    m = u.shape[1]
    pulled = np.empty((m, m))
    for r in range(row_view.shape[0]):
        block = row_self[r]
        for l in range(m):
            for k in range(m):
                total = 0.0
                for i in range(m):
                    total += predictor[i, l] * block[i, k]
                pulled[l, k] = total
        v = row_view[r]
        for t in range(slot_ptr[v], slot_ptr[v + 1]):
            blocks = hess[offset + slot_coord[t]]
            for j in range(m):
                block = blocks[predictor_offset + j]
                for l in range(m):
                    f = jac[t, l] * u[r, j]
                    dst = block[l]
                    for k in range(m):
                        dst[k] += f * pulled[l, k]
            for l in range(m):
                dst = blocks[predictor_offset + l, l]
                for k in range(m):
                    dst[k] += jac[t, l] * row_grad[r, k]


@njit(cache=True)
def symmetrise_blocks(hess):
    """In place: block (a, b) <- block (a, b) + block (b, a)^T for every pair of blocks (H + H^T)."""
    n_blocks, m = hess.shape[0], hess.shape[2]
    for a in range(n_blocks):
        for i in range(m):
            for k in range(i, m):
                value = hess[a, a, i, k] + hess[a, a, k, i]
                hess[a, a, i, k] = value
                hess[a, a, k, i] = value
        for b in range(a + 1, n_blocks):
            for i in range(m):
                for k in range(m):
                    hess[a, b, i, k] += hess[b, a, k, i]
            for i in range(m):
                for k in range(m):
                    hess[b, a, k, i] = hess[a, b, i, k]


@njit(cache=True)
def gathered(flat, row_offset, col_offset):
    """out[i, j] = flat[row_offset[i] + col_offset[j]]: the entries of a block-stored matrix in another order."""
    n = row_offset.shape[0]
    out = np.empty((n, col_offset.shape[0]))
    for i in range(n):
        base = row_offset[i]
        for j in range(col_offset.shape[0]):
            out[i, j] = flat[base + col_offset[j]]
    return out


# -----------------------------------------------------------------------------------
# Support: distinct views and couplings
# -----------------------------------------------------------------------------------


def _distinct_with_weights(index: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct entries of ``index`` carrying positive total weight, and those weights."""
    unique, inverse = np.unique(index, return_inverse=True)
    merged = np.bincount(inverse.ravel(), weights=weight, minlength=len(unique))
    keep = merged > 0
    return unique[keep], merged[keep]


class Support(NamedTuple):
    """The distinct views of a finite measure and how they are coupled.

    ``views``: every distinct point of the measure (x1, x2, anchors, negatives), encoded
    once per encoder, with their :class:`Slots`. ``first`` / ``second``: the views
    (indices into ``views``) that occur as x1 / x2; ``pairs``: couplings (position in
    ``first``, position in ``second``) with the merged pair weights; ``anchor`` /
    ``negative``: views of the anchors and negatives with their merged weights.
    """

    views: np.ndarray
    slots: Slots
    first: np.ndarray
    second: np.ndarray
    pairs: Couplings
    anchor: np.ndarray
    anchor_weight: np.ndarray
    negative: np.ndarray
    negative_weight: np.ndarray

    @classmethod
    def from_measure(cls, measure: FiniteMeasure, trainable_bias: bool) -> Support:
        """The distinct views of ``measure``, their slots and the merged couplings."""
        parts = (measure.x1, measure.x2, measure.anchor, measure.negative)
        views, inverse = np.unique(np.concatenate(parts), axis=0, return_inverse=True)
        inverse = inverse.ravel()
        bounds = np.cumsum([0] + [len(part) for part in parts])
        x1_view, x2_view, anchor_view, negative_view = (inverse[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
        first, x1_position = np.unique(x1_view, return_inverse=True)
        second, x2_position = np.unique(x2_view, return_inverse=True)
        pairs = Couplings.from_lists(
            x1_position.ravel(), x2_position.ravel(), measure.pair_weight, len(first), len(second)
        )
        anchor, anchor_weight = _distinct_with_weights(anchor_view, measure.anchor_weight)
        negative, negative_weight = _distinct_with_weights(negative_view, measure.negative_weight)
        views = np.ascontiguousarray(views)
        return cls(
            views,
            Slots.of_views(views, trainable_bias),
            first,
            second,
            pairs,
            anchor,
            anchor_weight,
            negative,
            negative_weight,
        )


# -----------------------------------------------------------------------------------
# Parameter layouts
# -----------------------------------------------------------------------------------


def internal_index(layout: ParameterLayout) -> np.ndarray:
    """For each entry of theta, its index in the neuron-major internal vector.

    Internally each encoder e is one block of m * q entries, neuron i owning
    (w_i, b_i) at e*m*q + i*q + (0..q-1), q = p + 1 with a trainable bias, else p;
    the predictor follows, row-major.
    """
    m, p = layout.shapes["W"]
    trainable_bias = "b" in layout.shapes
    q = p + 1 if trainable_bias else p
    encoders = (("W", "b"), ("W_t", "b_t")) if "W_t" in layout.shapes else (("W", "b"),)
    index = np.empty(layout.size, dtype=np.int64)
    neuron, entry = np.divmod(np.arange(m * p), p)
    for e, (w_name, b_name) in enumerate(encoders):
        index[layout.slice(w_name)] = e * m * q + neuron * q + entry
        if trainable_bias:
            index[layout.slice(b_name)] = e * m * q + np.arange(m) * q + p
    if "P" in layout.shapes:
        index[layout.slice("P")] = len(encoders) * m * q + np.arange(m * m)
    return index


def accumulation_index(layout: ParameterLayout) -> np.ndarray:
    """For each entry of theta, its index in the vectors the kernels accumulate.

    The order of :func:`internal_index` with every block transposed to be neuron-fastest:
    entry alpha of neuron i of encoder e at e*m*q + alpha*m + i, and P_ij (entry j of the
    predictor's neuron i) at j*m + i after the encoders, so that runs over the neurons
    are contiguous.
    """
    m, p = layout.shapes["W"]
    q = p + 1 if "b" in layout.shapes else p
    index = internal_index(layout)
    encoder_entries = (2 if "W_t" in layout.shapes else 1) * m * q
    block, within = np.divmod(index, m * q)
    neuron, entry = np.divmod(within, q)
    transposed = block * m * q + entry * m + neuron
    if "P" in layout.shapes:
        neuron, entry = np.divmod(index - encoder_entries, m)
        transposed = np.where(index < encoder_entries, transposed, encoder_entries + entry * m + neuron)
    return transposed


# -----------------------------------------------------------------------------------
# Accumulating one objective
# -----------------------------------------------------------------------------------


# The row map of rows that are encoder outputs themselves (see :func:`row_pass`).
NO_MAP = np.empty((0, 0))


class Accumulator:
    """Value, gradient and Hessian of one objective, in the order of :func:`accumulation_index`.

    The parameters are grouped in blocks of m, one per (encoder, entry alpha) and one per
    column j of P: block b holds neuron i at b * m + i. The Hessian is stored block by
    block, ``hess[b, b', i, k]`` = H[b * m + i, b' * m + k], so that the m x m updates of
    the kernels are contiguous, and only in part: the kernels add each cross block
    between two views once and the upper half of each symmetric block (diagonal blocks
    halved); the Hessian is that plus its transpose (:meth:`hessian`). Terms that involve
    one view at a time (representation gradients g_v and self blocks M_v) are first
    summed per view and encoder, and pushed through the chain rule once by :meth:`finish`.
    """

    def __init__(self, n_encoders: int, n_views: int, m: int, q: int, predictor: bool, order: int):
        self.m, self.q = m, q
        self.n = n_encoders * m * q + (m * m if predictor else 0)
        self.predictor_block = n_encoders * q
        n_blocks = self.n // m if order >= 2 else 0
        self.value = 0.0
        self.grad = np.zeros(self.n if order >= 1 else 0)
        self.hess = np.zeros((n_blocks, n_blocks, m, m))
        self.view_grad = np.zeros((n_encoders, n_views if order >= 1 else 0, m))
        self.view_self = np.zeros((n_encoders, n_views if order >= 2 else 0, m, m))

    def encoder_slice(self, encoder: int) -> slice:
        """Where the entries (w_i, b_i) of encoder ``encoder`` (0 online, 1 target) lie."""
        return slice(encoder * self.q * self.m, (encoder + 1) * self.q * self.m)

    def predictor_slice(self) -> slice:
        """Where the entries of P lie."""
        return slice(self.predictor_block * self.m, self.n)

    def finish(self, slots: Slots, view_jac: list[np.ndarray], order: int) -> Accumulator:
        """Chain rule of the per-view terms: sum_v J_v^T g_v and sum_v J_v^T M_v J_v per encoder."""
        if order >= 1:
            for e, jac in enumerate(view_jac):
                chain_views(
                    self.view_grad[e],
                    self.view_self[e],
                    slots.ptr,
                    slots.coord,
                    jac,
                    e * self.q,
                    self.grad,
                    self.hess,
                    order,
                )
        return self

    def hessian(self, offsets: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """The Hessian's rows and columns at ``offsets`` (:meth:`gather_offsets`).

        Symmetrises the stored blocks in place, so it is called once.
        """
        symmetrise_blocks(self.hess)
        return gathered(self.hess.reshape(-1), *offsets)

    @staticmethod
    def gather_offsets(position: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Where rows and columns ``position`` (accumulation order) of an n x n Hessian are
        stored: H[position[i], position[j]] = hess.flat[row[i] + col[j]]."""
        block, lane = np.divmod(position, m)
        return block * (n * m) + lane * m, block * (m * m) + lane


# -----------------------------------------------------------------------------------
# Validation
# -----------------------------------------------------------------------------------


def _choice(name: str, value, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; expected one of {', '.join(map(repr, allowed))}")
    return value


def _flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r} is not allowed; expected True or False")
    return bool(value)


def _validated_measure(measure: FiniteMeasure) -> tuple[FiniteMeasure, int]:
    """The measure as float64 arrays, and the input dimension p."""
    fields = {}
    for name in ("x1", "x2", "anchor", "negative"):
        points = np.asarray(getattr(measure, name), dtype=float)
        if points.ndim != 2 or points.shape[1] < 1 or not np.all(np.isfinite(points)):
            raise ValueError(f"measure.{name} has shape {points.shape}; expected a finite 2-d array (n, p) with p >= 1")
        fields[name] = points
    p = fields["x1"].shape[1]
    for name in ("x2", "anchor", "negative"):
        if fields[name].shape[1] != p:
            raise ValueError(f"measure.{name} has {fields[name].shape[1]} columns; expected p = {p} like measure.x1")
    for name, points in (("pair_weight", "x1"), ("anchor_weight", "anchor"), ("negative_weight", "negative")):
        weight = np.asarray(getattr(measure, name), dtype=float)
        if weight.shape != (len(fields[points]),) or not np.all(np.isfinite(weight)) or np.any(weight < 0):
            raise ValueError(
                f"measure.{name} has shape {weight.shape} (min {weight.min() if weight.size else None}); "
                f"expected {len(fields[points])} finite non-negative weights"
            )
        fields[name] = weight
    if fields["x2"].shape != fields["x1"].shape:
        raise ValueError(f"measure.x2 has shape {fields['x2'].shape}; expected {fields['x1'].shape} like measure.x1")
    return FiniteMeasure(**fields, empirical=bool(measure.empirical)), p


def _validated_bias(fixed_bias, m: int, one_encoder: bool) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(fixed_bias, (tuple, list)) or len(fixed_bias) != 2:
        raise ValueError(f"fixed_bias={fixed_bias!r} is not allowed; expected a pair (b, b_t) of m = {m} numbers each")
    pair = []
    for label, b in zip(("b", "b_t"), fixed_bias):
        try:
            array = np.broadcast_to(np.asarray(b, dtype=float), (m,)).copy()
        except (ValueError, TypeError):
            raise ValueError(f"fixed_bias {label}={b!r} is not allowed; expected a number or {m} numbers") from None
        if not np.all(np.isfinite(array)):
            raise ValueError(f"fixed_bias {label}={b!r} is not allowed; expected finite numbers")
        pair.append(array)
    if one_encoder and not np.array_equal(pair[0], pair[1]):
        raise ValueError(
            f"fixed_bias={fixed_bias!r} is not allowed: this setting has one encoder, so b and b_t must be equal"
        )
    return pair[0], pair[1]


# -----------------------------------------------------------------------------------
# The evaluator
# -----------------------------------------------------------------------------------


class MeasureEvaluator:
    """Value, gradient and Hessian (or field and Jacobian) of a loss over a finite measure.

    Parameters
    ----------
    family : {"spectral", "infonce", "ncl_squared", "ncl_cosine", "ncl_predictor"}
    measure : FiniteMeasure
        The weighted pairs, anchors and negatives. Expectations are the weighted sums;
        the constants 2 in ``ncl_cosine`` / ``ncl_predictor`` assume weights summing to one.
    encoder : {"linear", "symrelu"}
        f(x) = W x, or f_i(x) = ReLU(w_i.x + b_i) - ReLU(-w_i.x + b_i).
    m : int
        Number of neurons.
    fixed_bias : (b, b_t), optional
        symrelu only: the fixed biases of the online (or only) and target encoders, each a
        number or m numbers. With one encoder (spectral, infonce, tied) they must be equal.
    trainable_bias : bool
        symrelu only: the biases are parameters (blocks ``b``, ``b_t``). Exactly one of
        ``fixed_bias`` and ``trainable_bias`` must be given for symrelu.
    tied : bool
        ncl_squared, ncl_cosine, ncl_predictor: one encoder f = f_o = f_t for both views.
        spectral and infonce always have one encoder (the flag changes nothing).
    temperature : float
        tau > 0 of infonce (ignored by the other losses).
    normalize : bool
        ncl_predictor only: False uses raw inner products, L_o = -2 E<P u, sg v>.

    Attributes
    ----------
    layout : ParameterLayout
        theta = (W, W_t, b, b_t, P), the blocks present, each row-major.
    n_params : int
    is_field : bool
        True for ncl_predictor (a vector field, not a gradient); use :meth:`field` and
        :meth:`jacobian`. For the other losses ``field`` / ``jacobian`` are the gradient
        and the Hessian.
    support_size : int
        Number of distinct couplings summed (pairs, plus anchor x negative combinations
        for infonce, plus anchors and negatives for spectral).
    empirical : bool
        The measure is a fixed sample (its values are empirical averages).
    """

    def __init__(
        self,
        family: str,
        measure: FiniteMeasure,
        *,
        encoder: str,
        m: int,
        fixed_bias: tuple[np.ndarray, np.ndarray] | None = None,
        trainable_bias: bool = False,
        tied: bool = False,
        temperature: float = 1.0,
        normalize: bool = True,
    ) -> None:
        self.family = _choice("family", family, FAMILIES)
        self.encoder = _choice("encoder", encoder, ENCODERS)
        if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"m={m!r} is not allowed; expected an integer >= 1")
        self.m = int(m)
        self.tied = _flag("tied", tied)
        self.trainable_bias = _flag("trainable_bias", trainable_bias)
        self.normalize = _flag("normalize", normalize)
        if not self.normalize and self.family != "ncl_predictor":
            raise ValueError(
                f"normalize=False is not allowed for family={family!r}; only ncl_predictor has that option"
            )
        if not isinstance(temperature, (int, float, np.floating, np.integer)) or not (
            np.isfinite(temperature) and temperature > 0
        ):
            raise ValueError(f"temperature={temperature!r} is not allowed; expected a finite number > 0")
        self.temperature = float(temperature)

        measure, self.p = _validated_measure(measure)
        self.empirical = measure.empirical
        self.two_encoders = self.family in TWO_ENCODER_FAMILIES
        self.is_field = self.family == "ncl_predictor"
        one_encoder = self.tied or not self.two_encoders
        # A tied gradient family is one encoder on both views; the stop-gradient field of a
        # tied ncl_predictor differentiates the two views separately, so it keeps two.
        self._n_evaluated_encoders = 1 if one_encoder and not (self.is_field and self.tied) else 2
        self._fixed_bias = self._validated_encoder_options(fixed_bias, one_encoder)

        self.layout = ParameterLayout.for_model(
            m=self.m,
            p=self.p,
            two_encoders=self.two_encoders and not self.tied,
            trainable_bias=self.trainable_bias,
            predictor=self.is_field,
        )
        self.n_params = self.layout.size
        self._q = self.p + 1 if self.trainable_bias else self.p
        self._position = accumulation_index(self.layout)
        self._fold = self.is_field and self.tied
        accumulated = self._n_evaluated_encoders * self.m * self._q + (self.m * self.m if self.is_field else 0)
        # The gradient families' Hessian is gathered straight into theta's layout; the field's
        # Jacobian takes rows of two Hessians (and may fold), so it is gathered whole first.
        gathered_entries = np.arange(accumulated) if self.is_field else self._position
        self._hessian_offsets = Accumulator.gather_offsets(gathered_entries, accumulated, self.m)

        self._support = Support.from_measure(measure, self.trainable_bias)
        self._check_support()
        pairs = self._support.pairs
        self._reversed_pairs = pairs.transposed() if self.is_field else None
        self._predictor_slots = (
            (self._dense_slots(len(self._support.first)), self._dense_slots(len(self._support.second)))
            if self.is_field
            else None
        )
        self._pool = ViewPool.of(self._support.anchor, self._support.negative) if self.family == "infonce" else None
        self.support_size = len(pairs.rows) + (
            len(self._support.anchor) * len(self._support.negative)
            if self.family == "infonce"
            else len(self._support.anchor) + len(self._support.negative)
            if self.family == "spectral"
            else 0
        )

    # ----- construction -----

    def _validated_encoder_options(self, fixed_bias, one_encoder: bool) -> tuple[np.ndarray, np.ndarray] | None:
        if self.encoder == "linear":
            if fixed_bias is not None or self.trainable_bias:
                raise ValueError(
                    f"fixed_bias={fixed_bias!r}, trainable_bias={self.trainable_bias!r} are not allowed for "
                    "encoder='linear' (a linear encoder has no bias)"
                )
            return None
        if fixed_bias is not None and self.trainable_bias:
            raise ValueError(
                f"fixed_bias={fixed_bias!r} with trainable_bias=True is not allowed; give one of them for symrelu"
            )
        if fixed_bias is None and not self.trainable_bias:
            raise ValueError(
                "fixed_bias=None with trainable_bias=False is not allowed for encoder='symrelu'; "
                "give fixed_bias=(b, b_t) or trainable_bias=True"
            )
        return None if fixed_bias is None else _validated_bias(fixed_bias, self.m, one_encoder)

    def _check_support(self) -> None:
        support = self._support
        if len(support.pairs.rows) == 0:
            raise ValueError("measure.pair_weight has no positive weight; expected a non-empty pair law")
        if self.family in ("spectral", "infonce") and (len(support.anchor) == 0 or len(support.negative) == 0):
            raise ValueError(
                f"measure.anchor_weight / negative_weight have no positive weight; family={self.family!r} needs both"
            )

    def _dense_slots(self, n_rows: int) -> Slots:
        """Slots of the predictor seen as a linear layer on the rows u_r: all m entries of every row."""
        ptr = np.arange(n_rows + 1, dtype=np.int64) * self.m
        return Slots(ptr, np.tile(np.arange(self.m, dtype=np.int64), n_rows))

    def _fold_tied(self, internal: np.ndarray) -> np.ndarray:
        """Tied encoders (theta_t = theta_o): add the two encoder blocks of every axis,
        i.e. S x and S H S^T with S = [I, I, 0; 0, 0, I]."""
        block = self.m * self._q
        for axis in range(internal.ndim):
            online = np.take(internal, np.arange(block), axis=axis)
            head = online + np.take(internal, np.arange(block, 2 * block), axis=axis)
            tail = np.take(internal, np.arange(2 * block, internal.shape[axis]), axis=axis)
            internal = np.concatenate([head, tail], axis=axis)
        return internal

    # ----- parameters -----

    def _validated_theta(self, theta) -> np.ndarray:
        theta = np.asarray(theta, dtype=float)
        if theta.shape != (self.n_params,) or not np.all(np.isfinite(theta)):
            raise ValueError(
                f"theta has shape {theta.shape}; expected {self.n_params} finite numbers "
                f"(blocks {', '.join(f'{n}{s}' for n, s in self.layout.shapes.items())})"
            )
        return theta

    def _encoder_parameters(self, theta: np.ndarray) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray | None]:
        """[(W_e, b_e) for each evaluated encoder], P (or None), as views of theta."""
        layout = self.layout
        names = [("W", "b"), ("W_t", "b_t")] if "W_t" in layout.shapes else [("W", "b"), ("W", "b")]
        params = []
        for e in range(self._n_evaluated_encoders):
            w_name, b_name = names[e]
            if self.trainable_bias:
                bias = theta[layout.slice(b_name)]
            elif self._fixed_bias is not None:
                bias = self._fixed_bias[e]
            else:
                bias = np.zeros(self.m)
            params.append((theta[layout.slice(w_name)].reshape(self.m, self.p), bias))
        return params, (theta[layout.slice("P")].reshape(self.m, self.m) if self.is_field else None)

    def _encode_views(self, params: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(representations, Jacobian slots) of every view of the support under one encoder."""
        weights, bias = params
        slots = self._support.slots
        return encode(self._support.views, slots.ptr, slots.coord, weights, bias, self.encoder == "symrelu")

    def _side(self, acc: Accumulator, encoded: list, encoder: int, views: np.ndarray) -> Side:
        """The views ``views`` under encoder ``encoder`` as one side of a coupling term."""
        rep, jac = encoded[encoder]
        slots = self._support.slots
        return Side(
            rep,
            views,
            acc.view_grad[encoder],
            acc.view_self[encoder],
            views,
            slots.ptr,
            slots.coord,
            jac,
            encoder * self._q,
            self._q,
        )

    def _to_public(self, internal: np.ndarray) -> np.ndarray:
        """Fold tied encoders and reorder accumulated entries into theta's layout."""
        folded = self._fold_tied(internal) if self._fold else internal
        if folded.ndim == 1:
            return folded[self._position]
        return folded[np.ix_(self._position, self._position)]

    # ----- the losses -----

    def _accumulator(self, order: int) -> Accumulator:
        return Accumulator(self._n_evaluated_encoders, len(self._support.views), self.m, self._q, self.is_field, order)

    def _pair_term(self, acc: Accumulator, kind: int, scale: float, rows: Side, cols: Side, order: int) -> None:
        """sum_n w_n * scale * phi(f(x1_n), f(x2_n))."""
        acc.value += pair_term(kind, scale, self._support.pairs, rows, cols, NO_MAP, order, order >= 2, acc.hess)

    def _spectral_repulsion(self, acc: Accumulator, encoded: list, order: int) -> None:
        """<A, B>_F with A = sum_a wa f_a f_a^T, B = sum_j wn f_j f_j^T.

        d/df_a = 2 wa B f_a, d/df_j = 2 wn A f_j; H[f_a, f_a] = 2 wa B, H[f_j, f_j] = 2 wn A,
        H[f_a, f_j] = 2 wa wn ((f_a.f_j) I + f_j f_a^T) (assembled by :func:`spectral_cross`).
        """
        support = self._support
        rep, jac = encoded[0]
        anchor, negative = support.anchor, support.negative
        wa, wn = support.anchor_weight, support.negative_weight
        first_moment = (rep[anchor] * wa[:, None]).T @ rep[anchor]
        second_moment = (rep[negative] * wn[:, None]).T @ rep[negative]
        acc.value += float(np.sum(first_moment * second_moment))
        if order < 1:
            return
        acc.view_grad[0][anchor] += 2.0 * wa[:, None] * (rep[anchor] @ second_moment)
        acc.view_grad[0][negative] += 2.0 * wn[:, None] * (rep[negative] @ first_moment)
        if order < 2:
            return
        acc.view_self[0][anchor] += 2.0 * wa[:, None, None] * second_moment[None]
        acc.view_self[0][negative] += 2.0 * wn[:, None, None] * first_moment[None]
        slots = support.slots
        first = jacobian_moment(rep, anchor, wa, slots.ptr, slots.coord, jac, self._q)
        second = jacobian_moment(rep, negative, wn, slots.ptr, slots.coord, jac, self._q)
        spectral_cross(first, second, 0, acc.hess)

    def _infonce_repulsion(self, acc: Accumulator, encoded: list, order: int) -> None:
        """sum_a wa log sum_j wn_j exp(cos(f_a, f_j)/tau) (:func:`infonce_repulsion`)."""
        support, pool = self._support, self._pool
        rep, jac = encoded[0]
        acc.value += infonce_repulsion(
            1.0 / self.temperature,
            pool.views,
            pool.anchor,
            support.anchor_weight,
            pool.negative,
            support.negative_weight,
            rep,
            support.slots.ptr,
            support.slots.coord,
            jac,
            self._q,
            acc.view_grad[0],
            acc.view_self[0],
            acc.hess,
            order,
        )

    def _predictor_objective(
        self,
        acc: Accumulator,
        encoded: list,
        online: int,
        target: int,
        predictor: np.ndarray,
        couplings: Couplings,
        row_views: np.ndarray,
        col_views: np.ndarray,
        predictor_slots: Slots,
        order: int,
    ) -> None:
        """L = const + sum_n (-2 w_n) phi(P u_n, v_n), u the rows (encoder ``online``), v the columns.

        The rows P u depend on the encoder through E = P (the row map of :func:`row_pass`),
        and on P as a linear layer on the input u_r, whose slots are all m entries with the
        Jacobian u_r[j] for every neuron; :func:`predictor_mixed` adds the block between the
        two.
        """
        kind = COSINE if self.normalize else INNER_PRODUCT
        rep, jac = encoded[online]
        slots = self._support.slots
        u = rep[row_views]
        n_rows = len(row_views)
        positions = np.arange(n_rows)
        row_grad = np.zeros((n_rows, self.m))
        row_self = np.zeros((n_rows if order >= 2 else 0, self.m, self.m))
        rows = Side(
            u @ predictor.T,
            positions,
            row_grad,
            row_self,
            row_views,
            slots.ptr,
            slots.coord,
            jac,
            online * self._q,
            self._q,
        )
        cols = self._side(acc, encoded, target, col_views)
        acc.value += 2.0 if self.normalize else 0.0
        acc.value += pair_term(kind, -2.0, couplings, rows, cols, predictor, order, order >= 2, acc.hess)
        if order < 1:
            return
        acc.view_grad[online][row_views] += row_grad @ predictor
        predictor_jac = np.repeat(u.ravel(), self.m).reshape(n_rows * self.m, self.m)
        chain_views(
            row_grad,
            row_self,
            predictor_slots.ptr,
            predictor_slots.coord,
            predictor_jac,
            acc.predictor_block,
            acc.grad,
            acc.hess,
            order,
        )
        if order < 2:
            return
        acc.view_self[online][row_views] += predictor.T @ row_self @ predictor
        through_predictor = rows._replace(
            slot_key=positions,
            slot_ptr=predictor_slots.ptr,
            slot_coord=predictor_slots.coord,
            jac=predictor_jac,
            offset=acc.predictor_block,
            n_inputs=self.m,
        )
        pair_term(kind, -2.0, couplings, through_predictor, cols, NO_MAP, 0, True, acc.hess)
        predictor_mixed(
            row_grad,
            row_self,
            predictor,
            u,
            row_views,
            slots.ptr,
            slots.coord,
            jac,
            online * self._q,
            acc.predictor_block,
            acc.hess,
        )

    def _evaluate(self, theta, order: int) -> list[Accumulator]:
        """Internal accumulators: one for a gradient family, (L_o, L_t) for ncl_predictor."""
        return self._evaluate_valid(self._validated_theta(theta), order)

    def _evaluate_valid(self, theta: np.ndarray, order: int) -> list[Accumulator]:
        params, predictor = self._encoder_parameters(theta)
        support = self._support
        encoded = [self._encode_views(params[e]) for e in range(self._n_evaluated_encoders)]
        view_jac = [jac for _, jac in encoded]
        last = self._n_evaluated_encoders - 1
        if self.family == "ncl_predictor":
            online, target = self._accumulator(order), self._accumulator(order)
            first_slots, second_slots = self._predictor_slots
            self._predictor_objective(
                online, encoded, 0, last, predictor, support.pairs, support.first, support.second, first_slots, order
            )
            self._predictor_objective(
                target,
                encoded,
                last,
                0,
                predictor,
                self._reversed_pairs,
                support.second,
                support.first,
                second_slots,
                order,
            )
            return [online.finish(support.slots, view_jac, order), target.finish(support.slots, view_jac, order)]
        acc = self._accumulator(order)
        first = self._side(acc, encoded, 0, support.first)
        second = self._side(acc, encoded, last, support.second)
        if self.family == "ncl_squared":
            self._pair_term(acc, SQUARED_DISTANCE, 1.0, first, second, order)
        elif self.family == "ncl_cosine":
            acc.value += 2.0
            self._pair_term(acc, COSINE, -2.0, first, second, order)
        elif self.family == "spectral":
            self._pair_term(acc, INNER_PRODUCT, -2.0, first, second, order)
            self._spectral_repulsion(acc, encoded, order)
        else:
            self._pair_term(acc, COSINE, -1.0 / self.temperature, first, second, order)
            self._infonce_repulsion(acc, encoded, order)
        return [acc.finish(support.slots, view_jac, order)]

    @staticmethod
    def _field_rows(acc: Accumulator, of_online: np.ndarray, of_target: np.ndarray) -> np.ndarray:
        """Rows of the stop-gradient field (or its Jacobian) from the derivatives of L_o and L_t.

        F = (dL_o/d theta_o, dL_t/d theta_t, dL_o/dP + dL_t/dP); dF/dtheta takes the
        same rows of the Hessians of L_o and L_t (every column).
        """
        out = np.empty_like(of_online)
        s_o, s_t, s_p = acc.encoder_slice(0), acc.encoder_slice(1), acc.predictor_slice()
        out[s_o] = of_online[s_o]
        out[s_t] = of_target[s_t]
        out[s_p] = of_online[s_p] + of_target[s_p]
        return out

    def _field(self, online: Accumulator, target: Accumulator) -> np.ndarray:
        return self._to_public(self._field_rows(online, online.grad, target.grad))

    def _field_jacobian(self, online: Accumulator, target: Accumulator) -> np.ndarray:
        of_online, of_target = online.hessian(self._hessian_offsets), target.hessian(self._hessian_offsets)
        return self._to_public(self._field_rows(online, of_online, of_target))

    def _require_gradient_family(self, method: str) -> None:
        if self.is_field:
            raise TypeError(
                f"{method}() is not defined for family='ncl_predictor': its stop-gradient dynamics is not the "
                "gradient of a function; use field() and jacobian()"
            )

    # ----- public API -----

    def value(self, theta: np.ndarray) -> float:
        """The loss at theta.

        For ncl_predictor: the symmetric loss (L_o + L_t) / 2, where the stop-gradient
        plays no role (see :meth:`objectives`).
        """
        accs = self._evaluate(theta, 0)
        return float(sum(acc.value for acc in accs) / len(accs))

    def objectives(self, theta: np.ndarray) -> tuple[float, float]:
        """ncl_predictor: the online and target objectives (L_o, L_t) at theta."""
        if not self.is_field:
            raise TypeError(f"objectives() is defined for family='ncl_predictor' only, not {self.family!r}")
        online, target = self._evaluate(theta, 0)
        return online.value, target.value

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """dL/dtheta (gradient families), shape (n_params,)."""
        self._require_gradient_family("gradient")
        return self._evaluate(theta, 1)[0].grad[self._position]

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        """d^2 L/dtheta^2 of the activation pattern's piece (gradient families), symmetric (n_params, n_params)."""
        self._require_gradient_family("hessian")
        return self._evaluate(theta, 2)[0].hessian(self._hessian_offsets)

    def value_gradient_hessian(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """(value, gradient, Hessian) in one pass (gradient families)."""
        self._require_gradient_family("value_gradient_hessian")
        acc = self._evaluate(theta, 2)[0]
        return acc.value, acc.grad[self._position], acc.hessian(self._hessian_offsets)

    def field(self, theta: np.ndarray) -> np.ndarray:
        """The vector field whose zeros are the stationary points, shape (n_params,).

        ncl_predictor: F = (dL_o/dW, dL_t/dW_t, dL_o/db, dL_t/db_t, dL_o/dP + dL_t/dP)
        (blocks as present; tied: dL_o/dW + dL_t/dW through the two views). Other
        families: the gradient.
        """
        if not self.is_field:
            return self.gradient(theta)
        return self._field(*self._evaluate(theta, 1))

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """dF/dtheta (non-symmetric for ncl_predictor; the Hessian otherwise), (n_params, n_params)."""
        if not self.is_field:
            return self.hessian(theta)
        return self._field_jacobian(*self._evaluate(theta, 2))

    def field_and_jacobian(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(field, Jacobian) in one pass."""
        if not self.is_field:
            _, grad, hess = self.value_gradient_hessian(theta)
            return grad, hess
        online, target = self._evaluate(theta, 2)
        return self._field(online, target), self._field_jacobian(online, target)
