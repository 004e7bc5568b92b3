"""The loss object of every family x encoder x constraint x expectation mode.

* value, gradient and Hessian (field and Jacobian) against an independent autograd
  implementation over the same finite measure (hypothesis chooses sizes and points);
* the closed form equals exact enumeration where both apply;
* exact enumeration equals a brute-force expectation over every (z, D1, D2, z', D');
* sample averages converge to the closed form, within a tolerance from the sample size;
* Riemannian gradients and Hessians against finite differences along retraction curves;
* symmetries: invariance of the loss under each declared action, generators orthogonal to
  the gradient, and spanning the Hessian's null directions at stationary points.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from autograd_reference import Setup, reference_derivatives
from conftest import LOSS_FAMILIES
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from critpoints import (
    Setting,
    enumerate_critical_points,
    exact_view_measure,
    population_loss,
    sample_views,
    view_moments,
)
from critpoints.landscape.labels import label_point
from critpoints.solver.restarts import InProcessExecutor

pytestmark = pytest.mark.filterwarnings("ignore:Output seems independent of input")

LOSSES = LOSS_FAMILIES
ENCODINGS = [("linear", None), ("symrelu", -0.2), ("symrelu", "trainable")]
CONSTRAINTS = ["none", "unit_rows", "unit_columns"]
MODES = ["closed_form", "exact_enumeration", ("sample_average", 8, 4)]


def cases():
    for (loss, options), (encoder, bias), constraint, mode in itertools.product(LOSSES, ENCODINGS, CONSTRAINTS, MODES):
        if mode == "closed_form" and (encoder != "linear" or loss not in ("spectral", "ncl_squared")):
            continue
        mode_label = mode if isinstance(mode, str) else "sample"
        label = f"{loss}{options}-{encoder}{'' if bias is None else bias}-{constraint}-{mode_label}"
        yield pytest.param(loss, options, encoder, bias, constraint, mode, id=label)


def make_setting(loss, options, encoder, bias, constraint, mode, d, m) -> Setting:
    return Setting(
        p=d,
        d=d,
        m=m,
        loss=loss,
        encoder=encoder,
        bias=bias,
        constraint=constraint,
        expectation=mode,
        augmentation=("independent_mask", 0.4),
        latent="one_hot",
        **options,
    )


def reference_setup(setting: Setting) -> Setup:
    loss = setting.loss
    fixed = None if setting.trainable_bias or setting.bias is None else (setting.bias, setting.bias)
    return Setup(
        loss.name,
        setting.encoder,
        setting.m,
        setting.p,
        trainable_bias=setting.trainable_bias,
        fixed_bias=fixed,
        tied=bool(loss.tied),
        temperature=loss.temperature or 1.0,
        normalize=True if loss.normalize is None else loss.normalize,
    )


def kink_margin(setting: Setting, params: dict, points: np.ndarray) -> float:
    """Distance of the nearest pre-activation to a symrelu kink (inf for linear encoders)."""
    if setting.encoder == "linear":
        return np.inf
    margins = []
    for branch, bias_name in (("W", "b"), ("W_t", "b_t")):
        if branch in params:
            bias = params[bias_name] if setting.trainable_bias else setting.bias
            t = points @ params[branch].T
            margins.append(np.min(np.abs(np.abs(t[np.any(points != 0, axis=1)]) - np.abs(bias)), initial=np.inf))
    return float(min(margins))


def views_of(loss) -> np.ndarray:
    measure = loss.measure if loss.measure is not None else exact_view_measure(loss.setting)
    return np.concatenate([measure.x1, measure.x2, measure.anchor, measure.negative])


def random_point(loss, rng) -> np.ndarray:
    return loss.manifold.project(rng.normal(scale=0.8, size=loss.n_params))


@pytest.mark.parametrize("loss_name, options, encoder, bias, constraint, mode", list(cases()))
@settings(
    max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(d=st.integers(1, 3), m=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_matches_autograd_and_finite_differences(loss_name, options, encoder, bias, constraint, mode, d, m, seed):
    setting = make_setting(loss_name, options, encoder, bias, constraint, mode, d, m)
    loss = population_loss(setting)
    rng = np.random.default_rng(seed)
    theta = random_point(loss, rng)
    assume(kink_margin(setting, loss.unpack(theta), views_of(loss)) > 1e-3)
    measure = loss.measure if loss.measure is not None else exact_view_measure(setting)
    ref_value, ref_first, ref_second = reference_derivatives(reference_setup(setting), measure, theta)
    scale = 1.0 + np.abs(ref_second).max()
    assert loss.value(theta) == pytest.approx(ref_value, rel=1e-9, abs=1e-10)
    if loss.is_field:
        first, second = loss.euclidean_field(theta), loss.euclidean_jacobian(theta)
    else:
        first, second = loss.euclidean_gradient(theta), loss.euclidean_hessian(theta)
    np.testing.assert_allclose(first, ref_first, rtol=1e-7, atol=1e-9 * scale)
    np.testing.assert_allclose(second, ref_second, rtol=1e-7, atol=1e-9 * scale)
    check_riemannian(loss, theta, rng)


def check_riemannian(loss, theta: np.ndarray, rng: np.random.Generator) -> None:
    """Along the retraction curve c(t) = R(theta, t v) for a tangent v:
    d/dt L(c(t)) = <grad L, v>, and the covariant derivative of the (projected) gradient or
    field, P d/dt r(c(t)), equals Hess v (J v). The derivatives along the curve are central
    differences with Richardson extrapolation, (4 D(h/2) - D(h)) / 3, whose error is
    O(h^4) times fifth derivatives: small even where a cosine loss has a short
    representation and its third derivatives are large (plain central differences with
    h = 1e-4 then erred by ~1e-5 relative)."""
    h = 2e-4  # theta moves at most h: pre-activations by less than the 1e-3 kink margin
    direction = loss.manifold.tangent_project(theta, rng.normal(size=loss.n_params))
    direction /= max(np.linalg.norm(direction), 1e-300)
    curve = lambda t: loss.manifold.retract(theta, t * direction)  # noqa: E731

    def derivative(function):
        central = lambda step: (function(curve(step)) - function(curve(-step))) / (2 * step)  # noqa: E731
        return (4 * central(h / 2) - central(h)) / 3

    residual = loss.field if loss.is_field else loss.gradient
    operator = loss.jacobian(theta) if loss.is_field else loss.hessian(theta)
    scale = 1.0 + np.abs(operator).max()
    if not loss.is_field:
        assert derivative(loss.value) == pytest.approx(residual(theta) @ direction, abs=1e-5 * scale)
    covariant = loss.manifold.tangent_project(theta, derivative(residual))
    np.testing.assert_allclose(covariant, operator @ direction, atol=1e-5 * scale)
    np.testing.assert_allclose(
        loss.manifold.tangent_project(theta, residual(theta)), residual(theta), atol=1e-12 * scale
    )


@pytest.mark.parametrize("loss_name", ["spectral", "ncl_squared"])
@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_closed_form_equals_exact_enumeration(loss_name, constraint):
    rng = np.random.default_rng(1)
    kwargs = dict(
        p=3,
        d=3,
        m=2,
        loss=loss_name,
        constraint=constraint,
        latent=("fixed_count", 2, 1),
        augmentation=("independent_mask", 0.3),
    )
    closed = population_loss(Setting(**kwargs, expectation="closed_form"))
    enumerated = population_loss(Setting(**kwargs, expectation="exact_enumeration"))
    for _ in range(3):
        theta = random_point(closed, rng)
        assert closed.value(theta) == pytest.approx(enumerated.value(theta), rel=1e-12, abs=1e-13)
        np.testing.assert_allclose(closed.gradient(theta), enumerated.gradient(theta), atol=1e-12)
        np.testing.assert_allclose(closed.hessian(theta), enumerated.hessian(theta), atol=1e-11)


def symrelu(pre_activation: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Reference: sigma_b(t) = ReLU(t + b) - ReLU(-t + b), elementwise with b broadcast over the last axis."""
    return np.maximum(pre_activation + bias, 0.0) - np.maximum(-pre_activation + bias, 0.0)


def brute_force_value(setting: Setting, params: dict) -> float:
    """E over every code z, full masks D1, D2 and negative (z', D'), by direct summation."""
    codes, code_weights = setting.latent.support(setting.d)
    q, p = setting.augmentation.q, setting.p
    masks = [np.array(mask) for mask in itertools.product((0.0, 1.0), repeat=p)]
    mask_weights = [np.prod(np.where(mask == 1, 1 - q, q)) for mask in masks]
    views = [(mask * z, wz * wm) for z, wz in zip(codes, code_weights) for mask, wm in zip(masks, mask_weights)]

    def f(x, branch="W"):
        bias_name = "b" if branch == "W" else "b_t"
        t = params[branch] @ x
        if setting.encoder == "linear":
            return t
        return symrelu(t, params[bias_name] if setting.trainable_bias else setting.bias)

    def n(v):
        norm = np.linalg.norm(v)
        return v / norm if norm > 0 else 0 * v

    name = setting.loss.name
    target = "W_t" if "W_t" in params else "W"
    total = 0.0
    for z, wz in zip(codes, code_weights):
        for m1, w1 in zip(masks, mask_weights):
            for m2, w2 in zip(masks, mask_weights):
                x1, x2, weight = m1 * z, m2 * z, wz * w1 * w2
                u, v = f(x1), f(x2, target)
                if name == "spectral":
                    total += weight * (-2 * u @ v + sum(wn * (u @ f(xn)) ** 2 for xn, wn in views))
                elif name == "ncl_squared":
                    total += weight * np.sum((u - v) ** 2)
                elif name == "ncl_cosine":
                    total += weight * (2 - 2 * n(u) @ n(v))
                elif name == "ncl_predictor":
                    P = params["P"]
                    total += weight * (2 - n(P @ u) @ n(v) - n(u) @ n(P @ v))
    if name == "infonce":
        tau = setting.loss.temperature
        cos = lambda a, b: n(a) @ n(b)  # noqa: E731
        for z, wz in zip(codes, code_weights):
            for m1, w1 in zip(masks, mask_weights):
                for m2, w2 in zip(masks, mask_weights):
                    total += wz * w1 * w2 * (-cos(f(m1 * z), f(m2 * z)) / tau)
        for x1, w1 in views:
            total += w1 * np.log(sum(wn * np.exp(cos(f(x1), f(xn)) / tau) for xn, wn in views))
    return float(total)


@pytest.mark.parametrize("loss_name, options", LOSSES[:6])
@pytest.mark.parametrize("bias", [-0.3, "trainable"])
def test_exact_enumeration_equals_brute_force(loss_name, options, bias):
    setting = Setting(
        p=2,
        d=2,
        m=2,
        loss=loss_name,
        encoder="symrelu",
        bias=bias,
        latent="one_hot",
        augmentation=("independent_mask", 0.3),
        expectation="exact_enumeration",
        **options,
    )
    loss = population_loss(setting)
    rng = np.random.default_rng(7)
    for _ in range(3):
        theta = rng.normal(size=loss.n_params)
        assert loss.value(theta) == pytest.approx(brute_force_value(setting, loss.unpack(theta)), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("loss_name", ["spectral", "ncl_squared"])
def test_sample_average_converges_to_closed_form(loss_name):
    """|L_n - L| shrinks like sd / sqrt(n): checked against 5 standard errors of the
    first-order (influence-function) term plus the O(1/n) second-order term of the
    all-pairs repulsion average."""
    kwargs = dict(
        p=4,
        d=3,
        m=3,
        loss=loss_name,
        dictionary=("random", 2),
        noise=0.3,
        latent=("fixed_count", 2, 1),
        augmentation=("independent_mask", 0.25),
    )
    exact_setting = Setting(**kwargs)
    exact = population_loss(exact_setting)
    theta = np.random.default_rng(3).normal(size=exact.n_params)
    params = exact.unpack(theta)
    target = params.get("W_t", params["W"])
    moments = view_moments(exact_setting)
    anchor_second = params["W"] @ moments.x1x1 @ params["W"].T
    negative_second = params["W"] @ moments.x2x2 @ params["W"].T
    for n in (1_000, 10_000, 100_000):
        sampled = population_loss(Setting(**kwargs, expectation=("sample_average", n, 11)))
        draw = sample_views(exact_setting, n, 11)
        u, v, w = draw.x1 @ params["W"].T, draw.x2 @ target.T, draw.negative @ params["W"].T
        if loss_name == "ncl_squared":
            influence = np.sum((u - v) ** 2, axis=1)
            second_order = 0.0
        else:
            influence = (
                -2 * np.sum(u * v, axis=1)
                + np.einsum("ni,ij,nj->n", u, negative_second, u)
                + np.einsum("ni,ij,nj->n", w, anchor_second, w)
            )
            second_order = 10 * np.abs(anchor_second).max() * np.abs(negative_second).max() / n
        error = abs(sampled.value(theta) - exact.value(theta))
        assert error <= 5 * influence.std(ddof=1) / np.sqrt(n) + second_order
    assert "empirical" in sampled.expectation and "population" in exact.expectation


SYMMETRY_SETTINGS = [
    dict(loss="spectral", encoder="symrelu", bias=-0.2, constraint="unit_rows"),
    dict(loss="spectral", encoder="linear", constraint="unit_columns", expectation="exact_enumeration"),
    dict(loss="infonce", encoder="linear"),
    dict(loss="ncl_cosine", encoder="symrelu", bias="trainable"),
    dict(loss="ncl_cosine", encoder="symrelu", bias=0.0, tied=True),
    dict(loss="ncl_squared", encoder="symrelu", bias=-0.3, constraint="unit_rows"),
    dict(loss="ncl_squared", encoder="linear", dictionary=("random", 1), noise=0.1, p=4),
    dict(loss="ncl_predictor", encoder="linear"),
    dict(loss="ncl_predictor", encoder="symrelu", bias="trainable", normalize=False),
]


@pytest.mark.parametrize("kwargs", SYMMETRY_SETTINGS, ids=lambda k: "-".join(map(str, k.values())))
def test_loss_is_invariant_under_declared_symmetries(kwargs):
    setting = Setting(**{"p": 3, "d": 3, "m": 3, **kwargs})
    loss = population_loss(setting)
    group = loss.symmetries
    rng = np.random.default_rng(4)
    theta = random_point(loss, rng)
    value = loss.value(theta)
    check = lambda other: loss.value(other) == pytest.approx(value, rel=1e-11, abs=1e-12)  # noqa: E731
    assert check(group.permute(theta, [2, 0, 1]))
    assert check(group.flip(theta, [-1, 1, -1]))
    if group.rotations:
        rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        assert check(group.rotate(theta, rotation))
    equivariant = loss.is_field and not setting.loss.normalize
    for blocks in group.scalings:
        scaled = group.scale(theta, blocks, 2.7)
        if not equivariant:
            assert check(scaled)
            continue
        # the unnormalised predictor field is equivariant: each block of F(g theta) is a
        # positive multiple of the same block of F(theta), so its zero set is invariant
        before, after = loss.field(theta), loss.field(scaled)
        for name in loss.layout.names:
            a, b = before[loss.layout.slice(name)], after[loss.layout.slice(name)]
            factor = (a @ b) / (a @ a)
            assert factor > 0
            np.testing.assert_allclose(b, factor * a, rtol=1e-10, atol=1e-12)
    if group.input_permutations:
        signs = [1, -1, 1] if group.input_sign_flips else [1, 1, 1]
        assert check(group.act_on_inputs(theta, [1, 2, 0], signs))
    if group.entry_sign_flips:
        assert check(group.flip_entries(theta, [[1, -1, 1], [-1, -1, 1], [1, 1, -1]]))
    generators = loss.symmetry_generators(theta)
    assert generators.shape == (loss.n_params, group.continuous_dimension)
    residual = loss.field(theta) if loss.is_field else loss.gradient(theta)
    if not loss.is_field:  # L(g_t theta) = L(theta) for all t: grad L . xi = 0 everywhere
        np.testing.assert_allclose(generators.T @ residual, 0, atol=1e-10)


def test_declared_symmetries_are_not_too_many():
    """A fixed non-zero bias breaks rescaling; unit rows break O(m); a random M has no input symmetry."""
    assert (
        population_loss(Setting(p=3, d=3, m=2, loss="ncl_cosine", encoder="symrelu", bias=-0.2)).symmetries.scalings
        == ()
    )
    assert not population_loss(Setting(p=3, d=3, m=2, loss="spectral", constraint="unit_rows")).symmetries.rotations
    assert not population_loss(
        Setting(p=3, d=3, m=2, loss="spectral", dictionary=("random", 0))
    ).symmetries.input_permutations
    # and a non-symmetry really changes the loss: flipping one branch of an untied cosine loss
    loss = population_loss(Setting(p=3, d=3, m=2, loss="ncl_cosine", encoder="symrelu", bias="trainable"))
    rng = np.random.default_rng(0)
    theta = loss.pack(W=rng.normal(size=(2, 3)), W_t=rng.normal(size=(2, 3)), b=np.full(2, 0.3), b_t=np.full(2, 0.3))
    flipped = theta.copy()
    flipped[loss.layout.slice("W_t")] *= -1
    assert abs(loss.value(flipped) - loss.value(theta)) > 1e-3


#: Settings with signed data (M = I, sigma = 0, a sign-symmetric latent law), a loss without repulsion
#: or predictor, and one-sparse data or a separable pair term: entry sign flips are declared
#: (derivations/symmetries.md item 6).
ENTRY_FLIP_SETTINGS = [
    dict(loss="ncl_squared", encoder="symrelu", bias=-0.3, constraint="unit_rows"),
    dict(loss="ncl_squared", encoder="symrelu", bias="trainable", augmentation="complementary_mask"),
    dict(loss="ncl_squared", encoder="linear", constraint="unit_rows"),
    dict(loss="ncl_cosine", encoder="symrelu", bias=-0.3, constraint="unit_rows", tied=True),
    dict(loss="ncl_cosine", encoder="symrelu", bias=np.array([-0.3, 0.2, -0.1]), expectation="exact_enumeration"),
    dict(loss="ncl_squared", encoder="symrelu", bias=-0.2, latent=("bernoulli", 0.5), p=1, d=1),
    # a separable pair term (a sum over neurons): any sign-symmetric latent law
    dict(loss="ncl_squared", encoder="symrelu", bias=-0.3, constraint="unit_rows", latent=("bernoulli", 0.5)),
    dict(loss="ncl_squared", encoder="symrelu", bias="trainable", latent=("bernoulli", 0.4)),
]


def assert_same_value_gradient_norm_and_spectrum(loss, theta, moved):
    """L, |grad L| and the Hessian spectrum agree at theta and at its image ``moved``."""
    value, spectrum = loss.value(theta), np.linalg.eigvalsh(loss.hessian(theta))
    assert loss.value(moved) == pytest.approx(value, rel=1e-11, abs=1e-12)
    gradient = np.linalg.norm(loss.gradient(theta))
    assert np.linalg.norm(loss.gradient(moved)) == pytest.approx(gradient, rel=1e-9, abs=1e-11)
    other_spectrum = np.linalg.eigvalsh(loss.hessian(moved))
    np.testing.assert_allclose(other_spectrum, spectrum, rtol=1e-9, atol=1e-9 * np.abs(spectrum).max())


@pytest.mark.parametrize("kwargs", ENTRY_FLIP_SETTINGS, ids=lambda k: "-".join(map(str, k.values())))
def test_entry_sign_flips_keep_value_gradient_norm_and_spectrum(kwargs):
    """L, |grad L| and the Hessian spectrum are unchanged when W_ij and W_t_ij are negated together,
    for random independent signs of every entry pair (the action is a linear isometry)."""
    setting = Setting(**{"p": 3, "d": 3, "m": 3, **kwargs})
    loss = population_loss(setting)
    group = loss.symmetries
    assert group.entry_sign_flips and "entry signs" in group.describe()
    rng = np.random.default_rng(11)
    for _ in range(3):
        theta = random_point(loss, rng)
        flipped = group.flip_entries(theta, rng.choice([-1.0, 1.0], loss.layout.shapes["W"]))
        assert not np.allclose(flipped, theta)
        assert_same_value_gradient_norm_and_spectrum(loss, theta, flipped)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(loss="spectral", encoder="symrelu", bias=-0.3, constraint="unit_rows"),
        dict(loss="infonce", encoder="symrelu", bias=-0.3, constraint="unit_rows"),
        dict(loss="ncl_predictor", encoder="symrelu", bias=-0.3, constraint="unit_rows"),
        dict(loss="ncl_squared", encoder="symrelu", bias=-0.3, constraint="unit_rows", latent=("fixed_count", 2, 1)),
        dict(loss="ncl_cosine", encoder="symrelu", bias=-0.3, constraint="unit_rows", latent=("bernoulli", 0.5)),
        dict(
            loss="ncl_squared",
            encoder="symrelu",
            bias=-0.3,
            latent=("bernoulli", 0.5),
            expectation=("sample_average", 50, 0),
        ),
        dict(loss="ncl_squared", encoder="linear", constraint="unit_rows", dictionary=("random", 2), p=4),
    ],
    ids=["spectral", "infonce", "predictor", "two-sparse", "cosine-bernoulli", "sampled-bernoulli", "random-M"],
)
def test_entry_sign_flips_are_not_symmetries_beyond_their_conditions(kwargs):
    """Repulsion (spectral, InfoNCE), a predictor, two non-zeros per input (positive-negative codes
    for the separable ncl_squared, a symmetric law for ncl_cosine, a finite sample of a symmetric
    law for ncl_squared) or a random M: flipping one entry pair changes the loss, and the rule does
    not declare the flips."""
    setting = Setting(**{"p": 3, "d": 3, "m": 3, **kwargs})
    loss = population_loss(setting)
    assert not loss.symmetries.entry_sign_flips
    rng = np.random.default_rng(2)
    theta = random_point(loss, rng)
    signs = np.ones(loss.layout.shapes["W"])
    signs[0, 1] = -1.0
    blocks = loss.layout.unpack(theta)
    for name in ("W", "W_t"):
        if name in blocks:
            blocks[name] = blocks[name] * signs
    # exact sums (population or a fixed sample): an invariant loss would agree to rounding, ~1e-16
    assert abs(loss.value(loss.layout.pack(**blocks)) - loss.value(theta)) > 1e-8  # predictor: (L_o + L_t) / 2


def test_entry_sign_flips_keep_positive_one_hot_losses_but_not_the_collapsed_label():
    """With positive one_hot codes the loss is still invariant, but f constant on the data (every
    column sigma_b(W e_j) equal) is broken by one flip: why the rule also asks for signed codes."""
    setting = Setting(p=3, d=3, m=3, loss="ncl_squared", encoder="symrelu", bias=-0.3, latent=("one_hot", "positive"))
    loss = population_loss(setting)
    assert not loss.symmetries.entry_sign_flips
    theta = loss.pack(W=np.full((3, 3), 0.6), W_t=np.full((3, 3), 0.5))
    signs = np.ones((3, 3))
    signs[1, 2] = -1.0
    flipped = loss.symmetries.flip_entries(theta, signs)
    assert loss.value(flipped) == pytest.approx(loss.value(theta), rel=1e-12)
    assert label_point(setting, loss.unpack(theta)).label == "collapsed"
    assert label_point(setting, loss.unpack(flipped)).label != "collapsed"
    signed = population_loss(Setting(p=3, d=3, m=3, loss="ncl_squared", encoder="symrelu", bias=-0.3))
    assert signed.symmetries.entry_sign_flips


def test_linear_encoders_with_rotations_do_not_declare_entry_sign_flips():
    """O(m) and entry flips generate O(m)^p, which is not declared: nothing is added there."""
    loss = population_loss(Setting(p=3, d=3, m=3, loss="ncl_squared", encoder="linear"))
    assert loss.symmetries.rotations and not loss.symmetries.entry_sign_flips
    with pytest.raises(ValueError, match="entry_sign_flips"):
        dataclasses.replace(loss.symmetries, entry_sign_flips=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(loss="spectral", encoder="linear", dictionary=("random", 5), noise=0.1, p=4),
        dict(loss="infonce", encoder="linear"),
        dict(loss="ncl_cosine", encoder="symrelu", bias="trainable"),
    ],
    ids=["spectral-O(m)", "infonce-O(m)+scale", "ncl_cosine-scales"],
)
def test_generators_span_null_directions_at_stationary_points(kwargs):
    setting = Setting(**{"p": 3, "d": 3, "m": 3, **kwargs})
    loss = population_loss(setting)
    result = enumerate_critical_points(setting, n_restarts=12, seed=0, executor=InProcessExecutor(), progress=False)
    entries = list(result) + list(result.manifolds)  # isolated points and representatives of flat sets
    assert entries
    for point in entries[:3]:
        theta = loss.pack(**point.params)
        hessian = loss.hessian(theta)
        generators = loss.symmetry_generators(theta)
        scale = 1.0 + np.abs(hessian).max()
        np.testing.assert_allclose(hessian @ generators, 0, atol=1e-7 * scale * (1 + np.abs(generators).max()))
    if setting.loss.name == "spectral":  # a generic minimum: the null space is exactly the O(m) orbit
        minimum = next(p for p in result if p.kind == "minimum")
        theta = loss.pack(**minimum.params)
        eigenvalues, vectors = np.linalg.eigh(loss.hessian(theta))
        null = vectors[:, np.abs(eigenvalues) < 1e-7 * np.abs(eigenvalues).max()]
        generators = loss.symmetry_generators(theta)
        assert null.shape[1] == generators.shape[1] == 3
        basis = np.linalg.qr(generators)[0]
        np.testing.assert_allclose(basis @ (basis.T @ null), null, atol=1e-6)


#: Settings with a separable pair loss (ncl_squared) under the population law of exchangeable data
#: (M = I): row-entry permutations are declared (derivations/symmetries.md item 7).
ROW_PERMUTATION_SETTINGS = [
    dict(loss="ncl_squared", encoder="symrelu", bias=-0.3, constraint="unit_rows"),
    dict(loss="ncl_squared", encoder="symrelu", bias=np.array([-0.3, 0.2, -0.1]), latent=("one_hot", "positive")),
    dict(loss="ncl_squared", encoder="symrelu", bias=-0.3, constraint="unit_rows", latent=("fixed_count", 2, 1)),
    dict(
        loss="ncl_squared",
        encoder="symrelu",
        bias="trainable",
        augmentation="complementary_mask",
        latent=("bernoulli", 0.5),
    ),  # fmt: skip
    dict(loss="ncl_squared", encoder="linear", constraint="unit_rows", latent=("one_hot", "positive"), noise=0.1),
    dict(loss="ncl_squared", encoder="symrelu", bias="trainable", latent=("fixed_count", 2, 2)),
]


def _row_permutations(rng, m, p):
    return np.stack([rng.permutation(p) for _ in range(m)])


@pytest.mark.parametrize("kwargs", ROW_PERMUTATION_SETTINGS, ids=lambda k: "-".join(map(str, k.values())))
def test_row_entry_permutations_keep_value_gradient_norm_and_spectrum(kwargs):
    """L, |grad L| and the Hessian spectrum are unchanged when the entries of each row of W and W_t are
    permuted by that row's own random permutation (with neuron permutations and declared signs)."""
    setting = Setting(**{"p": 3, "d": 3, "m": 3, **kwargs})
    loss = population_loss(setting)
    group = loss.symmetries
    assert group.row_entry_permutations and "(S_3)^3 row entries" in group.describe()
    rng = np.random.default_rng(12)
    for _ in range(3):
        theta = random_point(loss, rng)
        moved = group.permute_row_entries(theta, _row_permutations(rng, 3, 3))
        moved = (
            group.permute(moved, rng.permutation(list(group.permutable[0]))) if len(group.permutable) == 1 else moved
        )
        if group.entry_sign_flips:
            moved = group.flip_entries(moved, rng.choice([-1.0, 1.0], (3, 3)))
        else:
            moved = group.flip(moved, rng.choice([-1.0, 1.0], 3))
        assert_same_value_gradient_norm_and_spectrum(loss, theta, moved)


def _swap_first_entries(loss, theta):
    """theta with W_00 and W_01 exchanged, and W_t_00 and W_t_01: a row-entry permutation of row 0 alone."""
    m, p = loss.layout.shapes["W"]
    permutations = np.tile(np.arange(p), (m, 1))
    permutations[0, :2] = [1, 0]
    return loss.symmetries.permute_row_entries(theta, permutations)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(loss="spectral", encoder="symrelu", bias=-0.3, constraint="unit_rows"),
        dict(loss="infonce", encoder="symrelu", bias=-0.3, constraint="unit_rows"),
        dict(loss="ncl_cosine", encoder="symrelu", bias=-0.3, constraint="unit_rows"),
        dict(loss="ncl_predictor", encoder="symrelu", bias=-0.3, constraint="unit_rows", normalize=False),
        dict(loss="ncl_squared", encoder="linear", constraint="unit_rows", dictionary=("random", 2), p=4),
        dict(loss="ncl_squared", encoder="symrelu", bias=-0.3, expectation=("sample_average", 50, 0)),
    ],
    ids=["spectral", "infonce", "cosine", "predictor-field", "random-M", "sampled"],
)
def test_row_entry_permutations_are_not_symmetries_beyond_their_conditions(kwargs):
    """A repulsion, a cosine, a predictor, a random M or a finite sample: exchanging two entries of one
    row changes the loss, and the rule does not declare the group."""
    setting = Setting(**{"p": 3, "d": 3, "m": 3, **kwargs})
    loss = population_loss(setting)
    assert not loss.symmetries.row_entry_permutations
    theta = random_point(loss, np.random.default_rng(4))
    # exact sums (population or a fixed sample): an invariant loss would agree to rounding, ~1e-16
    assert abs(loss.value(_swap_first_entries(loss, theta)) - loss.value(theta)) > 1e-8


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        (dict(constraint="unit_columns"), "column norms"),
        (dict(encoder="linear", bias=None, latent=("one_hot", "positive")), "rotations"),
        (dict(encoder="linear", bias=None, constraint="unit_rows", noise=0.1), "column signs"),
    ],
)
def test_row_entry_permutations_are_left_undeclared_where_the_loss_keeps_them(kwargs, reason):
    """Where the loss is invariant but the group is not declared (derivations/symmetries.md item 7): unit
    columns (the action leaves the manifold), O(m) (a larger continuous group), and column signs
    without entry signs (a sign-symmetric law with noise: not quotiented)."""
    merged = {**dict(p=3, d=3, m=3, loss="ncl_squared", encoder="symrelu", bias=-0.3), **kwargs}
    setting = Setting(**{name: value for name, value in merged.items() if value is not None})
    loss = population_loss(setting)
    group = loss.symmetries
    assert not group.row_entry_permutations
    theta = random_point(loss, np.random.default_rng(6))
    moved = _swap_first_entries(loss, theta)
    assert loss.value(moved) == pytest.approx(loss.value(theta), rel=1e-11, abs=1e-12)
    if reason == "column norms":
        assert not np.allclose(loss.manifold.project(moved), moved)
    elif reason == "rotations":
        assert group.rotations
    else:
        assert group.input_sign_flips and not group.entry_sign_flips
        with pytest.raises(ValueError, match="row_entry_permutations"):
            dataclasses.replace(group, row_entry_permutations=True)
    with pytest.raises(ValueError, match="row_entry_permutations"):
        dataclasses.replace(group, rotations=True, entry_sign_flips=False, row_entry_permutations=True)


def test_row_entry_permutations_keep_the_collapse_and_dead_labels_but_not_the_alignment():
    """On a support closed under coordinate permutations, f constant and dead neurons are kept; the
    alignment is not: W = I and W with every row e_1 are one orbit with one loss, good and bad."""
    setting = Setting(p=3, d=3, m=3, loss="ncl_squared", encoder="symrelu", bias=-0.3, constraint="unit_rows")
    loss = population_loss(setting)
    group = loss.symmetries
    identity = loss.pack(W=np.eye(3), W_t=np.eye(3))
    stacked = group.permute_row_entries(identity, np.array([[0, 1, 2], [1, 0, 2], [2, 1, 0]]))
    assert np.array_equal(loss.unpack(stacked)["W"], np.tile(np.eye(3)[:1], (3, 1)))
    assert loss.value(stacked) == pytest.approx(loss.value(identity), rel=1e-12)
    assert label_point(setting, loss.unpack(identity)).label == "good"
    assert label_point(setting, loss.unpack(stacked)).label == "bad"
    positive = Setting(p=3, d=3, m=3, loss="ncl_squared", encoder="symrelu", bias=-0.3, latent=("one_hot", "positive"))
    positive_loss = population_loss(positive)
    rng = np.random.default_rng(3)
    for W, W_t in ((np.full((3, 3), 0.6), np.full((3, 3), 0.5)), (rng.normal(size=(3, 3)), rng.normal(size=(3, 3)))):
        W[1] = 0.2  # neuron 1 dead under the bias -0.3
        theta = positive_loss.pack(W=W, W_t=W_t)
        moved = positive_loss.symmetries.permute_row_entries(theta, _row_permutations(rng, 3, 3))
        before, after = (
            label_point(positive, positive_loss.unpack(theta)),
            label_point(positive, positive_loss.unpack(moved)),
        )
        assert (before.label == "collapsed") == (after.label == "collapsed") and before.dead == after.dead >= 1


def test_a_dictionary_one_part_in_a_billion_from_the_identity_declares_none_of_its_symmetries():
    """The symmetries of M = I (input permutations, entry flips, row-entry permutations) hold only for
    M = I exactly: 4e-9 away, a row-entry permutation changes the loss by about as much."""
    rng = np.random.default_rng(5)
    S = rng.standard_normal((3, 3))
    S = (S + S.T) / 2 / np.abs(S + S.T).max()
    options = dict(p=3, d=3, m=3, loss="ncl_squared", latent=("bernoulli", 0.5), encoder="linear")
    options["constraint"] = "unit_rows"
    exact = population_loss(Setting(dictionary=np.eye(3), **options)).symmetries
    assert exact.input_permutations and exact.row_entry_permutations
    near = population_loss(Setting(dictionary=np.eye(3) + 4e-9 * S, **options))
    group = near.symmetries
    assert not (group.input_permutations or group.entry_sign_flips or group.row_entry_permutations)
    theta = near.manifold.project(rng.standard_normal(near.n_params))
    moved = exact.permute_row_entries(theta, np.stack([rng.permutation(3) for _ in range(3)]))
    assert abs(near.value(moved) - near.value(theta)) > 1e-10
