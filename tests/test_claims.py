"""The paper's claims (derivations/CLAIMS.md) checked with the engine and the loss objects.

Each claim is checked on a grid of settings against the exact statements derived in
derivations/claims.py (values, spectra, conditions). Claim 4 (training dynamics) is
checked elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest

from critpoints import Setting, claim_setting, enumerate_critical_points, population_loss, view_moments
from critpoints.landscape.labels import label_point
from critpoints.landscape.points import describe_point
from critpoints.solver.restarts import InProcessExecutor
from derivations import claims

IN_PROCESS = InProcessExecutor()
TAU = 0.95


def describe(loss, theta):
    """Classify and label one point as the engine does."""
    return describe_point(loss, theta, 1, tau_good=TAU, eigenvalue_tolerance=1e-7)


def complement_dimension(loss, theta) -> int:
    """Dimension of the tangent space minus the continuous symmetry directions at theta."""
    generators = loss.symmetry_generators(theta)
    rank = np.linalg.matrix_rank(generators) if generators.size else 0
    return loss.manifold.tangent_basis(theta).shape[1] - rank


def random_unit_rows(rng, m, p):
    rows = rng.standard_normal((m, p))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def soft_threshold(values, beta):
    return np.sign(values) * np.maximum(np.abs(values) - beta, 0.0)


# ------------------------------------------------------------------------------------ proofs


@pytest.mark.parametrize("title, proof", claims.PROOFS, ids=[title for title, _ in claims.PROOFS])
def test_symbolic_proofs_hold(title, proof):
    """Every sympy proof of derivations/claims.py runs to the end (each raises if its statement fails)."""
    assert isinstance(proof(), dict)


# ------------------------------------------------------------------------------------ claim 1

LINEAR_GRID = [
    # (dictionary, latent, noise, augmentation, p, d, m, expected kind of W = 0 for spectral)
    ("identity", "one_hot", 0.0, ("independent_mask", 0.5), 3, 3, 2, "maximum"),
    (("random", 1), ("bernoulli", 0.4), 0.3, ("independent_mask", 0.25), 4, 3, 3, "maximum"),
    (("random", 2), ("fixed_count", 2, 1), 0.2, ("independent_mask", 0.75), 3, 3, 2, "maximum"),
    (
        ("random", 3),
        "one_hot",
        0.0,
        ("independent_mask", 0.5),
        4,
        2,
        2,
        "degenerate",
    ),  # p > d, sigma = 0: Sigma singular
    (("random", 4), ("fixed_count", 2, 0), 0.1, "complementary_mask", 3, 3, 2, "saddle"),
    ("identity", "one_hot", 0.0, "complementary_mask", 3, 3, 2, "degenerate"),  # C12 = 0
]


@pytest.mark.parametrize("dictionary, latent, noise, augmentation, p, d, m, kind", LINEAR_GRID)
def test_claim1_linear_collapse(dictionary, latent, noise, augmentation, p, d, m, kind):
    """Claim 1(a): ncl_squared has its global minimum 0 at W = 0; spectral's Hessian there is
    -2 I (x) (C12 + C12^T), negative definite (a strict local maximum) iff sym(C12) > 0."""
    common = dict(p=p, d=d, m=m, dictionary=dictionary, latent=latent, noise=noise, augmentation=augmentation)
    rng = np.random.default_rng(0)

    ncl = population_loss(Setting(loss="ncl_squared", **common))
    zero = ncl.pack(W=np.zeros((m, p)), W_t=np.zeros((m, p)))
    assert ncl.value(zero) == 0.0 and not np.any(ncl.gradient(zero))
    assert np.linalg.eigvalsh(ncl.hessian(zero)).min() > -1e-12  # convex
    assert min(ncl.value(rng.standard_normal(ncl.n_params)) for _ in range(20)) >= 0.0
    result = enumerate_critical_points(
        Setting(loss="ncl_squared", **common), n_restarts=6, seed=0, executor=IN_PROCESS, progress=False
    )
    assert result[0].loss == pytest.approx(0.0, abs=1e-12) and result[0].label == "collapsed"

    setting = Setting(loss="spectral", **common)
    spectral = population_loss(setting)
    C12 = view_moments(setting).x1x2
    derived = -2 * np.kron(np.eye(m), C12 + C12.T)
    zero = np.zeros(spectral.n_params)
    assert not np.any(spectral.gradient(zero))
    np.testing.assert_allclose(spectral.hessian(zero), derived, atol=1e-14)
    np.testing.assert_allclose(derived, -4 * np.kron(np.eye(m), (C12 + C12.T) / 2), atol=1e-15)
    sym_eigenvalues = np.linalg.eigvalsh((C12 + C12.T) / 2)
    point = describe(spectral, zero)
    assert point.kind == kind and point.label == "collapsed"
    if kind == "maximum":
        assert sym_eigenvalues.min() > 1e-9 and point.index == m * p  # strict local maximum
    else:
        assert sym_eigenvalues.min() < 1e-12  # E[x1 x2^T] not positive definite
    if augmentation == "complementary_mask":
        assert abs(np.trace(C12)) < 1e-12  # never positive definite under complementary masks


def test_complementary_masks_with_one_hot_make_collapse_a_global_minimum_of_spectral():
    """Further statement: one view is always zero, so the spectral loss is its repulsion, >= 0 = L(0)."""
    rng = np.random.default_rng(1)
    for encoder, bias in (("linear", None), ("symrelu", -0.2)):
        setting = Setting(p=3, d=3, m=3, loss="spectral", encoder=encoder, bias=bias, augmentation="complementary_mask")
        loss = population_loss(setting)
        assert loss.value(np.zeros(loss.n_params)) == 0.0
        assert min(loss.value(rng.standard_normal(loss.n_params)) for _ in range(50)) > 0.0


PREDICTOR_GRID = [
    ("one_hot", ("independent_mask", 0.5), 3, 3),
    (("fixed_count", 2, 1), ("independent_mask", 0.25), 3, 2),
    (("bernoulli", 0.5), "complementary_mask", 2, 3),
]


@pytest.mark.parametrize("latent, augmentation, d, m", PREDICTOR_GRID)
def test_claim1_unnormalised_predictor_stationary_at_zero_for_every_P(latent, augmentation, d, m):
    """Claim 1(a): the unnormalised predictor field vanishes at W = W_t = 0 for every P, with
    Jacobian spectrum {+-2 mu_k(P) s_l(C12)} and m^2 zeros (derivations/claims.py)."""
    setting = Setting(p=d, d=d, m=m, loss="ncl_predictor", normalize=False, latent=latent, augmentation=augmentation)
    loss = population_loss(setting)
    C12 = view_moments(setting).x1x2
    rng = np.random.default_rng(2)
    for _ in range(3):
        P = rng.standard_normal((m, m))
        theta = loss.pack(W=np.zeros((m, d)), W_t=np.zeros((m, d)), P=P)
        assert np.abs(loss.field(theta)).max() < 1e-15
        mu, s = np.linalg.eigvals(P), np.linalg.eigvalsh(C12)
        predicted = np.concatenate([np.outer(mu, s).ravel() * 2, -2 * np.outer(mu, s).ravel(), np.zeros(m * m)])
        actual = np.linalg.eigvals(loss.euclidean_jacobian(theta))
        for value in predicted:  # a multiset match: pair each predicted value with the nearest actual one
            nearest = np.argmin(np.abs(actual - value))
            assert abs(actual[nearest] - value) < 1e-8
            actual = np.delete(actual, nearest)
        point = describe(loss, theta)
        assert point.label == "collapsed" and point.kind == "degenerate"


DEAD_LOSSES = [
    ("spectral", {}, 0.0),
    ("infonce", {"temperature": 0.5}, 0.0),
    ("ncl_squared", {}, 0.0),
    ("ncl_cosine", {"tied": True}, 2.0),
    ("ncl_cosine", {"tied": False}, 2.0),
    ("ncl_predictor", {}, 2.0),
    ("ncl_predictor", {"normalize": False}, 0.0),
]


def dead_weights(rng, shape, beta, constraint):
    """A W with |W_ij| < beta (every symrelu neuron dead on the one-hot views, M = I)."""
    m, p = shape
    if constraint == "none":
        return rng.uniform(-0.95 * beta, 0.95 * beta, size=shape)
    rows = rng.choice([-1.0, 1.0], size=shape) + 0.1 * rng.uniform(-1, 1, size=shape)  # near (+-1, ..., +-1)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    assert np.abs(rows).max() < beta  # needs beta > 1/sqrt(p)
    return rows


@pytest.mark.parametrize("constraint, beta", [("none", 0.4), ("unit_rows", 0.7)])
@pytest.mark.parametrize("name, options, value", DEAD_LOSSES, ids=[f"{n}{o}" for n, o, _ in DEAD_LOSSES])
def test_claim1_dead_symrelu_region_is_flat_collapsed_and_degenerate(name, options, value, constraint, beta):
    """Claim 1(b): where every neuron is dead on the data support the loss is constant (value from
    derivations/claims.py), gradient and Hessian vanish, the point is collapsed and degenerate."""
    setting = claim_setting(name, 3, m=2, beta=beta, constraint=constraint, **options)
    loss = population_loss(setting)
    rng = np.random.default_rng(3)
    for _ in range(3):
        blocks = {}
        for block, shape in loss.layout.shapes.items():
            blocks[block] = (
                dead_weights(rng, shape, beta, constraint) if block in ("W", "W_t") else rng.standard_normal(shape)
            )
        theta = loss.pack(**blocks)
        assert loss.value(theta) == pytest.approx(value, abs=1e-14)
        residual, matrix = (
            (loss.field(theta), loss.jacobian(theta)) if loss.is_field else (loss.gradient(theta), loss.hessian(theta))
        )
        assert np.abs(residual).max() == 0.0 and np.abs(matrix).max() == 0.0
        point = describe(loss, theta)
        assert point.label == "collapsed" and point.dead == setting.m
        assert point.kind == "degenerate" and point.nullity == complement_dimension(loss, theta)


def test_claim1_dead_region_is_never_counted_as_a_minimum_by_the_engine():
    setting = Setting(
        p=3, d=3, m=3, loss="spectral", encoder="symrelu", bias=-0.4, augmentation=("independent_mask", 0.5)
    )
    starts = np.random.default_rng(4).uniform(-0.35, 0.35, size=(5, 9))
    result = enumerate_critical_points(setting, n_restarts=5, init=starts, executor=IN_PROCESS, progress=False)
    assert len(result) == 0  # no isolated point, minimum or otherwise: one flat region
    (region,) = result.manifolds
    assert (region.kind, region.dimension, region.label, region.count) == (
        "flat region",
        3 * 3,
        "collapsed",
        5,
    )  # open in R^9


# ------------------------------------------------------------------------------------ claim 2


def claim2_setting(d, q, tied, beta=0.3, m=None):
    return claim_setting("ncl_cosine", d, m=m, beta=beta, q=q, tied=tied)


def single_active_weights(rng, d, m, beta):
    """Uniform unit rows, resampled until every column has exactly one entry above beta in modulus."""
    while True:
        batch = rng.standard_normal((4096, m, d))
        batch /= np.linalg.norm(batch, axis=2, keepdims=True)
        single = np.all((np.abs(batch) > beta).sum(axis=1) == 1, axis=1)
        clear = np.all(np.abs(np.abs(batch) - beta) > 0.02, axis=(1, 2))
        if np.any(single & clear):
            return batch[np.argmax(single & clear)]


CLAIM2_GRID = [(3, 0.5, True), (4, 0.25, True), (3, 0.5, False), (4, 0.75, False), (5, 0.5, True)]


@pytest.mark.parametrize("d, q, tied", CLAIM2_GRID)
def test_claim2_random_points_with_nonzero_thresholded_columns_are_flat_global_minima(d, q, tied):
    """Claim 2: such W (untied: W_t with positively proportional thresholded columns) are stationary at
    2 - 2(1-q)^2, degenerate, and labelled by their alignment (bad for generic W, good at M)."""
    beta = 0.3
    setting = claim2_setting(d, q, tied, beta)
    loss = population_loss(setting)
    minimum = 2 - 2 * (1 - q) ** 2
    rng = np.random.default_rng(5)
    samples = 0
    while samples < 3:
        W = random_unit_rows(rng, d, d)
        columns = soft_threshold(W, beta)
        if np.any(np.all(columns == 0, axis=0)) or np.any(np.abs(np.abs(W) - beta) < 0.02):
            continue  # a dead column (or a pre-activation next to a kink): not in the family
        if tied:
            theta = loss.pack(W=W)
        else:  # the target branch: same W (aligned columns), or a nearby point of the single-active region
            if samples == 0:
                W_t = W
            else:
                W = single_active_weights(rng, d, d, beta)
                W_t = W + 0.01 * rng.standard_normal(W.shape)
                W_t /= np.linalg.norm(W_t, axis=1, keepdims=True)
                assert np.array_equal(np.sign(soft_threshold(W_t, beta)), np.sign(soft_threshold(W, beta)))
            theta = loss.pack(W=W, W_t=W_t)
        samples += 1
        assert loss.value(theta) == pytest.approx(minimum, abs=1e-13)
        assert np.linalg.norm(loss.gradient(theta)) < 1e-13
        point = describe(loss, theta)
        assert point.kind == "degenerate" and point.label == ("good" if np.abs(W).max(axis=0).min() >= TAU else "bad")
        if tied or samples > 1:  # locally constant: the whole tangent space is flat
            assert point.nullity == complement_dimension(loss, theta)
    # the good points are in the same flat set: M itself, and M perturbed inside the region
    signed_permutation = np.eye(d)[rng.permutation(d)] * rng.choice([-1.0, 1.0], size=(d, 1))
    blocks = {"W": signed_permutation} if tied else {"W": signed_permutation, "W_t": signed_permutation}
    point = describe(loss, loss.pack(**blocks))
    assert point.loss == pytest.approx(minimum, abs=1e-13) and point.kind == "degenerate" and point.label == "good"
    if not tied:  # the alignment condition is needed: flip one target row, the value rises by 4 rho^2 / d
        flipped = signed_permutation.copy()
        flipped[0] *= -1
        value = loss.value(loss.pack(W=signed_permutation, W_t=flipped))
        assert value == pytest.approx(minimum + 4 * (1 - q) ** 2 / d, abs=1e-13)


@pytest.mark.parametrize("d, restarts", [(3, 40), (4, 40)])
def test_claim2_enumerated_global_minima_are_mostly_bad(d, restarts):
    """The engine's runs at 2 - 2(1-q)^2 (tied) end on one flat region; the fraction of good ones is small.

    Starts are uniform on the product of spheres and every start in the flat set is already
    stationary, so the found global minima are uniform draws from it; the good part has
    probability P(good)/P(global) <= d! P(|u_1| >= 0.95)^d / (1 - d P(|u_1| < beta)^d)
    (derivations/claims.py; 8.2e-4 for d = 3, smaller for d = 4). With 40 draws, 3 or more
    good ones has probability below 1e-5, so the bound asserted is 2/40.
    """
    q, beta = 0.5, 0.3
    setting = claim2_setting(d, q, tied=True, beta=beta)
    result = enumerate_critical_points(setting, n_restarts=restarts, seed=0, executor=IN_PROCESS, progress=False)
    minimum = 2 - 2 * (1 - q) ** 2
    plateau_values = {round(2 - 2 * (1 - q) ** 2 * k / d, 12) for k in range(d + 1)}
    assert len(result) == 0  # every run ends on a flat region of the plateaus, reported as one entry each
    assert all(round(region.loss, 12) in plateau_values for region in result.manifolds)
    (at_minimum,) = [region for region in result.manifolds if abs(region.loss - minimum) < 1e-12]
    assert at_minimum.kind == "flat region"
    good = at_minimum.labels.get("good", 0)
    p_good = claims.good_probability(d, TAU) / (1 - d * claims.dead_column_probability(d, d, beta))
    fraction = good / at_minimum.count
    print(
        f"\nd = {d}: {at_minimum.count} runs on the global minima, {good} good (fraction {fraction:.3f}; "
        f"uniform-measure probability of good <= {p_good:.2e})"
    )
    assert p_good < 1e-3
    assert fraction <= 2 / 40


def test_claim2_good_fraction_formula_against_monte_carlo():
    """P(good) = 3! (1 - tau)^3 for three uniform unit rows in R^3 (derivations/claims.py), by sampling."""
    rng = np.random.default_rng(6)
    n = 400_000
    rows = rng.standard_normal((n, 3, 3))
    rows /= np.linalg.norm(rows, axis=2, keepdims=True)
    good = np.all(np.abs(rows).max(axis=1) >= TAU, axis=1)
    probability = claims.good_probability(3, TAU)
    assert probability == pytest.approx(6 * 0.05**3, rel=1e-12)
    standard_error = np.sqrt(probability * (1 - probability) / n)
    assert abs(good.mean() - probability) < 5 * standard_error


LINEAR_NCL = [
    ("ncl_cosine", {"tied": True}),
    ("ncl_cosine", {"tied": False}),
    ("ncl_predictor", {}),
    ("spectral", {}),  # the same argument applies to the contrastive loss (CLAIMS.md)
]


@pytest.mark.parametrize("name, options", LINEAR_NCL, ids=[f"{n}{o}" for n, o in LINEAR_NCL])
def test_claim2_linear_minima_lie_on_orbits_with_bad_points(name, options):
    """Claim 2, linear encoders: (W, W_t, P) -> (Q W, Q W_t, Q P Q^T) keeps the loss and stationarity,
    and turns the good stationary point (M^T, M^T, I) into bad ones."""
    d = 3
    setting = Setting(p=d, d=d, m=d, loss=name, augmentation=("independent_mask", 0.5), **options)
    loss = population_loss(setting)
    scale = np.sqrt(d) if name == "spectral" else 1.0  # spectral's minimum for one-hot data: W^T W = d I
    good = {block: scale * np.eye(d) if block in ("W", "W_t") else np.eye(d) for block in loss.layout.shapes}
    theta = loss.pack(**good)
    residual = loss.field if loss.is_field else loss.gradient
    assert np.linalg.norm(residual(theta)) < 1e-12
    assert describe(loss, theta).label == "good"
    for first, second, angle in ((0, 1, np.pi / 4), (1, 2, np.pi / 5), (0, 2, 2.0)):
        Q = np.eye(d)  # a plane rotation far from every signed permutation
        Q[[first, first, second, second], [first, second, first, second]] = (
            np.cos(angle),
            -np.sin(angle),
            np.sin(angle),
            np.cos(angle),
        )
        rotated = loss.symmetries.rotate(theta, Q)
        assert loss.value(rotated) == pytest.approx(loss.value(theta), abs=1e-12)
        assert np.linalg.norm(residual(rotated)) < 1e-12
        assert label_point(setting, loss.unpack(rotated), tau_good=TAU).label == "bad"


def test_ncl_squared_unit_rows_every_w_equals_w_t_is_a_global_minimum():
    """Further statement: with diag(Sigma) = s I (M = I) and unit rows,
    L = 2 m rho (1-rho) s + rho^2 sum (w-v)^T Sigma (w-v)."""
    q, m, d = 0.5, 3, 3
    for latent in ("one_hot", ("fixed_count", 2, 1)):
        setting = Setting(
            p=d,
            d=d,
            m=m,
            loss="ncl_squared",
            latent=latent,
            constraint="unit_rows",
            augmentation=("independent_mask", q),
        )
        loss = population_loss(setting)
        s = view_moments(setting).xx[0, 0]
        rho = 1 - q
        rng = np.random.default_rng(8)
        for _ in range(3):
            W = random_unit_rows(rng, m, d)
            theta = loss.pack(W=W, W_t=W)
            assert loss.value(theta) == pytest.approx(2 * m * rho * (1 - rho) * s, abs=1e-13)
            assert np.linalg.norm(loss.gradient(theta)) < 1e-13
            point = describe(loss, theta)
            assert point.kind == "degenerate" and point.nullity >= m * (d - 1) and point.label == "bad"
            other = loss.pack(W=W, W_t=random_unit_rows(rng, m, d))
            assert loss.value(other) > loss.value(theta)


# ------------------------------------------------------------------------------------ claim 3


def claim3_setting(d, beta, q, m=None):
    return claim_setting("spectral", d, m=m, beta=beta, q=q)


def signed_atom_starts(rng, d, m, beta):
    """One perturbed signed-atom configuration per occupation orbit (partition of m into <= d parts).

    The perturbation (entries N(0, s^2), s = min(beta, 1 - beta)/5) keeps the off-atom entries in
    the dead zone and the atom entry above beta: inside the basin of the configuration, which
    shrinks as beta approaches 0 or 1.
    """
    scale = min(beta, 1 - beta) / 5
    starts = []
    for partition in claims.partitions(m, d):
        atoms = np.repeat(np.arange(len(partition)), partition)
        W = np.eye(d)[atoms] * rng.choice([-1.0, 1.0], size=(m, 1)) + scale * rng.standard_normal((m, d))
        starts.append(W.ravel())
    return np.array(starts)


def occupation(W):
    """(n_j) of a signed-atom configuration, or None if some row is not an atom."""
    if not np.allclose(np.abs(W).max(axis=1), 1.0, atol=1e-9):
        return None
    return np.bincount(np.abs(W).argmax(axis=1), minlength=W.shape[1])


#: (d, beta, q, random starts, whether every local minimum found is a signed-atom configuration)
CLAIM3_GRID = [
    (3, 0.2, 0.5, 60, True),
    (3, 0.5, 0.25, 60, True),
    (3, 0.8, 0.75, 60, True),
    (3, 0.05, 0.9, 60, False),
    (4, 0.3, 0.5, 60, True),
    (4, 0.6, 0.25, 60, True),
    (4, 0.1, 0.75, 60, True),
    (5, 0.3, 0.5, 30, True),
    (5, 0.7, 0.25, 30, True),
]


@pytest.mark.parametrize("d, beta, q, random_starts, only_signed_atoms", CLAIM3_GRID)
def test_claim3_global_minimum_is_the_signed_permutations_and_bad_minima_are_listed(
    d, beta, q, random_starts, only_signed_atoms
):
    """Claim 3: lowest loss found = (1-q)^2 (-2 (1-beta)^2 + (1-beta)^4/d), nothing below it, every point at
    it is good; every signed-atom configuration is a strict local minimum with the derived value and
    spectrum; other (bad) local minima, which appear for small beta, are listed."""
    setting = claim3_setting(d, beta, q)
    loss = population_loss(setting)
    rng = np.random.default_rng(9)
    gaussian = rng.standard_normal((random_starts, loss.n_params))
    starts = np.concatenate([gaussian, signed_atom_starts(rng, d, d, beta)])
    result = enumerate_critical_points(
        setting, n_restarts=len(starts), init=starts, executor=IN_PROCESS, progress=False
    )
    minimum = claims.claim3_minimum(d, beta, q)
    assert result[0].loss == pytest.approx(minimum, abs=1e-12)
    assert all(point.loss >= minimum - 1e-12 for point in result)
    at_minimum = [point for point in result if point.loss < minimum + 1e-9]
    assert all(point.label == "good" and point.kind == "minimum" and point.recovered == d for point in at_minimum)
    assert np.allclose(np.abs(result[0].params["W"]), np.eye(d)[np.abs(result[0].params["W"]).argmax(axis=1)])

    minima = [point for point in result if point.kind == "minimum"]
    print(f"\nd={d} beta={beta} q={q}: minima (loss, label, occupation, duplicated):")
    seen, others = set(), []
    for point in minima:
        n = occupation(point.params["W"])
        if n is None:
            others.append(point)
            print(f"    {point.loss:.10f} {point.label:4s} not signed atoms, alignment {np.round(point.alignment, 3)}")
            assert point.label == "bad" and point.loss > minimum + 1e-6
            continue
        print(f"    {point.loss:.10f} {point.label:4s} {sorted(n.tolist(), reverse=True)} dup={point.duplicated}")
        assert point.loss == pytest.approx(claims.signed_atom_loss(n, beta, q), abs=1e-12)
        spectrum = np.linalg.eigvalsh(loss.hessian_in_basis(loss.pack(W=point.params["W"])))
        np.testing.assert_allclose(spectrum, claims.signed_atom_spectrum(n, beta, q), atol=1e-10)
        assert (point.label == "good") == bool(np.all(n == 1))
        if point.label == "bad":
            assert point.duplicated > 0
        seen.add(tuple(sorted(n, reverse=True)))
    expected = {tuple(list(partition) + [0] * (d - len(partition))) for partition in claims.partitions(d, d)}
    assert seen == expected  # every occupation orbit is a strict local minimum, and was found
    assert (not others) == only_signed_atoms


def test_claim3_with_two_neurons_per_atom():
    """Further statement: m = 2d, the global minimum has every atom twice, value rho^2 (-4a + 4a^2/d)."""
    d, beta, q = 2, 0.3, 0.5
    setting = claim3_setting(d, beta, q, m=2 * d)
    rng = np.random.default_rng(10)
    starts = np.concatenate([rng.standard_normal((10, 2 * d * d)), signed_atom_starts(rng, d, 2 * d, beta)])
    result = enumerate_critical_points(
        setting, n_restarts=len(starts), init=starts, executor=IN_PROCESS, progress=False
    )
    a = (1 - beta) ** 2
    assert result[0].loss == pytest.approx((1 - q) ** 2 * (-4 * a + 4 * a * a / d), abs=1e-12)
    assert list(occupation(result[0].params["W"])) == [2, 2]
    assert result[0].label == "good" and result[0].duplicated == d
