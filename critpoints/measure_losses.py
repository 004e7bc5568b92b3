"""Exact value, gradient and Hessian of every loss when the expectation is a finite sum.

The input is a :class:`~critpoints.finite_measure.FiniteMeasure`: weighted pairs of views
(x1[n], x2[n], w[n]), anchors (the law of x1 alone) and negatives (the law of x'). Every
loss of SPEC section 4 is then a sum over *couplings* of two representations r, c in R^m
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

The derivatives are assembled in three stages, each a numba kernel vectorised over the
support: (1) the encoder on every distinct view, giving the representation and its
Jacobian; (2) the generated pointwise kernels (``critpoints.generated.pointwise_kernels``)
for the invariant derivatives of every coupling, aggregated per view into representation
gradients and m x m Hessian blocks; (3) the chain rule from representations to the
encoder parameters. Within an activation pattern the encoder is linear in its parameters,
so the Hessian is exactly J^T (d^2 loss) J.

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

from .finite_measure import FiniteMeasure
from .parameters import ParameterLayout
from .generated import pointwise_kernels as kernels

FAMILIES = ("spectral", "infonce", "ncl_squared", "ncl_cosine", "ncl_predictor")
ENCODERS = ("linear", "symrelu")
TWO_ENCODER_FAMILIES = ("ncl_squared", "ncl_cosine", "ncl_predictor")

# -----------------------------------------------------------------------------------
# Stage 1: the encoder on every distinct view
# -----------------------------------------------------------------------------------


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
def encode(points, weights, bias, symrelu, trainable_bias):
    """Representations and their parameter Jacobians on a set of views.

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
    weights : (m, p) float64
    bias : (m,) float64 (ignored for a linear encoder)
    symrelu, trainable_bias : bool

    Returns
    -------
    rep : (V, m) float64
        f(x_v).
    jac : (V, m, q) float64
        jac[v, i] = d f_i(x_v) / d(w_i, b_i), q = p + 1 with a trainable bias, else p
        (f_i depends on no other neuron's parameters).
    """
    n_views, p = points.shape
    m = weights.shape[0]
    q = p + 1 if trainable_bias else p
    rep = np.empty((n_views, m))
    jac = np.zeros((n_views, m, q))
    for v in range(n_views):
        zero_view = True
        for a in range(p):
            if points[v, a] != 0.0:
                zero_view = False
        for i in range(m):
            t = 0.0
            for a in range(p):
                t += weights[i, a] * points[v, a]
            if symrelu:
                rep[v, i], slope, bias_slope = symrelu_piece(t, bias[i], zero_view)
                if trainable_bias:
                    jac[v, i, p] = bias_slope
            else:
                rep[v, i] = t
                slope = 1.0
            for a in range(p):
                jac[v, i, a] = slope * points[v, a]
    return rep, jac


# -----------------------------------------------------------------------------------
# Stage 2: invariants of every coupling, aggregated per view
# -----------------------------------------------------------------------------------


@njit(cache=True)
def coupling_invariants(row_rep, col_rep, rows, cols):
    """A = r.r, B = c.c, C = r.c for every coupling (r = row_rep[rows[n]], c = col_rep[cols[n]])."""
    n = rows.shape[0]
    m = row_rep.shape[1]
    row_sq = np.zeros(row_rep.shape[0])
    col_sq = np.zeros(col_rep.shape[0])
    for v in range(row_rep.shape[0]):
        for i in range(m):
            row_sq[v] += row_rep[v, i] * row_rep[v, i]
    for v in range(col_rep.shape[0]):
        for i in range(m):
            col_sq[v] += col_rep[v, i] * col_rep[v, i]
    a_inv = np.empty(n)
    b_inv = np.empty(n)
    c_inv = np.empty(n)
    for k in range(n):
        r = rows[k]
        c = cols[k]
        cc = 0.0
        for i in range(m):
            cc += row_rep[r, i] * col_rep[c, i]
        a_inv[k] = row_sq[r]
        b_inv[k] = col_sq[c]
        c_inv[k] = cc
    return a_inv, b_inv, c_inv


# Columns of the derivative table (the order of the generated kernels' output).
PHI, PHI_A, PHI_B, PHI_C, PHI_AA, PHI_AB, PHI_AC, PHI_BB, PHI_BC, PHI_CC = range(10)


@njit(cache=True)
def row_gradients(row_rep, col_rep, indptr, cols, weight, table):
    """Per row view r: sum_n w_n phi_n and sum_n w_n d phi_n / dr = w_n (2 phi_A r + phi_C c).

    Couplings are grouped by row: those of row r are indptr[r]:indptr[r+1].
    """
    n_rows, m = row_rep.shape
    value = np.zeros(n_rows)
    grad = np.zeros((n_rows, m))
    for r in range(n_rows):
        total = 0.0
        for n in range(indptr[r], indptr[r + 1]):
            w = weight[n]
            c = cols[n]
            total += w * table[n, PHI]
            along_r = 2.0 * w * table[n, PHI_A]
            along_c = w * table[n, PHI_C]
            for i in range(m):
                grad[r, i] += along_r * row_rep[r, i] + along_c * col_rep[c, i]
        value[r] = total
    return value, grad


@njit(cache=True)
def col_gradients(row_rep, col_rep, col_indptr, col_order, rows, weight, table):
    """Per column view c: sum_n w_n d phi_n / dc = w_n (2 phi_B c + phi_C r).

    The couplings of column c are col_order[col_indptr[c]:col_indptr[c+1]].
    """
    n_cols, m = col_rep.shape
    grad = np.zeros((n_cols, m))
    for c in range(n_cols):
        for k in range(col_indptr[c], col_indptr[c + 1]):
            n = col_order[k]
            w = weight[n]
            r = rows[n]
            along_c = 2.0 * w * table[n, PHI_B]
            along_r = w * table[n, PHI_C]
            for i in range(m):
                grad[c, i] += along_c * col_rep[c, i] + along_r * row_rep[r, i]
    return grad


@njit(cache=True)
def outer_products(rep):
    """(V, m * m): the flattened outer product f_v f_v^T of every representation."""
    n_views, m = rep.shape
    out = np.empty((n_views, m * m))
    for v in range(n_views):
        for i in range(m):
            for k in range(m):
                out[v, i * m + k] = rep[v, i] * rep[v, k]
    return out


@njit(cache=True)
def jacobian_nonzeros(jac):
    """Nonzero entries of each view's flattened Jacobian (V, m * q), as CSR (ptr, index, neuron).

    Views of the exact enumeration are masked sparse codes and dead neurons have zero
    slope, so most entries vanish; the cross part of the Hessian only visits these.
    """
    n_views, m, q = jac.shape
    counts = np.zeros(n_views + 1, dtype=np.int64)
    for v in range(n_views):
        total = 0
        for k in range(m):
            for beta in range(q):
                if jac[v, k, beta] != 0.0:
                    total += 1
        counts[v + 1] = total
    ptr = np.cumsum(counts)
    index = np.empty(ptr[n_views], dtype=np.int64)
    neuron = np.empty(ptr[n_views], dtype=np.int64)
    for v in range(n_views):
        t = ptr[v]
        for k in range(m):
            for beta in range(q):
                if jac[v, k, beta] != 0.0:
                    index[t] = k * q + beta
                    neuron[t] = k
                    t += 1
    return ptr, index, neuron


@njit(cache=True)
def row_hessian_parts(
    row_rep, col_rep, col_jac, col_nz_ptr, col_nz_index, col_nz_neuron, indptr, cols, weight, table, with_col_gradients
):
    """Per row view r: the self block M_r = sum_n w_n H_rr^n and the cross part
    T_r[(k, beta), l] = sum_n w_n H_rc^n[l, k] col_jac[c_n, k, beta].

    With the invariant derivatives of coupling n (derivations/pointwise_losses.md)::

        H_rr = 2 phi_A I + 4 phi_AA r r^T + 2 phi_AC (r c^T + c r^T) + phi_CC c c^T
        H_rc = phi_C I + r (4 phi_AB c + 2 phi_AC r)^T + c (2 phi_BC c + phi_CC r)^T

    T_r is J_r^T-ready: the Hessian block between the row parameters (neuron l, entry
    alpha) and the column parameters (neuron k, entry beta) is
    sum_r row_jac[r, l, alpha] T_r[(k, beta), l] (see :func:`chain_cross`). The terms
    along r and along the identity are summed over the row's couplings first; the term
    along c is added per coupling, over the nonzero Jacobian entries of the column view
    only (``col_nz_*`` from :func:`jacobian_nonzeros`), each as an axpy of length m.

    With ``with_col_gradients`` (one shared encoder), also the parameter gradient that the
    couplings of row r put on their column views,
    sum_{n in r} J_{c_n}^T w_n (2 phi_B c_n + phi_C r) (the log-sum-exp correction of
    infonce needs it per anchor).

    Returns
    -------
    self_blocks : (R, m, m)
    cross : (R, m * q_col, m), indexed [r, k * q_col + beta, l]
    col_gradients : (R, m * q_col), zero unless ``with_col_gradients``
    """
    n_rows, m = row_rep.shape
    q = col_jac.shape[2]
    width = m * q
    flat_jac = col_jac.reshape((col_jac.shape[0], width))
    col_outer = outer_products(col_rep)
    nz_jac = np.empty(col_nz_index.shape[0])
    nz_rep = np.empty(col_nz_index.shape[0])
    for c in range(col_rep.shape[0]):
        for t in range(col_nz_ptr[c], col_nz_ptr[c + 1]):
            nz_jac[t] = flat_jac[c, col_nz_index[t]]
            nz_rep[t] = col_rep[c, col_nz_neuron[t]]
    self_blocks = np.zeros((n_rows, m, m))
    cross = np.zeros((n_rows, width, m))
    col_gradients = np.zeros((n_rows if with_col_gradients else 0, width))
    for r in range(n_rows):
        self_flat = self_blocks[r].reshape(m * m)
        block = cross[r]
        sum_a = 0.0
        sum_aa = 0.0
        sum_ac_c = np.zeros(m)
        along_r = np.zeros(width)
        diagonal = np.zeros(width)
        for n in range(indptr[r], indptr[r + 1]):
            w = weight[n]
            c = cols[n]
            sum_a += w * table[n, PHI_A]
            sum_aa += w * table[n, PHI_AA]
            w_c = w * table[n, PHI_C]
            w_ab = 4.0 * w * table[n, PHI_AB]
            w_ac = 2.0 * w * table[n, PHI_AC]
            w_bc = 2.0 * w * table[n, PHI_BC]
            w_cc = w * table[n, PHI_CC]
            for i in range(m):
                sum_ac_c[i] += w * table[n, PHI_AC] * col_rep[c, i]
            if w_cc != 0.0:
                for ik in range(m * m):
                    self_flat[ik] += w_cc * col_outer[c, ik]
            w_b = 2.0 * w * table[n, PHI_B]
            for t in range(col_nz_ptr[c], col_nz_ptr[c + 1]):
                kb = col_nz_index[t]
                y = nz_jac[t]
                c_k = nz_rep[t]
                r_k = row_rep[r, col_nz_neuron[t]]
                diagonal[kb] += w_c * y
                along_r[kb] += (w_ab * c_k + w_ac * r_k) * y
                along_c = (w_bc * c_k + w_cc * r_k) * y
                for l in range(m):
                    block[kb, l] += along_c * col_rep[c, l]
                if with_col_gradients:
                    col_gradients[r, kb] += (w_b * c_k + w_c * r_k) * y
        for kb in range(width):
            for l in range(m):
                block[kb, l] += along_r[kb] * row_rep[r, l]
        for l in range(m):
            for beta in range(q):
                block[l * q + beta, l] += diagonal[l * q + beta]
            self_blocks[r, l, l] += 2.0 * sum_a
            for k in range(m):
                self_blocks[r, l, k] += (
                    4.0 * sum_aa * row_rep[r, l] * row_rep[r, k]
                    + 2.0 * (row_rep[r, l] * sum_ac_c[k] + sum_ac_c[l] * row_rep[r, k])
                )
    return self_blocks, cross, col_gradients


@njit(cache=True)
def col_self_blocks(row_rep, col_rep, col_indptr, col_order, rows, weight, table):
    """Per column view c: M_c = sum_n w_n H_cc^n,
    H_cc = 2 phi_B I + 4 phi_BB c c^T + 2 phi_BC (c r^T + r c^T) + phi_CC r r^T."""
    n_cols, m = col_rep.shape
    row_outer = outer_products(row_rep)
    blocks = np.zeros((n_cols, m, m))
    for c in range(n_cols):
        block = blocks[c].reshape(m * m)
        sum_b = 0.0
        sum_bb = 0.0
        sum_bc_r = np.zeros(m)
        for k in range(col_indptr[c], col_indptr[c + 1]):
            n = col_order[k]
            w = weight[n]
            r = rows[n]
            sum_b += w * table[n, PHI_B]
            sum_bb += w * table[n, PHI_BB]
            w_cc = w * table[n, PHI_CC]
            for i in range(m):
                sum_bc_r[i] += w * table[n, PHI_BC] * row_rep[r, i]
            if w_cc != 0.0:
                for ij in range(m * m):
                    block[ij] += w_cc * row_outer[r, ij]
        for i in range(m):
            blocks[c, i, i] += 2.0 * sum_b
            for j in range(m):
                blocks[c, i, j] += 4.0 * sum_bb * col_rep[c, i] * col_rep[c, j] + 2.0 * (
                    col_rep[c, i] * sum_bc_r[j] + sum_bc_r[i] * col_rep[c, j]
                )
    return blocks


# -----------------------------------------------------------------------------------
# Stage 3: chain rule from representations to encoder parameters
# -----------------------------------------------------------------------------------


@njit(cache=True)
def chain_gradient(item_grad, jac):
    """sum_v J_v^T g_v: out[i q + alpha] = sum_v g[v, i] jac[v, i, alpha]."""
    n_items, m, q = jac.shape
    out = np.zeros(m * q)
    for i in range(m):
        for v in range(n_items):
            g = item_grad[v, i]
            if g == 0.0:
                continue
            for alpha in range(q):
                out[i * q + alpha] += g * jac[v, i, alpha]
    return out


@njit(cache=True)
def chain_self(item_self, jac):
    """sum_v J_v^T M_v J_v: H[(i, alpha), (k, beta)] = sum_v M_v[i, k] jac[v, i, alpha] jac[v, k, beta]."""
    n_items, m, q = jac.shape
    out = np.zeros((m * q, m * q))
    for i in range(m):
        for v in range(n_items):
            for k in range(m):
                coef = item_self[v, i, k]
                if coef == 0.0:
                    continue
                for alpha in range(q):
                    y = coef * jac[v, i, alpha]
                    if y == 0.0:
                        continue
                    for beta in range(q):
                        out[i * q + alpha, k * q + beta] += y * jac[v, k, beta]
    return out


@njit(cache=True)
def chain_cross(cross, row_jac):
    """sum_r J_r^T (sum_n H_rc^n J_c): X[(l, alpha), (k, beta)] = sum_r row_jac[r, l, alpha] cross[r, k q + beta, l]."""
    n_rows, m, q_row = row_jac.shape
    width = cross.shape[1]
    out = np.zeros((m * q_row, width))
    for l in range(m):
        for r in range(n_rows):
            for alpha in range(q_row):
                y = row_jac[r, l, alpha]
                if y == 0.0:
                    continue
                row = l * q_row + alpha
                for kb in range(width):
                    out[row, kb] += y * cross[r, kb, l]
    return out


@njit(cache=True)
def spectral_cross(first, second):
    """Cross block sum_{a,j} J_a^T d^2<A,B>/df_a df_j J_j of the spectral repulsion.

    d^2/df_a df_j = 2 wa wn ((f_a.f_j) I + f_j f_a^T) separates into
    X[(i, alpha), (k, beta)] = 2 delta_ik sum_l U[l, i, alpha] V[l, i, beta] + 2 U[k, i, alpha] V[i, k, beta]
    with U[l] = sum_a wa f_a[l] J_a (``first``) and V[l] = sum_j wn f_j[l] J_j (``second``),
    both of shape (m, m, q).
    """
    m = first.shape[0]
    q = first.shape[2]
    out = np.zeros((m * q, m * q))
    for i in range(m):
        for alpha in range(q):
            row = i * q + alpha
            for k in range(m):
                u = 2.0 * first[k, i, alpha]
                for beta in range(q):
                    out[row, k * q + beta] += u * second[i, k, beta]
            for beta in range(q):
                total = 0.0
                for l in range(m):
                    total += first[l, i, alpha] * second[l, i, beta]
                out[row, i * q + beta] += 2.0 * total
    return out


@njit(cache=True)
def weighted_gram(vectors, weight):
    """sum_r weight[r] v_r v_r^T for the rows v_r of ``vectors`` (R, n)."""
    n_vectors, n = vectors.shape
    out = np.zeros((n, n))
    for i in range(n):
        for r in range(n_vectors):
            a = weight[r] * vectors[r, i]
            if a == 0.0:
                continue
            for j in range(n):
                out[i, j] += a * vectors[r, j]
    return out


@njit(cache=True)
def predictor_blocks(u, grad, self_blocks, cross, predicted_self, row_jac):
    """Hessian blocks involving the predictor P for couplings phi(P u_r, c), r the rows.

    With g_r = d phi/d(P u) (summed over the couplings of r), M_r the self block in P u and
    T_r the cross part (see :func:`row_hessian_parts`), N_r = P^T M_r (``predicted_self``)::

        H[P_ij, P_kl]            = sum_r M_r[i, k] u_r[j] u_r[l]
        H[P_ij, (k, beta)]       = sum_r u_r[j] T_r[(k, beta), i]           (column parameters)
        H[(j, alpha), P_kl]      = sum_r J_r[j, alpha] (delta_jl g_r[k] + N_r[j, k] u_r[l])

    Returns (H_PP (m^2, m^2), H_P_col (m^2, m q_col), H_row_P (m q_row, m^2)).
    """
    n_rows, m, q_row = row_jac.shape
    q_col = cross.shape[1] // m
    h_pp = np.zeros((m * m, m * m))
    h_pc = np.zeros((m * m, m * q_col))
    h_rp = np.zeros((m * q_row, m * m))
    for i in range(m):
        for r in range(n_rows):
            for j in range(m):
                u_j = u[r, j]
                if u_j == 0.0:
                    continue
                for k in range(m):
                    coef = self_blocks[r, i, k] * u_j
                    for l in range(m):
                        h_pp[i * m + j, k * m + l] += coef * u[r, l]
                    for beta in range(q_col):
                        h_pc[i * m + j, k * q_col + beta] += u_j * cross[r, k * q_col + beta, i]
        j = i
        for r in range(n_rows):
            for alpha in range(q_row):
                y = row_jac[r, j, alpha]
                if y == 0.0:
                    continue
                row = j * q_row + alpha
                for k in range(m):
                    h_rp[row, k * m + j] += y * grad[r, k]
                    coef = y * predicted_self[r, j, k]
                    for l in range(m):
                        h_rp[row, k * m + l] += coef * u[r, l]
    return h_pp, h_pc, h_rp


# -----------------------------------------------------------------------------------
# Support: distinct views and couplings
# -----------------------------------------------------------------------------------


class Couplings(NamedTuple):
    """Couplings (row view, column view, weight), sorted by row then column.

    ``indptr`` groups them by row (CSR); ``col_order[col_indptr[c]:col_indptr[c+1]]`` lists
    those of column c.
    """

    rows: np.ndarray
    cols: np.ndarray
    weight: np.ndarray
    indptr: np.ndarray
    col_indptr: np.ndarray
    col_order: np.ndarray

    @classmethod
    def from_lists(
        cls, rows: np.ndarray, cols: np.ndarray, weight: np.ndarray, n_rows: int, n_cols: int
    ) -> "Couplings":
        """Merge repeated (row, col) couplings (adding weights), drop zero weights, sort."""
        keep = weight > 0
        key = rows[keep].astype(np.int64) * n_cols + cols[keep].astype(np.int64)
        unique, inverse = np.unique(key, return_inverse=True)
        merged = np.bincount(inverse.ravel(), weights=weight[keep], minlength=len(unique))
        rows, cols = unique // n_cols, unique % n_cols
        indptr = np.searchsorted(rows, np.arange(n_rows + 1)).astype(np.int64)
        col_order = np.argsort(cols, kind="stable").astype(np.int64)
        col_indptr = np.searchsorted(cols[col_order], np.arange(n_cols + 1)).astype(np.int64)
        return cls(rows.astype(np.int64), cols.astype(np.int64), merged, indptr, col_indptr, col_order)

    @classmethod
    def dense(cls, row_weight: np.ndarray, col_weight: np.ndarray) -> "Couplings":
        """Every (row, column) combination, weight row_weight[r] * col_weight[c]."""
        n_rows, n_cols = len(row_weight), len(col_weight)
        rows = np.repeat(np.arange(n_rows), n_cols)
        cols = np.tile(np.arange(n_cols), n_rows)
        return cls.from_lists(rows, cols, np.outer(row_weight, col_weight).ravel(), n_rows, n_cols)

    def transposed(self, n_cols: int) -> "Couplings":
        """The same couplings with rows and columns exchanged."""
        n_rows = len(self.indptr) - 1
        return Couplings.from_lists(self.cols, self.rows, self.weight, n_cols, n_rows)


def _distinct_with_weights(index: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct entries of ``index`` carrying positive total weight, and those weights."""
    unique, inverse = np.unique(index, return_inverse=True)
    merged = np.bincount(inverse.ravel(), weights=weight, minlength=len(unique))
    keep = merged > 0
    return unique[keep], merged[keep]


class Support(NamedTuple):
    """The distinct views of a finite measure and how they are coupled.

    ``views``: every distinct point of the measure (x1, x2, anchors, negatives), encoded
    once per encoder. ``first`` / ``second``: the views (indices into ``views``) that
    occur as x1 / x2; ``pairs``: couplings (position in ``first``, position in
    ``second``) with the merged pair weights; ``anchor`` / ``negative``: views of the
    anchors and negatives with their merged weights.
    """

    views: np.ndarray
    first: np.ndarray
    second: np.ndarray
    pairs: Couplings
    anchor: np.ndarray
    anchor_weight: np.ndarray
    negative: np.ndarray
    negative_weight: np.ndarray

    @classmethod
    def from_measure(cls, measure: FiniteMeasure) -> "Support":
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
        return cls(np.ascontiguousarray(views), first, second, pairs, anchor, anchor_weight, negative, negative_weight)


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


# -----------------------------------------------------------------------------------
# Representation-level derivatives of one coupling term
# -----------------------------------------------------------------------------------


class Encoded(NamedTuple):
    """Representations (V, m) and parameter Jacobians (V, m, q) of some views under one encoder.

    ``index``: the positions of these views in :attr:`Support.views`.
    """

    rep: np.ndarray
    jac: np.ndarray
    encoder: int
    index: np.ndarray


class TermDerivatives(NamedTuple):
    """Derivatives of sum_n w_n phi(r_n, c_n) in the representations, aggregated per view."""

    value: float
    row_value: np.ndarray
    row_grad: np.ndarray
    col_grad: np.ndarray
    row_self: np.ndarray | None
    col_self: np.ndarray | None
    cross: np.ndarray | None
    col_param_grad: np.ndarray | None = None


def invariant_derivatives(kind: int, row_rep, col_rep, couplings: Couplings, *, inv_tau: float = 1.0, shift=None):
    """Invariant derivatives (n_couplings, 10) of the pointwise loss ``kind`` on every coupling."""
    a_inv, b_inv, c_inv = coupling_invariants(row_rep, col_rep, couplings.rows, couplings.cols)
    if shift is None:
        shift = np.zeros(len(a_inv))
    table = np.empty((len(a_inv), kernels.N_DERIVATIVES))
    kernels.derivative_table(kind, a_inv, b_inv, c_inv, float(inv_tau), shift, table)
    return table


def term_derivatives(
    table: np.ndarray,
    weight: np.ndarray,
    row_rep,
    col_rep,
    col_jac,
    couplings: Couplings,
    order: int,
    with_col_gradients: bool = False,
) -> TermDerivatives:
    """Value (order 0), representation gradients (order >= 1) and Hessian parts (order 2).

    ``with_col_gradients``: also, per row, the parameter gradient its couplings put on
    their column views (order 2 only).
    """
    row_value, row_grad = row_gradients(row_rep, col_rep, couplings.indptr, couplings.cols, weight, table)
    col_grad = row_self = col_self = cross = col_param_grad = None
    if order >= 1:
        col_grad = col_gradients(
            row_rep, col_rep, couplings.col_indptr, couplings.col_order, couplings.rows, weight, table
        )
    if order >= 2:
        row_self, cross, col_param_grad = row_hessian_parts(
            row_rep, col_rep, col_jac, *jacobian_nonzeros(col_jac), couplings.indptr, couplings.cols,
            weight, table, with_col_gradients,
        )
        col_self = col_self_blocks(
            row_rep, col_rep, couplings.col_indptr, couplings.col_order, couplings.rows, weight, table
        )
    return TermDerivatives(
        float(row_value.sum()), row_value, row_grad, col_grad, row_self, col_self, cross, col_param_grad
    )


class Accumulator:
    """Value, gradient and Hessian in the internal (neuron-major) parameter vector.

    Terms that involve one view at a time (representation gradients g_v and self blocks
    M_v) are first summed per view and encoder, and pushed through the chain rule once
    by :meth:`finish`; cross blocks between views are added to the Hessian directly.
    """

    def __init__(self, n_encoders: int, n_views: int, m: int, q: int, predictor: bool, order: int):
        self.m, self.q, self.block = m, q, m * q
        self.n = n_encoders * m * q + (m * m if predictor else 0)
        self.predictor_start = n_encoders * m * q
        self.value = 0.0
        self.grad = np.zeros(self.n) if order >= 1 else None
        self.hess = np.zeros((self.n, self.n)) if order >= 2 else None
        self.view_grad = np.zeros((n_encoders, n_views, m)) if order >= 1 else None
        self.view_self = np.zeros((n_encoders, n_views, m, m)) if order >= 2 else None

    def encoder_slice(self, encoder: int) -> slice:
        return slice(encoder * self.block, (encoder + 1) * self.block)

    def predictor_slice(self) -> slice:
        return slice(self.predictor_start, self.n)

    def add_view_terms(self, encoded: Encoded, item_grad, item_self) -> None:
        """Add the representation gradients g_v and self blocks M_v of some views."""
        if self.view_grad is not None and item_grad is not None:
            self.view_grad[encoded.encoder, encoded.index] += item_grad
        if self.view_self is not None and item_self is not None:
            self.view_self[encoded.encoder, encoded.index] += item_self

    def add_symmetric(self, rows: slice, cols: slice, block: np.ndarray) -> None:
        """H[rows, cols] += block and H[cols, rows] += block^T."""
        self.hess[rows, cols] += block
        self.hess[cols, rows] += block.T

    def add_term(self, derivs: TermDerivatives, row: Encoded, col: Encoded) -> None:
        """A term whose rows and columns are encoder outputs."""
        self.value += derivs.value
        self.add_view_terms(row, derivs.row_grad, derivs.row_self)
        self.add_view_terms(col, derivs.col_grad, derivs.col_self)
        if self.hess is not None:
            cross = chain_cross(derivs.cross, row.jac)
            self.add_symmetric(self.encoder_slice(row.encoder), self.encoder_slice(col.encoder), cross)

    def add_predicted_term(self, derivs: TermDerivatives, row: Encoded, col: Encoded, predictor: np.ndarray) -> None:
        """A term whose rows are P u (u = ``row.rep``) and columns encoder outputs.

        d/du = P^T g, H_uu = P^T M P, H_uc = P^T H_rc; the blocks in P are
        those of :func:`predictor_blocks`.
        """
        self.value += derivs.value
        m = self.m
        row_s, col_s, pred_s = self.encoder_slice(row.encoder), self.encoder_slice(col.encoder), self.predictor_slice()
        if self.grad is None:
            return
        self.grad[pred_s] += (derivs.row_grad.T @ row.rep).ravel()
        predicted_self = None
        if self.hess is not None:
            predicted_self = predictor.T @ derivs.row_self
        row_self = None if predicted_self is None else predicted_self @ predictor
        self.add_view_terms(row, derivs.row_grad @ predictor, row_self)
        self.add_view_terms(col, derivs.col_grad, derivs.col_self)
        if self.hess is None:
            return
        mixed = np.ascontiguousarray(derivs.cross @ predictor)
        self.add_symmetric(row_s, col_s, chain_cross(mixed, row.jac))
        h_pp, h_pc, h_rp = predictor_blocks(
            row.rep, derivs.row_grad, derivs.row_self, derivs.cross, np.ascontiguousarray(predicted_self), row.jac
        )
        self.hess[pred_s, pred_s] += h_pp
        self.add_symmetric(pred_s, col_s, h_pc)
        self.add_symmetric(row_s, pred_s, h_rp)

    def finish(self, view_jac: list[np.ndarray]) -> "Accumulator":
        """Chain rule of the per-view terms: sum_v J_v^T g_v and sum_v J_v^T M_v J_v per encoder."""
        for e, jac in enumerate(view_jac):
            s = self.encoder_slice(e)
            if self.grad is not None:
                self.grad[s] += chain_gradient(self.view_grad[e], jac)
            if self.hess is not None:
                self.hess[s, s] += chain_self(self.view_self[e], jac)
        return self


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
            raise ValueError(
                f"measure.{name} has shape {points.shape}; expected a finite 2-d array (n, p) with p >= 1"
            )
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
        self._n_evaluated_encoders = 2 if self.two_encoders else 1
        one_encoder = self.tied or not self.two_encoders
        self._fixed_bias = self._validated_encoder_options(fixed_bias, one_encoder)

        self.is_field = self.family == "ncl_predictor"
        self.layout = ParameterLayout.for_model(
            m=self.m,
            p=self.p,
            two_encoders=self.two_encoders and not self.tied,
            trainable_bias=self.trainable_bias,
            predictor=self.is_field,
        )
        self.n_params = self.layout.size
        self._q = self.p + 1 if self.trainable_bias else self.p
        self._public_index = internal_index(self.layout)
        self._fold = self.two_encoders and self.tied

        self._support = Support.from_measure(measure)
        self._check_support()
        pairs = self._support.pairs
        self._reversed_pairs = pairs.transposed(len(self._support.second)) if self.is_field else None
        self._repulsion = (
            Couplings.dense(self._support.anchor_weight, self._support.negative_weight)
            if self.family == "infonce"
            else None
        )
        self.support_size = len(pairs.rows) + (
            len(self._repulsion.rows)
            if self._repulsion is not None
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
        """[(W_e, b_e) for each evaluated encoder], P (or None)."""
        blocks = self.layout.unpack(theta)
        names = [("W", "b"), ("W_t", "b_t")] if "W_t" in self.layout.shapes else [("W", "b"), ("W", "b")]
        params = []
        for e in range(self._n_evaluated_encoders):
            w_name, b_name = names[e]
            if self.trainable_bias:
                bias = blocks[b_name]
            elif self._fixed_bias is not None:
                bias = self._fixed_bias[e]
            else:
                bias = np.zeros(self.m)
            params.append((np.ascontiguousarray(blocks[w_name]), np.ascontiguousarray(bias, dtype=float)))
        return params, (np.ascontiguousarray(blocks["P"]) if self.is_field else None)

    def _encode_views(self, params: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(representations, Jacobians) of every view of the support under one encoder."""
        weights, bias = params
        return encode(self._support.views, weights, bias, self.encoder == "symrelu", self.trainable_bias)

    @staticmethod
    def _select(encoded_views: tuple[np.ndarray, np.ndarray], index: np.ndarray, encoder: int) -> Encoded:
        rep, jac = encoded_views
        return Encoded(np.ascontiguousarray(rep[index]), np.ascontiguousarray(jac[index]), encoder, index)

    def _to_public(self, internal: np.ndarray) -> np.ndarray:
        """Fold tied encoders and reorder internal (neuron-major) entries into theta's layout."""
        folded = self._fold_tied(internal) if self._fold else internal
        if folded.ndim == 1:
            return folded[self._public_index]
        return folded[np.ix_(self._public_index, self._public_index)]

    # ----- the losses -----

    def _accumulator(self, order: int) -> Accumulator:
        return Accumulator(
            self._n_evaluated_encoders, len(self._support.views), self.m, self._q, self.is_field, order
        )

    def _pair_term(
        self, acc: Accumulator, kind: int, scale: float, first: Encoded, second: Encoded, order: int
    ) -> None:
        """sum_n w_n * scale * phi(f(x1_n), f(x2_n))."""
        pairs = self._support.pairs
        table = invariant_derivatives(kind, first.rep, second.rep, pairs)
        derivs = term_derivatives(table, scale * pairs.weight, first.rep, second.rep, second.jac, pairs, order)
        acc.add_term(derivs, first, second)

    def _spectral_repulsion(self, acc: Accumulator, anchor: Encoded, negative: Encoded, order: int) -> None:
        """<A, B>_F with A = sum_a wa f_a f_a^T, B = sum_j wn f_j f_j^T.

        d/df_a = 2 wa B f_a, d/df_j = 2 wn A f_j; H[f_a, f_a] = 2 wa B, H[f_j, f_j] = 2 wn A,
        H[f_a, f_j] = 2 wa wn ((f_a.f_j) I + f_j f_a^T) (assembled by :func:`spectral_cross`).
        """
        wa, wn = self._support.anchor_weight, self._support.negative_weight
        first_moment = (anchor.rep * wa[:, None]).T @ anchor.rep
        second_moment = (negative.rep * wn[:, None]).T @ negative.rep
        acc.value += float(np.sum(first_moment * second_moment))
        if order < 1:
            return
        anchor_grad = 2.0 * wa[:, None] * (anchor.rep @ second_moment)
        negative_grad = 2.0 * wn[:, None] * (negative.rep @ first_moment)
        anchor_self = negative_self = None
        if order >= 2:
            anchor_self = np.ascontiguousarray(2.0 * wa[:, None, None] * second_moment[None])
            negative_self = np.ascontiguousarray(2.0 * wn[:, None, None] * first_moment[None])
        acc.add_view_terms(anchor, anchor_grad, anchor_self)
        acc.add_view_terms(negative, negative_grad, negative_self)
        if order >= 2:
            m, q = self.m, self._q
            first = ((anchor.rep * wa[:, None]).T @ anchor.jac.reshape(len(wa), m * q)).reshape(m, m, q)
            second = ((negative.rep * wn[:, None]).T @ negative.jac.reshape(len(wn), m * q)).reshape(m, m, q)
            s = acc.encoder_slice(0)
            acc.add_symmetric(s, s, spectral_cross(np.ascontiguousarray(first), np.ascontiguousarray(second)))

    def _infonce_repulsion(self, acc: Accumulator, anchor: Encoded, negative: Encoded, order: int) -> None:
        """sum_a wa log Z_a, Z_a = sum_j wn_j exp(cos(f_a, f_j)/tau).

        Each anchor is shifted by s_a = max_j cos/tau (psi = exp(cos/tau - s_a)), then with
        coupling weights wa wn_j / Z~_a the coupling sums give sum_a wa grad Z_a / Z_a and
        sum_a wa Hess Z_a / Z_a; the Hessian of log Z_a also has -mu_a mu_a^T,
        mu_a = grad Z_a / Z_a = G_a / wa with G_a the parameter gradient of anchor a's
        couplings, J_a^T g_a plus what :func:`row_hessian_parts` puts on the negatives.
        """
        couplings = self._repulsion
        inv_tau = 1.0 / self.temperature
        a_inv, b_inv, c_inv = coupling_invariants(anchor.rep, negative.rep, couplings.rows, couplings.cols)
        both = (a_inv > 0) & (b_inv > 0)
        cosine = np.where(both, c_inv / np.sqrt(np.where(both, a_inv * b_inv, 1.0)), 0.0)
        shift = np.maximum.reduceat(inv_tau * cosine, couplings.indptr[:-1])
        table = np.empty((len(a_inv), kernels.N_DERIVATIVES))
        kernels.derivative_table(kernels.EXP_COSINE, a_inv, b_inv, c_inv, inv_tau, shift[couplings.rows], table)
        wa = self._support.anchor_weight
        wn_of_coupling = self._support.negative_weight[couplings.cols]
        partition = np.add.reduceat(wn_of_coupling * table[:, PHI], couplings.indptr[:-1])
        acc.value += float(np.sum(wa * (shift + np.log(partition))))
        if order < 1:
            return
        weight = couplings.weight / partition[couplings.rows]
        derivs = term_derivatives(
            table, weight, anchor.rep, negative.rep, negative.jac, couplings, order, with_col_gradients=True
        )
        acc.add_term(derivs._replace(value=0.0), anchor, negative)
        if order >= 2:
            own = (derivs.row_grad[:, :, None] * anchor.jac).reshape(len(wa), -1)
            per_anchor = np.ascontiguousarray(own + derivs.col_param_grad)
            s = acc.encoder_slice(0)
            acc.hess[s, s] -= weighted_gram(per_anchor, 1.0 / wa)

    def _predictor_objective(
        self,
        acc: Accumulator,
        online: Encoded,
        target: Encoded,
        predictor: np.ndarray,
        couplings: Couplings,
        order: int,
    ) -> None:
        """L = const + sum_n (-2 w_n) phi(P u_n, v_n), u the rows, v the columns of ``couplings``."""
        kind = kernels.COSINE if self.normalize else kernels.INNER_PRODUCT
        predicted = np.ascontiguousarray(online.rep @ predictor.T)
        table = invariant_derivatives(kind, predicted, target.rep, couplings)
        derivs = term_derivatives(table, -2.0 * couplings.weight, predicted, target.rep, target.jac, couplings, order)
        acc.value += 2.0 if self.normalize else 0.0
        acc.add_predicted_term(derivs, online, target, predictor)

    def _evaluate(self, theta, order: int) -> list[Accumulator]:
        """Internal accumulators: one for a gradient family, (L_o, L_t) for ncl_predictor."""
        return self._evaluate_valid(self._validated_theta(theta), order)

    def _evaluate_valid(self, theta: np.ndarray, order: int) -> list[Accumulator]:
        params, predictor = self._encoder_parameters(theta)
        support = self._support
        encoded = [self._encode_views(params[e]) for e in range(self._n_evaluated_encoders)]
        view_jac = [jac for _, jac in encoded]
        last = self._n_evaluated_encoders - 1
        first = self._select(encoded[0], support.first, 0)
        second = self._select(encoded[last], support.second, last)
        if self.family == "ncl_predictor":
            online, target = self._accumulator(order), self._accumulator(order)
            self._predictor_objective(online, first, second, predictor, support.pairs, order)
            self._predictor_objective(target, second, first, predictor, self._reversed_pairs, order)
            return [online.finish(view_jac), target.finish(view_jac)]
        acc = self._accumulator(order)
        if self.family == "ncl_squared":
            self._pair_term(acc, kernels.SQUARED_DISTANCE, 1.0, first, second, order)
        elif self.family == "ncl_cosine":
            acc.value += 2.0
            self._pair_term(acc, kernels.COSINE, -2.0, first, second, order)
        else:
            anchor = self._select(encoded[0], support.anchor, 0)
            negative = self._select(encoded[0], support.negative, 0)
            if self.family == "spectral":
                self._pair_term(acc, kernels.INNER_PRODUCT, -2.0, first, second, order)
                self._spectral_repulsion(acc, anchor, negative, order)
            else:
                self._pair_term(acc, kernels.COSINE, -1.0 / self.temperature, first, second, order)
                self._infonce_repulsion(acc, anchor, negative, order)
        return [acc.finish(view_jac)]

    def _field_parts(self, online: Accumulator, target: Accumulator, attribute: str) -> np.ndarray:
        """Rows of the stop-gradient field (or its Jacobian) from the derivatives of L_o and L_t.

        F = (dL_o/d theta_o, dL_t/d theta_t, dL_o/dP + dL_t/dP); dF/dtheta takes the
        same rows of the Hessians of L_o and L_t (every column).
        """
        first, second = getattr(online, attribute), getattr(target, attribute)
        out = np.empty_like(first)
        s_o, s_t, s_p = online.encoder_slice(0), online.encoder_slice(1), online.predictor_slice()
        out[s_o] = first[s_o]
        out[s_t] = second[s_t]
        out[s_p] = first[s_p] + second[s_p]
        return out

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
        return self._to_public(self._evaluate(theta, 1)[0].grad)

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        """d^2 L/dtheta^2 of the activation pattern's piece (gradient families), symmetric (n_params, n_params)."""
        self._require_gradient_family("hessian")
        return self._to_public(self._evaluate(theta, 2)[0].hess)

    def value_gradient_hessian(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """(value, gradient, Hessian) in one pass (gradient families)."""
        self._require_gradient_family("value_gradient_hessian")
        acc = self._evaluate(theta, 2)[0]
        return acc.value, self._to_public(acc.grad), self._to_public(acc.hess)

    def field(self, theta: np.ndarray) -> np.ndarray:
        """The vector field whose zeros are the stationary points, shape (n_params,).

        ncl_predictor: F = (dL_o/dW, dL_t/dW_t, dL_o/db, dL_t/db_t, dL_o/dP + dL_t/dP)
        (blocks as present; tied: dL_o/dW + dL_t/dW through the two views). Other
        families: the gradient.
        """
        if not self.is_field:
            return self.gradient(theta)
        online, target = self._evaluate(theta, 1)
        return self._to_public(self._field_parts(online, target, "grad"))

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """dF/dtheta (non-symmetric for ncl_predictor; the Hessian otherwise), (n_params, n_params)."""
        if not self.is_field:
            return self.hessian(theta)
        online, target = self._evaluate(theta, 2)
        return self._to_public(self._field_parts(online, target, "hess"))

    def field_and_jacobian(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(field, Jacobian) in one pass."""
        if not self.is_field:
            _, grad, hess = self.value_gradient_hessian(theta)
            return grad, hess
        online, target = self._evaluate(theta, 2)
        return (
            self._to_public(self._field_parts(online, target, "grad")),
            self._to_public(self._field_parts(online, target, "hess")),
        )
