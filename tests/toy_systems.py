"""Small systems with known zeros, following critpoints.solver.newton.StationarySystem.

Each class has hand-written derivatives; the module-level ``make_*`` functions build them
from picklable arguments, as :func:`critpoints.solver.restarts.solve_from_starts` requires. The
exact solutions are computed independently of the solver (roots of univariate cubics,
eigenvectors), so the tests compare the solver against closed forms.
"""

from __future__ import annotations

import itertools
import os
import signal
import time

import numpy as np

from critpoints.manifolds.spheres import SphereProduct

# ---------------------------------------------------------------------------- separable quartic


class SeparableQuartic:
    """``f(x) = sum_i (x_i^2 - 1)^2 + c_i x_i`` on R^n.

    ``df/dx_i = 4 x_i^3 - 4 x_i + c_i`` and the Hessian is ``diag(12 x_i^2 - 4)``. For
    ``|c_i| < 16 / (3 sqrt 3)`` each cubic has three real roots (near -1, 0, +1), so ``f``
    has ``3^n`` critical points; the index of one is the number of coordinates at the
    middle root (where ``12 x^2 - 4 < 0``).
    """

    is_gradient = True

    def __init__(self, tilts: np.ndarray) -> None:
        self.tilts = np.asarray(tilts, dtype=np.float64)
        self.manifold = SphereProduct.euclidean(self.tilts.size)

    def value(self, theta: np.ndarray) -> float:
        return float(np.sum((theta**2 - 1.0) ** 2 + self.tilts * theta))

    def residual(self, theta: np.ndarray) -> np.ndarray:
        return 4.0 * theta**3 - 4.0 * theta + self.tilts

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray:
        return np.diag(12.0 * theta**2 - 4.0)

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        return self.residual_jacobian(theta)

    def critical_points(self) -> tuple[np.ndarray, np.ndarray]:
        """All ``3^n`` critical points (rows) and their Morse indices."""
        per_coordinate = [np.sort(np.roots([4.0, 0.0, -4.0, c]).real) for c in self.tilts]
        points = np.array(list(itertools.product(*per_coordinate)))
        middle = np.array([roots[1] for roots in per_coordinate])
        indices = np.sum(np.isclose(points, middle[None, :]), axis=1)
        return points, indices


def make_quartic(tilts: tuple[float, ...]) -> SeparableQuartic:
    return SeparableQuartic(np.array(tilts))


# ---------------------------------------------------------------------------- coupled double wells


class CoupledDoubleWell:
    """``f(x, y) = (x^2 - 1)^2 + (y^2 - 1)^2 + c x y + a x`` on R^2.

    For small ``c, a`` (e.g. 0.5, 0.3) f has four minima near (+-1, +-1), four index-1 saddles
    near (+-1, 0) and (0, +-1) and a maximum near 0, at distinct heights. The critical points
    are found without the solver: ``df/dx = 4x^3 - 4x + c y + a = 0`` gives
    ``y = h(x) / c`` with ``h(x) = 4x - 4x^3 - a``, and ``df/dy = 4y^3 - 4y + c x = 0`` becomes
    the degree-9 polynomial ``4 h^3 - 4 c^2 h + c^4 x = 0`` (times ``c^3``), whose real roots
    are polished by Newton steps on that univariate polynomial.
    """

    is_gradient = True

    def __init__(self, coupling: float, tilt: float) -> None:
        self.coupling, self.tilt = float(coupling), float(tilt)
        self.manifold = SphereProduct.euclidean(2)

    def value(self, theta: np.ndarray) -> float:
        x, y = theta
        return float((x * x - 1.0) ** 2 + (y * y - 1.0) ** 2 + self.coupling * x * y + self.tilt * x)

    def residual(self, theta: np.ndarray) -> np.ndarray:
        x, y = theta
        c = self.coupling
        return np.array([4.0 * x**3 - 4.0 * x + c * y + self.tilt, 4.0 * y**3 - 4.0 * y + c * x])

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray:
        x, y = theta
        return np.array([[12.0 * x * x - 4.0, self.coupling], [self.coupling, 12.0 * y * y - 4.0]])

    def critical_points(self) -> tuple[np.ndarray, np.ndarray]:
        """All critical points (rows, by increasing x) and their Morse indices."""
        c, a = self.coupling, self.tilt
        h = np.polynomial.Polynomial([-a, 4.0, 0.0, -4.0])
        polynomial = 4.0 * h**3 - 4.0 * c**2 * h + np.polynomial.Polynomial([0.0, c**4])
        roots = polynomial.roots()
        points, indices = [], []
        for x in np.sort(roots[np.abs(roots.imag) < 1e-7].real):
            for _ in range(4):
                x -= polynomial(x) / polynomial.deriv()(x)
            point = np.array([x, h(x) / c])
            points.append(point)
            indices.append(int(np.sum(np.linalg.eigvalsh(self.residual_jacobian(point)) < 0)))
        return np.array(points), np.array(indices)


def make_double_well(coupling: float, tilt: float) -> CoupledDoubleWell:
    return CoupledDoubleWell(coupling, tilt)


# ---------------------------------------------------------------------------- Rayleigh quotient


class RayleighQuotient:
    """``f(x) = x^T A x`` on the unit sphere ``S^{n-1}``.

    The Riemannian gradient is ``P 2 A x`` and the Riemannian Hessian ``P (2 A - 2 x^T A x I) P``.
    The critical points are ``+-v_k`` (unit eigenvectors, eigenvalues ``l_1 < ... < l_n``)
    and the Hessian at ``v_k`` has eigenvalues ``2 (l_j - l_k)``, ``j != k``: index ``k - 1``.
    """

    is_gradient = True

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = np.asarray(matrix, dtype=np.float64)
        n = self.matrix.shape[0]
        self.manifold = SphereProduct(n, [np.arange(n)])

    def value(self, theta: np.ndarray) -> float:
        return float(theta @ self.matrix @ theta)

    def residual(self, theta: np.ndarray) -> np.ndarray:
        return self.manifold.riemannian_gradient(theta, 2.0 * self.matrix @ theta)

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray:
        return self.manifold.riemannian_hessian(theta, 2.0 * self.matrix @ theta, 2.0 * self.matrix)

    def hessian_spectrum(self, theta: np.ndarray) -> np.ndarray:
        egrad = 2.0 * self.matrix @ theta
        form = self.manifold.riemannian_hessian_in_basis(theta, egrad, 2.0 * self.matrix)
        return np.linalg.eigvalsh(form)

    def critical_points(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``2 n`` critical points ``+-v_k`` (rows) and their indices ``k - 1``."""
        _, vectors = np.linalg.eigh(self.matrix)
        n = self.matrix.shape[0]
        points = np.concatenate([vectors.T, -vectors.T])
        return points, np.concatenate([np.arange(n), np.arange(n)])


def make_rayleigh(matrix: np.ndarray) -> RayleighQuotient:
    return RayleighQuotient(matrix)


# ---------------------------------------------------------------------------- non-gradient field


class TriangularCubicField:
    """The vector field ``F(x, y) = (x^3 - x, y^3 - y + c x)`` on R^2 (not a gradient).

    Its Jacobian ``[[3x^2 - 1, 0], [c, 3y^2 - 1]]`` is not symmetric for ``c != 0``. The
    zeros: ``x in {-1, 0, 1}`` and, for each, the three real roots of
    ``y^3 - y + c x = 0`` (``|c| < 2 / (3 sqrt 3)``): nine zeros.
    """

    is_gradient = False

    def __init__(self, coupling: float) -> None:
        self.coupling = float(coupling)
        self.manifold = SphereProduct.euclidean(2)

    def value(self, theta: np.ndarray) -> float:
        return 0.0

    def residual(self, theta: np.ndarray) -> np.ndarray:
        x, y = theta
        return np.array([x**3 - x, y**3 - y + self.coupling * x])

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray:
        x, y = theta
        return np.array([[3.0 * x**2 - 1.0, 0.0], [self.coupling, 3.0 * y**2 - 1.0]])

    def zeros(self) -> np.ndarray:
        points = []
        for x in (-1.0, 0.0, 1.0):
            for y in np.roots([1.0, 0.0, -1.0, self.coupling * x]).real:
                points.append((x, y))
        return np.array(points)


# ---------------------------------------------------------------------------- failure cases


class TiltedValley:
    """``f(x, y) = x^2 + slope * y + curvature * y^2 / 2``.

    With ``curvature = 0`` the gradient ``(2x, slope)`` never vanishes; the Hessian
    ``diag(2, curvature)`` is singular along y and the gradient's y part lies in its null
    space: a gradient-flat region for small ``slope``. A tiny ``curvature`` (below the
    solver's relative cutoff) puts it in the *numerical* null space; the exact stationary
    point ``(0, -slope / curvature)`` is then far away.
    """

    is_gradient = True

    def __init__(self, slope: float, curvature: float = 0.0) -> None:
        self.slope = float(slope)
        self.curvature = float(curvature)
        self.manifold = SphereProduct.euclidean(2)

    def value(self, theta: np.ndarray) -> float:
        return float(theta[0] ** 2 + self.slope * theta[1] + 0.5 * self.curvature * theta[1] ** 2)

    def residual(self, theta: np.ndarray) -> np.ndarray:
        return np.array([2.0 * theta[0], self.slope + self.curvature * theta[1]])

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray:
        return np.array([[2.0, 0.0], [0.0, self.curvature]])


class CauchyLoss1D:
    """``f(x) = 1/2 log(1 + x^2)`` on R: one critical point, ``x = 0``.

    ``f' = x / (1 + x^2)``, ``f'' = (1 - x^2) / (1 + x^2)^2``. For ``|x| > 1`` the Newton
    step ``x -> 2 x^3 / (x^2 - 1)`` runs away while ``|f'|`` decreases (like ``1/x``).
    """

    is_gradient = True
    manifold = SphereProduct.euclidean(1)

    def value(self, theta: np.ndarray) -> float:
        return float(0.5 * np.log1p(theta[0] ** 2))

    def residual(self, theta: np.ndarray) -> np.ndarray:
        return theta / (1.0 + theta**2)

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray:
        return np.array([[(1.0 - theta[0] ** 2) / (1.0 + theta[0] ** 2) ** 2]])


class Quartic1D:
    """``f(x) = x^4``: a degenerate minimum at 0, where Newton converges linearly (ratio 2/3)."""

    is_gradient = True
    manifold = SphereProduct.euclidean(1)

    def value(self, theta: np.ndarray) -> float:
        return float(theta[0] ** 4)

    def residual(self, theta: np.ndarray) -> np.ndarray:
        return 4.0 * theta**3

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray:
        return np.array([[12.0 * theta[0] ** 2]])


class MexicanHat:
    """``f(x, y) = (x^2 + y^2 - 1)^2``: a circle of minima (a rotation orbit) and a maximum at 0.

    On the circle the Hessian ``8 x x^T`` has the rotation direction in its null space:
    the minima are not isolated and the Jacobian is singular at every solution but one.
    """

    is_gradient = True
    manifold = SphereProduct.euclidean(2)

    def value(self, theta: np.ndarray) -> float:
        return float((theta @ theta - 1.0) ** 2)

    def residual(self, theta: np.ndarray) -> np.ndarray:
        return 4.0 * (theta @ theta - 1.0) * theta

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray:
        return 4.0 * (theta @ theta - 1.0) * np.eye(2) + 8.0 * np.outer(theta, theta)


class RotatingMexicanHat(MexicanHat):
    """:class:`MexicanHat` that names its rotation generator ``(-y, x)`` as a null direction."""

    def null_directions(self, theta: np.ndarray) -> np.ndarray:
        return np.array([[-theta[1]], [theta[0]]])


class ParallelValleys:
    """``f(x, y, z) = (x^2 - 1)^2 + c z^2`` on R^3: two lines of critical points at level 0.

    The critical points are ``x in {-1, 0, 1}``, ``z = 0``, ``y`` free. The lines ``x = +-1``
    are at level 0 — minima for ``c > 0``, index-1 saddles for ``c < 0`` — and ``x = 0`` is at
    level 1: two components of the critical set at one level, a barrier of height 1 between
    them, each a straight line along y.
    """

    is_gradient = True
    manifold = SphereProduct.euclidean(3)

    def __init__(self, curvature: float) -> None:
        self.curvature = float(curvature)

    def value(self, theta: np.ndarray) -> float:
        x, _, z = theta
        return float((x * x - 1.0) ** 2 + self.curvature * z * z)

    def residual(self, theta: np.ndarray) -> np.ndarray:
        x, _, z = theta
        return np.array([4.0 * (x * x - 1.0) * x, 0.0, 2.0 * self.curvature * z])

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray:
        return np.diag([12.0 * theta[0] ** 2 - 4.0, 0.0, 2.0 * self.curvature])


class SaddleRing:
    """``f(x, y, z) = (x^2 + y^2 - 1)^2 - z^2``: a circle of index-1 saddles at level 0 (z = 0,
    x^2 + y^2 = 1), and a maximum-like point at the origin (level 1)."""

    is_gradient = True
    manifold = SphereProduct.euclidean(3)

    def value(self, theta: np.ndarray) -> float:
        x, y, z = theta
        return float((x * x + y * y - 1.0) ** 2 - z * z)

    def residual(self, theta: np.ndarray) -> np.ndarray:
        x, y, z = theta
        radial = 4.0 * (x * x + y * y - 1.0)
        return np.array([radial * x, radial * y, -2.0 * z])

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray:
        x, y, _ = theta
        plane = 4.0 * (x * x + y * y - 1.0) * np.eye(2) + 8.0 * np.outer([x, y], [x, y])
        jacobian = np.zeros((3, 3))
        jacobian[:2, :2] = plane
        jacobian[2, 2] = -2.0
        return jacobian


def make_logged_quartic(tilts: tuple[float, ...], log_path: str) -> SeparableQuartic:
    """``make_quartic`` that appends one line per call to ``log_path`` (counts the builds)."""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("built\n")
    return make_quartic(tilts)


class PowellSingular:
    """Powell's system ``F(x, y) = (x, 10 x / (x + 0.1) + 2 y^2)``, zero at the origin.

    M. J. D. Powell, "A hybrid method for nonlinear equations", 1970: the Jacobian
    ``[[1, 0], [1 / (x + 0.1)^2, 4 y]]`` is singular on ``y = 0``, and Newton's method
    with a line search on ``1/2 ||F||^2`` stalls at a point ``(x, 0)``, ``x > 0``, that is
    not a zero. A damped Gauss-Newton (Levenberg-Marquardt) step escapes.
    """

    is_gradient = False
    manifold = SphereProduct.euclidean(2)

    def value(self, theta: np.ndarray) -> float:
        return 0.0

    def residual(self, theta: np.ndarray) -> np.ndarray:
        x, y = theta
        return np.array([x, 10.0 * x / (x + 0.1) + 2.0 * y**2])

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray:
        x, y = theta
        return np.array([[1.0, 0.0], [1.0 / (x + 0.1) ** 2, 4.0 * y]])


class CountingSystem:
    """Wraps a system and counts the calls of each protocol method."""

    def __init__(self, system) -> None:
        self.system = system
        self.manifold = system.manifold
        self.is_gradient = system.is_gradient
        self.calls = {"value": 0, "residual": 0, "residual_jacobian": 0}

    def value(self, theta: np.ndarray) -> float:
        self.calls["value"] += 1
        return self.system.value(theta)

    def residual(self, theta: np.ndarray) -> np.ndarray:
        self.calls["residual"] += 1
        return self.system.residual(theta)

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray:
        self.calls["residual_jacobian"] += 1
        return self.system.residual_jacobian(theta)


class Forwarding:
    """Forwards ``value``, ``residual`` and ``residual_jacobian`` to another system, and
    ``null_directions`` only if asked: no compiled kernels, so the interpreted solver runs."""

    def __init__(self, system, null_directions: bool = True) -> None:
        self.system, self.manifold, self.is_gradient = system, system.manifold, system.is_gradient
        if null_directions and hasattr(system, "null_directions"):
            self.null_directions = system.null_directions

    def value(self, theta: np.ndarray) -> float:
        return self.system.value(theta)

    def residual(self, theta: np.ndarray) -> np.ndarray:
        return self.system.residual(theta)

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray:
        return self.system.residual_jacobian(theta)


# ---------------------------------------------------------------------------- slow systems (fault tests)

#: A start whose first coordinate is this kills the worker process that runs it (SleepyQuartic).
KILL_MARKER = 1.2345


class SleepyQuartic(SeparableQuartic):
    """The separable quartic with a Jacobian that takes ``seconds`` to compute, so that runs
    last long enough to interrupt them or to kill their parent. With ``owner`` (a pid), a
    start whose first coordinate is :data:`KILL_MARKER` kills the worker process (any process
    other than ``owner``) that evaluates it, as the out-of-memory killer would."""

    def __init__(self, tilts: np.ndarray, seconds: float, owner: int | None) -> None:
        super().__init__(tilts)
        self.seconds, self.owner = seconds, owner

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray:
        if self.owner is not None and theta[0] == KILL_MARKER and os.getpid() != self.owner:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(self.seconds)
        return super().residual_jacobian(theta)


def make_sleepy(tilts: tuple[float, ...], seconds: float, owner: int | None = None) -> SleepyQuartic:
    return SleepyQuartic(np.array(tilts), seconds, owner)
