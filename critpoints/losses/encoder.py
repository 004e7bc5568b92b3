"""The encoders of derivations/MODEL.md §3 on a set of views: the one implementation of f.

For a view x and neuron i with pre-activation t = w_i.x::

    linear   f_i = t,                                  df_i/dw_i = x
    symrelu  f_i = ReLU(t + b_i) - ReLU(-t + b_i)      df_i/dw_i = (a1 + a2) x,
                                                       df_i/db_i = a1 - a2,
    a1 = [t + b_i >= 0],  a2 = [-t + b_i > 0]          (x != 0)

At a kink this is the piece entered as t increases (:func:`symrelu_piece`); a zero view has
f = 0 with zero derivatives whatever w and b are, since sigma_b(0) = 0 for every b. With
b = 0 the symrelu is exactly the identity, derivatives included. Within an activation
pattern the encoder is linear in its parameters.

Three entry points, one rule:

* :func:`encode`: representations and the nonzero entries of their parameter Jacobians
  (the views' :class:`Slots`), for the Hessian assembly of the finite-measure evaluator;
* :func:`activate` and :func:`pull_back`: representations and slopes from the
  pre-activations of many parameter vectors at once, and the chain rule back to them (the
  batched evaluator of the dynamics);
* :func:`represent`: representations of inputs under one encoder (labels).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

__all__ = ["Slots", "activate", "encode", "pull_back", "represent", "symrelu_piece"]


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


@njit(cache=True)
def activate(pre, count, bias, zero_view, symrelu):
    """The encoder of R parameter vectors from their pre-activations.

    ``pre`` (N, R m) holds t = w_i.x_n of start r at ``pre[n, r m + i]`` (one matrix product
    of the views with all starts' weights); ``bias`` (R, m), or (1, m) shared by every start;
    ``zero_view`` (N,) bool. Returns f and, for a symmetric ReLU, df/dt and df/db
    (:func:`symrelu_piece`) as (R, N, m) arrays (the slopes are empty for a linear encoder).
    """
    n_views = pre.shape[0]
    m = pre.shape[1] // count
    rep = np.empty((count, n_views, m))
    size = (count, n_views, m) if symrelu else (0, 0, 0)
    slope, bias_slope = np.empty(size), np.empty(size)
    shared = bias.shape[0] == 1
    for r in range(count):
        row = 0 if shared else r
        for n in range(n_views):
            for i in range(m):
                t = pre[n, r * m + i]
                if symrelu:
                    rep[r, n, i], slope[r, n, i], bias_slope[r, n, i] = symrelu_piece(t, bias[row, i], zero_view[n])
                else:
                    rep[r, n, i] = t
    return rep, slope, bias_slope


@njit(cache=True)
def pull_back(grad_rep, slope, bias_slope, symrelu):
    """From dL/df (R, N, m) of R parameter vectors: dL/dt as an (R m, N) matrix (row r m + i,
    ready for one product with the views (N, p), giving dL/dW) and dL/db (R, m)."""
    count, n_views, m = grad_rep.shape
    grad_pre = np.empty((count * m, n_views))
    grad_bias = np.zeros((count, m))
    for r in range(count):
        for n in range(n_views):
            for i in range(m):
                g = grad_rep[r, n, i]
                if symrelu:
                    grad_pre[r * m + i, n] = g * slope[r, n, i]
                    grad_bias[r, i] += g * bias_slope[r, n, i]
                else:
                    grad_pre[r * m + i, n] = g
    return grad_pre, grad_bias


def represent(points: np.ndarray, weights: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """f(x) for the rows x of ``points`` (N, p) under weights W (m, p); ``bias`` (m,) for a
    symmetric ReLU, None for a linear encoder. Returns (N, m)."""
    points = np.asarray(points, dtype=np.float64)
    pre = np.ascontiguousarray(points @ np.asarray(weights, dtype=np.float64).T)
    if bias is None:
        return pre
    bias = np.broadcast_to(np.asarray(bias, dtype=np.float64), (1, pre.shape[1])).copy()
    rep, _, _ = activate(pre, 1, bias, ~np.any(points != 0, axis=1), True)
    return rep[0]
