"""The solver's types, shared by the interpreted and the compiled Newton drivers.

* :class:`StationarySystem`: the protocol a system of equations r(theta) = 0 follows;
* :class:`Status`: how a run ends, with the integer codes of the compiled driver
  (:data:`STATUS_CODES`, looked up by name on both sides);
* :class:`NewtonResult`: the outcome of one run;
* :class:`NewtonOptions`: tolerances and parameters, validated on construction.

The drivers are critpoints.solver.newton (interpreted, every system) and
critpoints.solver.compiled (unconstrained gradient systems with numba kernels).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from critpoints import _validation as check
from critpoints.manifolds.spheres import SphereProduct

__all__ = ["STATUS_CODES", "NewtonOptions", "NewtonResult", "StationarySystem", "Status"]


@runtime_checkable
class StationarySystem(Protocol):
    """The equations ``r(theta) = 0`` whose solutions the solver looks for.

    Attributes
    ----------
    manifold : SphereProduct
        The parameter manifold ``M`` (``SphereProduct.euclidean(n)`` without constraint).
    is_gradient : bool
        ``True``: ``residual`` is the Riemannian gradient ``grad L`` of the loss ``value``
        and ``residual_jacobian`` its Riemannian Hessian (symmetric). ``False``: a
        stop-gradient vector field ``P F`` and its covariant Jacobian
        ``P (DF - D) P`` (not symmetric); ``value`` is then only used to set the scale.

    Methods
    -------
    value(theta) -> float
        The loss ``L(theta)``.
    residual(theta) -> ndarray, shape (n,)
        ``r(theta)``, a tangent vector at ``theta`` in ambient coordinates.
    residual_jacobian(theta) -> ndarray, shape (n, n)
        The covariant Jacobian ``J`` of ``r`` in ambient coordinates: for tangent ``v``,
        ``J v = nabla_v r`` (see :meth:`SphereProduct.riemannian_hessian` and
        :meth:`SphereProduct.riemannian_jacobian`).
    null_directions(theta) -> ndarray, shape (n, k)  (optional)
        Tangent vectors (columns) along which the solutions are known to come in continuous
        families, e.g. the generators ``xi`` of continuous symmetries of the loss
        (``L(exp(t xi) theta) = L(theta)``). Then ``J xi = 0`` at every solution, so ``J``
        is singular there; the solver steps in their orthogonal complement (see
        :func:`~critpoints.solver.newton.newton_stationary`). A system without this method has none.

    A system may also have an attribute ``compiled_kernels``: a
    :class:`~critpoints.solver.compiled.CompiledKernels` (numba kernels of the same value,
    residual, Jacobian and null directions) or ``None``. Unconstrained gradient systems
    that have it are solved by the compiled driver (critpoints.solver.compiled) when not
    deflated: the same algorithm without the interpreter in the loop.
    """

    manifold: SphereProduct
    is_gradient: bool

    def value(self, theta: np.ndarray) -> float: ...

    def residual(self, theta: np.ndarray) -> np.ndarray: ...

    def residual_jacobian(self, theta: np.ndarray) -> np.ndarray: ...


class Status(StrEnum):
    """How a Newton run ended (a ``str``: ``Status.CONVERGED == "converged"``).

    Attributes
    ----------
    CONVERGED
        ``||r(theta)|| <= tol * scale``: a stationary point (derivations/MODEL.md §6).
    GRADIENT_FLAT
        The run stalled (no trial step decreases the merit, or the residual lies in the
        numerical null space of the quotient Jacobian ``A_q`` up to the tolerance) while
        ``tol * scale < ||r|| <= flat_tol * scale``: a small but non-vanishing gradient
        on a flat region. Never counted as a stationary point.
    STALLED
        The run stalled with ``||r|| > flat_tol * scale``: a local minimum of the merit
        ``1/2 ||r||^2`` (or of the deflated merit) that is not a zero of ``r``.
    DIVERGED
        A non-finite residual or Jacobian at an accepted point, or
        ``||theta|| > divergence_radius`` (a point beyond the radius whose residual is
        within the tolerance is still ``converged``: it is stationary).
    MAX_ITERATIONS
        ``max_iterations`` Newton steps were accepted without convergence or stall.
    """

    CONVERGED = "converged"
    GRADIENT_FLAT = "gradient_flat"
    STALLED = "stalled"
    DIVERGED = "diverged"
    MAX_ITERATIONS = "max_iterations"

    @property
    def code(self) -> int:
        """The integer the compiled driver uses for this status (:data:`STATUS_CODES`)."""
        return STATUS_CODES[self]

    @classmethod
    def from_code(cls, code: int) -> Status:
        """The status of a compiled driver's integer code."""
        return _STATUS_OF_CODE[int(code)]


class NewtonResult(NamedTuple):
    """Outcome of one Newton run.

    Attributes
    ----------
    theta : ndarray, shape (n,)
        The last iterate (on the manifold).
    status : Status
        How the run ended.
    iterations : int
        Number of accepted steps.
    residual_norm : float
        ``||r(theta)||`` at the returned ``theta`` (undeflated, even for deflated runs).
    value : float
        ``L(theta)`` (NaN if ``theta`` is not finite).
    scale : float
        The loss scale the tolerances are relative to (see :class:`NewtonOptions`).
    """

    theta: np.ndarray
    status: Status
    iterations: int
    residual_norm: float
    value: float
    scale: float

    @property
    def converged(self) -> bool:
        """Whether the run reached ``||r|| <= tol * scale``."""
        return self.status == Status.CONVERGED


@dataclass(frozen=True)
class NewtonOptions:
    """Tolerances and parameters of :func:`newton_stationary`.

    Tolerances are *relative to the loss scale*
    ``scale = max(1, |L(theta_0)|)`` (``L`` evaluated at the projected start), unless a
    fixed ``scale`` is given.

    Parameters
    ----------
    tol : float, default 1e-10
        Stationarity: converged iff ``||r(theta)|| <= tol * scale``.
    max_iterations : int, default 100
        Maximum number of accepted Newton (or Levenberg-Marquardt) steps.
    flat_tol : float, default 1e-5
        A run that stalls with ``||r|| <= flat_tol * scale`` is ``gradient_flat``; above it,
        ``stalled``. Must be ``>= tol``.
    divergence_radius : float, default 1e4
        An accepted iterate with ``||theta|| > divergence_radius`` has ``diverged``.
    rcond : float, default 1e-10
        Relative cutoff of the minimal-norm solve: singular values (absolute eigenvalues
        for gradient systems) below ``rcond * max |sigma|`` count as zero.
    direct_rcond : float, default 1e-9
        The Newton step is solved by an LU factorisation when LAPACK's estimate of the
        reciprocal condition number (1-norm) of the quotient Jacobian is at least this;
        otherwise by the minimal-norm eigen / singular-value solve, which also decides
        whether the rest of the residual lies in the numerical null space.
    armijo : float, default 1e-4
        Sufficient decrease ``phi(alpha) <= phi(0) + armijo * alpha * phi'(0)`` (and
        ``phi(alpha) < phi(0)``) on the merit ``phi``.
    backtrack_factor : float, default 0.5
        Step length multiplier after a rejected trial.
    max_backtracks : int, default 30
        Trials ``alpha = backtrack_factor^j``, ``j = 0..max_backtracks``, before the
        Levenberg-Marquardt fallback.
    lm_initial_damping : float, default 1e-6
        First damping ``lambda = lm_initial_damping * sigma_max^2`` of the fallback.
    lm_damping_factor : float, default 100.0
        Multiplier of ``lambda`` after a rejected fallback trial.
    lm_max_trials : int, default 12
        Number of fallback trials before the run is declared stalled.
    stall_window, stall_decrease : int and float, defaults 10 and 1e-8
        The run is declared stalled when the last ``stall_window`` accepted steps together
        reduced ``mu ||r||`` (the deflated residual norm; ``||r||`` without deflation) by a
        relative amount below ``stall_decrease``: creeping towards a local minimum of the
        merit that is not a zero (with the defaults: no progress beyond rounding).
    deflation_power : float, default 2.0
        ``p`` in the deflation factor ``||theta - theta_k||^{-p} + shift``.
    deflation_shift : float, default 1.0
        ``shift`` in the deflation factor (``> 0`` removes the spurious zero of the
        deflated residual at infinity). The steps depend on ``grad log mu`` only, and
        ``log(d^{-p} + shift) = log shift + log(1 + (d / l)^{-p})`` with
        ``l = shift^{-1/p}``: each known solution repels within a distance of order
        ``l``. With many known solutions closer together than ``l`` their product repels
        from the whole cluster and creates spurious minima of the deflated merit; a larger
        shift (smaller ``l``) keeps the deflation local.
    scale : float or None, default None
        A fixed loss scale for every start (e.g. a magnitude known for the loss family);
        ``None``: ``max(1, |L(theta_0)|)`` per start.
    descent_iterations : int, default 0
        Gradient systems only: at most this many *saddle-free Newton* steps before the
        Newton phase, each ``s = -V |Lambda|_delta^{-1} V^T rho`` from the eigenpairs of the
        quotient Hessian ``A_q`` with ``|lambda|`` floored at ``delta = 1e-3 max |lambda|``,
        with an Armijo search on the loss itself. They descend L (away from saddles) until
        ``A_q`` is positive definite (smallest eigenvalue above ``rcond`` times the
        largest; a Cholesky factorisation of ``A_q - rcond ||A_q||_F I`` settles it first
        when it can), where plain Newton takes over and converges to the minimum. Newton
        alone converges to whichever stationary point's basin of attraction holds the
        start, mostly saddles; descending first makes the minima reachable. The final
        status is always that of the Newton phase.

    Raises
    ------
    ValueError
        Naming the option, its value and the allowed range, for any invalid option.
    """

    tol: float = 1e-10
    max_iterations: int = 100
    flat_tol: float = 1e-5
    divergence_radius: float = 1e4
    rcond: float = 1e-10
    direct_rcond: float = 1e-9
    armijo: float = 1e-4
    backtrack_factor: float = 0.5
    max_backtracks: int = 30
    lm_initial_damping: float = 1e-6
    lm_damping_factor: float = 100.0
    lm_max_trials: int = 12
    stall_window: int = 10
    stall_decrease: float = 1e-8
    deflation_power: float = 2.0
    deflation_shift: float = 1.0
    scale: float | None = None
    descent_iterations: int = 0

    def __post_init__(self) -> None:
        positive: dict[str, Any] = dict(low=0.0, low_open=True)
        open_unit: dict[str, Any] = dict(low=0.0, high=1.0, low_open=True, high_open=True)
        reals: dict[str, dict[str, Any]] = {
            "tol": positive,
            "flat_tol": positive,
            "divergence_radius": positive,
            "rcond": open_unit,
            "direct_rcond": open_unit,
            "armijo": dict(low=0.0, high=0.5, low_open=True, high_open=True),
            "backtrack_factor": open_unit,
            "lm_initial_damping": positive,
            "lm_damping_factor": dict(low=1.0, low_open=True),
            "stall_decrease": dict(low=0.0, high=1.0, high_open=True),
            "deflation_power": positive,
            "deflation_shift": dict(low=0.0),
        }
        integers = {
            "max_iterations": 0,
            "max_backtracks": 0,
            "lm_max_trials": 0,
            "stall_window": 1,
            "descent_iterations": 0,
        }
        fields = {name: check.real(name, getattr(self, name), **rule) for name, rule in reals.items()}
        for name, minimum in integers.items():
            fields[name] = check.integer(name, getattr(self, name), minimum=minimum)
        if self.scale is not None:
            fields["scale"] = check.real("scale", self.scale, **positive)
        if fields["flat_tol"] < fields["tol"]:
            raise ValueError(
                f"flat_tol must be >= tol (a gradient-flat residual lies between them), "
                f"got flat_tol={self.flat_tol} and tol={self.tol}"
            )
        for name, value in fields.items():
            object.__setattr__(self, name, value)


#: The integer code of each status in the compiled driver (critpoints.solver.compiled), by name.
STATUS_CODES: dict[Status, int] = {status: code for code, status in enumerate(Status)}
_STATUS_OF_CODE = {code: status for status, code in STATUS_CODES.items()}
