"""Setting construction: the documented short forms work and every bad input gets a clear error."""

from __future__ import annotations

import math

import numpy as np
import pytest

import critpoints
from critpoints import Setting

BASE = dict(p=4, d=4, m=3, loss="spectral")


def build(**changes) -> Setting:
    return Setting(**{**BASE, **changes})


def test_issue_example_and_objects():
    setting = Setting(
        p=4,
        d=4,
        m=4,
        dictionary="identity",
        latent="one_hot",
        augmentation=("independent_mask", 0.5),
        encoder="symrelu",
        bias=-0.3,
        constraint="unit_rows",
        loss="spectral",
    )
    np.testing.assert_array_equal(setting.bias, np.full(4, -0.3))
    assert setting.expectation.name == "exact_enumeration"
    np.testing.assert_array_equal(setting.dictionary_matrix(), np.eye(4))
    same = Setting(
        p=4,
        d=4,
        m=4,
        dictionary=critpoints.IdentityDictionary(),
        latent=critpoints.OneHot(),
        augmentation=critpoints.IndependentMask(0.5),
        encoder="symrelu",
        bias=-0.3,
        constraint="unit_rows",
        loss=critpoints.LossSpec("spectral"),
    )
    assert same.describe() == setting.describe()


def test_short_forms():
    assert build(latent=("fixed_count", 2, 1)).latent == critpoints.FixedCount(2, 1)
    assert build(latent=("bernoulli", 0.3)).latent == critpoints.Bernoulli(0.3)
    assert build(latent=("one_hot", "positive")).latent == critpoints.OneHot(positive=True)
    assert build(augmentation="complementary_mask").augmentation == critpoints.ComplementaryMask()
    random = build(p=6, dictionary=("random", 5))
    m = random.dictionary_matrix()
    assert m.shape == (6, 4)
    np.testing.assert_allclose(m.T @ m, np.eye(4), atol=1e-12)
    np.testing.assert_array_equal(m, build(p=6, dictionary=("random", 5)).dictionary_matrix())
    user = np.linalg.qr(np.random.default_rng(0).standard_normal((5, 4)))[0]
    np.testing.assert_array_equal(build(p=5, dictionary=user).dictionary_matrix(), user)
    assert build(encoder="symrelu", bias="trainable").trainable_bias
    np.testing.assert_array_equal(build(encoder="symrelu", bias=[0.1, -0.2, 0.0]).bias, [0.1, -0.2, 0.0])
    assert build(loss="infonce", temperature=0.05).loss.temperature == 0.05
    assert build(loss="infonce").loss.temperature == critpoints.model.setting.DEFAULT_TEMPERATURE
    assert build(loss="ncl_cosine", tied=True, encoder="symrelu").loss.two_encoders is False
    assert build(loss="ncl_predictor", normalize=False).loss.normalize is False


def test_expectation_modes():
    assert build().expectation.name == "closed_form"
    assert build(expectation="exact_enumeration").expectation.name == "exact_enumeration"
    assert build(encoder="symrelu", loss="ncl_cosine").expectation.name == "exact_enumeration"
    sampled = build(
        p=6, dictionary=("random", 1), encoder="symrelu", loss="infonce", expectation=("sample_average", 100, 3)
    )
    assert sampled.empirical and "empirical" in sampled.describe()
    assert "population" in build().describe()
    assert build(noise=0.1).expectation.name == "closed_form"


INVALID = [
    (dict(p=3, d=4), ValueError, r"p must be >= d.*p=3, d=4"),
    (dict(d=0), ValueError, r"d must be an integer >= 1, got d=0"),
    (dict(m=0), ValueError, r"m must be an integer >= 1, got m=0"),
    (dict(m=2.5), TypeError, r"m must be an integer, got 2.5"),
    (dict(p=True), TypeError, r"p must be an integer"),
    (dict(augmentation=("independent_mask", 1.0)), ValueError, r"q must lie in \[0.0, 1.0\), got q=1.0"),
    (dict(augmentation=("independent_mask", -0.1)), ValueError, r"q must lie in \[0.0, 1.0\), got q=-0.1"),
    (dict(latent=("bernoulli", 0.0)), ValueError, r"prob must lie in \(0.0, 1.0\], got prob=0.0"),
    (dict(latent=("bernoulli", 1.5)), ValueError, r"prob must lie in \(0.0, 1.0\], got prob=1.5"),
    (dict(latent=("fixed_count", 5, 1)), ValueError, r"k <= d, got k=5, d=4"),
    (dict(latent=("fixed_count", 2, 3)), ValueError, r"k_neg <= k, got k_neg=3, k=2"),
    (dict(noise=-0.1), ValueError, r"noise must lie in \[0.0, inf\], got noise=-0.1"),
    (
        dict(dictionary=np.eye(4)[:, :3]),
        ValueError,
        r"dictionary must have shape \(p, d\) = \(4, 4\), got shape \(4, 3\)",
    ),
    (
        dict(dictionary=2 * np.eye(4)),
        ValueError,
        r"orthonormal columns: max \|M\^T M - I\| = 3 exceeds the tolerance 1e-08",
    ),
    (dict(p=5, dictionary="identity"), ValueError, r"dictionary='identity' needs p == d, got p=5, d=4"),
    (dict(dictionary="fourier"), ValueError, r"unknown dictionary 'fourier'; known: 'identity', 'random'"),
    (dict(latent="gaussian"), ValueError, r"unknown latent 'gaussian'; known: 'one_hot', 'fixed_count', 'bernoulli'"),
    (
        dict(augmentation="crop"),
        ValueError,
        r"unknown augmentation 'crop'; known: 'independent_mask', 'complementary_mask'",
    ),
    (dict(encoder="relu"), ValueError, r"unknown encoder 'relu'; known: 'linear', 'symrelu'"),
    (
        dict(constraint="unit_norm"),
        ValueError,
        r"unknown constraint 'unit_norm'; known: 'none', 'unit_rows', 'unit_columns'",
    ),
    (
        dict(loss="byol"),
        ValueError,
        r"unknown loss 'byol'; known: 'spectral', 'infonce', 'ncl_squared', 'ncl_cosine', 'ncl_predictor'",
    ),
    (dict(expectation="monte_carlo"), ValueError, r"unknown expectation 'monte_carlo'; known: 'auto', 'closed_form'"),
    (dict(noise=math.nan), ValueError, r"noise must be a finite number.*got noise=nan"),
    (dict(noise=math.inf), ValueError, r"noise must be a finite number.*got noise=inf"),
    (dict(augmentation=("independent_mask", math.nan)), ValueError, r"q must be a finite number.*q=nan"),
    (dict(latent=("bernoulli", math.nan)), ValueError, r"prob must be a finite number.*prob=nan"),
    (dict(dictionary=np.full((4, 4), np.nan)), ValueError, r"dictionary must have finite entries"),
    (dict(encoder="symrelu", bias=math.inf), ValueError, r"bias must be a finite number.*bias=inf"),
    (dict(encoder="symrelu", bias=[0.0, np.nan, 0.0]), ValueError, r"bias must have finite entries"),
    (dict(loss="infonce", temperature=math.nan), ValueError, r"temperature must be a finite number.*temperature=nan"),
    (dict(loss="infonce", temperature=0.0), ValueError, r"temperature must lie in \(0.0, inf\], got temperature=0.0"),
    (
        dict(encoder="symrelu", bias=[0.1, 0.2]),
        ValueError,
        r"bias must be a number or an array of m=3 numbers, got shape \(2,\)",
    ),
    (
        dict(encoder="symrelu", bias="learned"),
        ValueError,
        r"bias must be a number, an array of m=3 numbers or 'trainable', got bias='learned'",
    ),
    (dict(bias=0.1), ValueError, r"bias applies only to encoder='symrelu'"),
    (dict(temperature=0.5), ValueError, r"temperature= applies only to loss='infonce', got loss='spectral'"),
    (dict(loss="ncl_cosine", encoder="symrelu", tied="yes"), TypeError, r"tied must be True or False, got tied='yes'"),
    (
        dict(loss="ncl_predictor", predictor_constraint="unit_columns"),
        ValueError,
        r"unknown predictor_constraint 'unit_columns'",
    ),
    (
        dict(noise=0.1, expectation="exact_enumeration"),
        ValueError,
        r"'exact_enumeration' does not apply: it needs noise=0.*noise=0.1",
    ),
    (
        dict(p=6, dictionary=("random", 2), expectation="exact_enumeration"),
        ValueError,
        r"'exact_enumeration' does not apply: it needs the identity dictionary",
    ),
    (
        dict(encoder="symrelu", expectation="closed_form"),
        ValueError,
        r"'closed_form' does not apply: it needs encoder='linear'",
    ),
    (
        dict(encoder="symrelu", loss="ncl_cosine", noise=0.1),
        ValueError,
        r"expectation='auto' found no exact mode.*noise=0.1.*sample_average",
    ),
    (
        dict(expectation=("sample_average", 0, 1)),
        ValueError,
        r"sample_average n must be an integer >= 1, got sample_average n=0",
    ),
    (dict(expectation=("sample_average", 10)), ValueError, r"must be \('sample_average', n, seed\)"),
    (dict(expectation="sample_average"), ValueError, r"needs a size and a seed"),
    (dict(dictionary=("random", -1)), ValueError, r"dictionary seed must be an integer >= 0"),
    (
        dict(d=10, p=10, latent=("bernoulli", 0.5), encoder="symrelu", loss="infonce"),
        ValueError,
        r"the support has 3486784401 \(z, D1, D2\) patterns, more than max_support_size=1000000.*sample_average",
    ),
    (dict(latent=42), TypeError, r"latent must be a name"),
    (dict(dictionary=3.0), TypeError, r"dictionary must be 'identity'"),
]


@pytest.mark.parametrize("changes, error, message", INVALID, ids=[repr(c[0])[:60] for c in INVALID])
def test_invalid_input_raises_clear_error(changes, error, message):
    with pytest.raises(error, match=message):
        build(**changes)


def test_support_limit_is_configurable():
    kwargs = dict(d=3, p=3, latent=("bernoulli", 0.5), encoder="symrelu", loss="infonce")
    with pytest.raises(ValueError, match=r"the support has 729 \(z, D1, D2\) patterns, more than max_support_size=100"):
        build(**kwargs, max_support_size=100)
    assert build(**kwargs, max_support_size=729).expectation.support_size == 729


def test_sparsity_helper_rejects_bad_input():
    with pytest.raises(ValueError, match=r"sparsity must lie in \(0.0, 1.0\], got sparsity=0.0"):
        critpoints.sparsity_to_counts(0.0, 10)
    with pytest.raises(ValueError, match=r"gives k=2 > d=1"):
        critpoints.sparsity_to_counts(1.0, 1)


def test_setting_is_immutable():
    setting = build(encoder="symrelu", bias=-0.2)
    with pytest.raises(AttributeError):
        setting.m = 5
    with pytest.raises(ValueError):
        setting.bias[0] = 1.0


ROUND_TRIP_SETTINGS = [
    dict(p=4, d=4, m=4, encoder="symrelu", bias=-0.3, constraint="unit_rows", loss="spectral"),
    dict(p=5, d=3, m=2, dictionary=("random", 3), latent=("fixed_count", 2, 1), noise=0.1, loss="ncl_squared"),
    dict(p=3, d=3, m=2, latent=("bernoulli", 0.5), augmentation="complementary_mask", loss="infonce",
         temperature=0.2, encoder="symrelu", bias="trainable", expectation=("sample_average", 10, 1)),
    dict(p=3, d=3, m=3, latent=("one_hot", "positive"), loss="ncl_predictor", normalize=False,
         predictor_constraint="unit_rows", encoder="symrelu", bias=[0.1, -0.2, 0.0], max_support_size=500),
    dict(p=3, d=2, m=2, dictionary=np.linalg.qr(np.random.default_rng(0).standard_normal((3, 2)))[0],
         loss="ncl_cosine", tied=True, encoder="symrelu", bias=-0.1, expectation=("sample_average", 5, 0)),
]  # fmt: skip


@pytest.mark.parametrize("keywords", ROUND_TRIP_SETTINGS)
def test_setting_round_trips_through_json(keywords):
    import json

    setting = Setting(**keywords)
    record = json.loads(json.dumps(setting.to_dict()))
    rebuilt = Setting.from_dict(record)
    assert rebuilt == setting
    assert rebuilt.to_dict() == setting.to_dict() and rebuilt.describe() == setting.describe()
    np.testing.assert_array_equal(rebuilt.dictionary_matrix(), setting.dictionary_matrix())


def test_to_dict_records_every_field_of_the_setting():
    import dataclasses

    setting = Setting(**ROUND_TRIP_SETTINGS[0])
    assert set(setting.to_dict()) == {field.name for field in dataclasses.fields(Setting)}


@pytest.mark.parametrize(
    "change",
    [{"p": 5, "d": 5}, {"m": 3}, {"bias": -0.2}, {"constraint": "none"}, {"loss": "infonce"},
     {"augmentation": ("independent_mask", 0.25)}, {"latent": ("one_hot", "positive")}, {"max_support_size": 99}],
)  # fmt: skip
def test_settings_that_differ_are_not_equal(change):
    base = Setting(**ROUND_TRIP_SETTINGS[0])
    other = Setting(**{**ROUND_TRIP_SETTINGS[0], **change})
    assert other != base and other.to_dict() != base.to_dict()


def test_claim_setting_is_the_setting_of_the_claims():
    """The preset is the setting CLAIMS.md states the claims in; its options pass through."""
    from critpoints import claim_setting

    explicit = Setting(
        p=5, d=5, m=7, loss="ncl_cosine", tied=True, dictionary="identity", latent="one_hot", noise=0.0,
        augmentation=("independent_mask", 0.25), encoder="symrelu", bias=-0.2, constraint="unit_rows",
    )  # fmt: skip
    assert claim_setting("ncl_cosine", 5, m=7, beta=0.2, q=0.25, tied=True) == explicit
    assert claim_setting(d=3) == Setting(p=3, d=3, m=3, loss="spectral", encoder="symrelu", bias=-0.3,
                                         constraint="unit_rows")  # fmt: skip
    assert claim_setting(constraint="none").constraint == "none"
    with pytest.raises(TypeError, match="beta must be a real number"):
        claim_setting(beta="0.3")
