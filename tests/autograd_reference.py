"""Independent reference for the finite-measure losses, in autograd, from the definitions.

Written directly from derivations/MODEL.md §3–4 with plain loops over the support; it shares no
code with the package. Conventions: n(0) = 0 (a zero representation gives cosine 0), and
the symmetric ReLU is either ``ReLU(t + b) - ReLU(-t + b)`` with numpy's maximum
(derivatives are only compared away from kinks), or, for the kink test, the piece with
a given activation pattern frozen.

Parameter vector: blocks W (m x p), W_t (m x p, two untied encoders), b (m, trainable
bias), b_t (m, trainable bias and two untied encoders), P (m x m, predictor), row-major.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from autograd import grad, hessian, jacobian
from autograd.tracer import getval

TWO_ENCODERS = ("ncl_squared", "ncl_cosine", "ncl_predictor")


class Setup:
    """One loss configuration, as plain attributes."""

    def __init__(
        self,
        family,
        encoder,
        m,
        p,
        *,
        trainable_bias=False,
        fixed_bias=None,
        tied=False,
        temperature=1.0,
        normalize=True,
        frozen_patterns=None,
    ):
        self.family, self.encoder, self.m, self.p = family, encoder, m, p
        self.trainable_bias, self.fixed_bias, self.tied = trainable_bias, fixed_bias, tied
        self.temperature, self.normalize = temperature, normalize
        # frozen_patterns: function (t, b, x) -> (up_on, down_on) numpy 0/1 arrays, or None.
        self.frozen_patterns = frozen_patterns
        self.untied = family in TWO_ENCODERS and not tied

    def unpack(self, theta):
        m, p = self.m, self.p
        blocks, start = {}, 0
        names = [("W", m * p)]
        if self.untied:
            names.append(("W_t", m * p))
        if self.trainable_bias:
            names.append(("b", m))
            if self.untied:
                names.append(("b_t", m))
        if self.family == "ncl_predictor":
            names.append(("P", m * m))
        for name, size in names:
            blocks[name] = theta[start : start + size]
            start += size
        assert start == len(theta), (start, len(theta))
        online_w = anp.reshape(blocks["W"], (m, p))
        target_w = anp.reshape(blocks["W_t"], (m, p)) if self.untied else online_w
        if self.trainable_bias:
            online_b = blocks["b"]
            target_b = blocks["b_t"] if self.untied else online_b
        elif self.fixed_bias is not None:
            online_b, target_b = self.fixed_bias
        else:
            online_b = target_b = np.zeros(m)
        predictor = anp.reshape(blocks["P"], (m, m)) if "P" in blocks else None
        return (online_w, online_b), (target_w, target_b), predictor

    def n_params(self):
        m, p = self.m, self.p
        n_enc = 2 if self.untied else 1
        biases = n_enc * m if self.trainable_bias else 0
        return n_enc * m * p + biases + (m * m if self.family == "ncl_predictor" else 0)


def relu(t):
    return anp.maximum(t, 0.0)


def encoder_output(setup, params, x):
    weights, bias = params
    t = anp.dot(weights, x)
    if setup.encoder == "linear":
        return t
    if setup.frozen_patterns is not None:
        up_on, down_on = setup.frozen_patterns(getval(t), getval(bias), x)
        return up_on * (t + bias) - down_on * (-t + bias)
    return relu(t + bias) - relu(-t + bias)


def cosine(u, v):
    a, b = anp.dot(u, u), anp.dot(v, v)
    if getval(a) == 0.0 or getval(b) == 0.0:
        return 0.0
    return anp.dot(u, v) / anp.sqrt(a * b)


def pairs_of(measure):
    return zip(measure.x1, measure.x2, measure.pair_weight)


def spectral(setup, online, measure):
    total = 0.0
    for x1, x2, w in pairs_of(measure):
        total = total - 2.0 * w * anp.dot(encoder_output(setup, online, x1), encoder_output(setup, online, x2))
    for a, wa in zip(measure.anchor, measure.anchor_weight):
        fa = encoder_output(setup, online, a)
        for j, wn in zip(measure.negative, measure.negative_weight):
            total = total + wa * wn * anp.dot(fa, encoder_output(setup, online, j)) ** 2
    return total


def infonce(setup, online, measure):
    tau = setup.temperature
    total = 0.0
    for x1, x2, w in pairs_of(measure):
        total = total - w * cosine(encoder_output(setup, online, x1), encoder_output(setup, online, x2)) / tau
    for a, wa in zip(measure.anchor, measure.anchor_weight):
        fa = encoder_output(setup, online, a)
        inner = 0.0
        for j, wn in zip(measure.negative, measure.negative_weight):
            inner = inner + wn * anp.exp(cosine(fa, encoder_output(setup, online, j)) / tau)
        total = total + wa * anp.log(inner)
    return total


def ncl_squared(setup, online, target, measure):
    total = 0.0
    for x1, x2, w in pairs_of(measure):
        d = encoder_output(setup, online, x1) - encoder_output(setup, target, x2)
        total = total + w * anp.dot(d, d)
    return total


def ncl_cosine(setup, online, target, measure):
    total = 2.0
    for x1, x2, w in pairs_of(measure):
        total = total - 2.0 * w * cosine(encoder_output(setup, online, x1), encoder_output(setup, target, x2))
    return total


def predictor_objective(setup, predicted_branch, other_branch, predictor, measure, predicted_is_online):
    """2 - 2 E<n(P f_pred(x_pred)), n(f_other(x_other))> (or -2 E<P ., .> unnormalised)."""
    total = 2.0 if setup.normalize else 0.0
    for x1, x2, w in pairs_of(measure):
        x_pred, x_other = (x1, x2) if predicted_is_online else (x2, x1)
        p = anp.dot(predictor, encoder_output(setup, predicted_branch, x_pred))
        other = encoder_output(setup, other_branch, x_other)
        inner = cosine(p, other) if setup.normalize else anp.dot(p, other)
        total = total - 2.0 * w * inner
    return total


def loss(setup, measure):
    """theta -> loss, for the gradient families."""

    def value(theta):
        online, target, _ = setup.unpack(theta)
        if setup.family == "spectral":
            return spectral(setup, online, measure)
        if setup.family == "infonce":
            return infonce(setup, online, measure)
        if setup.family == "ncl_squared":
            return ncl_squared(setup, online, target, measure)
        return ncl_cosine(setup, online, target, measure)

    return value


def predictor_objectives(setup, measure):
    """(L_o, L_t) as functions of (online params, target params, P), stop-gradient free."""

    def online_objective(online, target, predictor):
        return predictor_objective(setup, online, target, predictor, measure, True)

    def target_objective(online, target, predictor):
        return predictor_objective(setup, target, online, predictor, measure, False)

    return online_objective, target_objective


def predictor_field(setup, measure):
    """theta -> F: the stop-gradient field, by autograd on separate argument copies.

    dL_o/d(online) with the target copy held fixed, dL_t/d(target) with the online copy
    held fixed, and dL_o/dP + dL_t/dP; tied: the two encoder gradients are added.
    """
    online_objective, target_objective = predictor_objectives(setup, measure)

    def field(theta):
        online, target, predictor = setup.unpack(theta)
        g_online = grad(online_objective, 0)(online, target, predictor)
        g_target = grad(target_objective, 1)(online, target, predictor)
        g_p = grad(online_objective, 2)(online, target, predictor) + grad(target_objective, 2)(
            online, target, predictor
        )
        weights_o, bias_o = g_online
        weights_t, bias_t = g_target
        parts = []
        if setup.untied:
            parts += [anp.reshape(weights_o, -1), anp.reshape(weights_t, -1)]
        else:
            parts += [anp.reshape(weights_o + weights_t, -1)]
        if setup.trainable_bias:
            parts += [bias_o, bias_t] if setup.untied else [bias_o + bias_t]
        parts.append(anp.reshape(g_p, -1))
        return anp.concatenate(parts)

    return field


def reference_derivatives(setup, measure, theta):
    """(value, gradient or field, Hessian or Jacobian) at theta."""
    if setup.family == "ncl_predictor":
        online, target, predictor = setup.unpack(theta)
        online_objective, target_objective = predictor_objectives(setup, measure)
        value = 0.5 * (online_objective(online, target, predictor) + target_objective(online, target, predictor))
        field = predictor_field(setup, measure)
        return float(value), field(theta), jacobian(field)(theta)
    f = loss(setup, measure)
    return float(f(theta)), grad(f)(theta), hessian(f)(theta)
