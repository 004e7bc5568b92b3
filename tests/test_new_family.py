"""A new loss family is one registry entry plus the derivation of its pointwise kernel.

The toy family is a pair-only loss, phi(A, B, C) = C^2 - 2 C (the spectral loss without
negatives), L = E[(f_o(x1).f_t(x2))^2 - 2 f_o(x1).f_t(x2)], with the option ``tied``. Its
kernels are emitted here by the derivations' own generators from the sympy expression —
numba (derivations/pointwise_losses.py) and ball arithmetic (derivations/interval_kernels.py)
— and checked against sympy; the family is registered with a PairTerm naming them. Nothing
else in the package changes: the loss object, the batched evaluator of the dynamics,
enumerate_critical_points and the certificate all run on it, checked against an autograd
implementation written below from the definition.
"""

from __future__ import annotations

import random
import sys

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, hessian

import critpoints
from critpoints.losses.batched import BatchedLoss
from critpoints.model.families import LossFamily, PairTerm, family_names, register_family, unregister_family
from critpoints.solver.restarts import InProcessExecutor
from derivations import codegen
from derivations import pointwise_losses as pw

TOY = pw.PointwiseLoss("toy_pair", pw.C**2 - 2 * pw.C, False, "phi = C^2 - 2 C")
FLOAT_MODULE, INTERVAL_MODULE = "toy_pair_kernels", "toy_pair_interval_kernels"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Derive, emit, check and register the toy family; unregister it afterwards."""
    folder = tmp_path_factory.mktemp("toy_family")
    pw.verify_invariant_chain_rule(2, random.Random(0), losses=[TOY])  # the derivation's brute force
    kernels = codegen.import_text(pw.kernel_module([TOY]), folder / f"{FLOAT_MODULE}.py")
    pw.verify_kernels(kernels, [TOY])  # the emitted numba kernels against sympy
    interval = None
    if _has_flint():
        from derivations import interval_kernels

        module = codegen.import_text(interval_kernels.pointwise_module([TOY]), folder / f"{INTERVAL_MODULE}.py")
        interval_kernels.verify_pointwise_kernels(module, sys.modules["flint"], losses=[TOY])
        interval = INTERVAL_MODULE
    family = LossFamily(
        name="toy_pair",
        summary="E[(f_o(x1).f_t(x2))^2 - 2 f_o(x1).f_t(x2)]",
        contrastive=False,
        encoders=2,
        pair=PairTerm("toy_pair", 1.0, kernels=FLOAT_MODULE, interval_kernels=interval),
        options=("tied",),
    )
    register_family(family)
    yield family
    unregister_family("toy_pair")
    for name in (FLOAT_MODULE, INTERVAL_MODULE):
        sys.modules.pop(name, None)


def _has_flint() -> bool:
    try:
        import flint  # noqa: F401
    except ImportError:
        return False
    return True


def toy_setting(encoder="linear", bias=None, tied=False, **changes) -> critpoints.Setting:
    options = dict(
        p=3,
        d=3,
        m=2,
        loss="toy_pair",
        latent=("fixed_count", 2, 1),
        augmentation=("independent_mask", 0.5),
        encoder=encoder,
        bias=bias,
        tied=tied,
    )
    options.update(changes)
    return critpoints.Setting(**options)


def reference(loss: critpoints.PopulationLoss):
    """L(theta) in autograd, from the definition, over the loss's finite measure."""
    setting, layout, measure = loss.setting, loss.layout, loss.measure

    def block(theta, name):
        return anp.reshape(theta[layout.slice(name)], layout.shapes[name])

    def encode(points, theta, weights, bias):
        t = anp.dot(points, block(theta, weights).T)
        if setting.encoder == "linear":
            return t
        b = block(theta, bias) if setting.trainable_bias else setting.bias
        return anp.maximum(t + b, 0.0) - anp.maximum(-t + b, 0.0)

    target = ("W_t", "b_t") if "W_t" in layout.shapes else ("W", "b")

    def value(theta):
        inner = anp.sum(encode(measure.x1, theta, "W", "b") * encode(measure.x2, theta, *target), axis=1)
        return anp.sum(measure.pair_weight * (inner**2 - 2.0 * inner))

    return value


def test_the_family_is_registered_and_labelled(toy):
    assert "toy_pair" in family_names()
    setting = toy_setting(tied=True)
    assert str(setting.loss) == "toy_pair(tied)" and not setting.loss.two_encoders
    assert not toy_setting().loss.contrastive and toy_setting().loss.two_encoders
    with pytest.raises(ValueError, match="temperature= applies only to loss='infonce', got loss='toy_pair'"):
        toy_setting(temperature=0.5)
    with pytest.raises(ValueError, match="a loss family named 'toy_pair' is registered already"):
        register_family(toy)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("encoder, bias", [("linear", None), ("symrelu", -0.2), ("symrelu", "trainable")])
def test_value_gradient_and_hessian_match_autograd(toy, encoder, bias, tied):
    loss = critpoints.population_loss(toy_setting(encoder, bias, tied))
    assert isinstance(loss.setting.expectation, critpoints.ExactEnumeration)
    value = reference(loss)
    rng = np.random.default_rng(1)
    for _ in range(3):
        theta = rng.standard_normal(loss.n_params)
        gradient, hess = loss.euclidean_gradient_and_hessian(theta)
        assert loss.value(theta) == pytest.approx(float(value(theta)), rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(gradient, grad(value)(theta), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(hess, hessian(value)(theta), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("tied", [False, True])
def test_batched_gradient_of_the_dynamics_matches_autograd(toy, tied):
    loss = critpoints.population_loss(toy_setting("symrelu", "trainable", tied))
    value = reference(loss)
    thetas = np.random.default_rng(2).standard_normal((4, loss.n_params))
    result = BatchedLoss(loss).evaluate(thetas)
    for row, theta in enumerate(thetas):
        assert result.value[row] == pytest.approx(float(value(theta)), rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(result.full[row], grad(value)(theta), rtol=1e-10, atol=1e-12)


def test_enumerate_critical_points_runs_on_the_new_family(toy):
    """Every reported stationary point has a vanishing autograd gradient; the lowest is a
    minimum whose Hessian (autograd) is positive semi-definite, and is certified where
    python-flint is installed."""
    setting = toy_setting(tied=True)
    result = critpoints.enumerate_critical_points(
        setting, n_restarts=30, seed=0, executor=InProcessExecutor(), progress=False
    )
    loss = critpoints.population_loss(setting)
    value = reference(loss)
    assert len(result) >= 2  # W = 0 and a minimum at least
    for point in result:
        theta = loss.pack(**point.params)
        assert point.loss == pytest.approx(float(value(theta)), abs=1e-12)
        assert np.linalg.norm(grad(value)(theta)) <= 1e-8
    lowest = result[0]
    assert lowest.kind == "minimum"
    theta = loss.pack(**lowest.params)
    assert np.linalg.eigvalsh(hessian(value)(theta)).min() >= -1e-8
    collapsed = [point for point in result if point.label == "collapsed"]
    # W = 0: value 0, and not a minimum (the -2 C term decreases along the data's directions)
    assert len(collapsed) == 1 and abs(collapsed[0].loss) <= 1e-10 and collapsed[0].index > 0
    if _has_flint():
        from critpoints.certify.certificate import certify_point

        certificate = certify_point(loss, theta)
        assert certificate.certified, certificate.reason
        assert certificate.index == 0
