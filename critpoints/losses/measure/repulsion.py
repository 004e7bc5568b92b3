"""The repulsion terms of the contrastive families, by the kind their record names.

critpoints.model.families gives each contrastive family a repulsion: the anchors x1 and the
independent negatives x' of the measure (weights wa, wn) enter as

* ``"squared_inner_product"``: sum_a sum_j wa wn_j (f_a.f_j)^2 = <A, B>_F with
  A = sum_a wa f_a f_a^T, B = sum_j wn_j f_j f_j^T (the coupling phi = C^2 of
  derivations/pointwise_losses.py, summed through the two moments: the derivation verifies
  that they are the same function); d/df_a = 2 wa B f_a, d/df_j = 2 wn A f_j,
  H[f_a, f_a] = 2 wa B, H[f_j, f_j] = 2 wn A, H[f_a, f_j] = 2 wa wn ((f_a.f_j) I + f_j f_a^T);
* ``"log_sum_exp"``: sum_a wa log sum_j wn_j exp(cos(f_a, f_j)/tau)
  (critpoints.losses.measure.log_sum_exp).

:data:`REPULSIONS` maps each kind to its implementation; one shared encoder (block offset 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numba import njit

from critpoints.losses.measure.accumulator import Accumulator
from critpoints.losses.measure.log_sum_exp import infonce_repulsion
from critpoints.losses.measure.support import Support, ViewPool


class RepulsionInputs(NamedTuple):
    """What a repulsion term reads: the support, its pool of anchor and negative views
    (None unless the term is pooled), the number q of parameter entries per neuron and the
    inverse temperature."""

    support: Support
    pool: ViewPool | None
    n_inputs: int
    inv_tau: float


class Repulsion(NamedTuple):
    """A repulsion kind: ``add(inputs, acc, rep, jac, order)`` adds its value and derivatives
    to ``acc`` from the shared encoder's representations and Jacobian slots;
    ``couplings(support)`` counts the terms it sums; ``pooled``: it needs a
    :class:`~critpoints.losses.measure.support.ViewPool`."""

    add: Callable[[RepulsionInputs, Accumulator, np.ndarray, np.ndarray, int], None]
    couplings: Callable[[Support], int]
    pooled: bool


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


def squared_inner_product(
    inputs: RepulsionInputs, acc: Accumulator, rep: np.ndarray, jac: np.ndarray, order: int
) -> None:
    """<A, B>_F with A = sum_a wa f_a f_a^T, B = sum_j wn f_j f_j^T (see the module docstring);
    the cross blocks between anchors and negatives by :func:`spectral_cross`."""
    support = inputs.support
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
    first = jacobian_moment(rep, anchor, wa, slots.ptr, slots.coord, jac, inputs.n_inputs)
    second = jacobian_moment(rep, negative, wn, slots.ptr, slots.coord, jac, inputs.n_inputs)
    spectral_cross(first, second, 0, acc.hess)


def log_sum_exp(inputs: RepulsionInputs, acc: Accumulator, rep: np.ndarray, jac: np.ndarray, order: int) -> None:
    """sum_a wa log sum_j wn_j exp(cos(f_a, f_j)/tau), by
    :func:`~critpoints.losses.measure.log_sum_exp.infonce_repulsion`."""
    support, pool = inputs.support, inputs.pool
    assert pool is not None  # built for every family with this repulsion
    acc.value += infonce_repulsion(
        inputs.inv_tau,
        pool.views,
        pool.anchor,
        support.anchor_weight,
        pool.negative,
        support.negative_weight,
        rep,
        support.slots.ptr,
        support.slots.coord,
        jac,
        inputs.n_inputs,
        acc.view_grad[0],
        acc.view_self[0],
        acc.hess,
        order,
    )


#: The implementation of each repulsion kind of critpoints.model.families.REPULSIONS (but "none").
REPULSIONS = {
    "squared_inner_product": Repulsion(
        squared_inner_product, lambda support: len(support.anchor) + len(support.negative), pooled=False
    ),
    "log_sum_exp": Repulsion(log_sum_exp, lambda support: len(support.anchor) * len(support.negative), pooled=True),
}
