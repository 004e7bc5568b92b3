"""Values and gradients of a setting's loss for many parameter vectors at once.

The training dynamics (critpoints.dynamics.descent) runs gradient descent from hundreds of starts.
The loss object (critpoints.losses.population_loss) evaluates one theta at a time, through the
derivative tables that also give the Hessian; descent needs only first derivatives, and for
R starts those are a handful of batched matrix products. This module computes them
directly, for every loss of derivations/MODEL.md §4 over a finite measure (the exact view law of an
``exact_enumeration`` setting, a fixed sample, or any minibatch), stacked over starts.

Notation (one start; the arrays carry a leading axis of length R). The measure has pairs
(x1_n, x2_n) with weights w_n, anchors x_a with weights wa_a and negatives x_j with weights
wn_j. The encoder is f(x) = W x or the symmetric ReLU f_i(x) = ReLU(t_i + b_i) - ReLU(-t_i + b_i),
t = W x, whose derivatives are

    df_i/dt_i = a1 + a2,   df_i/db_i = a1 - a2,   a1 = [t_i + b_i >= 0],  a2 = [-t_i + b_i > 0]

(and zero on a zero view), the conventions of critpoints.losses.measure. With
u_n = f_o(x1_n), v_n = f_t(x2_n), c(u, v) = u.v / (|u||v|) (0 if either is 0) and
dc/du = (v^ - c u^) / |u|:

* ``ncl_cosine``:  L = 2 - 2 sum_n w_n c(u_n, v_n);
* ``ncl_squared``: L = sum_n w_n |u_n - v_n|^2;
* ``spectral``:    L = -2 sum_n w_n u_n.v_n + <A, B>_F, A = sum_a wa_a f_a f_a^T,
  B = sum_j wn_j f_j f_j^T, so dL/df_a = 2 wa_a B f_a and dL/df_j = 2 wn_j A f_j;
* ``infonce(tau)``: L = -(1/tau) sum_n w_n c(u_n, v_n) + sum_a wa_a log sum_j wn_j exp(C_aj / tau),
  C_aj = c(f_a, f_j); with the softmax weights pi_aj = wn_j exp(C_aj/tau) / sum_k wn_k exp(C_ak/tau),
  dL/dC_aj = wa_a pi_aj / tau;
* ``ncl_predictor``: L_o = k - 2 sum_n w_n phi(P u_n, sg v_n), L_t = k - 2 sum_n w_n phi(sg u_n, P v_n),
  phi = c (normalised, k = 2) or the inner product (k = 0). The stop-gradient field is
  F = (dL_o/d theta_o, dL_t/d theta_t, dL_o/dP + dL_t/dP); the reported value is (L_o + L_t)/2.

The gradient is returned in two parts, ``online`` and ``target``, with online + target the
full gradient (or field): for two-encoder losses the online part holds dL/d(W, b) (and dL_o/dP),
the target part dL/d(W_t, b_t) (and dL_t/dP); the alternating schedule of the paper steps on
one part at a time. For one-encoder losses the target part is zero.

These are independent of the loss object's kernels; the tests check one against the other.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from critpoints.data.finite_measure import FiniteMeasure
from critpoints.losses.measure import symrelu_piece
from critpoints.losses.population_loss import PopulationLoss


class BatchedGradient(NamedTuple):
    """Loss values and the two parts of the gradient (or field) for R parameter vectors.

    Attributes
    ----------
    value : ndarray (R,)
    online, target : ndarray (R, n_params)
        online + target is the Euclidean gradient (the stop-gradient field for ncl_predictor).
    """

    value: np.ndarray
    online: np.ndarray
    target: np.ndarray

    @property
    def full(self) -> np.ndarray:
        """The whole Euclidean gradient (or field), online + target."""
        return self.online + self.target


class _Encoded(NamedTuple):
    rep: np.ndarray  # (R, N, m)
    slope: np.ndarray | None  # df/dt, (R, N, m); None for a linear encoder
    bias_slope: np.ndarray | None  # df/db, (R, N, m); None unless symrelu


def _safe_inverse_norm(rep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(|r|, 1/|r| with 1/0 := 0) over the last axis, kept as (..., 1)."""
    norm = np.sqrt(np.sum(rep * rep, axis=-1, keepdims=True))
    inverse = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
    return norm, inverse


def cosine_and_gradients(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """c(u, v) over the last axis and its gradients (v^ - c u^)/|u|, (u^ - c v^)/|v| (zero at 0)."""
    _, inv_u = _safe_inverse_norm(u)
    _, inv_v = _safe_inverse_norm(v)
    u_hat, v_hat = u * inv_u, v * inv_v
    cosine = np.sum(u_hat * v_hat, axis=-1, keepdims=True)
    return cosine[..., 0], (v_hat - cosine * u_hat) * inv_u, (u_hat - cosine * v_hat) * inv_v


class BatchedLoss:
    """A setting's loss over a finite measure, evaluated for many theta at once.

    Parameters
    ----------
    loss : PopulationLoss
        Supplies the setting (family, encoder, bias, tied, temperature, normalisation) and
        the parameter layout.
    measure : FiniteMeasure, optional
        The measure to sum over; default the loss's own (its exact view law or fixed sample).
        Any other finite measure — a minibatch, a larger sample — gives the loss of that
        measure with the same parameters.
    compiled : bool, optional
        Evaluate with the compiled per-start kernels (fast for small supports and few
        neurons) or with batched array operations (fast for large samples, through BLAS).
        Default: compiled when N m p <= ``COMPILED_WORK_LIMIT`` (N the largest point set).

    Raises
    ------
    ValueError
        If no measure is given and the loss has none (a closed-form setting).
    """

    def __init__(
        self, loss: PopulationLoss, measure: FiniteMeasure | None = None, compiled: bool | None = None
    ) -> None:
        setting = loss.setting
        measure = loss.measure if measure is None else measure
        if measure is None:
            raise ValueError(
                f"the setting's expectation is {loss.expectation}, with no finite measure; "
                "pass measure= (e.g. critpoints.sample_view_measure(setting, n, seed))"
            )
        self.loss = loss
        self.layout = loss.layout
        self.family = setting.loss.name
        self.symrelu = setting.encoder == "symrelu"
        self.trainable_bias = setting.trainable_bias
        m = setting.m
        self.fixed_bias: np.ndarray | None
        if self.symrelu and not self.trainable_bias:
            bias = np.zeros(m) if setting.bias is None else np.asarray(setting.bias, dtype=float)
            self.fixed_bias = np.broadcast_to(bias, (m,)).copy()
        else:
            self.fixed_bias = None
        self.two_blocks = "W_t" in self.layout.shapes
        self.temperature = float(setting.loss.temperature or 1.0)
        self.normalize = bool(setting.loss.normalize) if setting.loss.normalize is not None else True
        self.x1, self.w, self.x2 = self._positive(measure.x1, measure.pair_weight, measure.x2)
        self.anchor, self.wa, _ = self._positive(measure.anchor, measure.anchor_weight)
        self.negative, self.wn, _ = self._positive(measure.negative, measure.negative_weight)
        self.empirical = bool(measure.empirical)
        self._slices = {name: self.layout.slice(name) for name in self.layout.shapes}
        self._nonzero = {}
        for points in (self.x1, self.x2, self.anchor, self.negative):
            self._nonzero[id(points)] = np.any(points != 0.0, axis=1)[None, :, None]
        m, p = self.layout.shapes["W"]
        work = max(len(self.x1), len(self.anchor), len(self.negative)) * m * p
        if self.family == "infonce":
            work = max(work, len(self.anchor) * len(self.negative) * m)
        self.compiled = work <= COMPILED_WORK_LIMIT if compiled is None else bool(compiled)

    @staticmethod
    def _positive(points, weight, partner=None):
        weight = np.asarray(weight, dtype=float)
        keep = weight > 0
        points = np.ascontiguousarray(np.asarray(points, dtype=float)[keep])
        other = None if partner is None else np.ascontiguousarray(np.asarray(partner, dtype=float)[keep])
        return points, np.ascontiguousarray(weight[keep]), other

    # -- parameters -----------------------------------------------------------------

    def blocks(self, thetas: np.ndarray) -> dict[str, np.ndarray]:
        """The named blocks of each row of ``thetas`` (R, n) as arrays (R, *shape) (views)."""
        count = thetas.shape[0]
        return {
            name: thetas[:, self._slices[name]].reshape((count,) + tuple(shape))
            for name, shape in self.layout.shapes.items()
        }

    def _bias(self, blocks: dict, name: str, count: int) -> np.ndarray | None:
        if not self.symrelu:
            return None
        if self.trainable_bias:
            return blocks[name]
        assert self.fixed_bias is not None  # a fixed symrelu bias
        return np.broadcast_to(self.fixed_bias, (count, self.fixed_bias.shape[0]))

    # -- the encoder ----------------------------------------------------------------

    def _encode(self, points: np.ndarray, weights: np.ndarray, bias: np.ndarray | None) -> _Encoded:
        count, m, p = weights.shape
        # one matrix product for all starts: (N, p) @ (p, R m) -> (R, N, m)
        pre = (points @ weights.reshape(count * m, p).T).reshape(points.shape[0], count, m).transpose(1, 0, 2)
        if not self.symrelu:
            return _Encoded(pre, None, None)
        assert bias is not None  # every symrelu encoder has one
        up = pre + bias[:, None, :]
        down = bias[:, None, :] - pre
        rep = np.maximum(up, 0.0) - np.maximum(down, 0.0)  # zero on a zero view whatever b is
        a1 = up >= 0.0
        a2 = down > 0.0
        # on a zero view the weight slope multiplies x = 0; only the bias slope needs the mask
        nonzero = self._nonzero.get(id(points))
        if nonzero is None:
            nonzero = np.any(points != 0.0, axis=1)[None, :, None]
        bias_slope = np.subtract(a1, a2, dtype=float)
        bias_slope *= nonzero
        return _Encoded(rep, np.add(a1, a2, dtype=float), bias_slope)

    @staticmethod
    def _backward(grad_rep: np.ndarray, points: np.ndarray, encoded: _Encoded) -> tuple[np.ndarray, np.ndarray | None]:
        """dL/dW (R, m, p) and dL/db (R, m) from dL/df (R, N, m)."""
        grad_pre = grad_rep if encoded.slope is None else grad_rep * encoded.slope
        count, size, m = grad_pre.shape
        # one matrix product for all starts: (R m, N) @ (N, p) -> (R, m, p)
        stacked = grad_pre.transpose(0, 2, 1).reshape(count * m, size)
        grad_weights = (stacked @ points).reshape(count, m, points.shape[1])
        grad_bias = None if encoded.bias_slope is None else np.sum(grad_rep * encoded.bias_slope, axis=1)
        return grad_weights, grad_bias

    def _add(self, out: np.ndarray, name: str, block: np.ndarray | None) -> None:
        if block is not None and name in self._slices:
            out[:, self._slices[name]] += block.reshape(out.shape[0], -1)

    # -- evaluation -----------------------------------------------------------------

    def value(self, thetas: np.ndarray) -> np.ndarray:
        """L for each row of ``thetas`` (for ncl_predictor the symmetric loss (L_o + L_t)/2)."""
        return self.evaluate(thetas).value

    def gradient(self, thetas: np.ndarray) -> np.ndarray:
        """The Euclidean gradient (the stop-gradient field for ncl_predictor), rows of (R, n)."""
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
        if thetas.shape[1] != self.layout.size:
            raise ValueError(f"thetas must have {self.layout.size} columns, got shape {thetas.shape}")
        if self.compiled:
            return self._evaluate_compiled(thetas)
        return self._evaluate_arrays(thetas)

    def _evaluate_compiled(self, thetas: np.ndarray) -> BatchedGradient:
        offset = lambda name: self._slices[name].start if name in self._slices else -1  # noqa: E731
        m, p = self.layout.shapes["W"]
        fixed = self.fixed_bias if self.fixed_bias is not None else np.zeros(m)
        nz = lambda points: self._nonzero[id(points)].ravel()  # noqa: E731
        values, online, target = _k_evaluate(
            np.ascontiguousarray(thetas),
            _FAMILY_CODES[self.family],
            self.symrelu,
            self.trainable_bias,
            fixed,
            self.two_blocks,
            self.temperature,
            self.normalize,
            self.x1,
            self.x2,
            self.w,
            nz(self.x1),
            nz(self.x2),
            self.anchor,
            self.wa,
            nz(self.anchor),
            self.negative,
            self.wn,
            nz(self.negative),
            m,
            p,
            offset("W"),
            offset("W_t"),
            offset("b"),
            offset("b_t"),
            offset("P"),
        )
        return BatchedGradient(values, online, target)

    def _evaluate_arrays(self, thetas: np.ndarray) -> BatchedGradient:
        count = thetas.shape[0]
        blocks = self.blocks(thetas)
        online = np.zeros_like(thetas)
        target = np.zeros_like(thetas)
        W = blocks["W"]
        b = self._bias(blocks, "b", count)
        if self.two_blocks:
            W_t, b_t = blocks["W_t"], self._bias(blocks, "b_t", count)
        else:
            W_t, b_t = W, b
        first = self._encode(self.x1, W, b)
        second = self._encode(self.x2, W_t, b_t)
        weight = self.w[None, :, None]
        u, v = first.rep, second.rep
        second_out, second_prefix = (target, "_t") if self.two_blocks else (online, "")

        if self.family == "ncl_predictor":
            value = self._predictor(blocks["P"], first, second, online, target)
        else:
            if self.family == "ncl_cosine":
                cosine, grad_u, grad_v = cosine_and_gradients(u, v)
                value = 2.0 - 2.0 * np.sum(self.w * cosine, axis=1)
                grad_u, grad_v = -2.0 * weight * grad_u, -2.0 * weight * grad_v
            elif self.family == "ncl_squared":
                diff = u - v
                value = np.sum(self.w * np.sum(diff * diff, axis=2), axis=1)
                grad_u = 2.0 * weight * diff
                grad_v = -grad_u
            elif self.family == "spectral":
                value = -2.0 * np.sum(self.w * np.sum(u * v, axis=2), axis=1)
                grad_u, grad_v = -2.0 * weight * v, -2.0 * weight * u
                value = value + self._spectral_repulsion(W, b, online)
            else:  # infonce
                cosine, grad_u, grad_v = cosine_and_gradients(u, v)
                scale = weight / self.temperature
                value = -np.sum(self.w * cosine, axis=1) / self.temperature
                grad_u, grad_v = -scale * grad_u, -scale * grad_v
                value = value + self._infonce_repulsion(W, b, online)
            grad_w, grad_b = self._backward(grad_u, self.x1, first)
            self._add(online, "W", grad_w)
            self._add(online, "b", grad_b)
            grad_w, grad_b = self._backward(grad_v, self.x2, second)
            self._add(second_out, "W" + second_prefix, grad_w)
            self._add(second_out, "b" + second_prefix, grad_b)
        return BatchedGradient(value, online, target)

    def _spectral_repulsion(self, W: np.ndarray, b: np.ndarray | None, out: np.ndarray) -> np.ndarray:
        anchor = self._encode(self.anchor, W, b)
        negative = self._encode(self.negative, W, b)
        fa, fj = anchor.rep, negative.rep
        first_moment = np.matmul((fa * self.wa[None, :, None]).transpose(0, 2, 1), fa)  # A (R, m, m)
        second_moment = np.matmul((fj * self.wn[None, :, None]).transpose(0, 2, 1), fj)  # B
        value = np.sum(first_moment * second_moment, axis=(1, 2))
        grad_a = 2.0 * self.wa[None, :, None] * np.matmul(fa, second_moment)
        grad_j = 2.0 * self.wn[None, :, None] * np.matmul(fj, first_moment)
        for grad, points, encoded in ((grad_a, self.anchor, anchor), (grad_j, self.negative, negative)):
            grad_w, grad_b = self._backward(grad, points, encoded)
            self._add(out, "W", grad_w)
            self._add(out, "b", grad_b)
        return value

    def _infonce_repulsion(self, W: np.ndarray, b: np.ndarray | None, out: np.ndarray) -> np.ndarray:
        anchor = self._encode(self.anchor, W, b)
        negative = self._encode(self.negative, W, b)
        _, inv_a = _safe_inverse_norm(anchor.rep)
        _, inv_j = _safe_inverse_norm(negative.rep)
        hat_a, hat_j = anchor.rep * inv_a, negative.rep * inv_j
        logits = np.matmul(hat_a, hat_j.transpose(0, 2, 1)) / self.temperature  # (R, K, J)
        shift = logits.max(axis=2, keepdims=True)
        scaled = self.wn[None, None, :] * np.exp(logits - shift)
        partition = scaled.sum(axis=2, keepdims=True)
        value = np.sum(self.wa * (shift[..., 0] + np.log(partition[..., 0])), axis=1)
        coupling = self.wa[None, :, None] * (scaled / partition) / self.temperature  # dL/dC
        grad_hat_a = np.matmul(coupling, hat_j)
        grad_hat_j = np.matmul(coupling.transpose(0, 2, 1), hat_a)
        grad_a = (grad_hat_a - np.sum(grad_hat_a * hat_a, axis=2, keepdims=True) * hat_a) * inv_a
        grad_j = (grad_hat_j - np.sum(grad_hat_j * hat_j, axis=2, keepdims=True) * hat_j) * inv_j
        for grad, points, encoded in ((grad_a, self.anchor, anchor), (grad_j, self.negative, negative)):
            grad_w, grad_b = self._backward(grad, points, encoded)
            self._add(out, "W", grad_w)
            self._add(out, "b", grad_b)
        return value

    def _predictor(
        self, P: np.ndarray, first: _Encoded, second: _Encoded, online: np.ndarray, target: np.ndarray
    ) -> np.ndarray:
        weight = self.w[None, :, None]
        constant = 2.0 if self.normalize else 0.0
        values = []
        for own, other, points, out, suffix in (
            (first, second, self.x1, online, ""),
            (second, first, self.x2, target, "_t"),
        ):
            predicted = np.matmul(own.rep, P.transpose(0, 2, 1))
            if self.normalize:
                phi, grad_predicted, _ = cosine_and_gradients(predicted, other.rep)
            else:
                phi, grad_predicted = np.sum(predicted * other.rep, axis=2), other.rep
            values.append(constant - 2.0 * np.sum(self.w * phi, axis=1))
            grad_predicted = -2.0 * weight * grad_predicted
            grad_w, grad_b = self._backward(np.matmul(grad_predicted, P), points, own)
            self._add(out, "W" + suffix, grad_w)
            self._add(out, "b" + suffix, grad_b)
            self._add(out, "P", np.matmul(grad_predicted.transpose(0, 2, 1), own.rep))
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


# ---------------------------------------------------------------------------------------
# Compiled kernels for small problems
# ---------------------------------------------------------------------------------------
#
# For the exact view laws of small settings (tens to hundreds of support points, a few
# neurons) the array version above is dominated by the fixed cost of each NumPy call. The
# kernels below compute the same quantities one start at a time in compiled loops; the tests
# check them against the array version and against the loss object. Family codes:
# 0 spectral, 1 infonce, 2 ncl_squared, 3 ncl_cosine, 4 ncl_predictor.


_FAMILY_CODES = {"spectral": 0, "infonce": 1, "ncl_squared": 2, "ncl_cosine": 3, "ncl_predictor": 4}

#: Problems with at most this many multiply-adds per encoder pass (N m p) use the compiled kernels.
COMPILED_WORK_LIMIT = 200_000


@njit(cache=True)
def _k_encode(points, nonzero, W, b, symrelu):
    count, p = points.shape
    m = W.shape[0]
    rep = np.empty((count, m))
    slope = np.empty((count, m))
    bias_slope = np.zeros((count, m))
    for n in range(count):
        for i in range(m):
            t = 0.0
            for a in range(p):
                t += W[i, a] * points[n, a]
            if symrelu:
                rep[n, i], slope[n, i], bias_slope[n, i] = symrelu_piece(t, b[i], not nonzero[n])
            else:
                rep[n, i] = t
                slope[n, i] = 1.0
    return rep, slope, bias_slope


@njit(cache=True)
def _k_backward(grad, points, slope, bias_slope, out, w_offset, b_offset):
    """out[W block] += (grad * slope)^T points, out[b block] += sum grad * bias_slope."""
    count, m = grad.shape
    p = points.shape[1]
    for n in range(count):
        for i in range(m):
            g = grad[n, i]
            if g == 0.0:
                continue
            gs = g * slope[n, i]
            if gs != 0.0:
                base = w_offset + i * p
                for a in range(p):
                    out[base + a] += gs * points[n, a]
            if b_offset >= 0:
                out[b_offset + i] += g * bias_slope[n, i]


@njit(cache=True)
def _k_norms(rep):
    count, m = rep.shape
    inverse = np.zeros(count)
    for n in range(count):
        s = 0.0
        for i in range(m):
            s += rep[n, i] * rep[n, i]
        if s > 0.0:
            inverse[n] = 1.0 / np.sqrt(s)
    return inverse


@njit(cache=True)
def _k_through_normalisation(grad_unit, unit, inverse_norm):
    """dL/df_n from dL/dh_n for h_n = f_n / |f_n| (rows): (g_n - (g_n . h_n) h_n) / |f_n|."""
    count, m = unit.shape
    out = np.empty((count, m))
    for n in range(count):
        dot = 0.0
        for i in range(m):
            dot += grad_unit[n, i] * unit[n, i]
        for i in range(m):
            out[n, i] = (grad_unit[n, i] - dot * unit[n, i]) * inverse_norm[n]
    return out


@njit(cache=True)
def _k_cosine_pairs(u, v, weight, scale, grad_u, grad_v):
    """sum_n w_n c(u_n, v_n); adds scale * w_n dc/du_n to grad_u and scale * w_n dc/dv_n to grad_v."""
    count, m = u.shape
    iu = _k_norms(u)
    iv = _k_norms(v)
    total = 0.0
    for n in range(count):
        if iu[n] == 0.0 or iv[n] == 0.0:
            continue
        c = 0.0
        for i in range(m):
            c += u[n, i] * v[n, i]
        c *= iu[n] * iv[n]
        total += weight[n] * c
        f = scale * weight[n]
        for i in range(m):
            uh = u[n, i] * iu[n]
            vh = v[n, i] * iv[n]
            grad_u[n, i] += f * (vh - c * uh) * iu[n]
            grad_v[n, i] += f * (uh - c * vh) * iv[n]
    return total


@njit(cache=True)
def _k_evaluate(
    thetas,
    family,
    symrelu,
    trainable,
    fixed_bias,
    two_blocks,
    temperature,
    normalize,
    x1,
    x2,
    w,
    nz1,
    nz2,
    anchor,
    wa,
    nza,
    negative,
    wn,
    nzn,
    m,
    p,
    off_w,
    off_wt,
    off_b,
    off_bt,
    off_p,
):
    count = thetas.shape[0]
    values = np.zeros(count)
    online = np.zeros_like(thetas)
    target = np.zeros_like(thetas)
    n_pairs = x1.shape[0]
    for r in range(count):
        theta = thetas[r]
        W = theta[off_w : off_w + m * p].reshape((m, p)).copy()
        b = theta[off_b : off_b + m].copy() if trainable else fixed_bias.copy()
        if two_blocks:
            W_t = theta[off_wt : off_wt + m * p].reshape((m, p)).copy()
            b_t = theta[off_bt : off_bt + m].copy() if trainable else fixed_bias.copy()
        else:
            W_t = W
            b_t = b
        u, su, sbu = _k_encode(x1, nz1, W, b, symrelu)
        v, sv, sbv = _k_encode(x2, nz2, W_t, b_t, symrelu)
        grad_u = np.zeros((n_pairs, m))
        grad_v = np.zeros((n_pairs, m))
        b_on = off_b if trainable else -1
        b_tg = off_bt if trainable else -1
        out_second = target if two_blocks else online
        w_second = off_wt if two_blocks else off_w
        b_second = b_tg if two_blocks else b_on
        if family == 4:
            P = theta[off_p : off_p + m * m].reshape((m, m)).copy()
            constant = 2.0 if normalize else 0.0
            value = 0.0
            for side in range(2):
                own = u if side == 0 else v
                other = v if side == 0 else u
                predicted = own @ P.T
                grad_predicted = np.zeros((n_pairs, m))
                if normalize:
                    dummy = np.zeros((n_pairs, m))
                    phi = _k_cosine_pairs(predicted, other, w, -2.0, grad_predicted, dummy)
                else:
                    phi = 0.0
                    for n in range(n_pairs):
                        for i in range(m):
                            phi += w[n] * predicted[n, i] * other[n, i]
                            grad_predicted[n, i] = -2.0 * w[n] * other[n, i]
                value += 0.5 * (constant - 2.0 * phi)
                grad_own = grad_predicted @ P
                out = online if side == 0 else target
                if side == 0:
                    _k_backward(grad_own, x1, su, sbu, out[r], off_w, b_on)
                else:
                    _k_backward(grad_own, x2, sv, sbv, out[r], off_wt, b_tg)
                grad_P = grad_predicted.T @ own
                for i in range(m):
                    for k in range(m):
                        out[r, off_p + i * m + k] += grad_P[i, k]
            values[r] = value
            continue
        if family == 3:
            values[r] = 2.0 - 2.0 * _k_cosine_pairs(u, v, w, -2.0, grad_u, grad_v)
        elif family == 2:
            value = 0.0
            for n in range(n_pairs):
                for i in range(m):
                    diff = u[n, i] - v[n, i]
                    value += w[n] * diff * diff
                    grad_u[n, i] = 2.0 * w[n] * diff
                    grad_v[n, i] = -2.0 * w[n] * diff
            values[r] = value
        else:
            if family == 0:
                value = 0.0
                for n in range(n_pairs):
                    for i in range(m):
                        value -= 2.0 * w[n] * u[n, i] * v[n, i]
                        grad_u[n, i] = -2.0 * w[n] * v[n, i]
                        grad_v[n, i] = -2.0 * w[n] * u[n, i]
            else:
                value = -_k_cosine_pairs(u, v, w, -1.0 / temperature, grad_u, grad_v) / temperature
            fa, sa, sba = _k_encode(anchor, nza, W, b, symrelu)
            fj, sj, sbj = _k_encode(negative, nzn, W, b, symrelu)
            n_a, n_j = fa.shape[0], fj.shape[0]
            if family == 0:
                A = (fa * wa.reshape((n_a, 1))).T @ fa
                B = (fj * wn.reshape((n_j, 1))).T @ fj
                for i in range(m):
                    for k in range(m):
                        value += A[i, k] * B[i, k]
                grad_a = 2.0 * wa.reshape((n_a, 1)) * (fa @ B)
                grad_j = 2.0 * wn.reshape((n_j, 1)) * (fj @ A)
            else:
                ia = _k_norms(fa)
                ij = _k_norms(fj)
                ha = fa * ia.reshape((n_a, 1))
                hj = fj * ij.reshape((n_j, 1))
                logits = (ha @ hj.T) / temperature
                coupling = np.zeros((n_a, n_j))
                for a in range(n_a):
                    shift = logits[a, 0]
                    for j in range(n_j):
                        if logits[a, j] > shift:
                            shift = logits[a, j]
                    partition = 0.0
                    for j in range(n_j):
                        coupling[a, j] = wn[j] * np.exp(logits[a, j] - shift)
                        partition += coupling[a, j]
                    value += wa[a] * (shift + np.log(partition))
                    for j in range(n_j):
                        coupling[a, j] *= wa[a] / (partition * temperature)
                grad_a = _k_through_normalisation(coupling @ hj, ha, ia)
                grad_j = _k_through_normalisation(coupling.T @ ha, hj, ij)
            _k_backward(grad_a, anchor, sa, sba, online[r], off_w, b_on)
            _k_backward(grad_j, negative, sj, sbj, online[r], off_w, b_on)
            values[r] = value
        _k_backward(grad_u, x1, su, sbu, online[r], off_w, b_on)
        _k_backward(grad_v, x2, sv, sbv, out_second[r], w_second, b_second)
    return values, online, target
