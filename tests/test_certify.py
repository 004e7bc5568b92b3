"""Certified critical points (critpoints.certify.certificate): Krawczyk existence/uniqueness and Morse index."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import critpoints as cp

flint = pytest.importorskip("flint", reason="python-flint (the 'certify' extra) is not installed")

from toy_systems import SeparableQuartic  # noqa: E402

from critpoints.certify.certificate import (  # noqa: E402
    certified_inertia,
    certify_point,
    enclose_derivatives,
    exact_view_law,
    exact_view_moments,
    krawczyk,
    moment_enclosures,
    require_flint,
)

BETA = 0.3
Q = 0.5


def claim3_setting(**overrides) -> cp.Setting:
    return cp.claim_setting(**{"loss": "spectral", "d": 3, "beta": BETA, "q": Q, **overrides})


# ------------------------------------------------------------------ polynomial toy (generic tests)


def _quartic_arb(tilts):
    """F = grad f and J = Hess f of f(x) = sum (x_i^2 - 1)^2 + c_i x_i, in ball arithmetic."""
    n = len(tilts)

    def residual(z):
        return flint.arb_mat([[4 * z[i, 0] ** 3 - 4 * z[i, 0] + flint.arb(tilts[i])] for i in range(n)])

    def jacobian(z):
        J = flint.arb_mat(n, n)
        for i in range(n):
            J[i, i] = 12 * z[i, 0] ** 2 - 4
        return J

    return residual, jacobian


def test_toy_every_critical_point_certified_with_its_index():
    tilts = (0.3, -0.2)
    toy = SeparableQuartic(np.array(tilts))
    residual, jacobian = _quartic_arb(tilts)
    points, indices = toy.critical_points()
    assert len(points) == 9
    for point, index in zip(points, indices):
        assert krawczyk(residual, jacobian, point, 1e-8)
        box = flint.arb_mat([[flint.arb(float(c), 1e-8)] for c in point])
        assert certified_inertia(jacobian(box)) == (index, 2 - index)


def test_toy_perturbed_and_degenerate_points_fail():
    tilts = (0.3, -0.2)
    residual, jacobian = _quartic_arb(tilts)
    point = SeparableQuartic(np.array(tilts)).critical_points()[0][0]
    assert not krawczyk(residual, jacobian, point + 1e-3, 1e-6)

    # f(x, y) = x^4 + y^2: the critical point 0 is degenerate (Hessian diag(0, 2))
    def residual0(z):
        return flint.arb_mat([[4 * z[0, 0] ** 3], [2 * z[1, 0]]])

    def jacobian0(z):
        return flint.arb_mat([[12 * z[0, 0] ** 2, 0], [0, 2]])

    for radius in (1e-10, 1e-6, 1e-2):
        assert not krawczyk(residual0, jacobian0, np.zeros(2), radius)
    box = flint.arb_mat([[flint.arb(0, 1e-6)], [flint.arb(0, 1e-6)]])
    assert certified_inertia(jacobian0(box)) is None


def _enclosure(matrix: np.ndarray, radius: float):
    """The interval matrix of balls matrix[i, j] +- radius (each entry exact as a float)."""
    n = matrix.shape[0]
    return flint.arb_mat([[flint.arb(float(matrix[i, j]), radius) for j in range(n)] for i in range(n)])


def _wide_eigenvalue_bound(matrix: np.ndarray, radius: float) -> float:
    """Weyl: every symmetric matrix within entrywise radius r of A has eigenvalues within n r of A's."""
    return matrix.shape[0] * radius


@pytest.mark.parametrize("seed", range(6))
def test_inertia_of_non_diagonal_enclosures_is_that_of_the_matrix(seed):
    """Random symmetric matrices with mixed signs, far from diagonal (a random rotation of a
    diagonal), enclosed with small radii: the certified inertia is the count of negative and
    positive eigenvalues numpy finds, whenever Weyl's bound keeps every eigenvalue off zero."""
    rng = np.random.default_rng(seed)
    n = 5
    rotation = np.linalg.qr(rng.standard_normal((n, n)))[0]
    eigenvalues = rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.2, 3.0, size=n)
    matrix = rotation @ np.diag(eigenvalues) @ rotation.T
    matrix = 0.5 * (matrix + matrix.T)
    assert np.abs(matrix - np.diag(np.diag(matrix))).max() > 0.3  # not diagonal, not nearly
    radius = 1e-6
    assert np.abs(np.linalg.eigvalsh(matrix)).min() > _wide_eigenvalue_bound(matrix, radius)
    expected = (int(np.sum(eigenvalues < 0)), int(np.sum(eigenvalues > 0)))
    assert certified_inertia(_enclosure(matrix, radius)) == expected


def test_inertia_where_the_diagonal_misleads():
    """[[1, 2], [2, 1]] has eigenvalues 3 and -1 although its diagonal is positive: the test must
    look through the off-diagonal part (by congruence with the midpoint's eigenvectors)."""
    matrix = np.array([[1.0, 2.0], [2.0, 1.0]])
    assert certified_inertia(_enclosure(matrix, 1e-9)) == (1, 1)
    assert certified_inertia(_enclosure(np.array([[2.0, -1.5], [-1.5, 2.0]]), 1e-9)) == (0, 2)


def test_no_inertia_for_an_enclosure_holding_a_singular_matrix():
    """A non-diagonal matrix with eigenvalue 1e-3, enclosed with radius 1e-3: the enclosure holds
    matrices of both signs of that eigenvalue (and singular ones), so no inertia is certified."""
    rng = np.random.default_rng(7)
    rotation = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    matrix = rotation @ np.diag([1e-3, -1.0, 2.0, 0.5]) @ rotation.T
    matrix = 0.5 * (matrix + matrix.T)
    shift = 1e-3 * np.outer(rotation[:, 0], rotation[:, 0])  # moves the small eigenvalue to 0
    assert np.abs(matrix - shift - (matrix - shift).T).max() < 1e-15
    assert np.abs(shift).max() <= 1e-3  # the singular matrix lies in the enclosure
    assert certified_inertia(_enclosure(matrix, 1e-3)) is None
    assert certified_inertia(_enclosure(matrix, 1e-9)) == (1, 3)


def test_no_inertia_when_off_diagonal_entries_can_flip_an_eigenvalue():
    """A cluster of five nearly equal eigenvalues 1.5e-3 (+ k 1e-6), enclosed with radius 1e-3 on
    every entry: each diagonal interval, read alone, stays positive (1.5e-3 > 1e-3), but the box
    holds the matrix with 1e-3 added along the first row and column, whose smallest eigenvalue is
    1.5e-3 - 1e-3 * sqrt(4) < 0. The off-diagonal intervals must be counted: no inertia."""
    n, radius = 5, 1e-3
    matrix = np.diag(1.5e-3 + 1e-6 * np.arange(n))
    inside = matrix.copy()
    inside[0, 1:] += radius
    inside[1:, 0] += radius
    assert np.linalg.eigvalsh(inside).min() < 0 < np.linalg.eigvalsh(matrix).min()
    assert certified_inertia(_enclosure(matrix, radius)) is None
    assert certified_inertia(_enclosure(matrix, 1e-4)) == (0, 5)  # 1.5e-3 - 4e-4 > 0: all positive


# ------------------------------------------------------------------ claim 3 (symrelu, unit rows, sphere chart)


def test_claim3_global_minimum_certified():
    loss = cp.population_loss(claim3_setting())
    theta = np.eye(3).ravel()
    expected = (1 - Q) ** 2 * (-2 * (1 - BETA) ** 2 + (1 - BETA) ** 4 / 3)
    assert loss.value(theta) == pytest.approx(expected, abs=1e-14)
    certificate = certify_point(loss, theta)
    assert certificate.certified, certificate.reason
    assert certificate.index == 0
    assert certificate.radius >= 1e-8
    assert certificate.dimension == 6  # 3 spheres S^2
    assert certificate.symmetry_modes == 0


def test_claim3_perturbed_point_not_certified():
    setting = claim3_setting()
    loss = cp.population_loss(setting)
    rng = np.random.default_rng(3)
    theta = loss.manifold.project(np.eye(3).ravel() + 1e-4 * rng.standard_normal(9))
    certificate = certify_point(loss, theta)
    assert not certificate.certified
    assert certificate.index is None
    assert "Krawczyk" in certificate.reason


def test_point_on_a_kink_not_certified():
    loss = cp.population_loss(claim3_setting())
    row = np.array([BETA, 0.8, 0.0])
    row[2] = np.sqrt(1.0 - row @ row)
    theta = np.concatenate([row, [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    certificate = certify_point(loss, theta)
    assert not certificate.certified
    assert "kink" in certificate.reason


def test_claim3_enumeration_certified_indices_agree():
    result = cp.enumerate_critical_points(claim3_setting(), n_restarts=16, seed=1, progress=False, certify=True)
    assert len(result) > 0
    certified = [point for point in result if point.certified]
    assert certified, [point.certified for point in result]
    for point in certified:
        if point.kind != "degenerate":
            assert point.certified_index == point.index
    assert result.metadata["certified"] == len(certified)
    assert f"certified: {len(certified)} of {len(result)} points" in result.table()


# ------------------------------------------------------------------ closed form, symmetry slice, degeneracy


def test_linear_spectral_minimum_certified_in_the_quotient_by_rotations():
    setting = cp.Setting(p=3, d=3, m=2, loss="spectral", dictionary=("random", 1), latent=("fixed_count", 2, 1))
    result = cp.enumerate_critical_points(setting, n_restarts=12, seed=0, progress=False)
    loss = cp.population_loss(setting)
    minimum = next(point for point in result if point.kind == "minimum")
    certificate = certify_point(loss, loss.pack(**minimum.params))
    assert certificate.certified, certificate.reason
    assert certificate.symmetry_modes == 1  # O(2) has one generator
    assert certificate.index == minimum.index == 0
    assert certificate.dimension == 6 - 1


def test_ncl_squared_unit_rows_saddles_certified_with_float_index():
    setting = cp.Setting(
        p=3,
        d=3,
        m=1,
        loss="ncl_squared",
        dictionary=("random", 2),
        latent=("fixed_count", 2, 1),
        constraint="unit_rows",
    )
    result = cp.enumerate_critical_points(setting, n_restarts=30, seed=0, progress=False, certify=True)
    nondegenerate = [point for point in result if point.kind != "degenerate"]
    assert nondegenerate
    for point in nondegenerate:
        assert point.certified, point.certification_reason
        assert point.certified_index == point.index


def test_degenerate_family_not_certified():
    # linear spectral, unit rows, m = p = 3: the minima lie on a one-parameter family
    setting = cp.Setting(
        p=3, d=3, m=3, loss="spectral", dictionary=("random", 1), latent=("fixed_count", 2, 1), constraint="unit_rows"
    )
    result = cp.enumerate_critical_points(setting, n_restarts=6, seed=0, progress=False, descent_fraction=1.0)
    loss = cp.population_loss(setting)
    point = result.manifolds[0]  # the family is reported as one critical set; certify its representative
    certificate = certify_point(loss, loss.pack(**point.params))
    assert not certificate.certified
    assert "degenerate" in certificate.reason


def test_unsupported_losses_give_a_reason():
    setting = cp.Setting(p=3, d=3, m=2, loss="ncl_predictor", encoder="symrelu", bias=-BETA, constraint="unit_rows")
    loss = cp.population_loss(setting)
    certificate = certify_point(loss, loss.manifold.project(np.ones(loss.n_params)))
    assert not certificate.certified
    assert "ncl_predictor" in certificate.reason
    with pytest.raises(ValueError, match="ncl_predictor"):
        enclose_derivatives(loss, np.ones(loss.n_params))


def test_result_round_trip_keeps_certification(tmp_path):
    result = cp.enumerate_critical_points(claim3_setting(), n_restarts=4, seed=0, progress=False, certify=True)
    for name in ("r.json", "r.csv"):
        (result.to_json if name.endswith("json") else result.to_csv)(tmp_path / name)
        loaded = cp.load_result(tmp_path / name)
        assert [p.certified for p in loaded] == [p.certified for p in result]
        assert [p.certification_reason for p in loaded] == [p.certification_reason for p in result]
        assert all(isinstance(p.certified, bool) for p in loaded)
        assert [p.certified_index for p in loaded] == [p.certified_index for p in result]
        assert [p.certified_radius for p in loaded] == pytest.approx([p.certified_radius for p in result])


def test_missing_flint_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "flint", None)
    with pytest.raises(ImportError, match=r"critpoints\[certify\]"):
        require_flint()


# ------------------------------------------------------------------ proved data: moments and view laws


def _mids(matrix) -> np.ndarray:
    return np.array([[float(matrix[i, j].mid()) for j in range(matrix.ncols())] for i in range(matrix.nrows())])


def _radii(matrix) -> np.ndarray:
    return np.array([[float(matrix[i, j].rad()) for j in range(matrix.ncols())] for i in range(matrix.nrows())])


def test_moment_enclosures_contain_dyadic_float_moments_exactly():
    # identity dictionary, d = 4, q = 1/2: every moment is dyadic, so the float moments are exact
    setting = cp.Setting(
        p=4, d=4, m=2, loss="spectral", dictionary="identity", latent="one_hot", augmentation=("independent_mask", 0.5)
    )
    floats = cp.view_moments(setting)
    exact = exact_view_moments(setting)
    for ball, rational, value in zip(moment_enclosures(setting), exact, (floats.x1x1, floats.x1x2, floats.x2x2)):
        assert np.array_equal(np.array(rational, dtype=float), value)
        for i in range(4):
            for j in range(4):
                assert ball[i, j].contains(flint.arb(float(value[i, j])))


@pytest.mark.parametrize(
    "options",
    [
        dict(dictionary=("random", 2), latent=("fixed_count", 2, 1), augmentation=("independent_mask", 0.3)),
        dict(dictionary=("random", 5), latent=("bernoulli", 0.3), augmentation="complementary_mask", noise=0.1),
        dict(dictionary=("random", 1), latent="one_hot", augmentation=("independent_mask", 0.7)),
    ],
)
def test_moment_enclosures_contain_the_exact_moments_and_agree_with_float(options):
    setting = cp.Setting(p=4, d=3, m=2, loss="spectral", **options)
    floats = cp.view_moments(setting)
    exact = exact_view_moments(setting)
    for ball, rational, value in zip(moment_enclosures(setting), exact, (floats.x1x1, floats.x1x2, floats.x2x2)):
        assert np.allclose(np.array(rational, dtype=float), value, rtol=1e-14, atol=1e-15)
        for i in range(4):
            for j in range(4):
                assert ball[i, j].contains(flint.fmpq(rational[i][j].numerator, rational[i][j].denominator))
        assert np.all(_radii(ball) <= 1e-15 * max(1.0, np.abs(value).max()))


@pytest.mark.parametrize(
    "options",
    [
        dict(latent="one_hot", augmentation=("independent_mask", 0.3)),
        dict(latent=("fixed_count", 2, 1), augmentation="complementary_mask"),
        dict(latent=("bernoulli", 0.4), augmentation=("independent_mask", 0.5)),
    ],
)
def test_exact_view_law_matches_the_float_measure(options):
    setting = cp.Setting(p=3, d=3, m=2, loss="spectral", encoder="symrelu", bias=-BETA, **options)
    law = exact_view_law(setting)
    measure = cp.population_loss(setting).measure
    assert sum(w for _, _, w in law.pairs) == 1 and sum(w for _, w in law.singles) == 1
    pairs = {(law.views[i].tobytes(), law.views[j].tobytes()): float(w) for i, j, w in law.pairs}
    floats = {(a.tobytes(), b.tobytes()): w for a, b, w in zip(measure.x1 + 0.0, measure.x2 + 0.0, measure.pair_weight)}
    assert pairs.keys() == {key for key, w in floats.items() if w > 0}
    assert all(abs(pairs[key] - floats[key]) <= 1e-15 for key in pairs)
    singles = {law.views[i].tobytes(): float(w) for i, w in law.singles}
    float_singles = {a.tobytes(): w for a, w in zip(measure.anchor + 0.0, measure.anchor_weight) if w > 0}
    assert singles.keys() == float_singles.keys()
    assert all(abs(singles[key] - float_singles[key]) <= 1e-15 for key in singles)


# ------------------------------------------------------------------ interval models against the float kernels


MODEL_SETTINGS = {
    "closed_form spectral": dict(
        p=3, d=3, m=2, loss="spectral", dictionary=("random", 1), latent=("fixed_count", 2, 1)
    ),
    "closed_form ncl_squared": dict(
        p=3, d=3, m=2, loss="ncl_squared", dictionary=("random", 2), latent=("fixed_count", 2, 1)
    ),
    "symrelu spectral": dict(p=3, d=3, m=2, loss="spectral", encoder="symrelu", bias=-BETA),
    "symrelu ncl_squared": dict(p=3, d=3, m=2, loss="ncl_squared", encoder="symrelu", bias=np.array([-0.3, 0.2])),
    "symrelu ncl_cosine": dict(
        p=3,
        d=3,
        m=2,
        loss="ncl_cosine",
        encoder="symrelu",
        bias=-BETA,
        latent=("fixed_count", 2, 1),
        augmentation="complementary_mask",
    ),
    "symrelu ncl_cosine tied": dict(p=3, d=3, m=2, loss="ncl_cosine", tied=True, encoder="symrelu", bias=0.2),
    "symrelu infonce": dict(
        p=3, d=3, m=2, loss="infonce", temperature=0.5, encoder="symrelu", bias=-BETA, latent=("bernoulli", 0.5)
    ),
    "linear infonce": dict(p=3, d=3, m=2, loss="infonce", temperature=0.3),
    "symrelu trainable bias spectral": dict(p=3, d=3, m=2, loss="spectral", encoder="symrelu", bias="trainable"),
    "symrelu trainable bias ncl_cosine": dict(p=3, d=3, m=2, loss="ncl_cosine", encoder="symrelu", bias="trainable"),
}


@pytest.mark.parametrize("name", sorted(MODEL_SETTINGS))
def test_interval_model_at_a_point_equals_the_float_kernels(name):
    setting = cp.Setting(**{"augmentation": ("independent_mask", 0.3), **MODEL_SETTINGS[name]})
    loss = cp.population_loss(setting)
    theta = np.random.default_rng(4).standard_normal(loss.n_params)
    gradient, hessian = enclose_derivatives(loss, theta)
    want_gradient, want_hessian = loss.euclidean_gradient(theta), loss.euclidean_hessian(theta)
    scale = max(1.0, np.abs(want_hessian).max(), np.abs(want_gradient).max())
    assert np.abs(_mids(gradient).ravel() - want_gradient).max() <= 1e-12 * scale
    assert np.abs(_mids(hessian) - want_hessian).max() <= 1e-12 * scale
    assert _radii(gradient).max() <= 1e-11 * scale and _radii(hessian).max() <= 1e-11 * scale


def test_interval_model_refuses_a_point_on_a_kink():
    loss = cp.population_loss(claim3_setting())
    row = np.array([BETA, 0.8, 0.0])
    with pytest.raises(ValueError, match="kink"):
        enclose_derivatives(loss, np.concatenate([row, [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))


def test_bad_arguments_are_value_errors_naming_them():
    loss = cp.population_loss(claim3_setting())
    good = np.eye(3).ravel()
    with pytest.raises(ValueError, match="theta must be a vector of length 9"):
        certify_point(loss, good[:5])
    with pytest.raises(ValueError, match="theta must have finite entries"):
        enclose_derivatives(loss, np.full(9, np.nan))
    with pytest.raises(ValueError, match="max_radius"):
        certify_point(loss, good, max_radius=-1.0)
    with pytest.raises(ValueError, match="degeneracy_tolerance"):
        certify_point(loss, good, degeneracy_tolerance=2.0)
    with pytest.raises(ValueError, match="identity dictionary"):
        exact_view_law(cp.Setting(p=3, d=3, m=2, loss="spectral", dictionary=("random", 1)))


# ------------------------------------------------------------------ cosine losses, trainable bias

CERTIFIED_SETTINGS = {
    "ncl_cosine": dict(
        loss="ncl_cosine", latent=("fixed_count", 2, 1), augmentation="complementary_mask", bias=np.array([-0.3, -0.55])
    ),
    "ncl_cosine tied": dict(
        loss="ncl_cosine",
        tied=True,
        latent=("fixed_count", 2, 1),
        augmentation="complementary_mask",
        bias=np.array([-0.3, -0.55]),
    ),
    "infonce": dict(
        loss="infonce",
        temperature=0.5,
        latent=("fixed_count", 2, 1),
        augmentation="complementary_mask",
        bias=np.array([-0.3, -0.55]),
    ),
    "trainable bias": dict(
        loss="spectral", latent=("bernoulli", 0.5), augmentation=("independent_mask", 0.3), bias="trainable"
    ),
}


@pytest.mark.parametrize("name", sorted(CERTIFIED_SETTINGS))
def test_nondegenerate_points_certified_with_the_float_index(name):
    setting = cp.Setting(p=3, d=3, m=2, encoder="symrelu", constraint="unit_rows", **CERTIFIED_SETTINGS[name])
    result = cp.enumerate_critical_points(setting, n_restarts=6, seed=0, progress=False, certify=True)
    certified = [point for point in result if point.certified]
    assert certified, [point.certified for point in result]
    assert all(point.certified_index == point.index for point in certified)
    loss = cp.population_loss(setting)
    theta = loss.pack(**certified[0].params)
    rng = np.random.default_rng(1)
    perturbed = certify_point(loss, loss.manifold.project(theta + 1e-4 * rng.standard_normal(theta.size)))
    assert not perturbed.certified and "Krawczyk" in perturbed.reason
