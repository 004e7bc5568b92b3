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

Where the derivatives come from
-------------------------------
* ``closed_form`` (linear encoder, ``spectral`` / ``ncl_squared``): the gradient and the
  Kronecker-structured Hessian of :class:`critpoints.closed_form.ClosedFormEvaluator`
  (derived and verified in derivations/closed_form_losses.py), evaluated with ``arb_mat``
  products from the view moments.
* ``exact_enumeration``, symrelu with a fixed bias, ``spectral``: on one activation piece
  every representation is affine in W, r_i(x) = s_i(x) (w_i . x) + c_i(x); the loss is the
  inner-product coupling phi = C (alignment) plus the repulsion <A, B>_F with
  A = sum_k a_k r_k r_k^T, B = sum_l b_l r_l r_l^T (the invariant chain rule and the
  repulsion identity verified in derivations/pointwise_losses.py). The activation pattern is
  certified constant over the box (every pre-activation t = w_i . x satisfies t + b != 0 and
  b - t != 0 throughout), else the point is "not certifiable: kink in box".

Inputs given as floats (moments, weights, biases) are enclosed in balls of relative radius
``input_radius`` (default 1e-13), which covers their own rounding; with ``input_radius=0``
the certificate is for the loss with those float64 inputs taken as exact.

Not certified (reported with the reason, never as certified): kinks of symrelu, degenerate
points (a flat direction no symmetry explains: the Krawczyk test or the Gershgorin test
fails), the ``ncl_predictor`` field, symrelu with other losses or a trainable bias, and
sample averages (empirical, not population).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Certificate",
    "certify_point",
    "krawczyk",
    "certified_inertia",
    "require_flint",
]

_EXTRA_MESSAGE = (
    "certification needs python-flint (ball arithmetic); install the optional extra: "
    "pip install 'critpoints[certify]'  (or: pip install 'python-flint>=0.6')"
)


def require_flint() -> Any:
    """Import python-flint lazily.

    Returns
    -------
    module
        The ``flint`` module.

    Raises
    ------
    ImportError
        Naming the ``certify`` extra, if python-flint is not installed.
    """
    try:
        import flint
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(_EXTRA_MESSAGE) from error
    return flint


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


# ------------------------------------------------------------------------------ arb helpers


def _ball(value: float, radius: float = 0.0) -> Any:
    arb = require_flint().arb
    return arb(float(value), float(radius)) if radius > 0 else arb(float(value))


def _arb_matrix(array: np.ndarray, radius: float = 0.0) -> Any:
    """An arb_mat with entries array[i, j] +/- radius * |array[i, j]| (radius relative)."""
    flint = require_flint()
    array = np.asarray(array, dtype=np.float64)
    rows, cols = array.shape
    entries = [[_ball(x, radius * abs(x)) for x in row] for row in array]
    return flint.arb_mat(entries) if rows and cols else flint.arb_mat(rows, cols)


def _mid(matrix: Any) -> np.ndarray:
    """Midpoints of an arb_mat as a float array."""
    return np.array([[float(x.mid()) for x in row] for row in matrix.tolist()], dtype=np.float64).reshape(
        matrix.nrows(), matrix.ncols()
    )


def _column(values: Sequence[Any]) -> Any:
    flint = require_flint()
    return flint.arb_mat([[v] for v in values]) if len(values) else flint.arb_mat(0, 1)


def _norm_below(matrix: Any, bound: float) -> bool:
    """True if the infinity norm of every matrix in the interval matrix is certainly < bound."""
    for row in matrix.tolist():
        total = _ball(0.0)
        for entry in row:
            total += abs(entry)
        if not total < bound:
            return False
    return True


def _nonsingular(matrix: Any) -> bool:
    """Certify every matrix in the interval matrix nonsingular: |I - R A|_inf < 1, R = mid(A)^-1."""
    flint = require_flint()
    middle = _mid(matrix)
    try:
        inverse = np.linalg.inv(middle)
    except np.linalg.LinAlgError:
        return False
    if not np.all(np.isfinite(inverse)):
        return False
    n = matrix.nrows()
    residual = flint.arb_mat(np.eye(n).tolist()) - _arb_matrix(inverse) * matrix
    return _norm_below(residual, 1.0)


# ------------------------------------------------------------------------------ generic tests


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
    point = _column([_ball(c) for c in center])
    box = _column([_ball(c, radius) for c in center])
    value = residual(point)
    at_center = jacobian(point)
    try:
        inverse = np.linalg.inv(_mid(at_center))
    except np.linalg.LinAlgError:
        return False
    if not np.all(np.isfinite(inverse)):
        return False
    Y = _arb_matrix(inverse)
    offset = _column([_ball(0.0, radius)] * n)
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
    middle = _mid(matrix)
    _, vectors = np.linalg.eigh(0.5 * (middle + middle.T))
    V = _arb_matrix(vectors)
    gram = V.transpose() * V
    if not _norm_below(flint.arb_mat(np.eye(n).tolist()) - gram, 1.0):
        return None
    congruent = V.transpose() * matrix * V
    negative = positive = 0
    for i in range(n):
        off = _ball(0.0)
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


# ------------------------------------------------------------------------------ loss derivatives in arb


class _ClosedFormArb:
    """Gradient and Hessian of the closed-form losses in ball arithmetic.

    The formulas of :class:`critpoints.closed_form.ClosedFormEvaluator` (with symmetric
    C11, C22, Cneg and A = W^T W, row-major vec):

    spectral:  dL/dW = 2 W (C11 A Cneg + Cneg A C11) - 2 W (C12 + C12^T),
               H = I_m (x) (2 C11 A Cneg + 2 Cneg A C11 - 2 C12 - 2 C12^T)
                   + 2 (W C11 W^T) (x) Cneg + 2 (W Cneg W^T) (x) C11
                   + 2 [(W C11)_ib (W Cneg)_ja + (W Cneg)_ib (W C11)_ja];
    ncl_squared: dL/dW = 2 W C11 - 2 W_t C12^T, dL/dW_t = 2 W_t C22 - 2 W C12,
               H = [[I (x) 2 C11, -I (x) 2 C12], [-I (x) 2 C12^T, I (x) 2 C22]].
    """

    def __init__(self, evaluator: Any, input_radius: float) -> None:
        self.family = evaluator.family
        self.m, self.p = evaluator.m, evaluator.p
        scale = input_radius
        self.C11 = _arb_matrix(evaluator.C11, scale)
        self.C12 = _arb_matrix(evaluator.C12, scale)
        self.C22 = _arb_matrix(evaluator.C22, scale)
        self.Cneg = _arb_matrix(evaluator.Cneg, scale)
        self.n = evaluator.n_params

    def _block(self, theta: Sequence[Any], k: int) -> Any:
        flint = require_flint()
        m, p = self.m, self.p
        start = k * m * p
        return flint.arb_mat([[theta[start + i * p + a] for a in range(p)] for i in range(m)])

    def derivatives(self, theta: Sequence[Any]) -> tuple[list[Any], Any]:
        flint = require_flint()
        m, p = self.m, self.p
        two = _ball(2.0)
        if self.family == "spectral":
            W = self._block(theta, 0)
            A = W.transpose() * W
            core = self.C11 * A * self.Cneg + self.Cneg * A * self.C11
            sym12 = self.C12 + self.C12.transpose()
            G = W * core * two - W * sym12 * two
            grad = [G[i, a] for i in range(m) for a in range(p)]
            diagonal = (core - sym12) * two
            WC = W * self.C11
            WN = W * self.Cneg
            S11 = WC * W.transpose()
            SNN = WN * W.transpose()
            n = m * p
            H = flint.arb_mat(n, n)
            for i in range(m):
                for a in range(p):
                    for j in range(m):
                        for b in range(p):
                            value = two * (
                                S11[i, j] * self.Cneg[a, b]
                                + SNN[i, j] * self.C11[a, b]
                                + WC[i, b] * WN[j, a]
                                + WN[i, b] * WC[j, a]
                            )
                            if i == j:
                                value += diagonal[a, b]
                            H[i * p + a, j * p + b] = value
            return grad, H
        W, Wt = self._block(theta, 0), self._block(theta, 1)
        Gw = (W * self.C11 - Wt * self.C12.transpose()) * two
        Gt = (Wt * self.C22 - W * self.C12) * two
        grad = [Gw[i, a] for i in range(m) for a in range(p)] + [Gt[i, a] for i in range(m) for a in range(p)]
        n = 2 * m * p
        H = flint.arb_mat(n, n)
        blocks = ((0, 0, self.C11, 1), (0, 1, self.C12, -1), (1, 0, self.C12.transpose(), -1), (1, 1, self.C22, 1))
        for r, c, C, sign in blocks:
            for i in range(m):
                for a in range(p):
                    for b in range(p):
                        H[r * m * p + i * p + a, c * m * p + i * p + b] = two * C[a, b] * sign
        return grad, H

    def pattern_ok(self, theta: Sequence[Any]) -> bool:
        return True


class _SymreluSpectralArb:
    """Gradient and Hessian of the symrelu ``spectral`` loss on one activation piece, in arb.

    With the pattern of theta0 frozen, r(x)_i = s_i(x) (w_i . x) + c_i(x), where
    s = [t + b > 0] + [b - t > 0] and c = b ([t + b > 0] - [b - t > 0]), t = w_i . x
    (sigma_b(t) = ReLU(t + b) - ReLU(-t + b)); a neuron with b = 0 is the identity (s = 1,
    c = 0) and has no kink. Writing U_x for the m x mp Jacobian of r(x)
    (U_x[i, i p + a] = s_i(x) x_a), the loss

        L = -2 sum_n pi_n r(x1_n) . r(x2_n) + <A, B>_F,
        A = sum_k a_k r(anchor_k) r(anchor_k)^T,   B = sum_l b_l r(neg_l) r(neg_l)^T,

    has gradient -2 sum pi (U1^T r2 + U2^T r1) + 2 sum_k a_k U_k^T B r_k + 2 sum_l b_l U_l^T A r_l
    and Hessian -2 sum pi (U1^T U2 + U2^T U1) + 2 sum_k a_k U_k^T B U_k + 2 sum_l b_l U_l^T A U_l
    + 2 sum_{k,l} a_k b_l [(r_k . r_l)(U_k^T U_l + U_l^T U_k) + U_k^T r_l r_k^T U_l + U_l^T r_k r_l^T U_k].
    """

    def __init__(self, loss: Any, theta0: np.ndarray, input_radius: float) -> None:
        setting = loss.setting
        measure = loss.measure
        self.m, self.p = setting.m, setting.p
        self.n = self.m * self.p
        self.bias_float = np.asarray(setting.bias, dtype=np.float64)
        self.bias = [_ball(b, input_radius * abs(b)) for b in self.bias_float]
        W0 = np.asarray(theta0, dtype=np.float64).reshape(self.m, self.p)
        points = np.concatenate([measure.x1, measure.x2, measure.anchor, measure.negative])
        self.points, inverse = np.unique(points, axis=0, return_inverse=True)
        inverse = np.asarray(inverse).ravel()
        n1, n2, na = len(measure.x1), len(measure.x2), len(measure.anchor)
        self.pair_index = (inverse[:n1], inverse[n1 : n1 + n2])
        self.anchor_index = inverse[n1 + n2 : n1 + n2 + na]
        self.negative_index = inverse[n1 + n2 + na :]
        weight = lambda w: [_ball(x, input_radius * abs(x)) for x in np.asarray(w, dtype=np.float64)]  # noqa: E731
        self.pair_weight = weight(measure.pair_weight)
        self.anchor_weight = weight(measure.anchor_weight)
        self.negative_weight = weight(measure.negative_weight)
        t = self.points @ W0.T  # (N, m)
        self.upper = t + self.bias_float[None, :] > 0  # ReLU(t + b) active
        self.lower = self.bias_float[None, :] - t > 0  # ReLU(b - t) active
        # sigma_0(t) = ReLU(t) - ReLU(-t) = t everywhere: a zero bias has no kink
        self.smooth = self.bias_float == 0.0
        self.upper[:, self.smooth] = True
        self.lower[:, self.smooth] = False
        self.points_arb = [[_ball(v) for v in x] for x in self.points]

    def pattern_ok(self, theta: Sequence[Any]) -> bool:
        """Every pre-activation keeps the sign pattern of theta0 over the box."""
        m, p = self.m, self.p
        for index, x in enumerate(self.points_arb):
            for i in range(m):
                if self.smooth[i]:
                    continue
                t = _ball(0.0)
                for a in range(p):
                    if self.points[index, a] != 0.0:
                        t += theta[i * p + a] * x[a]
                up, low = t + self.bias[i], self.bias[i] - t
                if not ((up > 0) if self.upper[index, i] else (up < 0)):
                    return False
                if not ((low > 0) if self.lower[index, i] else (low < 0)):
                    return False
        return True

    def _representations(self, theta: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        flint = require_flint()
        m, p, n = self.m, self.p, self.n
        reps, jacs = [], []
        for index, x in enumerate(self.points_arb):
            r, U = [], flint.arb_mat(m, n)
            for i in range(m):
                slope = int(self.upper[index, i]) + int(self.lower[index, i])
                intercept = self.bias[i] * (int(self.upper[index, i]) - int(self.lower[index, i]))
                t = _ball(0.0)
                for a in range(p):
                    if self.points[index, a] != 0.0:
                        t += theta[i * p + a] * x[a]
                        U[i, i * p + a] = x[a] * slope
                r.append(t * slope + intercept)
            reps.append(_column(r))
            jacs.append(U)
        return reps, jacs

    def derivatives(self, theta: Sequence[Any]) -> tuple[list[Any], Any]:
        flint = require_flint()
        m, n = self.m, self.n
        reps, jacs = self._representations(theta)
        grad = flint.arb_mat(n, 1)
        H = flint.arb_mat(n, n)
        two = _ball(2.0)
        for w, k1, k2 in zip(self.pair_weight, *self.pair_index):
            r1, r2, U1, U2 = reps[k1], reps[k2], jacs[k1], jacs[k2]
            grad -= (U1.transpose() * r2 + U2.transpose() * r1) * (two * w)
            H -= (U1.transpose() * U2 + U2.transpose() * U1) * (two * w)
        A, Bm = flint.arb_mat(m, m), flint.arb_mat(m, m)
        for w, k in zip(self.anchor_weight, self.anchor_index):
            A += reps[k] * reps[k].transpose() * w
        for w, k in zip(self.negative_weight, self.negative_index):
            Bm += reps[k] * reps[k].transpose() * w
        for w, k in zip(self.anchor_weight, self.anchor_index):
            grad += jacs[k].transpose() * (Bm * reps[k]) * (two * w)
            H += jacs[k].transpose() * Bm * jacs[k] * (two * w)
        for w, k in zip(self.negative_weight, self.negative_index):
            grad += jacs[k].transpose() * (A * reps[k]) * (two * w)
            H += jacs[k].transpose() * A * jacs[k] * (two * w)
        for wa, k in zip(self.anchor_weight, self.anchor_index):
            for wb, l in zip(self.negative_weight, self.negative_index):
                rk, rl, Uk, Ul = reps[k], reps[l], jacs[k], jacs[l]
                dot = (rk.transpose() * rl)[0, 0]
                ukrl = Uk.transpose() * rl  # n x 1
                ulrk = Ul.transpose() * rk
                cross = (Uk.transpose() * Ul + Ul.transpose() * Uk) * dot
                cross += ukrl * ulrk.transpose() + ulrk * ukrl.transpose()
                H += cross * (two * wa * wb)
        return [grad[i, 0] for i in range(n)], H


def _derivative_model(loss: Any, theta0: np.ndarray, input_radius: float) -> Any:
    """The arb model of the setting's loss, or a string saying why there is none."""
    from .closed_form import ClosedFormEvaluator

    setting = loss.setting
    if loss.is_field:
        return "ncl_predictor is a stop-gradient field, not a gradient (no Hessian to certify)"
    if loss.empirical:
        return "sample_average losses are empirical; only population losses are certified"
    evaluator = loss._evaluator
    if isinstance(evaluator, ClosedFormEvaluator):
        return _ClosedFormArb(evaluator, input_radius)
    if setting.encoder == "symrelu" and setting.loss.name == "spectral" and not setting.trainable_bias:
        return _SymreluSpectralArb(loss, theta0, input_radius)
    return f"no interval model for encoder {setting.encoder!r} with loss {setting.loss.name!r}" + (
        " and a trainable bias" if setting.trainable_bias else ""
    )


# ------------------------------------------------------------------------------ the point certificate


def _slice(loss: Any, theta0: np.ndarray, rank_tol: float = 1e-8) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The slice: (B, G, C) with B an orthonormal basis of the complement of the generators'
    span at theta0, C (k x r) the right singular vectors of their r leading directions and
    G[j] = Xi(e_j) C, so that Xi(theta) C = sum_j theta_j G[j] (the generators are linear)."""
    n = theta0.size
    generators = loss.symmetry_generators(theta0)
    if generators.size == 0:
        return np.eye(n), np.zeros((n, n, 0)), None
    u, singular, vt = np.linalg.svd(generators, full_matrices=True)
    # numerical rank on the scale of the point (as critpoints.classification): at a point
    # numerically fixed by a symmetry the generators are round-off and span no orbit
    rank = int(np.sum(singular > rank_tol * max(1.0, float(np.linalg.norm(theta0)))))
    B = u[:, rank:]
    C = vt[:rank].T  # k x r
    unit = np.eye(n)
    tensor = np.stack([loss.symmetry_generators(unit[j]) @ C for j in range(n)])  # (n, n, r)
    if not np.allclose(np.tensordot(theta0, tensor, axes=1), generators @ C, atol=1e-12 * max(1.0, np.abs(generators).max())):
        raise ValueError("the symmetry generators are not linear in theta")
    return B, tensor, C


def certify_point(
    loss: Any,
    theta: np.ndarray,
    *,
    input_radius: float = 1e-13,
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
    input_radius : float
        Relative radius of the balls enclosing float inputs (moments, weights, biases).
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
    """
    flint = require_flint()
    theta0 = np.asarray(theta, dtype=np.float64).copy()
    n = theta0.size
    model = _derivative_model(loss, theta0, input_radius)
    if isinstance(model, str):
        return Certificate(False, model)
    spheres = [np.asarray(s) for s in loss.manifold.spheres]
    try:
        B, tensor, C = _slice(loss, theta0)
    except ValueError as error:
        return Certificate(False, str(error))
    r = n - B.shape[1]
    S = len(spheres)
    k = B.shape[1]
    N = k + S
    egrad = np.asarray(loss.euclidean_gradient(theta0), dtype=np.float64)
    multipliers = np.array([theta0[s] @ egrad[s] for s in spheres], dtype=np.float64)
    center = np.concatenate([np.zeros(k), multipliers])
    B_arb = _arb_matrix(B)
    theta0_arb = _column([_ball(v) for v in theta0])
    dimension = n - S - r

    def theta_of(z: Any) -> list[Any]:
        y = _column([z[i, 0] for i in range(k)])
        full = theta0_arb + B_arb * y
        return [full[j, 0] for j in range(n)]

    def residual(z: Any) -> Any:
        th = theta_of(z)
        grad, _ = model.derivatives(th)
        v = list(grad)
        for s, idx in enumerate(spheres):
            for j in idx:
                v[j] = v[j] - z[k + s, 0] * th[j]
        top = B_arb.transpose() * _column(v)
        out = [top[i, 0] for i in range(k)]
        for idx in spheres:
            norm = _ball(0.0)
            for j in idx:
                norm += th[j] * th[j]
            out.append((_ball(1.0) - norm) / 2)
        return _column(out)

    def jacobian(z: Any) -> Any:
        th = theta_of(z)
        _, H = model.derivatives(th)
        for s, idx in enumerate(spheres):
            for j in idx:
                H[j, j] = H[j, j] - z[k + s, 0]
        J = flint.arb_mat(N, N)
        top = B_arb.transpose() * H * B_arb
        for i in range(k):
            for j in range(k):
                J[i, j] = top[i, j]
        for s, idx in enumerate(spheres):
            border = flint.arb_mat(n, 1)
            for j in idx:
                border[j, 0] = th[j]
            column = B_arb.transpose() * border
            for i in range(k):
                J[i, k + s] = -column[i, 0]
                J[k + s, i] = -column[i, 0]
        return J

    # consistency of the interval model with the float kernels at theta0
    mid_grad, _ = model.derivatives([_ball(v) for v in theta0])
    mid_grad = np.array([float(g.mid()) for g in mid_grad])
    if not np.allclose(mid_grad, egrad, rtol=1e-8, atol=1e-9 * max(1.0, np.abs(egrad).max())):
        return Certificate(False, "interval model disagrees with the float kernels (internal error)")

    point = _column([_ball(c) for c in center])
    if not model.pattern_ok(theta_of(point)):
        return Certificate(False, "kink in box (a symrelu pre-activation is on a kink at the point)")
    J0 = _mid(jacobian(point))
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
    F0 = _mid(residual(point)).ravel()
    step = float(np.abs(np.linalg.solve(J0, F0)).max())
    limit = max_radius * max(1.0, float(np.abs(theta0).max()))
    radius = max(4.0 * step, 1e-15 * max(1.0, float(np.abs(theta0).max())))
    certified_radii: list[float] = []
    kink = False
    while radius <= limit * (1.0 + 1e-9):
        box = _column([_ball(c, radius) for c in center])
        if not model.pattern_ok(theta_of(box)):
            kink = True
            break
        if C is not None and not _transversal(B, tensor, theta_of(box)):
            break
        if krawczyk(residual, jacobian, center, radius):
            certified_radii.append(radius)
        elif certified_radii:
            break
        radius *= 10.0
    if not certified_radii:
        if kink:
            return fail("kink in box (the activation pattern changes within the smallest box)")
        return fail(f"Krawczyk test failed for every box radius up to {limit:.1e} (not a critical point within it)")
    smallest = certified_radii[0]
    inertia = certified_inertia(jacobian(_column([_ball(c, smallest) for c in center])))
    if inertia is None:
        return fail("inertia not certified (a Gershgorin disc contains 0)")
    negative, _ = inertia
    return Certificate(
        True, "yes", radius=certified_radii[-1], index=negative - S, dimension=dimension, symmetry_modes=r
    )


def _transversal(B: np.ndarray, tensor: np.ndarray, theta: Sequence[Any]) -> bool:
    """Certify [B, Xi(theta) C] nonsingular for every theta in the box (Xi linear in theta)."""
    flint = require_flint()
    n, k = B.shape
    r = tensor.shape[2]
    T = flint.arb_mat(n, n)
    for i in range(n):
        for j in range(k):
            T[i, j] = _ball(B[i, j])
    for i in range(n):
        for c in range(r):
            total = _ball(0.0)
            for j in range(n):
                coefficient = tensor[j, i, c]
                if coefficient != 0.0:
                    total += theta[j] * coefficient
            T[i, k + c] = total
    return _nonsingular(T)
