"""Certified critical points: interval Newton (Krawczyk) existence and uniqueness, certified Morse index.

For a point reported by the engine on a smooth piece of the loss, this module proves, in
ball arithmetic (python-flint's ``arb`` / ``arb_mat``, an optional dependency: install the
``certify`` extra), that exactly one critical point lies in a box around it, and computes
the Morse index of that critical point rigorously.

The system
----------
Let theta0 in R^n be the reported point, S the spheres of the weight constraint (index sets
I_s, E_s the coordinate projector onto I_s) and Xi(theta) the n x k matrix of continuous
symmetry generators (linear in theta: O(m) rotations A theta, scalings). With r the rank of
Xi(theta0), B an n x (n - r) orthonormal basis of the complement of its range (a *slice*
transversal to the orbit) and lambda in R^S Lagrange multipliers, the unknowns are
z = (y, lambda) and theta(y) = theta0 + B y:

    F(z) = ( B^T (grad L(theta) - sum_s lambda_s E_s theta),  -(|theta_s|^2 - 1) / 2 ).

Its Jacobian is the symmetric bordered (KKT) matrix

    J(z) = [[ B^T (Hess L(theta) - sum_s lambda_s E_s) B,   -B^T E_s theta ],
            [ -(E_s theta)^T B,                              0             ]].

A zero of F is a critical point of L on the sphere product: v = grad L - sum lambda_s E_s theta
is orthogonal to range(B) by F = 0, and orthogonal to every generator at theta (L is invariant
and the generators are tangent to the spheres), so v = 0 as soon as [B, Xi(theta) C] is
nonsingular (C selects r independent generators); this transversality is verified over the
whole box in ball arithmetic. Without constraint S = 0; without continuous symmetry B = I.

Krawczyk test
-------------
For the box Z = z~ + [-rho, rho]^N, a float approximate inverse Y of J(z~) and an interval
enclosure J(Z) of the Jacobian over the box, the Krawczyk operator

    K(Z) = z~ - Y F(z~) + (I - Y J(Z)) (Z - z~)

satisfies: K(Z) in the interior of Z implies F has exactly one zero in Z (Krawczyk 1969;
Moore 1977; Rump, "Verification methods", Acta Numerica 2010, Theorem 8.1). Radii are
tried from about the Newton correction upwards; the largest certified radius is reported.

Certified Morse index
---------------------
With V the floating-point eigenvectors of the midpoint of J, the interval matrix
M = V^T J(Z) V encloses V^T A V for every Jacobian A in the box. If V^T V passes a
Gershgorin nonsingularity test, Sylvester's law of inertia gives In(A) = In(V^T A V); if every
Gershgorin disc of M excludes 0, the symmetric homotopy diag(M) + t offdiag(M), t in [0, 1],
never becomes singular, so the inertia is that of the diagonal (the signs of the centres).
By Haynsworth's inertia additivity for bordered matrices (full row rank border, implied by
nonsingularity), In(J) = In(Hess restricted to the constrained slice) + (S, S, 0), hence

    Morse index = #negative(J) - S,

which equals the index of the Riemannian Hessian on the complement of the symmetry modes
(the Hessian annihilates the generators at a critical point).

Where the derivatives and the data come from
--------------------------------------------
The package's certification is split by concern: ball arithmetic
(:mod:`critpoints.certify.balls`), the exact data of a setting (:mod:`critpoints.certify.exact`:
exact view moments and the finite view law in rationals), the interval models of the losses
(:mod:`critpoints.certify.models`: gradient and Hessian enclosures from the generated arb
kernels, as the family's record composes them), the interval tests that prove
(:mod:`critpoints.certify.proofs`: Krawczyk, inertia, transversality), and here the point
certificate that puts them together. The dictionary, the biases and the parameters are
floats, taken as the exact numbers they store; the certificate is for the loss of the
setting with that data. For symrelu the activation pattern is certified constant over the
box (every pre-activation t of a nonzero view satisfies t + b != 0 and b - t != 0
throughout; a neuron with fixed b = 0 is the identity), else the point is "not
certifiable: kink in box". A cosine of a representation that may vanish in the box is not
certified either.

Not certified (reported with the reason, never as certified): kinks of symrelu, degenerate
points (a flat direction no symmetry explains: the Krawczyk test or the Gershgorin test
fails), the stop-gradient field of a predictor family, and sample averages (empirical, not population).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from critpoints import _validation as check
from critpoints.certify.balls import arb_matrix, ball, ball_column, midpoint, require_flint
from critpoints.certify.exact import ExactViewLaw, exact_view_law, exact_view_moments, moment_enclosures
from critpoints.certify.models import derivative_model, enclose_derivatives
from critpoints.certify.proofs import certified_inertia, krawczyk, transversal

if TYPE_CHECKING:
    from critpoints.losses.population_loss import PopulationLoss

__all__ = [
    "Certificate",
    "ExactViewLaw",
    "certify_point",
    "certified_inertia",
    "enclose_derivatives",
    "exact_view_law",
    "exact_view_moments",
    "krawczyk",
    "moment_enclosures",
    "require_flint",
]


@dataclass(frozen=True)
class Certificate:
    """The outcome of certifying one point.

    Attributes
    ----------
    certified : bool
        True when the Krawczyk test proved exactly one critical point in the box and its
        Morse index was established.
    reason : str
        "yes" when certified, otherwise why not (e.g. "kink in box", "degenerate Hessian").
    radius : float or None
        Largest half-width rho (infinity norm, in the slice coordinates y and multipliers)
        of a box z~ + [-rho, rho]^N proved to contain exactly one zero.
    index : int or None
        Certified Morse index (negative eigenvalues of the Hessian in the quotient).
    dimension : int
        Dimension of the quotient (tangent space minus symmetry modes).
    symmetry_modes : int
        Number r of continuous symmetry directions removed by the slice.
    """

    certified: bool
    reason: str
    radius: float | None = None
    index: int | None = None
    dimension: int = 0
    symmetry_modes: int = 0

    def describe(self) -> str:
        """'yes' or 'no: <reason>'."""
        return "yes" if self.certified else f"no: {self.reason}"


def _slice(loss: Any, theta0: np.ndarray, rank_tol: float = 1e-8) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The slice: (B, G, C) with B an orthonormal basis of the complement of the generators'
    span at theta0, C (k x r) the right singular vectors of their r leading directions and
    G[j] = Xi(e_j) C, so that Xi(theta) C = sum_j theta_j G[j] (the generators are linear)."""
    n = theta0.size
    generators = loss.symmetry_generators(theta0)
    if generators.size == 0:
        return np.eye(n), np.zeros((n, n, 0)), None
    u, singular, vt = np.linalg.svd(generators, full_matrices=True)
    # numerical rank on the scale of the point (as critpoints.landscape.classification): at a point
    # numerically fixed by a symmetry the generators are round-off and span no orbit
    rank = int(np.sum(singular > rank_tol * max(1.0, float(np.linalg.norm(theta0)))))
    B = u[:, rank:]
    C = vt[:rank].T  # k x r
    unit = np.eye(n)
    tensor = np.stack([loss.symmetry_generators(unit[j]) @ C for j in range(n)])  # (n, n, r)
    tolerance = 1e-12 * max(1.0, np.abs(generators).max())
    if not np.allclose(np.tensordot(theta0, tensor, axes=1), generators @ C, atol=tolerance):
        raise ValueError("the symmetry generators are not linear in theta")
    return B, tensor, C


def certify_point(
    loss: PopulationLoss,
    theta: np.ndarray,
    *,
    max_radius: float = 1e-6,
    degeneracy_tolerance: float = 1e-7,
) -> Certificate:
    """Certify one reported stationary point: unique critical point in a box, and its Morse index.

    Parameters
    ----------
    loss : PopulationLoss
        ``critpoints.population_loss(setting)``.
    theta : ndarray, shape (n,)
        The reported point (on the sphere product under a constraint).
    max_radius : float
        Largest box half-width tried, relative to max(1, |theta|_inf). A point farther than
        this from every critical point is not certified.
    degeneracy_tolerance : float
        Used only to word the reason of a failure: if the smallest |eigenvalue| of the
        midpoint Jacobian is below this fraction of its largest, the reason is
        "degenerate Hessian".

    Returns
    -------
    Certificate
        See the module docstring for the system, the Krawczyk test and the inertia test.

    Raises
    ------
    ValueError
        For a ``theta`` of the wrong length or not finite, ``max_radius <= 0``, or a
        ``degeneracy_tolerance`` outside (0, 1).
    """
    theta0 = loss.layout.check(theta).copy()
    max_radius = check.real("max_radius", max_radius, low=0.0, low_open=True)
    degeneracy_tolerance = check.real(
        "degeneracy_tolerance", degeneracy_tolerance, low=0.0, high=1.0, low_open=True, high_open=True
    )
    model = derivative_model(loss, theta0)
    if isinstance(model, str):
        return Certificate(False, model)
    try:
        return _certify(loss, model, theta0, max_radius, degeneracy_tolerance)
    except ZeroDivisionError as error:
        return Certificate(False, f"a representation may vanish in the box, where n(0) = 0 is not smooth ({error})")


class _KKTSystem:
    """The bordered system F(z) = 0 of the module docstring, z = (y, lambda), over balls.

    ``theta(z) = theta0 + B y``; the residual stacks B^T (grad L - sum_s lambda_s E_s theta)
    and the sphere equations -(|theta_s|^2 - 1)/2; the Jacobian is the symmetric KKT matrix.
    """

    def __init__(self, model: Any, theta0: np.ndarray, B: np.ndarray, spheres: list[np.ndarray]) -> None:
        self.model, self.spheres = model, spheres
        self.n, self.k = B.shape
        self.size = self.k + len(spheres)
        self.B = arb_matrix(B)
        self.theta0 = ball_column([ball(v) for v in theta0])

    def theta(self, z: Any) -> list[Any]:
        """theta0 + B y as a list of balls."""
        y = ball_column([z[i, 0] for i in range(self.k)])
        full = self.theta0 + self.B * y
        return [full[j, 0] for j in range(self.n)]

    def residual(self, z: Any) -> Any:
        """F(z) as an N x 1 arb_mat."""
        th = self.theta(z)
        grad, _ = self.model.derivatives(th)
        v = list(grad)
        for s, idx in enumerate(self.spheres):
            for j in idx:
                v[j] = v[j] - z[self.k + s, 0] * th[j]
        top = self.B.transpose() * ball_column(v)
        out = [top[i, 0] for i in range(self.k)]
        for idx in self.spheres:
            norm = ball(0.0)
            for j in idx:
                norm += th[j] * th[j]
            out.append((ball(1.0) - norm) / 2)
        return ball_column(out)

    def jacobian(self, z: Any) -> Any:
        """The KKT matrix J(z) (N x N arb_mat), enclosing dF over the balls z."""
        flint = require_flint()
        th = self.theta(z)
        _, H = self.model.derivatives(th)
        k = self.k
        for s, idx in enumerate(self.spheres):
            for j in idx:
                H[j, j] = H[j, j] - z[k + s, 0]
        J = flint.arb_mat(self.size, self.size)
        top = self.B.transpose() * H * self.B
        for i in range(k):
            for j in range(k):
                J[i, j] = top[i, j]
        for s, idx in enumerate(self.spheres):
            border = flint.arb_mat(self.n, 1)
            for j in idx:
                border[j, 0] = th[j]
            normal = self.B.transpose() * border
            for i in range(k):
                J[i, k + s] = -normal[i, 0]
                J[k + s, i] = -normal[i, 0]
        return J


def _certified_radii(
    system: _KKTSystem, center: np.ndarray, first: float, limit: float, B: np.ndarray, tensor: np.ndarray, C: Any
) -> tuple[list[float], bool]:
    """Radii from ``first`` up to ``limit`` (x10 each) whose boxes pass the Krawczyk test,
    stopping at the first failure after a success, at a lost transversality, or at a box in
    which the activation pattern changes (then the flag is True)."""
    radii: list[float] = []
    radius = first
    while radius <= limit * (1.0 + 1e-9):
        box = ball_column([ball(c, radius) for c in center])
        if not system.model.pattern_ok(system.theta(box)):
            return radii, True
        if C is not None and not transversal(B, tensor, system.theta(box)):
            break
        if krawczyk(system.residual, system.jacobian, center, radius):
            radii.append(radius)
        elif radii:
            break
        radius *= 10.0
    return radii, False


def _certify(
    loss: PopulationLoss, model: Any, theta0: np.ndarray, max_radius: float, degeneracy_tolerance: float
) -> Certificate:
    """:func:`certify_point` with the interval model of the loss (may raise ZeroDivisionError)."""
    spheres = [np.asarray(s) for s in loss.manifold.spheres]
    try:
        B, tensor, C = _slice(loss, theta0)
    except ValueError as error:
        return Certificate(False, str(error))
    n, S = theta0.size, len(spheres)
    r = n - B.shape[1]
    dimension = n - S - r
    system = _KKTSystem(model, theta0, B, spheres)
    egrad = np.asarray(loss.euclidean_gradient(theta0), dtype=np.float64)
    multipliers = np.array([theta0[s] @ egrad[s] for s in spheres], dtype=np.float64)
    center = np.concatenate([np.zeros(system.k), multipliers])
    point = ball_column([ball(c) for c in center])
    if not model.pattern_ok(system.theta(point)):
        return Certificate(False, "kink in box (a symrelu pre-activation is on a kink at the point)")
    # consistency of the interval model with the float kernels at theta0
    mid_grad, _ = model.derivatives([ball(v) for v in theta0])
    mid_grad = np.array([float(g.mid()) for g in mid_grad])
    if not np.allclose(mid_grad, egrad, rtol=1e-8, atol=1e-9 * max(1.0, np.abs(egrad).max())):
        return Certificate(False, "interval model disagrees with the float kernels (internal error)")
    N = system.size
    J0 = midpoint(system.jacobian(point))
    eigen = np.abs(np.linalg.eigvalsh(0.5 * (J0 + J0.T))) if N else np.zeros(0)
    scale = max(1.0, float(eigen.max(initial=0.0)))
    degenerate = N > 0 and float(eigen.min()) <= degeneracy_tolerance * scale

    def fail(default: str) -> Certificate:
        reason = (
            "degenerate Hessian (an eigenvalue of the quotient KKT matrix within "
            f"{degeneracy_tolerance:g} of its scale: a flat direction no symmetry explains)"
            if degenerate
            else default
        )
        return Certificate(False, reason, dimension=dimension, symmetry_modes=r)

    if N == 0:
        return Certificate(True, "yes", radius=float("inf"), index=0, dimension=0, symmetry_modes=r)
    if degenerate:
        return fail("")
    F0 = midpoint(system.residual(point)).ravel()
    step = float(np.abs(np.linalg.solve(J0, F0)).max())
    size = max(1.0, float(np.abs(theta0).max()))
    limit = max_radius * size
    radii, kink = _certified_radii(system, center, max(4.0 * step, 1e-15 * size), limit, B, tensor, C)
    if not radii:
        if kink:
            return fail("kink in box (the activation pattern changes within the smallest box)")
        return fail(f"Krawczyk test failed for every box radius up to {limit:.1e} (not a critical point within it)")
    inertia = certified_inertia(system.jacobian(ball_column([ball(c, radii[0]) for c in center])))
    if inertia is None:
        return fail("inertia not certified (a Gershgorin disc contains 0)")
    negative, _ = inertia
    return Certificate(True, "yes", radius=radii[-1], index=negative - S, dimension=dimension, symmetry_modes=r)
