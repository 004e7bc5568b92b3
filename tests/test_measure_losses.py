"""The finite-measure evaluators against an independent autograd reference.

Every loss family x encoder (linear, symrelu with a fixed bias, symrelu with a trainable
bias) x tied/untied x normalisation is compared with tests/autograd_reference.py (written
from the definitions, looping over the support) at random parameters on random small
measures that include zero views, so that n(0) = 0 is exercised. Parameters are drawn
away from the kinks of the symmetric ReLU for the derivative comparison; a separate test
puts pre-activations exactly on the kinks and representations exactly at zero.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from autograd_reference import Setup, encoder_output, reference_derivatives
from conftest import ROOT
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from critpoints.data.finite_measure import FiniteMeasure
from critpoints.losses.measure import MeasureEvaluator, internal_index
from critpoints.losses.parameters import ParameterLayout
from derivations import pointwise_losses

pytestmark = pytest.mark.filterwarnings("ignore:Output seems independent of input")

ENCODINGS = ("linear", "symrelu_fixed", "symrelu_trainable")
TWO_ENCODER = ("ncl_squared", "ncl_cosine", "ncl_predictor")


def _configurations():
    for family in ("spectral", "infonce", "ncl_squared", "ncl_cosine", "ncl_predictor"):
        for encoding in ENCODINGS:
            for tied in (False, True) if family in TWO_ENCODER else (False,):
                for normalize in (True, False) if family == "ncl_predictor" else (True,):
                    name = f"{family}-{encoding}-tied{tied:d}-norm{normalize:d}"
                    yield pytest.param(family, encoding, tied, normalize, id=name)


CONFIGURATIONS = list(_configurations())


def random_measure(rng: np.random.Generator, p: int, n_pairs: int, n_anchors: int, n_negatives: int) -> FiniteMeasure:
    """Random points (some of them zero views, some repeated) with positive weights summing to one."""

    def points(n: int) -> np.ndarray:
        x = rng.normal(size=(n, p))
        x[rng.random(n) < 0.25] = 0.0
        return x

    def weights(n: int) -> np.ndarray:
        w = rng.uniform(0.1, 1.0, size=n)
        return w / w.sum()

    x1, x2 = points(n_pairs), points(n_pairs)
    x2[0] = 0.0  # a masked-out view: zero representation for every encoder
    if n_pairs > 1:
        x1[1] = x1[0]  # a repeated view, merged by the evaluator
    negative = points(n_negatives)
    negative[-1] = 0.0
    anchor = points(n_anchors)
    return FiniteMeasure(x1, x2, weights(n_pairs), anchor, weights(n_anchors), negative, weights(n_negatives))


def evaluator_and_reference(family, encoding, tied, normalize, measure, m, rng, temperature=0.7):
    p = measure.x1.shape[1]
    encoder = "linear" if encoding == "linear" else "symrelu"
    options = {}
    if encoding == "symrelu_trainable":
        options["trainable_bias"] = True
    if encoding == "symrelu_fixed":
        b = rng.normal(scale=0.5, size=m)
        one_encoder = tied or family not in TWO_ENCODER
        options["fixed_bias"] = (b, b if one_encoder else rng.normal(scale=0.5, size=m))
    common = dict(tied=tied, temperature=temperature, normalize=normalize, **options)
    evaluator = MeasureEvaluator(family, measure, encoder=encoder, m=m, **common)
    return evaluator, Setup(family, encoder, m, p, **common)


def preactivation_margin(setup: Setup, theta: np.ndarray, measure: FiniteMeasure) -> float:
    """Distance of the nearest pre-activation to a kink of the symmetric ReLU (inf for linear)."""
    if setup.encoder == "linear":
        return np.inf
    points = np.concatenate([measure.x1, measure.x2, measure.anchor, measure.negative])
    margins = []
    for weights, bias in setup.unpack(theta)[:2]:
        t = points @ np.asarray(weights).T
        margins.append(np.min(np.abs(np.concatenate([t + bias, -t + bias]))))
    return float(min(margins))


def ours(evaluator: MeasureEvaluator, theta: np.ndarray):
    if evaluator.is_field:
        field, jacobian = evaluator.field_and_jacobian(theta)
        return evaluator.value(theta), field, jacobian
    return evaluator.value(theta), evaluator.gradient(theta), evaluator.hessian(theta)


def conditioning(setup: Setup, theta: np.ndarray, measure: FiniteMeasure) -> float:
    """1 / (smallest non-zero |f(x)|)^2: the size of the terms that cancel in a cosine's
    second derivatives, hence the scale of their rounding errors (1 for other losses)."""
    if setup.family not in ("infonce", "ncl_cosine", "ncl_predictor"):
        return 1.0
    points = np.concatenate([measure.x1, measure.x2, measure.anchor, measure.negative])
    norms = [np.linalg.norm(encoder_output(setup, params, x)) for params in setup.unpack(theta)[:2] for x in points]
    smallest = min((n for n in norms if n > 0), default=1.0)
    return 1.0 / smallest**2 / (setup.temperature if setup.family == "infonce" else 1.0)


def assert_matches(mine, reference, conditioning: float = 1.0) -> None:
    (value, first, second), (ref_value, ref_first, ref_second) = mine, reference
    scale = 1.0 + np.max(np.abs(ref_second)) + conditioning
    assert np.isfinite(value) and np.all(np.isfinite(first)) and np.all(np.isfinite(second))
    np.testing.assert_allclose(value, ref_value, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(first, ref_first, rtol=1e-7, atol=1e-9 * scale)
    np.testing.assert_allclose(second, ref_second, rtol=1e-7, atol=1e-9 * scale)


@pytest.mark.parametrize(("family", "encoding", "tied", "normalize"), CONFIGURATIONS)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(1, 4),
    p=st.integers(1, 4),
    sizes=st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3)),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_autograd_reference(family, encoding, tied, normalize, m, p, sizes, seed):
    rng = np.random.default_rng(seed)
    measure = random_measure(rng, p, *sizes)
    evaluator, setup = evaluator_and_reference(family, encoding, tied, normalize, measure, m, rng)
    assert evaluator.n_params == setup.n_params()
    theta = rng.normal(scale=0.8, size=evaluator.n_params)
    assume(preactivation_margin(setup, theta, measure) > 1e-4)
    rounding_scale = conditioning(setup, theta, measure)
    assert_matches(ours(evaluator, theta), reference_derivatives(setup, measure, theta), rounding_scale)


# ---------------------------------------------------------------------------------
# Conventions at kinks and at zero representations
# ---------------------------------------------------------------------------------


def piece_entered_as_t_increases(t, b, x):
    """The documented convention: a1 = [t + b >= 0], a2 = [-t + b > 0]; nothing for x = 0."""
    nonzero = float(np.any(x != 0))
    return nonzero * (t + b >= 0).astype(float), nonzero * (-t + b > 0).astype(float)


def kink_point(family: str, trainable: bool, tied: bool, normalize: bool):
    """m = 2, p = 2, every kind of exact kink and exact zero representations.

    w_0 = (1, 1/4), b_0 = 1/2 (slope 2 between the kinks t = -1/2 and t = 1/2) and
    w_1 = (-1/2, 1/4), b_1 = -1/4 (soft thresholding, kinks at t = -1/4 and 1/4); all the
    numbers are dyadic, so every pre-activation below is exact:

    xa = (-3/4, 1)   t_0 = -1/2: t_0 + b_0 = 0 (kink), f = (-1, 3/8)
    xb = (1/2, 2)    t_1 = 1/4:  t_1 + b_1 = 0 (kink), f = (3/2, 0)
    xc = (1/4, 1)    t_0 = 1/2:  -t_0 + b_0 = 0 (kink), f = (1, 0)
    xd = (-1/8, 1/2) t_0 = 0, |t_1| < 1/4: f(xd) = 0 for a nonzero view
    xe = (3/10, -7/10) no kink;  0: a masked-out view, f = 0
    """
    m, p = 2, 2
    weights = np.array([[1.0, 0.25], [-0.5, 0.25]])
    bias = np.array([0.5, -0.25])
    xa, xb, xc, xd, xe, zero = np.array([[-0.75, 1.0], [0.5, 2.0], [0.25, 1.0], [-0.125, 0.5], [0.3, -0.7], [0.0, 0.0]])
    measure = FiniteMeasure(
        x1=np.array([xa, xb, xc, xd, zero, xe]),
        x2=np.array([xe, xa, xb, xa, xc, xd]),
        pair_weight=np.array([0.25, 0.2, 0.15, 0.15, 0.1, 0.15]),
        anchor=np.array([xa, xd, xc, xe]),
        anchor_weight=np.array([0.4, 0.2, 0.2, 0.2]),
        negative=np.array([xb, zero, xe, xa]),
        negative_weight=np.array([0.3, 0.2, 0.2, 0.3]),
    )
    options = dict(tied=tied, normalize=normalize, temperature=0.5)
    options |= {"trainable_bias": True} if trainable else {"fixed_bias": (bias, bias)}
    evaluator = MeasureEvaluator(family, measure, encoder="symrelu", m=m, **options)
    setup = Setup(family, "symrelu", m, p, frozen_patterns=piece_entered_as_t_increases, **options)
    blocks = {"W": weights, "W_t": weights, "b": bias, "b_t": bias, "P": np.array([[0.7, -0.2], [0.4, 1.1]])}
    theta = evaluator.layout.pack(**{name: blocks[name] for name in evaluator.layout.names})
    return evaluator, setup, measure, theta


SYMRELU_CONFIGURATIONS = [c for c in CONFIGURATIONS if c.values[1] != "linear"]


@pytest.mark.parametrize(("family", "encoding", "tied", "normalize"), SYMRELU_CONFIGURATIONS)
def test_exact_kinks_and_zero_representations_use_the_documented_piece(family, encoding, tied, normalize):
    evaluator, setup, measure, theta = kink_point(family, encoding == "symrelu_trainable", tied, normalize)
    assert preactivation_margin(setup, theta, measure) == 0.0
    assert_matches(ours(evaluator, theta), reference_derivatives(setup, measure, theta))


def test_kink_convention_is_not_the_other_piece():
    """The kink test can tell the one-sided pieces apart."""

    def strictly_above_threshold(t, b, x):
        return (t + b > 0).astype(float), (-t + b > 0).astype(float)

    evaluator, setup, measure, theta = kink_point("ncl_cosine", True, False, True)
    other = Setup("ncl_cosine", "symrelu", 2, 2, trainable_bias=True, frozen_patterns=strictly_above_threshold)
    _, other_gradient, _ = reference_derivatives(other, measure, theta)
    assert np.max(np.abs(evaluator.gradient(theta) - other_gradient)) > 1e-3


@pytest.mark.parametrize("family", ["infonce", "ncl_cosine", "ncl_predictor"])
def test_zero_representations_everywhere_give_finite_constant_losses(family):
    """W = 0: every representation is zero, every cosine is 0 and so is every derivative."""
    rng = np.random.default_rng(3)
    measure = random_measure(rng, 3, 4, 3, 3)
    evaluator = MeasureEvaluator(family, measure, encoder="linear", m=2, temperature=0.3)
    theta = np.zeros(evaluator.n_params)
    expected_value = {"infonce": 0.0, "ncl_cosine": 2.0, "ncl_predictor": 2.0}[family]
    assert evaluator.value(theta) == pytest.approx(expected_value, abs=1e-14)
    first, second = evaluator.field_and_jacobian(theta)
    assert np.all(first == 0.0) and np.all(second == 0.0)


# ---------------------------------------------------------------------------------
# Structure of the evaluators
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["spectral", "infonce", "ncl_cosine", "ncl_predictor"])
def test_splitting_support_points_changes_nothing(family):
    """A point given twice with half its weight is the same measure (merged internally)."""
    rng = np.random.default_rng(11)
    measure = random_measure(rng, 3, 4, 3, 3)
    split = FiniteMeasure(
        np.concatenate([measure.x1, measure.x1]),
        np.concatenate([measure.x2, measure.x2]),
        np.concatenate([measure.pair_weight, measure.pair_weight]) / 2,
        np.concatenate([measure.anchor, measure.anchor[:1]]),
        np.concatenate([measure.anchor_weight[:1] / 2, measure.anchor_weight[1:], measure.anchor_weight[:1] / 2]),
        measure.negative[::-1],
        measure.negative_weight[::-1],
    )
    options = dict(encoder="symrelu", m=3, trainable_bias=True, temperature=0.4)
    merged, unmerged = MeasureEvaluator(family, measure, **options), MeasureEvaluator(family, split, **options)
    theta = rng.normal(size=merged.n_params)
    np.testing.assert_allclose(merged.value(theta), unmerged.value(theta), rtol=1e-12)
    for a, b in zip(merged.field_and_jacobian(theta), unmerged.field_and_jacobian(theta)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_infonce_is_stable_at_small_temperature():
    """tau = 1e-3: exp(cos/tau) overflows, the shifted log-sum-exp does not."""
    rng = np.random.default_rng(5)
    measure = random_measure(rng, 3, 3, 3, 4)
    tau = 1e-3
    evaluator = MeasureEvaluator("infonce", measure, encoder="linear", m=2, temperature=tau)
    theta = rng.normal(size=evaluator.n_params)
    weights = theta.reshape(2, 3)

    def cosine(u, v):
        nu, nv = np.linalg.norm(u), np.linalg.norm(v)
        return 0.0 if nu == 0 or nv == 0 else u @ v / (nu * nv)

    f = lambda x: weights @ x  # noqa: E731
    expected = -sum(w * cosine(f(a), f(b)) for a, b, w in zip(measure.x1, measure.x2, measure.pair_weight)) / tau
    for a, wa in zip(measure.anchor, measure.anchor_weight):
        s = np.array([cosine(f(a), f(j)) / tau for j in measure.negative])
        top = s.max()
        expected += wa * (top + np.log(np.sum(measure.negative_weight * np.exp(s - top))))
    assert evaluator.value(theta) == pytest.approx(expected, rel=1e-12)
    _, gradient, hessian = evaluator.value_gradient_hessian(theta)
    assert np.all(np.isfinite(gradient)) and np.all(np.isfinite(hessian))
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-9 * (1 + np.abs(hessian).max()))


def test_predictor_jacobian_is_not_symmetric_and_gradient_families_are():
    rng = np.random.default_rng(2)
    measure = random_measure(rng, 3, 4, 2, 2)
    predictor = MeasureEvaluator("ncl_predictor", measure, encoder="linear", m=3)
    theta = rng.normal(size=predictor.n_params)
    jacobian = predictor.jacobian(theta)
    assert np.max(np.abs(jacobian - jacobian.T)) > 1e-3
    cosine = MeasureEvaluator("ncl_cosine", measure, encoder="linear", m=3)
    hessian = cosine.hessian(rng.normal(size=cosine.n_params))
    np.testing.assert_allclose(hessian, hessian.T, rtol=0, atol=1e-12)


def test_one_hot_masked_cosine_minimum_matches_the_closed_form():
    """derivations/CLAIMS.md, claim 2: M = I, one-hot codes, symrelu with a fixed negative bias, W = I attains
    2 - 2(1-q)^2 for ncl_cosine (a view is either the atom or zero), and is stationary."""
    d, drop = 3, 0.3
    keep = 1 - drop
    x1, x2, w = [], [], []
    for j in range(d):
        for sign in (1.0, -1.0):
            for kept1 in (0, 1):
                for kept2 in (0, 1):
                    atom = np.zeros(d)
                    atom[j] = sign
                    x1.append(kept1 * atom)
                    x2.append(kept2 * atom)
                    w.append((keep if kept1 else drop) * (keep if kept2 else drop) / (2 * d))
    x1, x2, w = np.array(x1), np.array(x2), np.array(w)
    measure = FiniteMeasure(x1, x2, w, x1, w, x2, w)
    bias = np.full(d, -0.4)
    evaluator = MeasureEvaluator("ncl_cosine", measure, encoder="symrelu", m=d, fixed_bias=(bias, bias))
    theta = np.concatenate([np.eye(d).ravel(), np.eye(d).ravel()])
    assert evaluator.value(theta) == pytest.approx(2 - 2 * keep**2, abs=1e-14)
    assert np.max(np.abs(evaluator.gradient(theta))) < 1e-14


def test_parameter_layout_blocks_and_round_trip():
    layout = ParameterLayout.for_model(m=3, p=2, two_encoders=True, trainable_bias=True, predictor=True)
    assert layout.names == ("W", "W_t", "b", "b_t", "P")
    assert layout.size == 6 + 6 + 3 + 3 + 9
    theta = np.arange(layout.size, dtype=float)
    blocks = layout.unpack(theta)
    np.testing.assert_array_equal(blocks["b_t"], [15.0, 16.0, 17.0])
    np.testing.assert_array_equal(layout.pack(**blocks), theta)
    index = internal_index(layout)
    assert sorted(index.tolist()) == list(range(layout.size))
    # neuron-major: neuron 1 of the online encoder owns (w_1, b_1) = entries 2, 3 and 12 of theta
    np.testing.assert_array_equal(np.argsort(index)[3:6], [2, 3, 13])


# ---------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------


def _measure(p: int = 2) -> FiniteMeasure:
    return random_measure(np.random.default_rng(0), p, 3, 2, 2)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (dict(family="simclr", encoder="linear", m=2), ValueError, r"unknown family 'simclr'; known: 'spectral'"),
        (dict(family="spectral", encoder="tanh", m=2), ValueError, r"unknown encoder 'tanh'; known: 'linear'"),
        (dict(family="spectral", encoder="linear", m=0), ValueError, r"m must be an integer >= 1, got m=0"),
        (dict(family="spectral", encoder="linear", m=True), TypeError, r"m must be an integer, got True"),
        (
            dict(family="infonce", encoder="linear", m=2, temperature=0.0),
            ValueError,
            r"temperature must lie in \(0.0, inf\], got temperature=0.0",
        ),
        (
            dict(family="infonce", encoder="linear", m=2, temperature=float("nan")),
            ValueError,
            r"temperature must be a finite number .*temperature=nan",
        ),
        (
            dict(family="ncl_cosine", encoder="linear", m=2, normalize=False),
            ValueError,
            r"normalize=False applies only to a family with that option, got family='ncl_cosine'",
        ),
        (dict(family="spectral", encoder="linear", m=2, trainable_bias=True), ValueError, r"trainable_bias=True"),
        (dict(family="spectral", encoder="linear", m=2, fixed_bias=(0.1, 0.1)), ValueError, r"fixed_bias=\(0.1, 0.1\)"),
        (dict(family="spectral", encoder="symrelu", m=2), ValueError, r"exactly one of .*fixed_bias=None"),
        (
            dict(family="spectral", encoder="symrelu", m=2, fixed_bias=(0.1, 0.1), trainable_bias=True),
            ValueError,
            r"exactly one of .*trainable_bias=True",
        ),
        (
            dict(family="spectral", encoder="symrelu", m=2, fixed_bias=([1.0, 2.0, 3.0], 0.0)),
            ValueError,
            r"fixed_bias b must be a number or m=2 numbers, got fixed_bias b=\[1.0, 2.0, 3.0\]",
        ),
        (dict(family="spectral", encoder="symrelu", m=2, fixed_bias=(0.1, 0.2)), ValueError, r"must be equal"),
        (
            dict(family="ncl_cosine", encoder="symrelu", m=2, tied=True, fixed_bias=(0.1, 0.2)),
            ValueError,
            r"must be equal: this setting has one encoder",
        ),
        (
            dict(family="ncl_cosine", encoder="linear", m=2, tied="yes"),
            TypeError,
            r"tied must be True or False, got tied='yes'",
        ),
    ],
)
def test_invalid_arguments_are_named(arguments, error, message):
    with pytest.raises(error, match=message):
        MeasureEvaluator(arguments.pop("family"), _measure(), **arguments)


def test_invalid_measure_and_theta_are_named():
    measure = _measure()
    with pytest.raises(ValueError, match="measure.pair_weight must have entries >= 0.0"):
        MeasureEvaluator("spectral", measure._replace(pair_weight=-measure.pair_weight), encoder="linear", m=2)
    with pytest.raises(ValueError, match=r"measure.anchor must have shape \(n, 2\), got shape \(2, 3\)"):
        MeasureEvaluator("spectral", measure._replace(anchor=np.zeros((2, 3))), encoder="linear", m=2)
    with pytest.raises(ValueError, match="measure.pair_weight must have a positive weight"):
        MeasureEvaluator("spectral", measure._replace(pair_weight=0 * measure.pair_weight), encoder="linear", m=2)
    with pytest.raises(ValueError, match="measure.x2 must have finite entries"):
        MeasureEvaluator("ncl_cosine", measure._replace(x2=measure.x2 * np.nan), encoder="linear", m=2)
    evaluator = MeasureEvaluator("spectral", measure, encoder="linear", m=2)
    with pytest.raises(ValueError, match=r"theta must be a vector of length 4 \(blocks W\), got shape \(3,\)"):
        evaluator.value(np.zeros(3))


def test_predictor_is_a_field_not_a_gradient():
    evaluator = MeasureEvaluator("ncl_predictor", _measure(), encoder="linear", m=2)
    theta = np.ones(evaluator.n_params)
    assert evaluator.is_field
    for method in (evaluator.hessian, evaluator.gradient):
        with pytest.raises(TypeError, match="use field\\(\\) and jacobian\\(\\)"):
            method(theta)
    online, target = evaluator.objectives(theta)
    assert evaluator.value(theta) == pytest.approx((online + target) / 2)
    spectral = MeasureEvaluator("spectral", _measure(), encoder="linear", m=2)
    theta = np.linspace(-1, 1, spectral.n_params)
    assert not spectral.is_field
    np.testing.assert_array_equal(spectral.field(theta), spectral.gradient(theta))
    np.testing.assert_array_equal(spectral.jacobian(theta), spectral.hessian(theta))


# ---------------------------------------------------------------------------------
# The derivation script
# ---------------------------------------------------------------------------------


def test_generation_does_not_depend_on_the_hash_seed():
    here = pointwise_losses.generate()
    script = (
        "import sys\n"
        "from derivations import pointwise_losses as module\n"
        "sys.stdout.write(repr(sorted(module.generate().items())))\n"
    )
    for seed in ("0", "12345"):
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        )
        assert result.stdout == repr(sorted(here.items()))


@pytest.mark.parametrize("family", ["spectral", "infonce", "ncl_cosine", "ncl_predictor"])
def test_symrelu_with_zero_bias_is_the_linear_encoder_even_at_zero_preactivations(family):
    """sigma_0(t) = t: value, gradient and Hessian equal the linear encoder's, also where
    w_i . x = 0 exactly for a nonzero view (here W has exact zeros and views are one-hot)."""
    rng = np.random.default_rng(0)
    views = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    weight = rng.random(5)
    weight /= weight.sum()
    measure = FiniteMeasure(views, views[::-1].copy(), weight, views, weight, views, weight)
    options = dict(m=3, temperature=0.5)
    symrelu = MeasureEvaluator(family, measure, encoder="symrelu", fixed_bias=(np.zeros(3), np.zeros(3)), **options)
    linear = MeasureEvaluator(family, measure, encoder="linear", **options)
    blocks = {"W": np.eye(3) + np.triu(np.ones((3, 3)), 1) * 0.25, "W_t": np.eye(3)[::-1].copy(), "P": np.eye(3) * 1.5}
    theta = symrelu.layout.pack(**{name: blocks[name] for name in symrelu.layout.names})
    for mine, reference in zip(ours(symrelu, theta), ours(linear, theta)):
        np.testing.assert_allclose(mine, reference, rtol=0, atol=1e-13)
