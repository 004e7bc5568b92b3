"""Compiled kernels of the minibatch SGD training models (critpoints.dynamics.paper_models).

Everything here works on one run and one minibatch: the random stream, the views of a batch,
the encoder with its optional batch normalisation (forward and backward), the NT-Xent /
InfoNCE weights of a 2B x 2B similarity matrix and the pull-back of its gradient, the cosine
of NCL. The math is stated in critpoints.dynamics.paper_models. The symmetric ReLU is the
package's (``symrelu_piece``: the documented kink rule a1 = [t + b >= 0], a2 = [-t + b > 0] and
the zero view). The normalisation n(f) = f/|f| (n(0) = 0), its pull-back and the cosine with
its gradients are three small loops here, on the rows of one batch.

Arrays are float32 or float64 (each kernel compiles once per dtype); sums over a batch are
accumulated in float64 whatever the storage. The matrix products (pre-activations x W^T,
weight gradients x^T dh, the similarity matrix) are left to the caller's BLAS, several times
faster at these shapes than compiled loops; the kernels do the elementwise work between them.

Random numbers come from an explicit splitmix64 state (a uint64 array of length 1) owned by
the run, so that a run is reproducible from its seed whatever else the process computes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from critpoints.losses.encoder import symrelu_piece

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)
_ONE = np.uint64(1)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_S32 = np.uint64(32)

#: Constraint codes of :func:`renormalise`.
NO_CONSTRAINT, UNIT_ROWS, UNIT_COLUMNS = 0, 1, 2


# ---------------------------------------------------------------------------------------
# Random stream
# ---------------------------------------------------------------------------------------


@njit(cache=True)
def next_u64(state):
    """The next 64 random bits of the splitmix64 stream in ``state`` (uint64[1], advanced)."""
    s = state[0] + _GOLDEN
    state[0] = s
    z = (s ^ (s >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(cache=True)
def shuffle(order, state):
    """Fisher-Yates shuffle of ``order`` in place (index j = floor(u * (i + 1)), u a 32-bit uniform)."""
    for i in range(order.shape[0] - 1, 0, -1):
        j = np.int64(((next_u64(state) >> _S32) * np.uint64(i + 1)) >> _S32)
        order[i], order[j] = order[j], order[i]


@njit(cache=True)
def draw_views(X, order, start, stop, complementary, threshold, scale, state, x1, x2, nonzero1, nonzero2):
    """The two views of the inputs X[order[start:stop]] into rows 0..stop-start of x1, x2.

    complementary: x1 = scale D x, x2 = scale (I - D) x with D diagonal Bernoulli(1/2) (one
    random bit per coordinate). Otherwise independent masks: each coordinate of each view is
    dropped when a 32-bit uniform integer is below ``threshold`` = round(q 2^32) (probability
    q up to 2^-32), and kept times ``scale`` otherwise. nonzero1[r], nonzero2[r]: the view is not 0.
    """
    p = X.shape[1]
    bits = np.uint64(0)
    left = 0
    for r in range(stop - start):
        source = order[start + r]
        for k in range(p):
            value = X[source, k] * scale
            if complementary:
                if left == 0:
                    bits = next_u64(state)
                    left = 64
                on = (bits & _ONE) == _ONE
                bits = bits >> _ONE
                left -= 1
                x1[r, k] = value if on else 0.0
                x2[r, k] = 0.0 if on else value
            else:
                draw = next_u64(state)
                x1[r, k] = value if (draw & _LOW32) >= threshold else 0.0
                x2[r, k] = value if (draw >> _S32) >= threshold else 0.0
        any1 = False
        any2 = False
        for k in range(p):
            any1 = any1 or x1[r, k] != 0.0
            any2 = any2 or x2[r, k] != 0.0
        nonzero1[r] = any1
        nonzero2[r] = any2


# ---------------------------------------------------------------------------------------
# The encoder: optional batch normalisation and the symmetric ReLU, forward and backward
# ---------------------------------------------------------------------------------------


@njit(cache=True)
def encode(h, nonzero, b, gamma, beta, batch_norm, eps, momentum, rep, slope, bias_slope, xhat, istd, rmean, rvar):
    """Representations f (rows of ``rep``) of one batch of views from their h = x W^T.

    Without batch normalisation f_i = sigma_{b_i}(h_i) (zero on a zero view, nonzero[n] False).
    With it, the paper's encoder: t = gamma xhat + beta, xhat = (h - mean h) / sqrt(var h + eps)
    over the batch (biased variance; the Linear bias cancels), and
    f_i = ReLU(t_i) - ReLU(2 b_i - t_i) = sigma_{b_i}(t_i - b_i). ``slope`` = df/dh (without BN)
    or df/dt (with BN); ``bias_slope`` = df/db. With BN the running averages of the Linear
    output h + b follow PyTorch's BatchNorm1d: rmean <- (1 - momentum) rmean + momentum mean,
    rvar likewise with the unbiased variance; ``xhat`` and ``istd`` keep what the backward needs.
    """
    count, m = h.shape
    if batch_norm:
        mean = np.zeros(m)
        spread = np.zeros(m)
        for n in range(count):
            for i in range(m):
                mean[i] += h[n, i]
        for i in range(m):
            mean[i] /= count
        for n in range(count):
            for i in range(m):
                deviation = h[n, i] - mean[i]
                spread[i] += deviation * deviation
        for i in range(m):
            istd[i] = 1.0 / math.sqrt(spread[i] / count + eps)
            rmean[i] = (1.0 - momentum) * rmean[i] + momentum * (mean[i] + b[i])
            rvar[i] = (1.0 - momentum) * rvar[i] + momentum * spread[i] / max(count - 1, 1)
        for n in range(count):
            for i in range(m):
                normal = (h[n, i] - mean[i]) * istd[i]
                xhat[n, i] = normal
                value, d_value, d_bias = symrelu_piece(gamma[i] * normal + beta[i] - b[i], b[i], False)
                rep[n, i] = value
                slope[n, i] = d_value
                bias_slope[n, i] = d_bias - d_value  # the argument t - b depends on b too
    else:
        for n in range(count):
            zero_view = not nonzero[n]
            for i in range(m):
                value, d_value, d_bias = symrelu_piece(h[n, i], b[i], zero_view)
                rep[n, i] = value
                slope[n, i] = d_value
                bias_slope[n, i] = d_bias


@njit(cache=True)
def encode_backward(grad, slope, bias_slope, xhat, istd, gamma, batch_norm, dh, db, dgamma, dbeta):
    """dh = dL/dh of one batch from grad = dL/df; adds dL/db (and dL/dgamma, dL/dbeta with BN).

    With BN, g = grad * df/dt gives dL/dgamma = sum_n g xhat, dL/dbeta = sum_n g and, through
    the batch statistics, dL/dh = istd (gamma g - mean_n(gamma g) - xhat mean_n(gamma g xhat)).
    The weight gradient is then dL/dWT = x^T dh (one matrix product, by the caller).
    """
    count, m = grad.shape
    if batch_norm:
        g_total = np.zeros(m)
        gx_total = np.zeros(m)
        for n in range(count):
            for i in range(m):
                g = grad[n, i] * slope[n, i]
                g_total[i] += g
                gx_total[i] += g * xhat[n, i]
                db[i] += grad[n, i] * bias_slope[n, i]
        for i in range(m):
            dgamma[i] += gx_total[i]
            dbeta[i] += g_total[i]
            g_total[i] *= gamma[i] / count
            gx_total[i] *= gamma[i] / count
        for n in range(count):
            for i in range(m):
                dh[n, i] = istd[i] * (gamma[i] * grad[n, i] * slope[n, i] - g_total[i] - xhat[n, i] * gx_total[i])
    else:
        for n in range(count):
            for i in range(m):
                dh[n, i] = grad[n, i] * slope[n, i]
                db[i] += grad[n, i] * bias_slope[n, i]


@njit(cache=True)
def renormalise(WT, constraint):
    """Unit rows of W (columns of WT) or unit columns of W (rows of WT), in place."""
    p, m = WT.shape
    if constraint == UNIT_ROWS:
        total = np.zeros(m)
        for k in range(p):
            for i in range(m):
                total[i] += WT[k, i] * WT[k, i]
        for i in range(m):
            total[i] = 1.0 / math.sqrt(total[i]) if total[i] > 0.0 else 1.0
        for k in range(p):
            for i in range(m):
                WT[k, i] *= total[i]
    elif constraint == UNIT_COLUMNS:
        for k in range(p):
            column = 0.0
            for i in range(m):
                column += WT[k, i] * WT[k, i]
            if column > 0.0:
                inverse = 1.0 / math.sqrt(column)
                for i in range(m):
                    WT[k, i] *= inverse


# ---------------------------------------------------------------------------------------
# NT-Xent / InfoNCE on a 2B x 2B similarity matrix, and the cosine of NCL
# ---------------------------------------------------------------------------------------


@njit(cache=True, fastmath=True)
def ntxent_weights(E, half, positive_in_denominator, inverse_rowsum):
    """Turn E_ij = exp(S_ij) into the symmetric weights A_ij = E_ij (1/r_i + 1/r_j), in place.

    The denominator of view i runs over j != i (NT-Xent, the positive included) or over
    j not in {i, i'} (InfoNCE, the negatives only), i' = (i + half) mod (2 half) its other view;
    E_ij is zeroed outside it and r_i = sum_j E_ij (1/r_i goes to ``inverse_rowsum``). Returns
    sum_i log r_i. E and A are symmetric; dL/dz^_i = (sum_j A_ij z^_j - 2 z^_i') / (2B tau).
    ``inverse_rowsum`` has E's dtype. fastmath lets the row sums vectorise (their order of
    summation is free); E holds finite positive numbers (the caller bounds 1/tau).
    """
    count = E.shape[0]
    for i in range(count):
        E[i, i] = 0.0
        if not positive_in_denominator:
            E[i, (i + half) % count] = 0.0
    log_total = 0.0
    for i in range(count):
        total = 0.0
        for j in range(count):
            total += E[i, j]
        inverse_rowsum[i] = 1.0 / total
        log_total += math.log(total)
    for i in range(count):
        inverse = inverse_rowsum[i]
        for j in range(count):
            E[i, j] = E[i, j] * (inverse + inverse_rowsum[j])
    return log_total


@njit(cache=True)
def row_norms(rep):
    """1/|f_n| for the rows of rep (0 for a zero row), float64."""
    count, m = rep.shape
    inverse = np.zeros(count)
    for n in range(count):
        total = 0.0
        for i in range(m):
            total += rep[n, i] * rep[n, i]
        if total > 0.0:
            inverse[n] = 1.0 / math.sqrt(total)
    return inverse


@njit(cache=True)
def through_normalisation(grad_unit, unit, inverse):
    """dL/df_n from dL/dh_n for h_n = f_n / |f_n| (rows): (g_n - (g_n . h_n) h_n) / |f_n| (0 at f_n = 0)."""
    count, m = unit.shape
    out = np.empty((count, m))
    for n in range(count):
        dot = 0.0
        for i in range(m):
            dot += grad_unit[n, i] * unit[n, i]
        for i in range(m):
            out[n, i] = (grad_unit[n, i] - dot * unit[n, i]) * inverse[n]
    return out


@njit(cache=True)
def cosine_gradients(u, v, scale, grad_u, grad_v):
    """sum_n c(u_n, v_n) / N; sets grad_u, grad_v to scale/N times dc/du_n, dc/dv_n (rows).

    c(u, v) = u.v / (|u||v|), dc/du = (v^ - c u^)/|u|, dc/dv = (u^ - c v^)/|v|; c and its
    gradients are 0 where u_n or v_n is 0 (n(0) = 0).
    """
    count, m = u.shape
    inverse_u = row_norms(u)
    inverse_v = row_norms(v)
    factor = scale / count
    total = 0.0
    for n in range(count):
        for i in range(m):
            grad_u[n, i] = 0.0
            grad_v[n, i] = 0.0
        if inverse_u[n] == 0.0 or inverse_v[n] == 0.0:
            continue
        c = 0.0
        for i in range(m):
            c += u[n, i] * v[n, i]
        c *= inverse_u[n] * inverse_v[n]
        total += c
        for i in range(m):
            uh = u[n, i] * inverse_u[n]
            vh = v[n, i] * inverse_v[n]
            grad_u[n, i] = factor * (vh - c * uh) * inverse_u[n]
            grad_v[n, i] = factor * (uh - c * vh) * inverse_v[n]
    return total / count


@njit(cache=True)
def scaled_units(rep, inverse, scale, out):
    """out = scale * rep_n / |rep_n| (rows; 0 for a zero row), in out's dtype."""
    count, m = rep.shape
    for n in range(count):
        factor = scale * inverse[n]
        for i in range(m):
            out[n, i] = rep[n, i] * factor


@njit(cache=True)
def ntxent_pullback(product, scaled, inverse, half, factor, root):
    """dL/df from G = A z_s: the unit-vector gradient g_i = factor (G_i - 2 z_s,i'), pulled back
    through the normalisation; also returns sum_i z_s,i . z_s,i'."""
    count, m = product.shape
    grad_unit = np.empty((count, m))
    unit = np.empty((count, m))
    positive = 0.0
    for n in range(count):
        partner = (n + half) % count
        for i in range(m):
            grad_unit[n, i] = factor * (product[n, i] - 2.0 * scaled[partner, i])
            unit[n, i] = root * scaled[n, i]
            positive += scaled[n, i] * scaled[partner, i]
    return through_normalisation(grad_unit, unit, inverse), positive
