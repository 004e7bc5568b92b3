"""Tests of critpoints.manifolds.spheres: Riemannian calculus on a product of spheres.

The derivative checks compare the closed forms against finite differences of the ambient
function along retraction curves, for random quartic polynomials whose Euclidean derivatives
come from automatic differentiation; the spectrum checks use Rayleigh quotients and linear
flows on one sphere, where the critical points and their spectra are known in closed form.
"""

from __future__ import annotations

import pickle

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from critpoints.manifolds.spheres import SphereBlock, SphereProduct

FEW = settings(max_examples=25, deadline=None)


# ---------------------------------------------------------------------------- fixtures


@st.composite
def products(draw) -> tuple[SphereProduct, int]:
    """A random sphere product (interleaved coordinates) and a seed for the test data."""
    n_free = draw(st.integers(0, 3))
    sizes = draw(st.lists(st.integers(1, 5), min_size=0, max_size=4))
    if n_free + sum(sizes) == 0:
        n_free = 1
    seed = draw(st.integers(0, 2**32 - 1))
    n = n_free + sum(sizes)
    order = np.random.default_rng(seed).permutation(n)
    spheres = np.split(order, np.cumsum(sizes))[: len(sizes)]
    return SphereProduct(n, spheres), seed


def random_point(manifold: SphereProduct, rng: np.random.Generator) -> np.ndarray:
    return manifold.project(rng.standard_normal(manifold.n))


def random_unit_tangent(manifold: SphereProduct, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v = manifold.tangent_project(theta, rng.standard_normal(manifold.n))
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else v


def random_quartic(n: int, rng: np.random.Generator):
    """A random polynomial of degree 4 on R^n, coefficients scaled to keep values O(1)."""
    a = rng.standard_normal(n)
    b = rng.standard_normal((n, n)) / np.sqrt(n)
    t = rng.standard_normal((n, n, n)) / n
    c = rng.standard_normal((n, n)) / np.sqrt(n)
    d = rng.standard_normal((n, n)) / np.sqrt(n)

    def f(x):
        cubic = anp.dot(anp.dot(anp.dot(t, x), x), x)
        quartic = anp.dot(x, anp.dot(c, x)) * anp.dot(x, anp.dot(d, x))
        return anp.dot(a, x) + 0.5 * anp.dot(x, anp.dot(b, x)) + cubic / 3 + quartic / 4

    return f, autograd.grad(f), autograd.hessian(f)


def random_cubic_field(n: int, rng: np.random.Generator):
    """A random polynomial vector field on R^n with a non-symmetric Jacobian."""
    a = rng.standard_normal(n)
    b = rng.standard_normal((n, n)) / np.sqrt(n)
    t = rng.standard_normal((n, n, n)) / n
    c = rng.standard_normal((n, n)) / np.sqrt(n)
    e = rng.standard_normal(n)

    def field(x):
        cubic = anp.dot(x, anp.dot(c, x)) * e * anp.dot(e, x)
        return a + anp.dot(b, x) + anp.dot(anp.dot(t, x), x) + cubic

    return field, autograd.jacobian(field)


# Central differences along c(t) = R(theta, t v), v a unit tangent, phi(t) = f(c(t)).
# (phi(h) - phi(-h)) / 2h has truncation error h^2 |phi'''| / 6 and rounding error
# ~ eps |phi| / h; (phi(h) - 2 phi(0) + phi(-h)) / h^2 has truncation error h^2 |phi''''| / 12
# and rounding error ~ 4 eps |phi| / h^2. At h = 1e-3 that is ~2e-7 |phi'''| + 1e-13 |phi|
# and ~1e-7 |phi''''| + 1e-9 |phi| (the same bounds hold for the first differences of the
# tangent fields below). The polynomials have O(1) coefficients and theta is O(1), so the
# derivatives of phi are at most a small multiple of `scale` (the size of f and of its
# Euclidean gradient and Hessian at theta): a tolerance of 1e-5 (1 + scale) sits well above
# the truncation error (errors stay below 5% of the tolerance on 400 random cases), while a
# missing projection or a wrong curvature term is an error of the order of `scale`.
STEP = 1e-3
FD_RTOL = 1e-5


def close(actual, expected, scale: float) -> bool:
    error = np.max(np.abs(np.asarray(actual) - np.asarray(expected)), initial=0.0)
    return bool(error <= FD_RTOL * (1.0 + scale))


# ---------------------------------------------------------------------------- derivatives


@FEW
@given(products())
def test_gradient_and_hessian_match_derivatives_along_retraction(case):
    manifold, seed = case
    rng = np.random.default_rng(seed)
    f, grad, hess = random_quartic(manifold.n, rng)
    theta = random_point(manifold, rng)
    egrad, ehess = grad(theta), hess(theta)
    rgrad = manifold.riemannian_gradient(theta, egrad)
    rhess = manifold.riemannian_hessian(theta, egrad, ehess)

    # The gradient is tangent, and the Hessian maps into and is supported on the tangent
    # space and is symmetric: together with the directional derivatives below, this pins
    # both down uniquely.
    projector = manifold.tangent_projector(theta)
    np.testing.assert_allclose(projector @ rgrad, rgrad, atol=1e-13 * (1 + np.abs(egrad).max()))
    atol = 1e-12 * (1 + np.abs(ehess).max())
    np.testing.assert_allclose(projector @ rhess @ projector, rhess, atol=atol)
    np.testing.assert_allclose(rhess, rhess.T, atol=atol)

    for _ in range(3):
        v = random_unit_tangent(manifold, theta, rng)
        phi = [f(manifold.retract(theta, t * v)) for t in (-STEP, 0.0, STEP)]
        first = (phi[2] - phi[0]) / (2 * STEP)
        second = (phi[2] - 2 * phi[1] + phi[0]) / STEP**2
        scale = abs(phi[1]) + np.abs(egrad).sum() + np.abs(ehess).sum()
        assert close(first, rgrad @ v, scale), (first, rgrad @ v)
        assert close(second, v @ rhess @ v, scale), (second, v @ rhess @ v)

    # The basis form is the same quadratic form in orthonormal coordinates, exactly
    # symmetric so that eigvalsh sees the matrix that was computed.
    basis = manifold.tangent_basis(theta)
    form = manifold.riemannian_hessian_in_basis(theta, egrad, ehess)
    np.testing.assert_allclose(form, basis.T @ rhess @ basis, atol=atol)
    np.testing.assert_array_equal(form, form.T)


@FEW
@given(products())
def test_hessian_is_covariant_derivative_of_gradient(case):
    # For a tangent field X on an embedded submanifold, nabla_v X = P d/dt X(c(t))|_0 along
    # any curve with c'(0) = v; the retraction curve is one.
    manifold, seed = case
    rng = np.random.default_rng(seed)
    _, grad, hess = random_quartic(manifold.n, rng)
    theta = random_point(manifold, rng)
    v = random_unit_tangent(manifold, theta, rng)

    def rgrad(t: float) -> np.ndarray:
        point = manifold.retract(theta, t * v)
        return manifold.riemannian_gradient(point, grad(point))

    derivative = manifold.tangent_project(theta, (rgrad(STEP) - rgrad(-STEP)) / (2 * STEP))
    ehess = hess(theta)
    expected = manifold.riemannian_hessian(theta, grad(theta), ehess) @ v
    assert close(derivative, expected, np.abs(ehess).sum()), (derivative, expected)


@FEW
@given(products())
def test_jacobian_is_covariant_derivative_of_projected_field(case):
    manifold, seed = case
    rng = np.random.default_rng(seed)
    field, jacobian = random_cubic_field(manifold.n, rng)
    theta = random_point(manifold, rng)
    v = random_unit_tangent(manifold, theta, rng)

    def projected(t: float) -> np.ndarray:
        point = manifold.retract(theta, t * v)
        return manifold.riemannian_field(point, field(point))

    derivative = manifold.tangent_project(theta, (projected(STEP) - projected(-STEP)) / (2 * STEP))
    ejac = jacobian(theta)
    rjac = manifold.riemannian_jacobian(theta, field(theta), ejac)
    assert close(derivative, rjac @ v, np.abs(ejac).sum()), (derivative, rjac @ v)

    basis = manifold.tangent_basis(theta)
    np.testing.assert_allclose(
        manifold.riemannian_jacobian_in_basis(theta, field(theta), ejac),
        basis.T @ rjac @ basis,
        atol=1e-12 * (1 + np.abs(ejac).max()),
    )


@FEW
@given(products())
def test_jacobian_of_gradient_field_is_hessian(case):
    manifold, seed = case
    rng = np.random.default_rng(seed)
    _, grad, hess = random_quartic(manifold.n, rng)
    theta = random_point(manifold, rng)
    egrad, ehess = grad(theta), hess(theta)
    np.testing.assert_array_equal(manifold.riemannian_field(theta, egrad), manifold.riemannian_gradient(theta, egrad))
    np.testing.assert_allclose(
        manifold.riemannian_jacobian(theta, egrad, ehess),
        manifold.riemannian_hessian(theta, egrad, ehess),
        rtol=0,
        atol=1e-14 * (1 + np.abs(ehess).max()),
    )
    np.testing.assert_allclose(
        manifold.riemannian_jacobian_in_basis(theta, egrad, ehess),
        manifold.riemannian_hessian_in_basis(theta, egrad, ehess),
        rtol=0,
        atol=1e-13 * (1 + np.abs(ehess).max()),
    )


# ---------------------------------------------------------------------------- closed forms


def rayleigh_spectrum(eigenvalues: np.ndarray, k: int) -> np.ndarray:
    """Riemannian Hessian spectrum of x^T A x / 2 on the sphere at the k-th eigenvector."""
    return np.sort(np.delete(eigenvalues, k) - eigenvalues[k])


@pytest.mark.parametrize("k", [0, 2, 4])
def test_rayleigh_quotient_at_axis_eigenvector_is_exactly_critical(k):
    eigenvalues = np.array([-1.5, 0.25, 1.0, 2.0, 3.5])
    a = np.diag(eigenvalues)
    manifold = SphereProduct(5, [np.arange(5)])
    for sign in (1.0, -1.0):
        x = sign * np.eye(5)[k]
        egrad = a @ x
        assert np.all(manifold.riemannian_gradient(x, egrad) == 0.0)
        spectrum = np.linalg.eigvalsh(manifold.riemannian_hessian_in_basis(x, egrad, a))
        np.testing.assert_allclose(spectrum, rayleigh_spectrum(eigenvalues, k), atol=1e-14)
        # Saddle index = number of smaller eigenvalues.
        assert np.sum(spectrum < 0) == k


@FEW
@given(st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_rayleigh_quotient_spectrum_at_rotated_eigenvectors(size, seed):
    rng = np.random.default_rng(seed)
    eigenvalues = np.sort(rng.uniform(-2, 2, size)) + np.arange(size)  # separated by > 0
    q, _ = np.linalg.qr(rng.standard_normal((size, size)))
    a = q @ np.diag(eigenvalues) @ q.T
    manifold = SphereProduct(size, [rng.permutation(size)])
    for k in range(size):
        x = manifold.project(q[:, k])
        egrad = a @ x
        assert np.linalg.norm(manifold.riemannian_gradient(x, egrad)) < 1e-13
        # Not critical away from the eigenvectors.
        y = manifold.project(x + 0.1 * q[:, (k + 1) % size])
        assert np.linalg.norm(manifold.riemannian_gradient(y, a @ y)) > 1e-3
        spectrum = np.linalg.eigvalsh(manifold.riemannian_hessian_in_basis(x, egrad, a))
        np.testing.assert_allclose(spectrum, rayleigh_spectrum(eigenvalues, k), atol=1e-12)
        # The ambient form has the same spectrum plus one zero (the normal direction).
        ambient = np.linalg.eigvalsh(manifold.riemannian_hessian(x, egrad, a))
        expected = np.sort(np.append(rayleigh_spectrum(eigenvalues, k), 0.0))
        np.testing.assert_allclose(ambient, expected, atol=1e-12)


def test_product_spectrum_is_union_of_factor_spectra():
    # f = x^T A x / 2 + y^T B y / 2 + z^T C z / 2 with x on S^3 (rows of a 2 x 4 block, first
    # row), y on S^3 (second row), z free; critical at eigenvectors of A and B, any z = 0.
    rng = np.random.default_rng(7)
    lam_a = np.array([-1.0, 0.5, 2.0, 3.0])
    lam_b = np.array([0.0, 1.0, 1.5, 4.0])
    lam_c = np.array([-0.7, 2.5])
    qa, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    qb, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    qc, _ = np.linalg.qr(rng.standard_normal((2, 2)))
    hess = np.zeros((10, 10))
    hess[0:4, 0:4] = qa @ np.diag(lam_a) @ qa.T
    hess[4:8, 4:8] = qb @ np.diag(lam_b) @ qb.T
    hess[8:, 8:] = qc @ np.diag(lam_c) @ qc.T
    manifold = SphereProduct.from_blocks(10, [SphereBlock(0, (2, 4), "rows")])
    assert manifold.dim == 8
    theta = manifold.project(np.concatenate([qa[:, 2], qb[:, 1], np.zeros(2)]))
    egrad = hess @ theta
    assert np.linalg.norm(manifold.riemannian_gradient(theta, egrad)) < 1e-13
    spectrum = np.linalg.eigvalsh(manifold.riemannian_hessian_in_basis(theta, egrad, hess))
    expected = np.concatenate([rayleigh_spectrum(lam_a, 2), rayleigh_spectrum(lam_b, 1), lam_c])
    expected.sort()
    np.testing.assert_allclose(spectrum, expected, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_linear_flow_jacobian_spectrum_at_rest_point(seed):
    # dx/dt = P A x on the sphere with A = V diag(lam) V^{-1} non-symmetric: the unit
    # eigenvectors are rest points and the linearisation there is the map induced by
    # A - lam_k on R^k / span(x), with eigenvalues lam_j - lam_k (j != k).
    rng = np.random.default_rng(seed)
    size = 5
    eigenvalues = np.array([-2.0, -0.5, 0.3, 1.1, 2.4])
    vectors = rng.standard_normal((size, size))
    a = vectors @ np.diag(eigenvalues) @ np.linalg.inv(vectors)
    manifold = SphereProduct(size, [np.arange(size)])
    for k in range(size):
        x = manifold.project(vectors[:, k])
        field = a @ x
        assert np.linalg.norm(manifold.riemannian_field(x, field)) < 1e-11
        spectrum = np.linalg.eigvals(manifold.riemannian_jacobian_in_basis(x, field, a))
        expected = rayleigh_spectrum(eigenvalues, k)
        np.testing.assert_allclose(np.sort(spectrum.real), expected, atol=1e-9)
        np.testing.assert_allclose(spectrum.imag, 0.0, atol=1e-9)


# ---------------------------------------------------------------------------- tangent space


@FEW
@given(products(), st.sampled_from(["random", "axis", "negative_axis", "tie"]))
def test_tangent_basis_is_orthonormal_basis_of_tangent_space(case, kind):
    manifold, seed = case
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(manifold.n)
    for group in manifold.spheres:
        if kind == "axis":
            theta[group] = np.eye(group.size)[rng.integers(group.size)]
        elif kind == "negative_axis":
            theta[group] = -np.eye(group.size)[rng.integers(group.size)]
        elif kind == "tie":
            theta[group] = np.where(rng.random(group.size) < 0.5, -1.0, 1.0)
    theta = manifold.project(theta)
    basis = manifold.tangent_basis(theta)
    assert basis.shape == (manifold.n, manifold.dim)
    np.testing.assert_allclose(basis.T @ basis, np.eye(manifold.dim), atol=1e-14)
    projector = manifold.tangent_projector(theta)
    np.testing.assert_allclose(basis @ basis.T, projector, atol=1e-14)
    for group in manifold.spheres:
        np.testing.assert_allclose(theta[group] @ basis[group], 0.0, atol=1e-15)
    # Free coordinates come first, as unit vectors; sphere columns stay on their sphere.
    n_free = manifold.free.size
    np.testing.assert_array_equal(basis[manifold.free, :n_free], np.eye(n_free))
    np.testing.assert_array_equal(basis[manifold.free, n_free:], 0.0)
    np.testing.assert_array_equal(manifold.tangent_basis(theta), basis)


@FEW
@given(products())
def test_projector_and_retraction(case):
    manifold, seed = case
    rng = np.random.default_rng(seed)
    theta = random_point(manifold, rng)
    assert manifold.is_on_manifold(theta)
    v = rng.standard_normal(manifold.n)
    pv = manifold.tangent_project(theta, v)
    np.testing.assert_allclose(manifold.tangent_project(theta, pv), pv, atol=1e-14)
    for group in manifold.spheres:
        assert abs(theta[group] @ pv[group]) < 1e-14
    np.testing.assert_allclose(pv, manifold.tangent_projector(theta) @ v, atol=1e-14)
    np.testing.assert_array_equal(pv[manifold.free], v[manifold.free])
    moved = manifold.retract(theta, pv)
    assert manifold.is_on_manifold(moved)
    np.testing.assert_array_equal(moved[manifold.free], theta[manifold.free] + v[manifold.free])
    np.testing.assert_allclose(manifold.retract(theta, np.zeros(manifold.n)), theta, atol=1e-15)
    # Second order: R(x, t v) = x + t v - t^2 |v_s|^2 x_s / 2 + O(t^3) per sphere.
    t = 1e-4
    expected = theta + t * pv
    for group in manifold.spheres:
        expected[group] -= 0.5 * t**2 * (pv[group] @ pv[group]) * theta[group]
    atol = 1e-11 * (1 + np.abs(pv).max() ** 3)
    np.testing.assert_allclose(manifold.retract(theta, t * pv), expected, atol=atol)


def test_project_and_is_on_manifold():
    manifold = SphereProduct(5, [[0, 2], [4]])
    theta = np.array([3.0, 7.0, 4.0, -2.0, -0.5])
    projected = manifold.project(theta)
    np.testing.assert_allclose(projected, [0.6, 7.0, 0.8, -2.0, -1.0])
    assert theta[0] == 3.0  # input untouched
    assert manifold.is_on_manifold(projected)
    assert not manifold.is_on_manifold(theta)
    assert not manifold.is_on_manifold(projected * (1 + 1e-9))
    assert manifold.is_on_manifold(projected * (1 + 1e-9), tol=1e-8)
    assert not manifold.is_on_manifold(np.array([0.6, np.nan, 0.8, 0.0, 1.0]))
    assert manifold.dim == 3
    np.testing.assert_array_equal(manifold.free, [1, 3])


def test_zero_dimensional_sphere():
    manifold = SphereProduct(2, [[1]])
    theta = np.array([0.3, -1.0])
    assert manifold.dim == 1
    np.testing.assert_array_equal(manifold.tangent_basis(theta), [[1.0], [0.0]])
    np.testing.assert_array_equal(manifold.tangent_project(theta, [2.0, 5.0]), [2.0, 0.0])
    np.testing.assert_array_equal(manifold.retract(theta, [1.0, 0.0]), [1.3, -1.0])
    hess = np.array([[2.0, 1.0], [1.0, 3.0]])
    form = manifold.riemannian_hessian_in_basis(theta, [0.0, 4.0], hess)
    np.testing.assert_array_equal(form, [[2.0]])


# ---------------------------------------------------------------------------- Euclidean factor


@FEW
@given(st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_euclidean_factor_gives_euclidean_quantities(n, seed):
    rng = np.random.default_rng(seed)
    manifold = SphereProduct.euclidean(n)
    theta, v, g = rng.standard_normal((3, n))
    h = rng.standard_normal((n, n))
    h = h + h.T
    j = rng.standard_normal((n, n))
    assert manifold.dim == n and manifold.n == n and manifold.spheres == ()
    np.testing.assert_array_equal(manifold.project(theta), theta)
    assert manifold.is_on_manifold(theta)
    np.testing.assert_array_equal(manifold.tangent_basis(theta), np.eye(n))
    np.testing.assert_array_equal(manifold.tangent_projector(theta), np.eye(n))
    np.testing.assert_array_equal(manifold.tangent_project(theta, v), v)
    np.testing.assert_array_equal(manifold.retract(theta, v), theta + v)
    np.testing.assert_array_equal(manifold.riemannian_gradient(theta, g), g)
    np.testing.assert_array_equal(manifold.riemannian_hessian(theta, g, h), h)
    np.testing.assert_array_equal(manifold.riemannian_hessian_in_basis(theta, g, h), h)
    np.testing.assert_array_equal(manifold.riemannian_field(theta, g), g)
    np.testing.assert_array_equal(manifold.riemannian_jacobian(theta, g, j), j)
    np.testing.assert_array_equal(manifold.riemannian_jacobian_in_basis(theta, g, j), j)


def test_free_block_of_mixed_product_is_euclidean():
    rng = np.random.default_rng(3)
    manifold = SphereProduct(6, [[1, 4, 5]])
    free = manifold.free
    theta = manifold.project(rng.standard_normal(6))
    g = rng.standard_normal(6)
    h = rng.standard_normal((6, 6))
    h = h + h.T
    np.testing.assert_array_equal(manifold.riemannian_gradient(theta, g)[free], g[free])
    rhess = manifold.riemannian_hessian(theta, g, h)
    np.testing.assert_allclose(rhess[np.ix_(free, free)], h[np.ix_(free, free)], atol=1e-15)


# ---------------------------------------------------------------------------- construction


def test_from_blocks_rows_and_columns():
    manifold = SphereProduct.from_blocks(14, [SphereBlock(0, (2, 3), "columns"), (7, (2, 3), "rows")])
    expected = [[0, 3], [1, 4], [2, 5], [7, 8, 9], [10, 11, 12]]
    assert [group.tolist() for group in manifold.spheres] == expected
    np.testing.assert_array_equal(manifold.free, [6, 13])
    assert manifold.dim == 14 - 5
    assert manifold == SphereProduct(14, expected)
    assert hash(manifold) == hash(SphereProduct(14, expected))
    assert manifold != SphereProduct(14, expected[::-1])


def test_immutable_and_picklable():
    manifold = SphereProduct(4, [[0, 1]])
    with pytest.raises(AttributeError):
        manifold._n = 5  # noqa: SLF001
    with pytest.raises(AttributeError):
        manifold.extra = 1
    with pytest.raises(ValueError):
        manifold.spheres[0][0] = 3
    with pytest.raises(ValueError):
        manifold.free[0] = 0
    copy = pickle.loads(pickle.dumps(manifold))
    assert copy == manifold
    theta = np.array([0.6, 0.8, 1.0, 2.0])
    np.testing.assert_array_equal(copy.tangent_basis(theta), manifold.tangent_basis(theta))


@pytest.mark.parametrize(
    ("n", "spheres", "message"),
    [
        (4, [[0, 4]], r"spheres\[0\] has index 4 outside \[0, 4\)"),
        (4, [[-1, 2]], r"spheres\[0\] has index -1 outside"),
        (4, [[0, 1], [1, 2]], r"index 1 appears in spheres\[0\] and spheres\[1\]"),
        (4, [[2, 2]], r"index 2 appears twice in spheres\[0\]"),
        (4, [[]], r"spheres\[0\] must be a non-empty 1-D array"),
        (4, [[[0, 1]]], r"spheres\[0\] must be a non-empty 1-D array"),
        (4, [[0.0, 1.0]], r"spheres\[0\] must hold integer indices"),
        (4, [[True, False]], r"spheres\[0\] must hold integer indices"),
        (-1, [], r"n must be an integer >= 0"),
    ],
)
def test_invalid_spheres_are_rejected(n, spheres, message):
    with pytest.raises(ValueError, match=message):
        SphereProduct(n, spheres)


def test_non_integer_n_is_rejected():
    with pytest.raises(TypeError, match="n must be an integer"):
        SphereProduct(3.0, [])


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ([(0, (2, 3), "diagonal")], r"unknown blocks\[0\]\.axis 'diagonal'"),
        ([(4, (2, 3), "rows")], r"blocks\[0\].*theta\[4:10\], beyond n=8"),
        ([(0, (2, 2), "rows"), (3, (1, 2), "rows")], r"blocks\[1\].*overlaps blocks\[0\]"),
        ([(0, (0, 2), "rows")], r"blocks\[0\]\.shape\[0\] must be an integer >= 1"),
        ([(0, (2,), "rows")], r"blocks\[0\] must be \(offset, \(r, c\), axis\)"),
        ([(-1, (1, 2), "rows")], r"blocks\[0\]\.offset must be an integer >= 0"),
    ],
)
def test_invalid_blocks_are_rejected(blocks, message):
    with pytest.raises(ValueError, match=message):
        SphereProduct.from_blocks(8, blocks)


def test_bad_points_and_shapes_are_rejected():
    manifold = SphereProduct(4, [[0, 1], [2]])
    with pytest.raises(ValueError, match=r"zero block on the sphere with indices \[0, 1\]"):
        manifold.project([0.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"zero block on the sphere with indices \[2\]"):
        manifold.project([1.0, 0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match=r"theta \+ v has a zero block"):
        manifold.retract([1.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"theta must have shape \(4,\)"):
        manifold.tangent_basis(np.ones(5))
    with pytest.raises(ValueError, match=r"egrad must have shape \(4,\)"):
        manifold.riemannian_gradient(np.ones(4), np.ones((4, 1)))
    with pytest.raises(ValueError, match=r"ehess must have shape \(4, 4\)"):
        manifold.riemannian_hessian(np.ones(4), np.ones(4), np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"ejac must have shape \(4, 4\)"):
        manifold.riemannian_jacobian_in_basis(np.ones(4), np.ones(4), np.ones(4))
