"""Dense linear solves by LU with a condition estimate, compiled.

Newton's method (critpoints.solver.newton) solves ``A s = b`` directly when ``A`` is well
conditioned and falls back to a minimal-norm solve otherwise. This module gives that
direct solve as numba kernels, so that the interpreted and the compiled Newton drivers
make the same decisions from the same arithmetic:

* :func:`lu_factor` -- ``P A = L U`` by LAPACK's ``dgetrf`` (partial pivoting), the routine
  ``scipy.linalg.lapack.dgetrf`` calls, reached through numba's LAPACK bindings;
* :func:`lu_solve` -- ``A x = b`` or ``A^T x = b`` from the factors (two triangular solves);
* :func:`reciprocal_condition` -- an estimate of ``1 / (||A||_1 ||A^{-1}||_1)`` by Hager's
  method with Higham's refinements (N. J. Higham, "FORTRAN codes for estimating the
  one-norm of a real or complex matrix", ACM TOMS 14(4), 1988), the algorithm of LAPACK's
  ``dlacn2`` / ``dgecon``: a lower bound on ``||A^{-1}||_1`` from a few solves with the LU
  factors and their transposes, usually exact within a factor of 3;
* :func:`direct_solution` -- all three: ``A^{-1} b``, or a flag that ``A`` is numerically
  singular;
* :func:`exceeds_shift` -- whether a symmetric ``A - shift I`` is positive definite, by a
  Cholesky factorisation (LAPACK's ``dpotrf``): a sixth of an eigendecomposition's work.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.np.linalg import _LAPACK

# numba's binding of LAPACK's getrf (the symbol numba's own np.linalg.inv calls); an
# external function by name, so the kernels that call it can be cached.
_dgetrf = _LAPACK().numba_xxgetrf(types.float64)
_dpotrf = _LAPACK().numba_xxpotrf(types.float64)

#: Iterations of the one-norm estimator (LAPACK's dlacn2 uses at most 5).
_ESTIMATOR_ITERATIONS = 5


@njit(cache=True)
def lu_factor(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``P A = L U`` of a square ``matrix`` (not modified).

    Returns
    -------
    lu : ndarray (n, n), Fortran order
        ``L`` (unit diagonal, below) and ``U`` (on and above the diagonal).
    pivots : ndarray (n,), int32
        LAPACK's 1-based row interchanges: row ``k`` was swapped with row ``pivots[k] - 1``.
    info : int
        0 on success; ``k > 0`` if ``U[k-1, k-1]`` is exactly zero (then ``A`` is singular).
    """
    n = matrix.shape[0]
    lu = matrix.T.copy().T  # a Fortran-order copy, as LAPACK expects
    pivots = np.empty(n, dtype=np.int32)
    if n == 0:
        return lu, pivots, 0
    info = _dgetrf(ord("d"), n, n, lu.ctypes, n, pivots.ctypes)
    return lu, pivots, int(info)


@njit(cache=True)
def lu_solve(
    lu: np.ndarray, pivots: np.ndarray, rhs: np.ndarray, transpose: bool = False, permute: bool = True
) -> np.ndarray:
    """The solution ``x`` of ``A x = rhs`` (``A^T x = rhs`` if ``transpose``) from :func:`lu_factor`.

    With ``permute=False`` the row interchanges are left out: ``x = (L U)^{-1} rhs`` (or
    ``(L U)^{-T} rhs``), the operator whose norm :func:`reciprocal_condition` estimates.
    """
    n = lu.shape[0]
    x = rhs.copy()
    if not transpose:  # L U x = P rhs
        for k in range(n if permute else 0):
            swap = pivots[k] - 1
            if swap != k:
                x[k], x[swap] = x[swap], x[k]
        for j in range(n):  # forward substitution by columns (Fortran order)
            xj = x[j]
            for i in range(j + 1, n):
                x[i] -= lu[i, j] * xj
        for j in range(n - 1, -1, -1):
            x[j] /= lu[j, j]
            xj = x[j]
            for i in range(j):
                x[i] -= lu[i, j] * xj
        return x
    # U^T L^T P x = rhs: the transposed factors are traversed by rows of L and U
    for i in range(n):
        total = x[i]
        for j in range(i):
            total -= lu[j, i] * x[j]
        x[i] = total / lu[i, i]
    for i in range(n - 1, -1, -1):
        total = x[i]
        for j in range(i + 1, n):
            total -= lu[j, i] * x[j]
        x[i] = total
    for k in range(n - 1 if permute else -1, -1, -1):
        swap = pivots[k] - 1
        if swap != k:
            x[k], x[swap] = x[swap], x[k]
    return x


@njit(cache=True)
def _largest_entry(vector: np.ndarray) -> int:
    best = 0
    for i in range(vector.size):
        if abs(vector[i]) > abs(vector[best]):
            best = i
    return best


@njit(cache=True)
def _signs(vector: np.ndarray) -> np.ndarray:
    out = np.empty(vector.size)
    for i in range(vector.size):
        out[i] = 1.0 if vector[i] >= 0.0 else -1.0
    return out


@njit(cache=True)
def reciprocal_condition(lu: np.ndarray, pivots: np.ndarray, matrix_norm: float) -> float:
    """Estimate of ``1 / (||A||_1 ||A^{-1}||_1)`` from the LU factors of ``A``, as LAPACK's
    ``dgecon`` computes it.

    ``matrix_norm`` is ``||A||_1`` (largest absolute column sum). ``||A^{-1}||_1 =
    ||(L U)^{-1}||_1`` (the row interchanges permute columns) is estimated from below by
    ``dlacn2``'s iteration: Hager's power method on the convex function ``x -> ||B x||_1``
    over the unit 1-norm ball, ``B = (L U)^{-1}`` (its maximum is at a unit vector
    ``e_j``): solve with ``B``, take the signs, solve with ``B^T``, move to the vertex of
    the largest entry, until the signs repeat, the estimate stops growing or the vertex
    repeats (at most five solves with ``B``); Higham's extra test vector
    ``x_i = (-1)^i (1 + i / (n - 1))`` guards against the cases that fool the iteration.
    """
    n = lu.shape[0]
    if n == 0:
        return 1.0
    if not matrix_norm > 0.0:
        return 0.0
    y = lu_solve(lu, pivots, np.full(n, 1.0 / n), False, False)
    estimate = np.sum(np.abs(y))
    if n > 1:
        signs = _signs(y)
        j = _largest_entry(lu_solve(lu, pivots, signs, True, False))
        for iteration in range(2, _ESTIMATOR_ITERATIONS + 1):
            x = np.zeros(n)
            x[j] = 1.0
            y = lu_solve(lu, pivots, x, False, False)
            previous = estimate
            estimate = np.sum(np.abs(y))
            new_signs = _signs(y)
            if np.all(new_signs == signs) or estimate <= previous:
                break  # repeated signs (converged), or no growth (cycling)
            signs = new_signs
            z = lu_solve(lu, pivots, signs, True, False)
            last = j
            j = _largest_entry(z)
            if z[last] == abs(z[j]) or iteration == _ESTIMATOR_ITERATIONS:
                break
        alternating = np.empty(n)
        for i in range(n):
            alternating[i] = (-1.0) ** i * (1.0 + i / (n - 1))
        alternative = 2.0 * np.sum(np.abs(lu_solve(lu, pivots, alternating, False, False))) / (3.0 * n)
        estimate = max(estimate, alternative)
    if not np.isfinite(estimate) or estimate == 0.0:
        return 0.0
    return 1.0 / (matrix_norm * estimate)


@njit(cache=True)
def one_norm(matrix: np.ndarray) -> float:
    """``||A||_1``: the largest absolute column sum."""
    best = 0.0
    for j in range(matrix.shape[1]):
        total = 0.0
        for i in range(matrix.shape[0]):
            total += abs(matrix[i, j])
        best = max(best, total)
    return best


@njit(cache=True)
def direct_solution(matrix: np.ndarray, rhs: np.ndarray, min_rcond: float) -> tuple[bool, np.ndarray]:
    """``(True, A^{-1} rhs)`` by LU, or ``(False, rhs)`` if ``A`` is numerically singular.

    Numerically singular: an exactly zero pivot, or an estimated reciprocal condition
    number (:func:`reciprocal_condition`) below ``min_rcond`` or not finite. A matrix or
    right-hand side with a NaN or infinite entry is refused too.
    """
    if matrix.shape[0] == 0:
        return True, np.zeros(0)
    if not (np.all(np.isfinite(matrix)) and np.all(np.isfinite(rhs))):
        return False, rhs
    lu, pivots, info = lu_factor(matrix)
    if info != 0:
        return False, rhs
    reciprocal = reciprocal_condition(lu, pivots, one_norm(matrix))
    if not reciprocal >= min_rcond:
        return False, rhs
    return True, lu_solve(lu, pivots, rhs)


@njit(cache=True)
def exceeds_shift(matrix: np.ndarray, shift: float) -> bool:
    """Whether every eigenvalue of the symmetric part of ``matrix`` exceeds ``shift``.

    True when the Cholesky factorisation of ``matrix - shift I`` (lower triangle read)
    succeeds. Near the threshold rounding decides either way: an answer ``True`` means the
    smallest eigenvalue exceeds ``shift`` up to a few ulps of ``||matrix||``. ``False``
    for a matrix or shift that is not finite.
    """
    n = matrix.shape[0]
    if n == 0:
        return True
    if not (np.isfinite(shift) and np.all(np.isfinite(matrix))):
        return False  # LAPACK's Cholesky does not notice NaN
    shifted = (0.5 * (matrix + matrix.T)).T.copy().T  # symmetrised, Fortran order
    for i in range(n):
        shifted[i, i] -= shift
    # the lower triangle of the Fortran array is the upper one of its C transpose: 'L' here
    return _dpotrf(ord("d"), ord("L"), n, shifted.ctypes, n) == 0
