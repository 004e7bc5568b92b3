"""Value, gradient and Hessian of one objective: storage, index bookkeeping, chain rule (stage 3).

The kernels accumulate in a parameter order of their own (:func:`accumulation_index`):
blocks of m entries, one per (encoder, input coordinate) and one per column of P, with
the neurons fastest, so that the m x m updates are contiguous. Terms of one view at a time
(representation gradients and self blocks) are summed per view and pushed through the
chain rule once (:func:`chain_views`); within an activation pattern the encoder is linear
in its parameters, so the Hessian is exactly J^T (d^2 loss) J. Only one of each pair of
symmetric blocks is stored until :meth:`Accumulator.hessian` symmetrises and gathers it
into theta's layout.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from critpoints.losses.encoder import Slots
from critpoints.losses.parameters import ParameterLayout


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
