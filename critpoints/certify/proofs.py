"""Interval tests that prove: Krawczyk's existence and uniqueness test, a certified inertia,
and the transversality of a slice to the symmetry orbits.

Each takes enclosures (``arb_mat``) of the quantities over a box and returns True (or the
inertia) only when the statement holds for every point of the box.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from critpoints.certify.balls import arb_matrix, ball, ball_column, midpoint, nonsingular, norm_below, require_flint


def krawczyk(
    residual: Callable[[Any], Any],
    jacobian: Callable[[Any], Any],
    center: np.ndarray,
    radius: float,
) -> bool:
    """Krawczyk test on the box center + [-radius, radius]^N.

    Parameters
    ----------
    residual : callable
        F: an N x 1 arb_mat of arguments -> an N x 1 arb_mat enclosing F (evaluated at the
        exact float centre).
    jacobian : callable
        An N x 1 arb_mat of (interval) arguments -> an N x N arb_mat enclosing dF over them.
    center : ndarray, shape (N,)
        The approximate zero z~ (floats, taken as exact).
    radius : float
        Half-width rho > 0 of the box.

    Returns
    -------
    bool
        True if K(Z) = z~ - Y F(z~) + (I - Y J(Z))(Z - z~) lies in the interior of Z, which
        proves that F has exactly one zero in Z (Y = mid(J(z~))^-1 in float64).
    """
    flint = require_flint()
    center = np.asarray(center, dtype=np.float64)
    n = center.size
    point = ball_column([ball(c) for c in center])
    box = ball_column([ball(c, radius) for c in center])
    value = residual(point)
    at_center = jacobian(point)
    try:
        inverse = np.linalg.inv(midpoint(at_center))
    except np.linalg.LinAlgError:
        return False
    if not np.all(np.isfinite(inverse)):
        return False
    Y = arb_matrix(inverse)
    offset = ball_column([ball(0.0, radius)] * n)
    contraction = flint.arb_mat(np.eye(n).tolist()) - Y * jacobian(box)
    image = -(Y * value) + contraction * offset
    return all(abs(entry) < radius for entry in (image[i, 0] for i in range(n)))


def certified_inertia(matrix: Any) -> tuple[int, int] | None:
    """Inertia (negative, positive) shared by every symmetric matrix in an interval matrix.

    Parameters
    ----------
    matrix : arb_mat, shape (N, N)
        Enclosure of a set of real symmetric matrices.

    Returns
    -------
    (int, int) or None
        The numbers of negative and positive eigenvalues, proved the same for every
        symmetric matrix in the enclosure (so none is singular); None if the test fails.

    Notes
    -----
    V = eigenvectors of the midpoint (floats, exact as given). If |I - V^T V|_inf < 1, V is
    nonsingular and In(A) = In(V^T A V) (Sylvester). If every Gershgorin disc of the
    enclosure of V^T A V excludes 0, the path D + t (V^T A V - D), t in [0, 1], with D its
    diagonal, stays nonsingular, so In(V^T A V) = In(D).
    """
    flint = require_flint()
    n = matrix.nrows()
    if n == 0:
        return 0, 0
    middle = midpoint(matrix)
    _, vectors = np.linalg.eigh(0.5 * (middle + middle.T))
    V = arb_matrix(vectors)
    gram = V.transpose() * V
    if not norm_below(flint.arb_mat(np.eye(n).tolist()) - gram, 1.0):
        return None
    congruent = V.transpose() * matrix * V
    negative = positive = 0
    for i in range(n):
        off = ball(0.0)
        for j in range(n):
            if j != i:
                off += abs(congruent[i, j])
        centre = congruent[i, i]
        if centre - off > 0:
            positive += 1
        elif centre + off < 0:
            negative += 1
        else:
            return None
    return negative, positive


def transversal(B: np.ndarray, tensor: np.ndarray, theta: Sequence[Any]) -> bool:
    """Certify [B, Xi(theta) C] nonsingular for every theta in the box (Xi linear in theta)."""
    flint = require_flint()
    n, k = B.shape
    r = tensor.shape[2]
    T = flint.arb_mat(n, n)
    for i in range(n):
        for j in range(k):
            T[i, j] = ball(B[i, j])
    for i in range(n):
        for c in range(r):
            total = ball(0.0)
            for j in range(n):
                coefficient = tensor[j, i, c]
                if coefficient != 0.0:
                    total += theta[j] * coefficient
            T[i, k + c] = total
    return nonsingular(T)
