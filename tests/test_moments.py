"""Moment identities of derivations/MODEL.md §1–2: closed forms vs the sympy derivation, vs
Monte Carlo (tolerance from the sample size and variance), vs exact enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp

import critpoints
from critpoints import Setting, exact_view_measure, sample_views, view_moments
from derivations import moments

LATENTS = ["one_hot", ("one_hot", "positive"), ("fixed_count", 2, 1), ("fixed_count", 3, 0), ("bernoulli", 0.4)]
AUGMENTATIONS = [("independent_mask", 0.0), ("independent_mask", 0.3), "complementary_mask"]


def make(latent, augmentation, *, p=4, d=4, dictionary="identity", noise=0.0) -> Setting:
    return Setting(
        p=p, d=d, m=2, loss="spectral", latent=latent, augmentation=augmentation, dictionary=dictionary, noise=noise
    )


# -- against the sympy derivation ------------------------------------------------------


LATENT_SIZES = [
    (latent, d)
    for latent in LATENTS[:1] + LATENTS[2:]
    for d in (1, 2, 5)
    if not (isinstance(latent, tuple) and latent[0] == "fixed_count" and latent[1] > d)
]


@pytest.mark.parametrize("latent, d", LATENT_SIZES)
def test_latent_moment_matches_derivation(latent, d):
    name = latent if isinstance(latent, str) else latent[0]
    obj = critpoints.model.latent.parse_latent(latent)
    diagonal, off_diagonal = moments.latent_moment_formulas()[name]
    subs = {
        moments.d: d,
        moments.k: getattr(obj, "k", 0),
        moments.k_neg: getattr(obj, "k_neg", 0),
        moments.prob: sp.Rational(2, 5),
    }
    expected = np.full((d, d), float(off_diagonal.subs(subs)) if d > 1 else 0.0)
    np.fill_diagonal(expected, float(diagonal.subs(subs)))
    np.testing.assert_allclose(obj.second_moment(d), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("augmentation", AUGMENTATIONS[1:])
def test_mask_moments_match_derivation(augmentation):
    """Each 2 x 2 principal block of the package's view moments equals the derived identity."""
    identities = moments.mask_identities()
    obj = critpoints.model.augmentation.parse_augmentation(augmentation)
    kind = "independent" if obj.name == "independent_mask" else "complementary"
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 5))
    a = a @ a.T
    same, cross, other = obj.view_moments(a)
    symbols = sp.symbols("a00 a01 a10 a11")
    for i, j in itertools.combinations(range(5), 2):
        block = a[np.ix_([i, j], [i, j])]
        subs = dict(zip(symbols, block.ravel()))
        if kind == "independent":
            subs[moments.rho] = obj.keep
        for label, value in ((f"{kind} same", same), (f"{kind} cross", cross), (f"{kind} same", other)):
            closed = np.array(identities[label][1].subs(subs).tolist(), dtype=float)
            np.testing.assert_allclose(value[np.ix_([i, j], [i, j])], closed, rtol=0, atol=1e-13)


def test_sparsity_helper_matches_paper_code():
    # k_neg = ceil(d s / 2), k = max(ceil(d s), ceil(d s / 2) + 1)
    assert critpoints.sparsity_to_counts(0.1, 10) == (2, 1)
    assert critpoints.sparsity_to_counts(0.3, 10) == (3, 2)
    assert critpoints.sparsity_to_counts(0.2, 20) == (4, 2)
    assert critpoints.sparsity_to_counts(0.5, 4) == (2, 1)


# -- against Monte Carlo ---------------------------------------------------------------

Z_SCORE = 5.5  # per entry; with ~10^3 entries over all cases the chance of a false alarm is < 1e-4


def assert_mean_matches(products: np.ndarray, expected: np.ndarray) -> None:
    """Mean over axis 0 equals ``expected`` within Z_SCORE standard errors, entry by entry."""
    n = products.shape[0]
    mean = products.mean(axis=0)
    standard_error = products.std(axis=0, ddof=1) / np.sqrt(n)
    excess = np.abs(mean - expected) - (Z_SCORE * standard_error + 1e-12)
    assert np.all(excess <= 0), f"max excess {excess.max():.3g}\nmean\n{mean}\nexpected\n{expected}"


CASES = [dict(latent=latent, augmentation=augmentation) for latent in LATENTS for augmentation in AUGMENTATIONS] + [
    dict(
        latent=("fixed_count", 2, 1),
        augmentation=("independent_mask", 0.5),
        p=6,
        d=3,
        dictionary=("random", 7),
        noise=0.3,
    ),
    dict(latent=("bernoulli", 0.3), augmentation="complementary_mask", p=5, d=4, dictionary=("random", 3), noise=0.2),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['latent']}-{c['augmentation']}-{c.get('dictionary', 'I')}")
def test_view_moments_match_monte_carlo(case):
    setting = make(**case)
    moments = view_moments(setting)
    sample = sample_views(setting, 40_000, seed=1)
    outer = lambda a, b: a[:, :, None] * b[:, None, :]  # noqa: E731
    assert_mean_matches(outer(sample.z, sample.z), moments.zz)
    assert_mean_matches(outer(sample.x, sample.x), moments.xx)
    assert_mean_matches(outer(sample.x1, sample.x1), moments.x1x1)
    assert_mean_matches(outer(sample.x1, sample.x2), moments.x1x2)
    assert_mean_matches(outer(sample.x2, sample.x2), moments.x2x2)
    assert_mean_matches(outer(sample.negative, sample.negative), moments.x2x2)
    # a negative is independent of the anchor view: E[x1 x'^T] = E[x1] E[x']^T
    view_mean = _view_mean(setting)
    assert_mean_matches(outer(sample.x1, sample.negative), np.outer(view_mean, view_mean))


def _view_mean(setting) -> np.ndarray:
    """E[x1] = E[D] M E[z] (E[2D] = I for complementary masks; the noise has mean 0)."""
    codes, weights = setting.latent.support(setting.d)
    keep = setting.augmentation.keep if setting.augmentation.name == "independent_mask" else 1.0
    return keep * setting.dictionary_matrix() @ (weights @ codes)


def test_monte_carlo_check_detects_a_wrong_moment():
    """The Monte Carlo tolerance is tight enough to catch a 10% error in one entry."""
    setting = make("one_hot", ("independent_mask", 0.3))
    moments = view_moments(setting)
    sample = sample_views(setting, 40_000, seed=1)
    wrong = moments.x1x1.copy()
    wrong[0, 0] *= 1.10
    with pytest.raises(AssertionError):
        assert_mean_matches(sample.x1[:, :, None] * sample.x1[:, None, :], wrong)


def test_sampler_is_reproducible():
    setting = make(("bernoulli", 0.5), ("independent_mask", 0.5), p=5, d=3, dictionary=("random", 1), noise=0.1)
    first, second = sample_views(setting, 100, seed=3), sample_views(setting, 100, seed=3)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.x1, sample_views(setting, 100, seed=4).x1)


# -- against exact enumeration ---------------------------------------------------------


def brute_force_view_law(setting):
    """Law of (x1, x2) and of one view by enumerating every code and every full p-mask pair."""
    codes, code_weights = setting.latent.support(setting.d)
    aug = setting.augmentation
    p = setting.p
    full = np.array(list(itertools.product((0.0, 1.0), repeat=p)))
    pairs, singles = {}, {}
    for z, wz in zip(codes, code_weights):
        for d1 in full:
            if aug.name == "independent_mask":
                w1 = np.prod(np.where(d1 == 1, aug.keep, aug.q))
                views1, second_masks = d1 * z, [(d2, np.prod(np.where(d2 == 1, aug.keep, aug.q))) for d2 in full]
            else:
                w1 = 0.5**p
                views1, second_masks = 2 * d1 * z, [(None, 1.0)]
            singles[tuple(views1)] = singles.get(tuple(views1), 0.0) + wz * w1
            for d2, w2 in second_masks:
                views2 = d2 * z if d2 is not None else 2 * (1 - d1) * z
                key = (tuple(views1), tuple(views2))
                pairs[key] = pairs.get(key, 0.0) + wz * w1 * w2
    return pairs, singles


@pytest.mark.parametrize("latent", LATENTS)
@pytest.mark.parametrize("augmentation", AUGMENTATIONS)
def test_exact_support_equals_brute_force(latent, augmentation):
    setting = make(latent, augmentation, p=3, d=3)
    measure = exact_view_measure(setting)
    pairs, singles = brute_force_view_law(setting)
    got_pairs = {(tuple(a), tuple(b)): w for a, b, w in zip(measure.x1, measure.x2, measure.pair_weight)}
    got_singles = {tuple(a): w for a, w in zip(measure.anchor, measure.anchor_weight)}
    pairs = {k: v for k, v in pairs.items() if v > 0}
    singles = {k: v for k, v in singles.items() if v > 0}
    assert got_pairs.keys() == pairs.keys()
    assert got_singles.keys() == singles.keys()
    for key, value in pairs.items():
        assert got_pairs[key] == pytest.approx(value, rel=1e-12, abs=1e-15)
    for key, value in singles.items():
        assert got_singles[key] == pytest.approx(value, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("latent", LATENTS)
@pytest.mark.parametrize("augmentation", AUGMENTATIONS)
def test_view_moments_match_exact_enumeration(latent, augmentation):
    setting = make(latent, augmentation, p=4, d=4)
    measure = exact_view_measure(setting)
    moments = view_moments(setting)
    w = measure.pair_weight
    np.testing.assert_allclose(measure.x1.T @ (w[:, None] * measure.x1), moments.x1x1, atol=1e-14)
    np.testing.assert_allclose(measure.x1.T @ (w[:, None] * measure.x2), moments.x1x2, atol=1e-14)
    np.testing.assert_allclose(measure.x2.T @ (w[:, None] * measure.x2), moments.x2x2, atol=1e-14)
    a = measure.anchor_weight
    np.testing.assert_allclose(measure.anchor.T @ (a[:, None] * measure.anchor), moments.x1x1, atol=1e-14)
    codes, weights = setting.latent.support(setting.d)
    np.testing.assert_allclose(codes.T @ (weights[:, None] * codes), moments.zz, atol=1e-15)
    assert w.sum() == pytest.approx(1.0, abs=1e-14) and a.sum() == pytest.approx(1.0, abs=1e-14)


def test_enumeration_size_counts_patterns():
    one_hot = Setting(p=4, d=4, m=2, loss="spectral", expectation="exact_enumeration")
    assert one_hot.expectation.support_size == 2 * 4 * 4  # 2d codes, 4 mask pairs on one coordinate
    setting = Setting(p=10, d=10, m=10, loss="ncl_cosine", encoder="symrelu", latent=("fixed_count", 2, 1))
    assert setting.expectation.support_size == 45 * 2 * 16  # C(10,2) C(2,1) codes, 4^2 mask pairs
    bernoulli = Setting(p=3, d=3, m=2, loss="infonce", latent=("bernoulli", 0.5), augmentation="complementary_mask")
    assert bernoulli.expectation.support_size == (1 + 2 * 2) ** 3  # per coordinate: 0, or +-1 with 2 patterns
