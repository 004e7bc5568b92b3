"""Newton's method for the stationary points of a loss, or the zeros of a vector field.

The solver finds *all kinds* of stationary points (minima, saddles of every index,
maxima; derivations/MODEL.md §6) by solving the stationarity equations ``r(theta) = 0`` with
Newton's method, where ``r`` is the Riemannian gradient of the loss (or a stop-gradient
vector field). It never minimises the loss itself: its merit function is the squared
residual ``1/2 ||r||^2``, whose zeros are exactly the stationary points, whatever their
index.

It knows nothing about the losses. It works on any object following the
:class:`StationarySystem` protocol: a manifold (a :class:`~critpoints.manifolds.spheres.SphereProduct`,
``SphereProduct.euclidean(n)`` without constraint), the residual ``r`` as a tangent vector in
ambient coordinates and its covariant Jacobian.

Algorithm (one start)
---------------------
At the iterate ``theta`` with orthonormal tangent basis ``B`` (``n x dim``):

1. reduced residual ``rho = B^T r`` and reduced Jacobian ``A = B^T J B``;
2. quotient: if the system names null directions ``N`` (generators of continuous
   symmetries, whose orbits make ``A`` singular at every solution), the quotient Jacobian
   ``A_q = A + c N N^T`` (:func:`_lift_null_directions`), whose solve steps orthogonally to
   the orbits (exactly for gradient systems; for fields near a zero); ``A_q = A`` otherwise.
   Steps along an orbit do not reduce the residual, and near a solution ``A`` has
   eigenvalues of the size of the residual in those directions: inverting them gave long,
   curved steps that the line search cut, and runs that crept;
3. Newton step ``s = -A_q^{-1} rho`` by LU when ``A_q`` is well conditioned (reciprocal
   condition estimate at least ``direct_rcond``); otherwise the minimal-norm least-squares
   solution, through an eigendecomposition (symmetric ``A_q``, gradient systems) or an SVD
   (vector fields), with the singular values below ``rcond * max |sigma|`` treated as zero,
   so that flat directions no symmetry explains do not break the step;
4. backtracking (Armijo) line search on the merit ``phi = 1/2 ||r||^2`` along the retraction
   curve ``alpha -> R_theta(alpha B s)``;
5. if the Newton direction gives no decrease, a Levenberg-Marquardt fallback: damped
   Gauss-Newton steps ``(A^T A + lambda I) s = -A^T rho`` on the same merit, for increasing
   ``lambda``;
6. stall test: when ``A_q`` is numerically singular and the part of the residual that the
   linearisation can remove, ``||P_range(A_q) rho||``, is already below the tolerance, or
   when no trial step decreases the merit, the run stops.

Unconstrained gradient systems that bring their evaluations as numba kernels (the
closed-form losses) are solved by the same algorithm compiled end to end
(critpoints.solver.compiled), a batch of starts per call; see :func:`newton_runs`.

Every run ends with one :class:`Status`. ``converged`` is reported if and only if the
residual norm at the returned point is at most ``tol * scale``.

Deflation
---------
Given known solutions ``theta_k``, the run can be steered away from them by deflation
(P. E. Farrell, A. Birkisson and S. W. Funke, "Deflation techniques for finding distinct
solutions of nonlinear partial differential equations", SIAM J. Sci. Comput. 37(4),
A2026-A2045, 2015); see :func:`newton_stationary`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike

from critpoints.manifolds.spheres import SphereProduct
from critpoints.solver.compiled import CompiledKernels, lift_null_directions, solve_compiled
from critpoints.solver.dense_solve import direct_solution, exceeds_shift
from critpoints.solver.types import NewtonOptions, NewtonResult, StationarySystem, Status

#: The options of a run when none are given.
DEFAULT_OPTIONS = NewtonOptions()

__all__ = [
    "NewtonOptions",
    "NewtonResult",
    "Status",
    "StationarySystem",
    "deflation_log_factor",
    "newton_runs",
    "newton_stationary",
    "per_start_options",
]


# ---------------------------------------------------------------------------- deflation


def deflation_log_factor(theta: np.ndarray, known: np.ndarray, power: float, shift: float) -> tuple[float, np.ndarray]:
    """Logarithm of the deflation factor and its Euclidean gradient.

    Parameters
    ----------
    theta : ndarray, shape (n,)
    known : ndarray, shape (K, n)
        Known solutions ``theta_k``.
    power, shift : float
        ``p`` and ``shift`` below.

    Returns
    -------
    log_mu : float
        ``log mu(theta)`` with ``mu(theta) = prod_k (||e_k||^{-p} + shift)``,
        ``e_k = theta - theta_k``; ``inf`` if ``theta`` equals some ``theta_k``.
    grad_log_mu : ndarray, shape (n,)
        ``grad log mu = sum_k -p e_k / (||e_k||^2 (1 + shift ||e_k||^p))``, the
        log-derivative of each factor written without the overflowing ``||e_k||^{-p}``.
    """
    differences = theta[None, :] - known
    distances = np.linalg.norm(differences, axis=1)
    if np.any(distances == 0.0):
        return math.inf, np.zeros_like(theta)
    # log(d^-p + shift) = -p log d + log1p(shift d^p).
    log_mu = float(np.sum(-power * np.log(distances) + np.log1p(shift * distances**power)))
    weights = -power / (distances**2 * (1.0 + shift * distances**power))
    return log_mu, weights @ differences


# ---------------------------------------------------------------------------- linear algebra


class _Factorisation(NamedTuple):
    """``A = U diag(sigma) V^T`` with orthogonal ``U``, ``V`` (``sigma`` signed for ``eigh``)."""

    left: np.ndarray
    values: np.ndarray
    right: np.ndarray
    kept: np.ndarray  # |sigma| > rcond * max |sigma|
    largest: float  # max |sigma|


def _factorise(matrix: np.ndarray, symmetric: bool, rcond: float) -> _Factorisation:
    """Eigendecomposition of a symmetric ``matrix`` (symmetrised first) or its SVD."""
    if symmetric:
        values, vectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
        left = right = vectors
    else:
        try:
            left, values, right_t = np.linalg.svd(matrix)
        except np.linalg.LinAlgError:
            left, values, right_t = scipy.linalg.svd(matrix, lapack_driver="gesvd")
        right = right_t.T
    largest = float(np.max(np.abs(values))) if values.size else 0.0
    kept = np.abs(values) > rcond * largest
    return _Factorisation(left, values, right, kept, largest)


def _minimal_norm_solution(factors: _Factorisation, rhs: np.ndarray) -> np.ndarray:
    """``A^+ rhs`` with the cut-off pseudo-inverse: the minimal-norm least-squares solution."""
    coefficients = factors.left.T @ rhs
    inverse = np.zeros_like(factors.values)
    inverse[factors.kept] = 1.0 / factors.values[factors.kept]
    return factors.right @ (inverse * coefficients)


def _damped_solution(factors: _Factorisation, rhs: np.ndarray, damping: float) -> np.ndarray:
    """Solution of ``(A^T A + damping I) x = A^T rhs``.

    It is ``V diag(sigma / (sigma^2 + damping)) U^T rhs``: one factorisation serves every
    damping.
    """
    coefficients = factors.left.T @ rhs
    return factors.right @ (factors.values / (factors.values**2 + damping) * coefficients)


def _removable_residual_norm(factors: _Factorisation, rho: np.ndarray) -> float:
    """``||P_range(A) rho||``: the part of ``rho`` a step of the linearisation can cancel."""
    return float(np.linalg.norm((factors.left.T @ rho)[factors.kept]))


def _direct_solution(matrix: np.ndarray, rhs: np.ndarray, min_rcond: float) -> np.ndarray | None:
    """``matrix^{-1} rhs`` by LU with partial pivoting; ``None`` if numerically singular.

    Numerically singular: an exactly zero pivot, or an estimate of the reciprocal condition
    number in the 1-norm (LAPACK's ``dgecon`` algorithm) below ``min_rcond`` or not finite.
    The kernel is the one the compiled driver uses (critpoints.solver.dense_solve).
    """
    solved, solution = direct_solution(
        np.ascontiguousarray(matrix, dtype=np.float64), np.ascontiguousarray(rhs, dtype=np.float64), min_rcond
    )
    return solution if solved else None


def _lift_null_directions(matrix: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """The quotient Jacobian ``A_q = A + c N N^T`` for known null directions ``N``.

    Gradient systems: at a solution ``A N = 0``, and the residual is orthogonal to the
    generators of a symmetry everywhere (``N^T rho = 0``); then the solution of
    ``A_q s = -rho`` is orthogonal to ``N`` and is the Newton step in the complement of
    ``N``, and ``A_q`` is invertible exactly when ``A`` is on that complement. Fields: at a
    zero ``A N = 0`` and ``A`` is block triangular ``[[0, X], [0, C]]`` in the basis
    ``[N, complement]``, so ``A_q`` is invertible exactly when ``C`` is; the step is
    orthogonal to ``N`` and solves ``A s = -rho`` when ``rho`` lies in the range of ``A``
    (as it does to first order near a zero), otherwise it is the Newton step of the
    complement's equations. Away from solutions ``A N`` is of the order of the residual
    and the step is a Newton step with the orbit directions damped.
    ``c = ||A||_F / ||N||_F^2`` puts the lifted eigenvalues on the scale of ``A``'s (the
    raw generators are used, not an orthonormal basis of their span: a QR per iteration
    would cost more than the solve). The kernel is the compiled driver's
    (critpoints.solver.compiled.lift_null_directions); it may overflow to a non-finite
    matrix, which callers check.
    """
    return lift_null_directions(
        np.ascontiguousarray(matrix, dtype=np.float64), np.ascontiguousarray(directions, dtype=np.float64)
    )


# ---------------------------------------------------------------------------- one run


class _Point(NamedTuple):
    """An iterate with its residual, the residual norm and the (log) deflation factor."""

    theta: np.ndarray
    residual: np.ndarray
    residual_norm: float
    log_mu: float

    def log_deflated_norm(self) -> float:
        """``log(mu ||r||)``, the logarithm of the deflated residual norm."""
        with np.errstate(divide="ignore"):
            return float(self.log_mu + np.log(self.residual_norm))

    def merit_relative_to(self, reference: _Point) -> float:
        """``1/2 mu^2 ||r||^2 / mu_ref^2``: the merit in units of ``reference``'s factor.

        Dividing by the (possibly huge) deflation factor of the current iterate keeps the
        merits of the line search comparable without overflow; ``inf`` if not finite.
        """
        if not math.isfinite(self.residual_norm) or not math.isfinite(self.log_mu):
            return math.inf
        with np.errstate(over="ignore"):
            ratio = np.exp(2.0 * (self.log_mu - reference.log_mu))
            return float(0.5 * ratio * self.residual_norm**2)


class _Linearisation:
    """Reduced quantities at an iterate.

    ``basis`` B (``None`` on R^n, B = I), ``rho = B^T r``, the reduced Jacobian
    ``A = B^T J B``, its quotient ``A_q`` (:func:`_lift_null_directions`; ``A`` itself
    without known null directions), the reduced ``B^T grad log mu`` (zeros without
    deflation), and the eigen- or singular-value decomposition of ``A_q``, computed on
    first use (the LU solve usually makes it unnecessary).
    """

    def __init__(
        self,
        basis: np.ndarray | None,
        rho: np.ndarray,
        jacobian: np.ndarray,
        quotient: np.ndarray,
        grad_log_mu: np.ndarray,
        symmetric: bool,
        rcond: float,
    ) -> None:
        self.basis = basis
        self.rho = rho
        self.jacobian = jacobian
        self.quotient = quotient
        self.grad_log_mu = grad_log_mu
        self._symmetric = symmetric
        self._rcond = rcond
        self._factors: _Factorisation | None = None

    @property
    def factors(self) -> _Factorisation:
        """The decomposition of ``A_q`` used by the minimal-norm and damped solves."""
        if self._factors is None:
            self._factors = _factorise(self.quotient, self._symmetric, self._rcond)
        return self._factors


class _Solver:
    """Newton iteration for one system and options; :meth:`run` solves from one start."""

    def __init__(self, system: StationarySystem, options: NewtonOptions, deflation: np.ndarray | None) -> None:
        self.system = system
        self.manifold: SphereProduct = system.manifold
        self.options = options
        self.deflation = deflation
        self.euclidean = len(self.manifold.spheres) == 0
        self.null_directions = getattr(system, "null_directions", None)
        self.tolerance = options.tol  # times the scale, set per run

    # ---------------------------------------------------------------- evaluations

    def point(self, theta: np.ndarray) -> _Point:
        """Evaluate the residual (and deflation factor) at ``theta``."""
        with np.errstate(over="ignore", invalid="ignore"):
            residual = np.asarray(self.system.residual(theta), dtype=np.float64)
            norm = float(np.linalg.norm(residual))
        log_mu = 0.0 if self.deflation is None else self.deflation_factor(theta)[0]
        return _Point(theta, residual, norm, log_mu)

    def deflation_factor(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """``log mu(theta)`` and its gradient for the known solutions of this run."""
        options = self.options
        assert self.deflation is not None  # called only for deflated runs
        return deflation_log_factor(theta, self.deflation, options.deflation_power, options.deflation_shift)

    def linearise(self, point: _Point) -> _Linearisation | None:
        """Reduced residual and Jacobian at ``point``; ``None`` if the Jacobian (or its quotient)
        is not finite."""
        jacobian = np.asarray(self.system.residual_jacobian(point.theta), dtype=np.float64)
        if not np.all(np.isfinite(jacobian)):
            return None
        if self.euclidean:
            basis, rho, reduced = None, point.residual, jacobian
        else:
            basis = self.manifold.tangent_basis(point.theta)
            rho = basis.T @ point.residual
            reduced = basis.T @ (jacobian @ basis)
        quotient = reduced
        if self.null_directions is not None:
            directions = np.asarray(self.null_directions(point.theta), dtype=np.float64)
            if directions.ndim != 2 or directions.shape[0] != self.manifold.n:
                raise ValueError(
                    f"null_directions(theta) must return an array of shape ({self.manifold.n}, k) "
                    f"(one tangent vector per column), got shape {directions.shape}"
                )
            if directions.size:
                reduced_directions = directions if basis is None else basis.T @ directions
                quotient = _lift_null_directions(reduced, reduced_directions)
                if not np.all(np.isfinite(quotient)):  # the lift overflowed
                    return None
        grad_log_mu = np.zeros_like(rho)
        if self.deflation is not None:
            ambient = self.deflation_factor(point.theta)[1]
            grad_log_mu = ambient if basis is None else basis.T @ ambient
        return _Linearisation(basis, rho, reduced, quotient, grad_log_mu, self.system.is_gradient, self.options.rcond)

    def step_point(self, point: _Point, lin: _Linearisation, reduced_step: np.ndarray) -> _Point | None:
        """The point ``R_theta(B s)``, or ``None`` if the retraction is undefined there."""
        ambient = reduced_step if lin.basis is None else lin.basis @ reduced_step
        try:
            theta = self.manifold.retract(point.theta, ambient)
        except ValueError:  # a sphere block mapped to zero
            return None
        if not np.all(np.isfinite(theta)):
            return None
        return self.point(theta)

    # ---------------------------------------------------------------- directions

    @staticmethod
    def merit_slope(lin: _Linearisation, step: np.ndarray) -> float:
        """``d/dalpha 1/2 ||G(R(alpha B s))||^2 / mu(theta)^2`` at 0, with ``G = mu r``.

        ``nabla_v G = mu (J v + (grad log mu . v) r)``, so the slope is
        ``rho . (A s + rho (w . s))`` with ``w = B^T grad log mu`` (in the units of
        :meth:`_Point.merit_relative_to`).
        """
        jacobian_step = lin.jacobian @ step + lin.rho * float(lin.grad_log_mu @ step)
        return float(lin.rho @ jacobian_step)

    def newton_step(self, lin: _Linearisation) -> np.ndarray | None:
        """The Newton step ``s = -A_q^{-1} rho``, or ``None`` if ``rho`` is (numerically)
        in the null space of ``A_q``.

        LU when ``A_q`` is well conditioned; otherwise the minimal-norm least-squares
        solution, after checking that the part of ``rho`` in the range of ``A_q`` exceeds
        the tolerance.
        """
        solution = _direct_solution(lin.quotient, lin.rho, self.options.direct_rcond)
        if solution is None:
            if _removable_residual_norm(lin.factors, lin.rho) <= self.tolerance:
                return None
            solution = _minimal_norm_solution(lin.factors, lin.rho)
        return -solution

    def deflated_step(self, lin: _Linearisation, step: np.ndarray) -> np.ndarray | None:
        """The Newton step of the deflated system (a rescaled ``step``); ``None`` if the
        rescaling blows up. ``step`` itself without deflation."""
        if self.deflation is None:
            return step
        eta = float(lin.grad_log_mu @ step)
        denominator = 1.0 - eta
        if not math.isfinite(denominator) or abs(denominator) < 1e-12:
            return None
        return step / denominator

    def line_search(self, point: _Point, lin: _Linearisation, step: np.ndarray) -> _Point | None:
        """Backtracking Armijo search on the merit along ``alpha -> R(alpha B s)``."""
        options = self.options
        slope = self.merit_slope(lin, step)
        if not slope < 0.0:
            return None
        merit = 0.5 * point.residual_norm**2
        alpha = 1.0
        for _ in range(options.max_backtracks + 1):
            trial = self.step_point(point, lin, alpha * step)
            if trial is not None:
                trial_merit = trial.merit_relative_to(point)
                if trial_merit < merit and trial_merit <= merit + options.armijo * alpha * slope:
                    return trial
            alpha *= options.backtrack_factor
        return None

    def levenberg_marquardt(self, point: _Point, lin: _Linearisation) -> _Point | None:
        """Damped Gauss-Newton trials on ``1/2 ||G||^2`` for increasing damping.

        With ``G = mu r`` the reduced Jacobian of ``G / mu`` is ``A_hat = A + rho w^T``
        (``w = B^T grad log mu``; ``A_hat = A`` without deflation), and the damped step
        solves ``(A_hat^T A_hat + lambda I) s = -A_hat^T rho``: as ``lambda`` grows it turns
        into steepest descent on the merit itself.
        """
        options = self.options
        if self.deflation is None:
            factors = _factorise(lin.jacobian, self.system.is_gradient, options.rcond)
        else:
            deflated = lin.jacobian + np.outer(lin.rho, lin.grad_log_mu)
            factors = _factorise(deflated, False, options.rcond)
        if factors.largest == 0.0:
            return None
        merit = 0.5 * point.residual_norm**2
        damping = options.lm_initial_damping * factors.largest**2
        for _ in range(options.lm_max_trials):
            step = -_damped_solution(factors, lin.rho, damping)
            slope = self.merit_slope(lin, step)
            if slope < 0.0:
                trial = self.step_point(point, lin, step)
                if trial is not None:
                    trial_merit = trial.merit_relative_to(point)
                    if trial_merit < merit and trial_merit <= merit + options.armijo * slope:
                        return trial
            damping *= options.lm_damping_factor
        return None

    def next_point(self, point: _Point, lin: _Linearisation) -> _Point | None:
        """The accepted next iterate, or ``None`` when no step decreases the merit or the
        rest of the residual lies in the numerical null space."""
        newton = self.newton_step(lin)
        if newton is None:
            return None
        step = self.deflated_step(lin, newton)
        if step is not None:
            accepted = self.line_search(point, lin, step)
            if accepted is not None:
                return accepted
        return self.levenberg_marquardt(point, lin)

    # ---------------------------------------------------------------- driver

    def run(self, theta0: np.ndarray) -> NewtonResult:
        """Solve from ``theta0`` (projected onto the manifold first)."""
        theta = self.manifold.project(theta0)
        scale = self.options.scale
        if scale is None:
            value0 = _safe_value(self.system, theta)
            scale = max(1.0, abs(value0)) if math.isfinite(value0) else 1.0
        self.tolerance = self.options.tol * scale
        if self.options.descent_iterations and self.system.is_gradient:
            theta = self.descend(theta)
        point = self.point(theta)
        iterations = 0
        history = [point.log_deflated_norm()]
        while True:
            status = self.stop_status(point, iterations, scale)
            if status is not None:
                break
            if self.creeping(history):
                status = self.stall_status(point, scale)
                break
            lin = self.linearise(point)
            if lin is None:
                status = Status.DIVERGED
                break
            following = self.next_point(point, lin)
            if following is None:
                status = self.stall_status(point, scale)
                break
            point = following
            iterations += 1
            history.append(point.log_deflated_norm())
        return NewtonResult(
            theta=point.theta,
            status=status,
            iterations=iterations,
            residual_norm=point.residual_norm,
            value=_safe_value(self.system, point.theta),
            scale=float(scale),
        )

    def descend(self, theta: np.ndarray) -> np.ndarray:
        """Saddle-free Newton descent on L until the quotient Hessian is positive definite.

        See ``NewtonOptions.descent_iterations``. Returns the last accepted iterate.
        """
        # The eigendecomposition per step is the cost of this phase. A shifted Cholesky
        # step -(A_q + tau I)^{-1} rho was three times cheaper but reached fewer distinct
        # minima: with tau near -lambda_min it follows the most negative curvature far out,
        # while saddle-free steps stay closer to the basins of the gradient flow.
        options = self.options
        value = _safe_value(self.system, theta)
        for _ in range(options.descent_iterations):
            point = self.point(theta)
            if not math.isfinite(value) or point.residual_norm <= self.tolerance:
                break
            lin = self.linearise(point)
            if lin is None:
                break
            quotient = np.ascontiguousarray(lin.quotient)
            if exceeds_shift(quotient, options.rcond * float(np.linalg.norm(quotient))):
                break  # positive definite (a sufficient test, without the eigenpairs)
            eigenvalues = lin.factors.values
            if eigenvalues.size and eigenvalues.min() > options.rcond * lin.factors.largest:
                break  # positive definite: Newton's basin of a minimum
            floor = max(1e-3 * lin.factors.largest, 1e-300)
            coefficients = lin.factors.left.T @ lin.rho
            step = -lin.factors.right @ (coefficients / np.maximum(np.abs(eigenvalues), floor))
            slope = float(lin.rho @ step)
            accepted = None
            alpha = 1.0
            for _ in range(options.max_backtracks + 1):
                ambient = alpha * step if lin.basis is None else lin.basis @ (alpha * step)
                try:
                    trial = self.manifold.retract(theta, ambient)
                except ValueError:
                    trial = None
                if trial is not None and np.all(np.isfinite(trial)):
                    trial_value = _safe_value(self.system, trial)
                    if trial_value <= value + options.armijo * alpha * slope:
                        accepted = (trial, trial_value)
                        break
                alpha *= options.backtrack_factor
            if accepted is None:
                break
            theta, value = accepted
            if np.linalg.norm(theta) > options.divergence_radius:
                break
        return theta

    def stop_status(self, point: _Point, iterations: int, scale: float) -> Status | None:
        """Status if the run must stop at ``point`` before another step, else ``None``."""
        if not math.isfinite(point.residual_norm) or not np.all(np.isfinite(point.theta)):
            return Status.DIVERGED
        if point.residual_norm <= self.options.tol * scale:
            return Status.CONVERGED
        if np.linalg.norm(point.theta) > self.options.divergence_radius:
            return Status.DIVERGED
        if iterations >= self.options.max_iterations:
            return Status.MAX_ITERATIONS
        return None

    def creeping(self, history: list[float]) -> bool:
        """Whether the last ``stall_window`` steps reduced ``mu ||r||`` by < ``stall_decrease``."""
        window = self.options.stall_window
        if len(history) <= window:
            return False
        return history[-1] > history[-1 - window] + math.log1p(-self.options.stall_decrease)

    def stall_status(self, point: _Point, scale: float) -> Status:
        """``gradient_flat`` for a stall with a small residual, ``stalled`` otherwise."""
        if point.residual_norm <= self.options.flat_tol * scale:
            return Status.GRADIENT_FLAT
        return Status.STALLED


def _safe_value(system: StationarySystem, theta: np.ndarray) -> float:
    """``system.value(theta)`` as a float, NaN when ``theta`` or the value is not finite."""
    if not np.all(np.isfinite(theta)):
        return math.nan
    with np.errstate(over="ignore", invalid="ignore"):
        return float(system.value(theta))


def _validated_deflation(deflation: ArrayLike | None, n: int) -> np.ndarray | None:
    if deflation is None:
        return None
    known = np.asarray(deflation, dtype=np.float64)
    if known.size == 0:
        return None
    if known.ndim == 1:
        known = known[None, :]
    if known.ndim != 2 or known.shape[1] != n:
        raise ValueError(f"deflation must be a list of known solutions of shape (K, {n}), got shape {known.shape}")
    if not np.all(np.isfinite(known)):
        raise ValueError("deflation must hold finite points (no NaN or inf)")
    return known


def newton_stationary(
    system: StationarySystem,
    theta0: ArrayLike,
    options: NewtonOptions = DEFAULT_OPTIONS,
    deflation: ArrayLike | None = None,
) -> NewtonResult:
    """Find a zero of the residual ``r`` of ``system`` by Newton's method from ``theta0``.

    Converges to stationary points of any index (minima, saddles, maxima) and to zeros of
    non-gradient vector fields; see the module docstring for the algorithm.

    Parameters
    ----------
    system : StationarySystem
        The residual, its covariant Jacobian, the loss value and the manifold.
    theta0 : array, shape (n,)
        Start; projected onto the manifold first.
    options : NewtonOptions
        Tolerances (relative to the loss scale) and line-search parameters.
    deflation : array, shape (K, n), optional
        Known solutions ``theta_k`` to steer away from.

    Returns
    -------
    NewtonResult
        The last iterate and its :class:`Status`. The status is always judged on the
        undeflated residual: ``converged`` iff ``||r(theta)|| <= tol * scale``.

    Notes
    -----
    **Deflation.** With known solutions ``theta_k`` the run solves the deflated system
    ``G(theta) = mu(theta) r(theta) = 0`` with

        mu(theta) = prod_k (||theta - theta_k||^{-p} + shift),

    ``p = options.deflation_power``, ``shift = options.deflation_shift`` (Farrell,
    Birkisson and Funke 2015). ``G`` has the zeros of ``r`` except the ``theta_k`` (near
    ``theta_k``, ``||G|| ~ ||J e|| / ||e||^p`` with ``e = theta - theta_k`` does not vanish
    for ``p >= 1``), and ``shift > 0`` keeps ``G`` from vanishing at infinity.

    *The deflated Newton step is a rescaled Newton step.* Along a tangent ``v``,

        nabla_v G = mu J v + (D mu[v]) r = mu (J v + (g . v) r),   g = grad log mu,

    so the Newton equation ``nabla_v G = -G`` reads ``J v + (g . v) r = -r``. Let ``s``
    solve the undeflated equation ``J s = -r`` and try ``v = tau s``:
    ``-tau r + tau (g . s) r = -r``, i.e.

        tau = 1 / (1 - g . s) = 1 / (1 - (grad mu . s) / mu).

    (This is the Sherman-Morrison formula for the rank-one update
    ``mu J + r grad mu^T``.) So one factorisation of ``J`` serves both. When ``J`` is
    singular the minimal-norm ``s`` solves ``J s = -P r`` (``P`` the projector on
    ``range J``) and ``tau s`` is the same rescaling of it; it is the exact deflated
    Newton step whenever ``r`` lies in ``range J``. Near a known root ``s ~ -e`` and
    ``g . s ~ p``, so ``tau ~ 1 / (1 - p) < 0``: the step is reversed, away from
    ``theta_k``. Here ``grad log mu = sum_k -p e_k / (||e_k||^2 (1 + shift ||e_k||^p))``
    (the ambient Euclidean gradient; ``g . v`` for tangent ``v`` is the directional
    derivative of ``log mu`` along the manifold).

    The line search and the Levenberg-Marquardt fallback then use the deflated merit
    ``1/2 ||G||^2 = 1/2 mu^2 ||r||^2``; the convergence and stall tests use the
    undeflated ``r``, so a deflated run that reaches a solution (known or not) reports
    its true status: deflation only steers.
    """
    if not isinstance(options, NewtonOptions):
        raise TypeError(f"options must be a NewtonOptions, got {type(options).__name__}")
    theta0 = np.asarray(theta0, dtype=np.float64)
    n = system.manifold.n
    if theta0.shape != (n,):
        raise ValueError(f"theta0 must have shape ({n},) for the system's manifold, got shape {theta0.shape}")
    if not np.all(np.isfinite(theta0)):
        raise ValueError("theta0 must be finite (no NaN or inf)")
    return newton_runs(system, theta0[None, :], options, deflation)[0]


def per_start_options(options: NewtonOptions | Sequence[NewtonOptions], count: int) -> list[NewtonOptions]:
    """``options`` repeated ``count`` times, or the sequence checked to hold ``count`` of them."""
    per_start = [options] * count if isinstance(options, NewtonOptions) else list(options)
    if len(per_start) != count or not all(isinstance(o, NewtonOptions) for o in per_start):
        raise TypeError(
            "options must be a NewtonOptions or a sequence of one NewtonOptions per start, "
            f"got {type(options).__name__} for {count} starts"
        )
    return per_start


def _compiled(system: StationarySystem, deflation: np.ndarray | None) -> CompiledKernels | None:
    """The system's compiled kernels if the compiled driver applies to it, else ``None``."""
    kernels = getattr(system, "compiled_kernels", None)
    if kernels is None or deflation is not None or not system.is_gradient or system.manifold.spheres:
        return None
    if not isinstance(kernels, CompiledKernels):
        raise TypeError(f"compiled_kernels must be a CompiledKernels or None, got {type(kernels).__name__}")
    return kernels


def newton_runs(
    system: StationarySystem,
    starts: ArrayLike,
    options: NewtonOptions | Sequence[NewtonOptions] = DEFAULT_OPTIONS,
    deflation: ArrayLike | None = None,
) -> list[NewtonResult]:
    """:func:`newton_stationary` from every row of ``starts``, each with its options.

    Parameters
    ----------
    system : StationarySystem
    starts : array, shape (R, n)
    options : NewtonOptions or sequence of R NewtonOptions
    deflation : array, shape (K, n), optional
        Known solutions every run is steered away from.

    Returns
    -------
    list of NewtonResult
        One per start, in order. Runs of an unconstrained gradient system with
        ``compiled_kernels`` and no deflation go through the compiled driver in one call
        (critpoints.solver.compiled); the others through the interpreted one.
    """
    manifold = system.manifold
    starts = np.asarray(starts, dtype=np.float64)
    if starts.ndim != 2 or starts.shape[1] != manifold.n:
        raise ValueError(
            f"starts must have shape (R, {manifold.n}) for the system's manifold, got shape {starts.shape}"
        )
    if not np.all(np.isfinite(starts)):
        raise ValueError("starts must be finite (no NaN or inf)")
    per_start = per_start_options(options, len(starts))
    known = _validated_deflation(deflation, manifold.n)
    kernels = _compiled(system, known)
    if kernels is None:
        return [_Solver(system, opts, known).run(start) for start, opts in zip(starts, per_start)]
    thetas, statuses, iterations, norms, values, scales = solve_compiled(kernels, starts, per_start)
    return [
        NewtonResult(
            np.array(thetas[k]),
            Status.from_code(statuses[k]),
            int(iterations[k]),
            float(norms[k]),
            float(values[k]),
            float(scales[k]),
        )
        for k in range(len(starts))
    ]
