"""Values and gradients of a setting's loss for many parameter vectors at once.

The training dynamics (critpoints.dynamics.descent) runs gradient descent from hundreds of
starts. The loss object (critpoints.losses.population_loss) evaluates one theta at a time,
through the derivative tables that also give the Hessian; descent needs only first
derivatives, which for R starts are a few batched products. This module computes them for
every loss family over a finite measure (the exact view law of an ``exact_enumeration``
setting, a fixed sample, or any minibatch), stacked over starts, from the same pieces as the
loss object:

* the encoder's pieces (critpoints.losses.encoder: the documented kink rule) on the distinct
  views of the measure (critpoints.losses.measure.support), after one matrix product for
  all starts;
* the family's record (critpoints.model.families): its pair term is the generated pointwise
  kernel phi(A, B, C) with its first derivatives (``<kernel>_table`` with N_FIRST_DERIVATIVES
  columns), and the chain rule of derivations/pointwise_losses.md §3,

      d phi/dr = 2 phi_A r + phi_C c,   d phi/dc = 2 phi_B c + phi_C r;

* its repulsion: the squared inner product through its moments, d<A, B>_F/df_a = 2 wa B f_a;
  the log-sum-exp with psi_aj = exp(inv_tau cos_aj - s_a) (``exp_cosine``, shifted by the
  largest exponent of the anchor: the shift cancels in every ratio), d/dcos_aj =
  wa wn_j psi_aj inv_tau / Z_a, Z_a = sum_j wn_j psi_aj, and the generated cosine kernel's
  first derivatives (the exponentials in one vectorised pass);
* a predictor family's objectives L_o = c + s sum_n w_n phi(P u_n, sg v_n) and
  L_t = c + s sum_n w_n phi(P v_n, sg u_n), u = f_o(x1), v = f_t(x2), whose stop-gradient
  field is F = (dL_o/d theta_o, dL_t/d theta_t, dL_o/dP + dL_t/dP); the reported value is
  (L_o + L_t)/2.

The gradient is returned in two parts, ``online`` and ``target``, with online + target the
full gradient (or field): for two-encoder losses the online part holds dL/d(W, b) (and dL_o/dP),
the target part dL/d(W_t, b_t) (and dL_t/dP); the alternating schedule of the paper steps on
one part at a time. For one-encoder losses the target part is zero.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from critpoints.data.finite_measure import FiniteMeasure
from critpoints.losses._generated import pointwise_kernels as kernels
from critpoints.losses._generated.pointwise_kernels import N_FIRST_DERIVATIVES, PHI, PHI_A, PHI_B, PHI_C
from critpoints.losses.encoder import activate, pull_back
from critpoints.losses.kernels import PairKernel
from critpoints.losses.measure.support import Support, validated_measure
from critpoints.losses.population_loss import PopulationLoss


class BatchedGradient(NamedTuple):
    """Loss values and the two parts of the gradient (or field) for R parameter vectors.

    Attributes
    ----------
    value : ndarray (R,)
    online, target : ndarray (R, n_params)
        online + target is the Euclidean gradient (the stop-gradient field for a predictor family).
    """

    value: np.ndarray
    online: np.ndarray
    target: np.ndarray

    @property
    def full(self) -> np.ndarray:
        """The whole Euclidean gradient (or field), online + target."""
        return self.online + self.target


# ---------------------------------------------------------------------------------------
# Kernels over starts
# ---------------------------------------------------------------------------------------


@njit(cache=True)
def pair_invariants(rows_rep, cols_rep, rows, cols):
    """A = |r|^2, B = |c|^2, C = r.c, 1/|r|, 1/|c| (0 for a zero representation) of every
    coupling k of every start s, at index s K + k; r = rows_rep[s, rows[k]], c = cols_rep[s, cols[k]]."""
    count, _, m = rows_rep.shape
    n = rows.shape[0]
    A, B, C = np.empty(count * n), np.empty(count * n), np.empty(count * n)
    inverse_r, inverse_c = np.empty(count * n), np.empty(count * n)
    for s in range(count):
        for k in range(n):
            r, c = rows_rep[s, rows[k]], cols_rep[s, cols[k]]
            a = b = inner = 0.0
            for i in range(m):
                a += r[i] * r[i]
                b += c[i] * c[i]
                inner += r[i] * c[i]
            index = s * n + k
            A[index], B[index], C[index] = a, b, inner
            inverse_r[index] = 1.0 / np.sqrt(a) if a > 0.0 else 0.0
            inverse_c[index] = 1.0 / np.sqrt(b) if b > 0.0 else 0.0
    return A, B, C, inverse_r, inverse_c


@njit(cache=True)
def pair_gradients(table, weight, rows_rep, cols_rep, rows, cols, grad_rows, grad_cols):
    """sum_k w_k phi_k per start, and the representation gradients of the couplings:
    grad_rows[s, rows[k]] += w_k (2 phi_A r + phi_C c), grad_cols[s, cols[k]] += w_k (2 phi_B c + phi_C r)."""
    count, _, m = rows_rep.shape
    n = rows.shape[0]
    values = np.zeros(count)
    for s in range(count):
        total = 0.0
        for k in range(n):
            d = table[s * n + k]
            w = weight[k]
            total += w * d[PHI]
            r, c = rows_rep[s, rows[k]], cols_rep[s, cols[k]]
            g_r, g_c = grad_rows[s, rows[k]], grad_cols[s, cols[k]]
            along_r, along_c, cross = 2.0 * w * d[PHI_A], 2.0 * w * d[PHI_B], w * d[PHI_C]
            for i in range(m):
                g_r[i] += along_r * r[i] + cross * c[i]
                g_c[i] += along_c * c[i] + cross * r[i]
        values[s] = total
    return values


@njit(cache=True)
def scatter_add(grad, views, term):
    """grad[s, views[k]] += term[s, k] for every start s (``views`` holds no index twice)."""
    count, n, m = term.shape
    for s in range(count):
        for k in range(n):
            target, source = grad[s, views[k]], term[s, k]
            for i in range(m):
                target[i] += source[i]


@njit(cache=True)
def _squared_norm(x):
    total = 0.0
    for i in range(x.shape[0]):
        total += x[i] * x[i]
    return total


@njit(cache=True)
def _inverse_norms(points):
    """|x|^2 and 1/|x| (0 for x = 0) of the rows of ``points`` (N, m)."""
    n = points.shape[0]
    squared, inverse = np.empty(n), np.empty(n)
    for k in range(n):
        squared[k] = _squared_norm(points[k])
        inverse[k] = 1.0 / np.sqrt(squared[k]) if squared[k] > 0.0 else 0.0
    return squared, inverse


@njit(cache=True)
def log_sum_exp_exponents(anchors, negatives, inner, inv_tau, exponents):
    """First pass of the log-sum-exp: the exponents inv_tau cos(f_a, f_j) of every (start,
    anchor, negative), the cosine from the generated kernel, less the largest of their anchor
    (written to ``exponents`` (R, K, J)); returns those shifts (R, K)."""
    count, n_anchors, _ = anchors.shape
    n_negatives = negatives.shape[1]
    shifts = np.empty((count, n_anchors))
    for s in range(count):
        squared_a, inverse_a = _inverse_norms(anchors[s])
        squared_j, inverse_j = _inverse_norms(negatives[s])
        for a in range(n_anchors):
            largest = -np.inf
            for j in range(n_negatives):
                d = kernels.cosine_first(
                    squared_a[a], squared_j[j], inner[s, a, j], inverse_a[a], inverse_j[j], 0.0, 0.0
                )
                exponents[s, a, j] = inv_tau * d[PHI]
                largest = max(largest, exponents[s, a, j])
            for j in range(n_negatives):
                exponents[s, a, j] -= largest
            shifts[s, a] = largest
    return shifts


@njit(cache=True)
def log_sum_exp_weights(anchors, negatives, inner, psi, shifts, inv_tau, anchor_weight, negative_weight):
    """Second pass, from psi_aj = exp(inv_tau cos_aj - s_a): per start the value
    sum_a wa (s_a + log Z_a), Z_a = sum_j wn_j psi_aj, and the weights of the gradient. With
    c_aj = wa wn_j psi_aj inv_tau / Z_a (the derivative in cos_aj) and the generated cosine
    kernel's first derivatives: ``cross`` = c_aj cos_C,aj (written over ``inner``),
    ``along_a`` = sum_j c_aj cos_A,aj, ``along_j`` = sum_a c_aj cos_B,aj, so that
    d/df_a = 2 along_a f_a + sum_j cross_aj f_j and d/df_j = 2 along_j f_j + sum_a cross_aj f_a."""
    count, n_anchors, _ = anchors.shape
    n_negatives = negatives.shape[1]
    values = np.zeros(count)
    along_a = np.zeros((count, n_anchors))
    along_j = np.zeros((count, n_negatives))
    for s in range(count):
        squared_a, inverse_a = _inverse_norms(anchors[s])
        squared_j, inverse_j = _inverse_norms(negatives[s])
        for a in range(n_anchors):
            partition = 0.0
            for j in range(n_negatives):
                partition += negative_weight[j] * psi[s, a, j]
            values[s] += anchor_weight[a] * (shifts[s, a] + np.log(partition))
            scale = anchor_weight[a] * inv_tau / partition
            for j in range(n_negatives):
                d = kernels.cosine_first(
                    squared_a[a], squared_j[j], inner[s, a, j], inverse_a[a], inverse_j[j], 0.0, 0.0
                )
                coupling = scale * negative_weight[j] * psi[s, a, j]
                inner[s, a, j] = coupling * d[PHI_C]
                along_a[s, a] += coupling * d[PHI_A]
                along_j[s, j] += coupling * d[PHI_B]
    return values, along_a, along_j


# ---------------------------------------------------------------------------------------
# The evaluator
# ---------------------------------------------------------------------------------------


class _Encoded(NamedTuple):
    rep: np.ndarray  # (R, N, m)
    slope: np.ndarray  # df/dt, (R, N, m); empty for a linear encoder
    bias_slope: np.ndarray  # df/db, (R, N, m); empty for a linear encoder


_NO_BIAS = np.zeros((1, 0))


class _ViewSet(NamedTuple):
    """The distinct views one encoder sees (rows of ``points``), and which of them are zero."""

    points: np.ndarray
    zero: np.ndarray


class BatchedLoss:
    """A setting's loss over a finite measure, evaluated for many theta at once.

    Parameters
    ----------
    loss : PopulationLoss
        Supplies the setting (family, encoder, bias, options) and the parameter layout.
    measure : FiniteMeasure, optional
        The measure to sum over; default the loss's own (its exact view law or fixed sample).
        Any other finite measure — a minibatch, a larger sample — gives the loss of that
        measure with the same parameters.

    Raises
    ------
    ValueError
        If no measure is given and the loss has none (a closed-form setting), or the
        measure is not a valid finite measure.
    """

    def __init__(self, loss: PopulationLoss, measure: FiniteMeasure | None = None) -> None:
        setting = loss.setting
        measure = loss.measure if measure is None else measure
        if measure is None:
            raise ValueError(
                f"the setting's expectation is {loss.expectation}, with no finite measure; "
                "pass measure= (e.g. critpoints.sample_view_measure(setting, n, seed))"
            )
        measure, _ = validated_measure(measure)
        family = setting.loss.family
        self.loss = loss
        self.layout = loss.layout
        self.empirical = bool(measure.empirical)
        self.symrelu = setting.encoder == "symrelu"
        self.trainable_bias = setting.trainable_bias
        m = setting.m
        self.fixed_bias = (
            np.broadcast_to(np.asarray(setting.bias, dtype=float), (m,)).copy()
            if self.symrelu and not self.trainable_bias
            else None
        )
        self._fixed_row = None if self.fixed_bias is None else self.fixed_bias[None, :].copy()
        self.two_blocks = "W_t" in self.layout.shapes
        self.is_field = family.field
        temperature = setting.loss.temperature
        self._pair = PairKernel.of(family.pair_term(setting.loss.normalize), temperature)
        self._repulsion = family.repulsion
        repulsions = {"squared_inner_product": self._squared_inner_product, "log_sum_exp": self._log_sum_exp}
        self._repulsion_term = repulsions.get(self._repulsion)
        self._inv_tau = 1.0 / temperature if temperature is not None else 1.0
        self._slices = {name: self.layout.slice(name) for name in self.layout.shapes}

        support = Support.from_measure(measure, trainable_bias=False)
        pairs = support.pairs
        self._pair_weight = np.ascontiguousarray(self._pair.scale * pairs.weight)
        self._anchor_weight, self._negative_weight = support.anchor_weight, support.negative_weight
        views = support.views
        if self.two_blocks:
            # encoder 0 sees x1 (and the anchors and negatives of a repulsion), encoder 1 sees x2
            used = [support.first] + ([support.anchor, support.negative] if self._repulsion != "none" else [])
            online_views = np.unique(np.concatenate(used))
            where = np.full(len(views), -1, dtype=np.int64)
            where[online_views] = np.arange(len(online_views))
            self._rows = where[support.first][pairs.rows]
            self._cols = pairs.cols.astype(np.int64)
            self._anchor, self._negative = where[support.anchor], where[support.negative]
            self._sets = [self._view_set(views[online_views]), self._view_set(views[support.second])]
        else:
            self._rows = support.first[pairs.rows].astype(np.int64)
            self._cols = support.second[pairs.cols].astype(np.int64)
            self._anchor, self._negative = support.anchor.astype(np.int64), support.negative.astype(np.int64)
            self._sets = [self._view_set(views)]

    @staticmethod
    def _view_set(points: np.ndarray) -> _ViewSet:
        points = np.ascontiguousarray(points)
        return _ViewSet(points, ~np.any(points != 0.0, axis=1))

    # -- parameters -----------------------------------------------------------------

    def blocks(self, thetas: np.ndarray) -> dict[str, np.ndarray]:
        """The named blocks of each row of ``thetas`` (R, n) as arrays (R, *shape) (views)."""
        count = thetas.shape[0]
        return {
            name: thetas[:, self._slices[name]].reshape((count,) + tuple(shape))
            for name, shape in self.layout.shapes.items()
        }

    def _bias(self, blocks: dict, name: str) -> np.ndarray:
        """The bias of every start (R, m), or the fixed one (1, m); empty for a linear encoder."""
        if not self.symrelu:
            return _NO_BIAS
        if self.trainable_bias:
            return np.ascontiguousarray(blocks[name])
        assert self._fixed_row is not None  # set for a fixed symrelu bias
        return self._fixed_row

    # -- the encoder ----------------------------------------------------------------

    def _encode(self, views: _ViewSet, weights: np.ndarray, bias: np.ndarray) -> _Encoded:
        count, m, p = weights.shape
        # one matrix product for all starts: (N, p) @ (p, R m) -> (N, R m)
        pre = views.points @ weights.reshape(count * m, p).T
        return _Encoded(*activate(pre, count, bias, views.zero, self.symrelu))

    def _backward(self, grad_rep: np.ndarray, views: _ViewSet, encoded: _Encoded, out: np.ndarray, suffix: str) -> None:
        """Add dL/dW (R, m, p) and dL/db (R, m) from dL/df (R, N, m) to the blocks W+suffix, b+suffix of out."""
        count = grad_rep.shape[0]
        grad_pre, grad_bias = pull_back(grad_rep, encoded.slope, encoded.bias_slope, self.symrelu)
        # one matrix product for all starts: (R m, N) @ (N, p) -> (R, m, p)
        out[:, self._slices["W" + suffix]] += (grad_pre @ views.points).reshape(count, -1)
        if self.trainable_bias:
            out[:, self._slices["b" + suffix]] += grad_bias

    # -- evaluation -----------------------------------------------------------------

    def value(self, thetas: np.ndarray) -> np.ndarray:
        """L for each row of ``thetas`` (for a predictor family the symmetric loss (L_o + L_t)/2)."""
        return self.evaluate(thetas).value

    def gradient(self, thetas: np.ndarray) -> np.ndarray:
        """The Euclidean gradient (the stop-gradient field for a predictor family), rows of (R, n)."""
        return self.evaluate(thetas).full

    def evaluate(self, thetas: np.ndarray) -> BatchedGradient:
        """Values and the online / target parts of the gradient for every row of ``thetas``.

        Parameters
        ----------
        thetas : ndarray (R, n_params) or (n_params,)

        Returns
        -------
        BatchedGradient
        """
        thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
        if thetas.ndim != 2 or thetas.shape[1] != self.layout.size:
            raise ValueError(f"thetas must have {self.layout.size} columns, got shape {thetas.shape}")
        blocks = self.blocks(thetas)
        online = np.zeros_like(thetas)
        target = np.zeros_like(thetas) if self.two_blocks else online
        encoders = [(blocks["W"], self._bias(blocks, "b"), online, "")]
        if self.two_blocks:
            encoders.append((blocks["W_t"], self._bias(blocks, "b_t"), target, "_t"))
        encoded = [self._encode(self._sets[e], W, b) for e, (W, b, _, _) in enumerate(encoders)]
        grads = [np.zeros_like(e.rep) for e in encoded]
        cols = len(encoded) - 1
        if self.is_field:
            value = self._objectives(blocks["P"], encoded, grads, online, target)
        else:
            value = self._pair.constant + self._pair_term(encoded[0].rep, encoded[cols].rep, grads[0], grads[cols])
            if self._repulsion_term is not None:
                value = value + self._repulsion_term(encoded[0].rep, grads[0])
        for (_, _, out, suffix), views, enc, grad in zip(encoders, self._sets, encoded, grads):
            self._backward(grad, views, enc, out, suffix)
        return BatchedGradient(value, online, target if self.two_blocks else np.zeros_like(online))

    def _pair_term(self, rows_rep, cols_rep, grad_rows, grad_cols, rows=None, cols=None) -> np.ndarray:
        """sum_n w_n scale phi(r_n, c_n) per start; the representation gradients added in place."""
        rows = self._rows if rows is None else rows
        cols = self._cols if cols is None else cols
        A, B, C, inverse_r, inverse_c = pair_invariants(rows_rep, cols_rep, rows, cols)
        table = np.empty((len(A), N_FIRST_DERIVATIVES))
        self._pair.table(A, B, C, inverse_r, inverse_c, self._pair.inv_tau, np.zeros(len(A)), table)
        return pair_gradients(table, self._pair_weight, rows_rep, cols_rep, rows, cols, grad_rows, grad_cols)

    def _squared_inner_product(self, rep: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """<A, B>_F, A = sum_a wa f_a f_a^T, B = sum_j wn f_j f_j^T; d/df_a = 2 wa B f_a, d/df_j = 2 wn A f_j."""
        fa, fj = rep[:, self._anchor], rep[:, self._negative]
        wa, wn = self._anchor_weight[None, :, None], self._negative_weight[None, :, None]
        first_moment = np.matmul((fa * wa).transpose(0, 2, 1), fa)
        second_moment = np.matmul((fj * wn).transpose(0, 2, 1), fj)
        scatter_add(grad, self._anchor, 2.0 * wa * np.matmul(fa, second_moment))
        scatter_add(grad, self._negative, 2.0 * wn * np.matmul(fj, first_moment))
        return np.sum(first_moment * second_moment, axis=(1, 2))

    def _log_sum_exp(self, rep: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """sum_a wa log sum_j wn_j exp(cos(f_a, f_j)/tau): the cosines and their derivatives from
        the generated kernel, the exponentials in one vectorised pass (exp_cosine of
        derivations/pointwise_losses.py is exp(inv_tau cosine - shift); its derivatives are
        psi inv_tau times the cosine's)."""
        fa, fj = np.ascontiguousarray(rep[:, self._anchor]), np.ascontiguousarray(rep[:, self._negative])
        inner = np.matmul(fa, fj.transpose(0, 2, 1))
        psi = np.empty_like(inner)
        shifts = log_sum_exp_exponents(fa, fj, inner, self._inv_tau, psi)
        np.exp(psi, out=psi)
        values, along_a, along_j = log_sum_exp_weights(
            fa, fj, inner, psi, shifts, self._inv_tau, self._anchor_weight, self._negative_weight
        )
        cross = inner  # log_sum_exp_weights wrote the cross weights over the inner products
        scatter_add(grad, self._anchor, 2.0 * along_a[..., None] * fa + np.matmul(cross, fj))
        scatter_add(grad, self._negative, 2.0 * along_j[..., None] * fj + np.matmul(cross.transpose(0, 2, 1), fa))
        return values

    def _objectives(self, P, encoded, grads, online, target) -> np.ndarray:
        """(L_o + L_t)/2 of a predictor family; dL_o/d(W, b, P) into online, dL_t/d(W_t, b_t, P) into target."""
        transposed = np.ascontiguousarray(P.transpose(0, 2, 1))
        last = len(encoded) - 1
        values = []
        for own, other, rows, cols, out in (
            (0, last, self._rows, self._cols, online),
            (last, 0, self._cols, self._rows, target),
        ):
            predicted = np.matmul(encoded[own].rep, transposed)
            grad_predicted = np.zeros_like(predicted)
            sink = np.zeros_like(encoded[other].rep)  # the stop-gradient: no derivative through v
            values.append(
                self._pair.constant + self._pair_term(predicted, encoded[other].rep, grad_predicted, sink, rows, cols)
            )
            grads[own] += np.matmul(grad_predicted, P)
            out[:, self._slices["P"]] += np.matmul(grad_predicted.transpose(0, 2, 1), encoded[own].rep).reshape(
                len(P), -1
            )
        return 0.5 * (values[0] + values[1])


class BatchedSpheres:
    """The constraint manifold of a loss (a product of spheres) acting on rows of (R, n).

    Parameters
    ----------
    manifold : SphereProduct
        Its sphere groups are bucketed by size so that every operation is a few array ops.
    """

    def __init__(self, manifold) -> None:
        groups: dict[int, list[np.ndarray]] = {}
        for index in manifold.spheres:
            groups.setdefault(len(index), []).append(np.asarray(index))
        self.buckets = [np.array(members) for members in groups.values()]

    @property
    def constrained(self) -> bool:
        """Whether there is any sphere."""
        return bool(self.buckets)

    def project(self, thetas: np.ndarray) -> np.ndarray:
        """x_s -> x_s / |x_s| on every sphere (a zero block is left at zero)."""
        thetas = np.array(thetas, dtype=float)
        for index in self.buckets:
            block = thetas[:, index]
            norm = np.sqrt(np.sum(block * block, axis=-1, keepdims=True))
            thetas[:, index] = np.divide(block, norm, out=np.zeros_like(block), where=norm > 0)
        return thetas

    def tangent(self, thetas: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """v_s - (x_s . v_s) x_s on every sphere: the Riemannian gradient from the Euclidean one."""
        vectors = np.array(vectors, dtype=float)
        for index in self.buckets:
            x = thetas[:, index]
            v = vectors[:, index]
            vectors[:, index] = v - np.sum(x * v, axis=-1, keepdims=True) * x
        return vectors
