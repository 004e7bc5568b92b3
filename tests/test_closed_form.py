"""Closed-form population losses of linear encoders: values, gradients and Hessians.

The reference is an independent autograd implementation written from the defining
expectations (not from the trace formulas of the derivation):

* E[f(x1).f(x2)] = sum_k E[(W x1)_k (W x2)_k] = sum_{k,a,b} W_ka C12_ab W_kb;
* E[(f(x1).f(x'))^2] with x1 = L1 g, x' = Ln g' (C11 = L1 L1^T, Cneg = Ln Ln^T,
  g, g' independent standard) equals ||L1^T W^T W Ln||_F^2;
* E||W x1 - W_t x2||^2 = E||B y||^2 = sum((B J) * B), B = [W, -W_t] and
  J = E[y y^T] the joint moment of y = (x1, x2).
"""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from critpoints.losses.closed_form import ClosedFormEvaluator, closed_form_families

FAMILIES = closed_form_families()


def psd_factor(C: np.ndarray) -> np.ndarray:
    """L with L L^T = C for a symmetric positive semi-definite C."""
    eigenvalues, eigenvectors = np.linalg.eigh(C)
    return eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))


def random_moments(rng: np.random.Generator, p: int) -> tuple[np.ndarray, ...]:
    """PSD C11, C22 (possibly rank deficient), Cneg = C22, general non-symmetric C12."""

    def psd() -> np.ndarray:
        B = rng.standard_normal((p, int(rng.integers(1, p + 1))))
        return B @ B.T / p

    C11, C22 = psd(), psd()
    C12 = rng.standard_normal((p, p)) / np.sqrt(p)
    return C11, C12, C22, C22.copy()


def reference_loss(family, C11, C12, C22, Cneg, m, p):
    """theta -> loss, in autograd.numpy, from the defining expectations."""
    if family == "spectral":
        L1, Ln = psd_factor(C11), psd_factor(Cneg)

        def loss(theta):
            W = anp.reshape(theta, (m, p))
            attract = anp.sum(anp.dot(W, C12) * W)
            cross = anp.dot(anp.dot(L1.T, anp.dot(W.T, W)), Ln)
            return -2.0 * attract + anp.sum(cross**2)

        return loss
    J = np.block([[C11, C12], [C12.T, C22]])

    def loss(theta):
        W = anp.reshape(theta[: m * p], (m, p))
        W_t = anp.reshape(theta[m * p :], (m, p))
        B = anp.concatenate([W, -W_t], axis=1)
        return anp.sum(anp.dot(B, J) * B)

    return loss


def close(actual, expected, rtol=1e-10):
    expected = np.asarray(expected, dtype=float)
    scale = 1.0 + np.max(np.abs(expected))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


@settings(max_examples=30, deadline=None)
@given(
    family=st.sampled_from(FAMILIES),
    m=st.integers(1, 5),
    p=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_autograd(family, m, p, seed):
    rng = np.random.default_rng(seed)
    moments = random_moments(rng, p)
    evaluator = ClosedFormEvaluator(family, *moments, m=m)
    theta = rng.standard_normal(evaluator.n_params)
    reference = reference_loss(family, *moments, m, p)

    close(evaluator.value(theta), reference(theta))
    close(evaluator.gradient(theta), autograd.grad(reference)(theta))
    hessian = evaluator.hessian(theta)
    assert hessian.shape == (evaluator.n_params, evaluator.n_params)
    close(hessian, autograd.hessian(reference)(theta))
    close(hessian, hessian.T, rtol=1e-13)


@pytest.mark.parametrize("family", FAMILIES)
def test_value_is_the_monte_carlo_expectation(family):
    """x1 = A g, x2 = B g, x' = B g' with g, g' independent standard Gaussians."""
    rng = np.random.default_rng(1234)
    m, p, r, n = 2, 3, 4, 400_000
    A = rng.standard_normal((p, r)) / 2
    B = 0.5 * A + rng.standard_normal((p, r)) / 2
    C11, C12, C22 = A @ A.T, A @ B.T, B @ B.T
    evaluator = ClosedFormEvaluator(family, C11, C12, C22, C22, m=m)
    theta = rng.standard_normal(evaluator.n_params)
    blocks = evaluator.blocks(theta)
    W = blocks[0]

    g = rng.standard_normal((n, r))
    x1, x2 = g @ A.T, g @ B.T
    f1, f2 = x1 @ W.T, x2 @ W.T
    if family == "spectral":
        f_neg = rng.standard_normal((n, r)) @ B.T @ W.T
        samples = -2.0 * np.sum(f1 * f2, axis=1) + np.sum(f1 * f_neg, axis=1) ** 2
    else:
        samples = np.sum((f1 - x2 @ blocks[1].T) ** 2, axis=1)

    standard_error = samples.std(ddof=1) / np.sqrt(n)
    assert abs(samples.mean() - evaluator.value(theta)) <= 5.0 * standard_error


@pytest.mark.parametrize("family", FAMILIES)
def test_orthogonal_invariance(family):
    """L(QW[, QW_t]) = L; the gradient and Hessian transform covariantly."""
    rng = np.random.default_rng(5)
    m, p = 3, 4
    evaluator = ClosedFormEvaluator(family, *random_moments(rng, p), m=m)
    theta = rng.standard_normal(evaluator.n_params)
    Q, _ = np.linalg.qr(rng.standard_normal((m, m)))
    rotation = np.kron(np.eye(evaluator.n_params // (m * p)), np.kron(Q, np.eye(p)))
    rotated = rotation @ theta

    close(evaluator.value(rotated), evaluator.value(theta), rtol=1e-12)
    close(evaluator.gradient(rotated), rotation @ evaluator.gradient(theta), rtol=1e-12)
    close(
        evaluator.hessian(rotated),
        rotation @ evaluator.hessian(theta) @ rotation.T,
        rtol=1e-12,
    )


def test_spectral_at_zero():
    """W = 0 is stationary with Hessian -2 I_m (x) (C12 + C12^T) (derivations/CLAIMS.md, claim 1a)."""
    rng = np.random.default_rng(9)
    m, p = 2, 3
    C11, C12, C22, Cneg = random_moments(rng, p)
    evaluator = ClosedFormEvaluator("spectral", C11, C12, C22, Cneg, m=m)
    zero = np.zeros(evaluator.n_params)
    assert evaluator.value(zero) == 0.0
    assert np.all(evaluator.gradient(zero) == 0.0)
    close(evaluator.hessian(zero), -2.0 * np.kron(np.eye(m), C12 + C12.T), rtol=1e-14)


def test_argument_errors():
    C = np.eye(3)
    with pytest.raises(ValueError, match="'spectral', 'ncl_squared'"):
        ClosedFormEvaluator("infonce", C, C, C, C, m=2)
    evaluator = ClosedFormEvaluator("ncl_squared", C, C, C, C, m=2)
    assert evaluator.n_params == 12
    with pytest.raises(ValueError, match="length 12"):
        evaluator.value(np.zeros(6))
    with pytest.raises(ValueError, match="length 12"):
        evaluator.hessian(np.zeros((2, 6)))
    asymmetric = np.eye(3)
    asymmetric[0, 1] = 1.0
    with pytest.raises(ValueError, match="C11"):
        ClosedFormEvaluator("spectral", asymmetric, C, C, C, m=2)
    ClosedFormEvaluator("spectral", C, asymmetric, C, C, m=2)  # C12 may be asymmetric
    with pytest.raises(ValueError, match="shape"):
        ClosedFormEvaluator("spectral", C, C, np.eye(2), C, m=2)
