"""The online and target objectives of a predictor family (stop-gradient field).

L_o = constant + scale sum_n w_n phi(P u_n, sg v_n) and L_t the same with the views
exchanged, u = f_o(x1), v = f_t(x2). The rows P u depend on the encoder through the row map
E = P of :func:`~critpoints.losses.measure.pairs.row_pass`, and on P as a linear layer on
the input u_r, whose slots are all m entries with the Jacobian u_r[j] for every neuron;
:func:`predictor_mixed` adds the block between the two.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from critpoints.losses.encoder import Slots
from critpoints.losses.kernels import PairKernel
from critpoints.losses.measure.accumulator import Accumulator, chain_views
from critpoints.losses.measure.pairs import NO_MAP, Side, pair_term
from critpoints.losses.measure.support import Couplings


def dense_slots(n_rows: int, m: int) -> Slots:
    """Slots of the predictor seen as a linear layer on the rows u_r: all m entries of every row."""
    ptr = np.arange(n_rows + 1, dtype=np.int64) * m
    return Slots(ptr, np.tile(np.arange(m, dtype=np.int64), n_rows))


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


def predictor_objective(
    pair: PairKernel,
    acc: Accumulator,
    own: tuple[np.ndarray, np.ndarray, int],
    cols: Side,
    predictor: np.ndarray,
    couplings: Couplings,
    row_views: np.ndarray,
    slots: Slots,
    predictor_slots: Slots,
    n_inputs: int,
    order: int,
) -> None:
    """Add L = constant + scale sum_n w_n phi(P u_n, v_n) to ``acc``: the rows u are the views
    ``row_views`` under the encoder of ``own`` = (representations, Jacobian slots, encoder
    index), the columns v are ``cols``."""
    rep, jac, online = own
    m = predictor.shape[0]
    u = rep[row_views]
    n_rows = len(row_views)
    positions = np.arange(n_rows)
    row_grad = np.zeros((n_rows, m))
    row_self = np.zeros((n_rows if order >= 2 else 0, m, m))
    rows = Side(
        u @ predictor.T,
        positions,
        row_grad,
        row_self,
        row_views,
        slots.ptr,
        slots.coord,
        jac,
        online * n_inputs,
        n_inputs,
    )
    acc.value += pair.constant
    acc.value += pair_term(pair, couplings, rows, cols, predictor, order, order >= 2, acc.hess)
    if order < 1:
        return
    acc.view_grad[online][row_views] += row_grad @ predictor
    predictor_jac = np.repeat(u.ravel(), m).reshape(n_rows * m, m)
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
        n_inputs=m,
    )
    pair_term(pair, couplings, through_predictor, cols, NO_MAP, 0, True, acc.hess)
    predictor_mixed(
        row_grad,
        row_self,
        predictor,
        u,
        row_views,
        slots.ptr,
        slots.coord,
        jac,
        online * n_inputs,
        acc.predictor_block,
        acc.hess,
    )
