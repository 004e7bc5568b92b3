"""Per-support-point losses of the finite-measure evaluators, derived with sympy.

When the expectation of derivations/MODEL.md §5 is a finite weighted sum (``exact_enumeration``
or ``sample_average``), every loss of derivations/MODEL.md §4 is a sum over *couplings* of two
representations r, c in R^m (a pair of views, or an anchor and a negative) of a scalar
function of three invariants::

    A = r.r,   B = c.c,   C = r.c,       phi = phi(A, B, C).

The pointwise functions phi used by the loss families (critpoints/model/families.py names
each family's pair kernel and repulsion) are:

* ``squared_distance``       phi = A + B - 2 C = ||r - c||^2            (``ncl_squared``)
* ``inner_product``          phi = C                                    (the pairs of
  ``spectral``, and ``ncl_predictor`` without normalisation, scaled by the weights)
* ``cosine``                 phi = C / sqrt(A B) = <n(r), n(c)>         (``ncl_cosine``,
  the alignment term of ``infonce``, ``ncl_predictor``)
* ``exp_cosine``             phi = exp(inv_tau C / sqrt(A B) - shift)   (the partition sum
  of ``infonce``; ``shift`` is a per-anchor constant that keeps exp in range)
* ``squared_inner_product``  phi = C^2 = (r.c)^2                        (the repulsion
  E[(f(x1).f(x'))^2] of ``spectral`` as a coupling of an anchor and a negative)

For ``cosine`` and ``exp_cosine`` the convention n(0) = 0 applies: when A = 0 or B = 0
the cosine is 0 and every derivative of phi is 0 (phi itself is then 0, resp.
exp(-shift)).

What this script does:

1. takes the first and the six second partial derivatives of each phi in (A, B, C);
2. verifies, at m = 1, 2, 3 with explicit symbols r_1..r_m, c_1..c_m, that the
   gradient and the Hessian of phi(r.r, c.c, r.c) in (r, c), obtained by brute-force
   entrywise differentiation, equal the invariant chain rule used by the evaluators::

       d phi/dr = 2 phi_A r + phi_C c,          d phi/dc = 2 phi_B c + phi_C r,
       H_rr = 2 phi_A I + 4 phi_AA r r^T + 2 phi_AC (r c^T + c r^T) + phi_CC c c^T,
       H_cc = 2 phi_B I + 4 phi_BB c c^T + 2 phi_BC (c r^T + r c^T) + phi_CC r r^T,
       H_rc = phi_C I + 4 phi_AB r c^T + 2 phi_AC r r^T + 2 phi_BC c c^T + phi_CC c r^T;

   and, by the same brute force, the structural identities the evaluators rely on:
   the Hessian of log sum_j w_j psi_j (infonce), the same repulsion assembled over a
   pool of views in which a view can be both anchor and negative (the form the infonce
   kernels use), the chain rule through a linear predictor r = P u (ncl_predictor), and
   the rank structure of the spectral repulsion <A, B>_F (spectral); plus the piecewise
   linearity of the symmetric ReLU;
3. emits ``critpoints/losses/_generated/pointwise_kernels.py`` (:func:`kernel_module`):
   per phi a numba scalar kernel returning (phi, phi_A, phi_B, phi_C, phi_AA, phi_AB,
   phi_AC, phi_BB, phi_BC, phi_CC), its first-order twin ``<name>_first`` returning
   (phi, phi_A, phi_B, phi_C), and ``<name>_table``, which evaluates either over arrays of
   couplings; the cosine-based ones are written in the inverse norms 1/sqrt(A), 1/sqrt(B)
   (no division or square root per coupling). The column indices of a table (``PHI``,
   ``PHI_A``, ...) are emitted with them.

A new pointwise function is a :class:`PointwiseLoss` (a sympy expression in A, B, C) given
to :func:`kernel_module`; the package's list is :data:`POINTWISE_LOSSES`.

``generate()`` is pure and deterministic (every collection is ordered explicitly; sympy's
printing and common-subexpression elimination are deterministic). ``python -m derivations``
from the repository root verifies the derivation, checks the emitted kernels against
sympy, then writes the files.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sympy as sp

from derivations import codegen

# ---------------------------------------------------------------------------------
# Invariants and pointwise losses
# ---------------------------------------------------------------------------------

A, B, C = sp.symbols("A B C", real=True)
inv_tau, shift = sp.symbols("inv_tau shift", real=True)
inv_norm_r, inv_norm_c = sp.symbols("inv_norm_r inv_norm_c", positive=True)

INVARIANTS = (A, B, C)
SECOND_ORDER = ((A, A), (A, B), (A, C), (B, B), (B, C), (C, C))
OUTPUT_NAMES = ("phi", "phi_A", "phi_B", "phi_C", "phi_AA", "phi_AB", "phi_AC", "phi_BB", "phi_BC", "phi_CC")
#: phi and its first derivatives: the columns of a first-order table.
FIRST_ORDER = 4

GENERATED_PATH = "critpoints/losses/_generated/pointwise_kernels.py"


@dataclass(frozen=True)
class PointwiseLoss:
    """A scalar function phi(A, B, C) of the invariants of one coupling.

    ``zero_guard``: the n(0) = 0 convention applies (phi depends on r, c through the
    cosine); when A <= 0 or B <= 0 the kernel returns phi at cosine 0 and zero derivatives.
    """

    name: str
    expr: sp.Expr
    zero_guard: bool
    definition: str


def _cosine() -> sp.Expr:
    return C / sp.sqrt(A * B)


POINTWISE_LOSSES = (
    PointwiseLoss("squared_distance", A + B - 2 * C, False, "phi = A + B - 2 C = ||r - c||^2"),
    PointwiseLoss("inner_product", C, False, "phi = C = r.c"),
    PointwiseLoss("cosine", _cosine(), True, "phi = C / sqrt(A B) = <n(r), n(c)>"),
    PointwiseLoss(
        "exp_cosine",
        sp.exp(inv_tau * _cosine() - shift),
        True,
        "phi = exp(inv_tau C / sqrt(A B) - shift)",
    ),
    PointwiseLoss("squared_inner_product", C**2, False, "phi = C^2 = (r.c)^2"),
)


def pointwise_loss(name: str) -> PointwiseLoss:
    """The entry of :data:`POINTWISE_LOSSES` called ``name``."""
    for loss in POINTWISE_LOSSES:
        if loss.name == name:
            return loss
    raise KeyError(f"no pointwise loss {name!r}; known: {', '.join(loss.name for loss in POINTWISE_LOSSES)}")


def derivatives(loss: PointwiseLoss) -> tuple[sp.Expr, ...]:
    """(phi, phi_A, phi_B, phi_C, phi_AA, phi_AB, phi_AC, phi_BB, phi_BC, phi_CC)."""
    first = [sp.diff(loss.expr, s) for s in INVARIANTS]
    second = [sp.diff(loss.expr, s, t) for s, t in SECOND_ORDER]
    return tuple(sp.simplify(e) for e in [loss.expr, *first, *second])


def emitted_expressions(loss: PointwiseLoss) -> tuple[sp.Expr, ...]:
    """The derivatives as the kernel computes them.

    For a cosine-based phi (``zero_guard``) they are rewritten in the inverse norms
    inv_norm_r = 1/sqrt(A), inv_norm_c = 1/sqrt(B), which the evaluators compute once per
    representation: C/sqrt(A B) = C inv_norm_r inv_norm_c and every power of A and B
    becomes a product, so a coupling costs no division or square root.
    """
    if not loss.zero_guard:
        return derivatives(loss)
    norms = {A: 1 / inv_norm_r**2, B: 1 / inv_norm_c**2}
    return tuple(sp.simplify(sp.powsimp(e.subs(norms), force=True)) for e in derivatives(loss))


def value_at_zero_representation(loss: PointwiseLoss) -> sp.Expr:
    """phi when r = 0 or c = 0 under n(0) = 0: the cosine is 0, i.e. C = 0 with A, B > 0."""
    positive = sp.Symbol("positive", positive=True)
    return sp.simplify(loss.expr.subs({A: positive, B: positive}).subs(C, 0))


# ---------------------------------------------------------------------------------
# Chain rule from invariants to representations (the formulas the evaluators use)
# ---------------------------------------------------------------------------------


def _outer(x: sp.Matrix, y: sp.Matrix) -> sp.Matrix:
    return x * y.T


def representation_derivatives(d: dict[str, sp.Expr], r: sp.Matrix, c: sp.Matrix):
    """Gradient (g_r, g_c) and Hessian blocks (H_rr, H_rc, H_cc) from invariant derivatives."""
    eye = sp.eye(r.shape[0])
    g_r = 2 * d["phi_A"] * r + d["phi_C"] * c
    g_c = 2 * d["phi_B"] * c + d["phi_C"] * r
    h_rr = (
        2 * d["phi_A"] * eye
        + 4 * d["phi_AA"] * _outer(r, r)
        + 2 * d["phi_AC"] * (_outer(r, c) + _outer(c, r))
        + d["phi_CC"] * _outer(c, c)
    )
    h_cc = (
        2 * d["phi_B"] * eye
        + 4 * d["phi_BB"] * _outer(c, c)
        + 2 * d["phi_BC"] * (_outer(c, r) + _outer(r, c))
        + d["phi_CC"] * _outer(r, r)
    )
    h_rc = (
        d["phi_C"] * eye
        + 4 * d["phi_AB"] * _outer(r, c)
        + 2 * d["phi_AC"] * _outer(r, r)
        + 2 * d["phi_BC"] * _outer(c, c)
        + d["phi_CC"] * _outer(c, r)
    )
    return g_r, g_c, h_rr, h_rc, h_cc


def vector(name: str, m: int) -> sp.Matrix:
    return sp.Matrix(sp.symbols(f"{name}1:{m + 1}", real=True))


def invariant_derivatives_at(loss: PointwiseLoss, r: sp.Matrix, c: sp.Matrix) -> dict[str, sp.Expr]:
    values = {A: r.dot(r), B: c.dot(c), C: r.dot(c)}
    return {name: e.subs(values) for name, e in zip(OUTPUT_NAMES, derivatives(loss))}


# ---------------------------------------------------------------------------------
# Brute-force verification at random rational points
# ---------------------------------------------------------------------------------

TOLERANCE = sp.Float("1e-25", 40)


def random_rational(rng: random.Random) -> sp.Rational:
    return sp.Rational(rng.randint(-9, 9) or 1, rng.randint(1, 7))


def _assert_close(left: sp.Matrix, right: sp.Matrix, point: dict, what: str) -> None:
    difference = (left - right).subs(point).evalf(40)
    worst = max((abs(x) for x in difference), default=0)
    if worst > TOLERANCE:
        raise AssertionError(f"{what}: brute force and formula differ by {worst}")


def random_constants(rng: random.Random) -> dict:
    return {inv_tau: sp.Rational(rng.randint(1, 9), rng.randint(1, 5)), shift: random_rational(rng)}


def verify_invariant_chain_rule(m: int, rng: random.Random, losses: Sequence[PointwiseLoss] = POINTWISE_LOSSES) -> None:
    """Gradient and Hessian of phi(r.r, c.c, r.c) in (r, c): brute force vs the formulas."""
    r, c = vector("r", m), vector("c", m)
    variables = list(r) + list(c)
    for loss in losses:
        scalar = loss.expr.subs({A: r.dot(r), B: c.dot(c), C: r.dot(c)})
        brute_gradient = sp.Matrix([sp.diff(scalar, x) for x in variables])
        brute_hessian = sp.hessian(scalar, variables)
        g_r, g_c, h_rr, h_rc, h_cc = representation_derivatives(invariant_derivatives_at(loss, r, c), r, c)
        formula_gradient = sp.Matrix.vstack(g_r, g_c)
        formula_hessian = sp.Matrix(sp.BlockMatrix([[h_rr, h_rc], [h_rc.T, h_cc]]))
        for _ in range(3):
            point = {x: random_rational(rng) for x in variables} | random_constants(rng)
            _assert_close(brute_gradient, formula_gradient, point, f"{loss.name} gradient, m={m}")
            _assert_close(brute_hessian, formula_hessian, point, f"{loss.name} Hessian, m={m}")


def verify_log_sum_exp(rng: random.Random) -> None:
    """Hessian of L = log sum_j w_j psi(r, c_j) is (1/Z) sum_j w_j Hess psi_j - mu mu^T.

    mu = (1/Z) sum_j w_j grad psi_j, Z = sum_j w_j psi_j; psi = exp_cosine, m = 2, two
    negatives; all derivatives in (r, c_1, c_2).
    """
    psi = pointwise_loss("exp_cosine")
    m, n_neg = 2, 2
    r = vector("r", m)
    negatives = [vector(f"c{j}_", m) for j in range(n_neg)]
    weights = [sp.Rational(1, 3), sp.Rational(2, 3)]
    variables = list(r) + [x for c in negatives for x in c]
    size = len(variables)
    terms = [psi.expr.subs({A: r.dot(r), B: c.dot(c), C: r.dot(c)}) for c in negatives]
    partition = sum(w * t for w, t in zip(weights, terms))
    brute = sp.hessian(sp.log(partition), variables)

    weighted_hessian = sp.zeros(size, size)
    mean_gradient = sp.zeros(size, 1)
    for j, (w, c) in enumerate(zip(weights, negatives)):
        g_r, g_c, h_rr, h_rc, h_cc = representation_derivatives(invariant_derivatives_at(psi, r, c), r, c)
        rows = list(range(m)) + [m * (j + 1) + i for i in range(m)]
        full_gradient = sp.Matrix.vstack(g_r, g_c)
        full_hessian = sp.Matrix(sp.BlockMatrix([[h_rr, h_rc], [h_rc.T, h_cc]]))
        for a, ra in enumerate(rows):
            mean_gradient[ra] += w * full_gradient[a]
            for b, rb in enumerate(rows):
                weighted_hessian[ra, rb] += w * full_hessian[a, b]
    mean_gradient = mean_gradient / partition
    formula = weighted_hessian / partition - mean_gradient * mean_gradient.T
    for _ in range(3):
        point = {x: random_rational(rng) for x in variables} | random_constants(rng)
        _assert_close(brute, formula, point, "log-sum-exp Hessian")


def verify_repulsion_pool_form(rng: random.Random) -> None:
    """The log-sum-exp repulsion assembled over a pool of views, as the evaluator does.

    L = sum_a wa log sum_j wn_j psi(f_a, f_j) over views f_1, f_2, f_3 (m = 2), anchors
    {1, 2} and negatives {2, 3} (view 2 is both). With Phi_X[x, y] = wa wn_j phi_X / Z_a
    for the coupling of anchor x and negative y (0 elsewhere), Phi^s = Phi + Phi^T and
    Psi[x, y] = 2 Phi_AC[x, y] + 2 Phi_BC[y, x], the Hessian in (f_1, f_2, f_3) is
    diag_x(M_x) + B + B^T - sum_a G_a G_a^T / wa with

        M_x = 2 (sum_y Phi_A[x, y] + sum_y Phi_B[y, x]) I + 4 (sum_y Phi_AA[x, y] + sum_y Phi_BB[y, x]) f_x f_x^T
              + f_x p_x^T + p_x f_x^T + sum_y Phi_CC^s[x, y] f_y f_y^T,   p_x = sum_y Psi[x, y] f_y,
        B_xy = Phi_C^s/2 I + 2 Phi_AB^s f_x f_y^T + Psi[x, y] f_x f_x^T + Phi_CC^s/2 f_y f_x^T,

    and G_a the gradient of anchor a's couplings (the covariance term of §6).
    """
    psi = pointwise_loss("exp_cosine")
    m, n_views = 2, 3
    views = [vector(f"f{x}_", m) for x in range(n_views)]
    anchors, negatives = (0, 1), (1, 2)
    wa = [sp.Rational(2, 5), sp.Rational(3, 5)]
    wn = [sp.Rational(1, 3), sp.Rational(2, 3)]
    variables = [v for f in views for v in f]

    def coupling(x: int, y: int) -> dict[str, sp.Expr]:
        return invariant_derivatives_at(psi, views[x], views[y])

    partitions = [sum(w * coupling(x, y)["phi"] for w, y in zip(wn, negatives)) for x in anchors]
    loss = sum(w * sp.log(z) for w, z in zip(wa, partitions))
    brute = sp.hessian(loss, variables)

    names = ("phi_A", "phi_B", "phi_C", "phi_AA", "phi_AB", "phi_AC", "phi_BB", "phi_BC", "phi_CC")
    phi = {name: sp.zeros(n_views, n_views) for name in names}
    gradients = []
    for a, x in enumerate(anchors):
        gradient = sp.zeros(m * n_views, 1)
        for j, y in enumerate(negatives):
            d = coupling(x, y)
            weight = wa[a] * wn[j] / partitions[a]
            for name in names:
                phi[name][x, y] += weight * d[name]
            g_r, g_c, *_ = representation_derivatives(d, views[x], views[y])
            for i in range(m):
                gradient[m * x + i] += weight * g_r[i]
                gradient[m * y + i] += weight * g_c[i]
        gradients.append(gradient)
    sym = {name: phi[name] + phi[name].T for name in ("phi_C", "phi_AB", "phi_CC")}
    mixed = 2 * phi["phi_AC"] + 2 * phi["phi_BC"].T
    eye = sp.eye(m)
    blocks = [[sp.zeros(m, m) for _ in views] for _ in views]
    for x, f_x in enumerate(views):
        p_x = sum((mixed[x, y] * f_y for y, f_y in enumerate(views)), sp.zeros(m, 1))
        diagonal = 2 * sum(phi["phi_A"][x, y] + phi["phi_B"][y, x] for y in range(n_views))
        along_own = 4 * sum(phi["phi_AA"][x, y] + phi["phi_BB"][y, x] for y in range(n_views))
        blocks[x][x] += diagonal * eye + along_own * _outer(f_x, f_x) + _outer(f_x, p_x) + _outer(p_x, f_x)
        blocks[x][x] += sum((sym["phi_CC"][x, y] * _outer(f_y, f_y) for y, f_y in enumerate(views)), sp.zeros(m, m))
        for y, f_y in enumerate(views):
            half = (
                sym["phi_C"][x, y] / 2 * eye
                + 2 * sym["phi_AB"][x, y] * _outer(f_x, f_y)
                + mixed[x, y] * _outer(f_x, f_x)
                + sym["phi_CC"][x, y] / 2 * _outer(f_y, f_x)
            )
            blocks[x][y] += half
            blocks[y][x] += half.T
    formula = sp.Matrix(sp.BlockMatrix(blocks))
    for a, gradient in enumerate(gradients):
        formula -= gradient * gradient.T / wa[a]
    for _ in range(2):
        point = {v: random_rational(rng) for v in variables} | random_constants(rng)
        _assert_close(brute, formula, point, "log-sum-exp repulsion over a pool of views")


def verify_predictor_chain_rule(rng: random.Random) -> None:
    """phi(P u, v): brute-force derivatives in (u, P, v) vs the predictor chain rule.

    With r = P u, g = d phi/dr, M = H_rr, K = H_rc (from the invariant formulas):
    d/du = P^T g, d/dP_ij = g_i u_j, H_uu = P^T M P, H_uv = P^T K,
    H[P_ij, P_kl] = M_ik u_j u_l, H[P_ij, v] = K[i, :] u_j,
    H[u_j, P_kl] = delta_jl g_k + (P^T M)_jk u_l.
    """
    m = 2
    u, v = vector("u", m), vector("v", m)
    P = sp.Matrix(m, m, sp.symbols(f"P1:{m * m + 1}", real=True))
    p_entries = list(P)
    variables = list(u) + p_entries + list(v)
    for loss in POINTWISE_LOSSES:
        r = P * u
        scalar = loss.expr.subs({A: r.dot(r), B: v.dot(v), C: r.dot(v)})
        brute_gradient = sp.Matrix([sp.diff(scalar, x) for x in variables])
        brute_hessian = sp.hessian(scalar, variables)

        g_r, g_c, h_rr, h_rc, h_cc = representation_derivatives(invariant_derivatives_at(loss, r, v), r, v)
        grad_p = sp.Matrix([g_r[i] * u[j] for i in range(m) for j in range(m)])
        formula_gradient = sp.Matrix.vstack(P.T * g_r, grad_p, g_c)
        h_uu = P.T * h_rr * P
        h_uv = P.T * h_rc
        size = range(m * m)
        h_pp = sp.Matrix([[h_rr[a // m, b // m] * u[a % m] * u[b % m] for b in size] for a in size])
        h_pv = sp.Matrix([[h_rc[a // m, k] * u[a % m] for k in range(m)] for a in size])
        pt_m = P.T * h_rr
        h_up = sp.Matrix(
            [[(g_r[b // m] if j == b % m else 0) + pt_m[j, b // m] * u[b % m] for b in size] for j in range(m)]
        )
        formula_hessian = sp.Matrix(sp.BlockMatrix([[h_uu, h_up, h_uv], [h_up.T, h_pp, h_pv], [h_uv.T, h_pv.T, h_cc]]))
        for _ in range(2):
            point = {x: random_rational(rng) for x in variables} | random_constants(rng)
            _assert_close(brute_gradient, formula_gradient, point, f"{loss.name} predictor gradient")
            _assert_close(brute_hessian, formula_hessian, point, f"{loss.name} predictor Hessian")


def verify_spectral_repulsion(rng: random.Random) -> None:
    """<A, B>_F with A = sum_a wa f_a f_a^T, B = sum_j wn f_j f_j^T (two anchors, two negatives).

    d/df_a = 2 wa B f_a; H[f_a, f_a'] = delta 2 wa B; H[f_j, f_j'] = delta 2 wn A;
    H[f_a, f_j] = 2 wa wn ((f_a.f_j) I + f_j f_a^T).
    """
    m = 2
    anchors = [vector(f"a{k}_", m) for k in range(2)]
    negatives = [vector(f"n{k}_", m) for k in range(2)]
    wa = [sp.Rational(1, 4), sp.Rational(3, 4)]
    wn = [sp.Rational(2, 5), sp.Rational(3, 5)]
    first = sum((w * _outer(f, f) for w, f in zip(wa, anchors)), sp.zeros(m, m))
    second = sum((w * _outer(f, f) for w, f in zip(wn, negatives)), sp.zeros(m, m))
    value = sum(first[i, k] * second[i, k] for i in range(m) for k in range(m))
    direct = sum(w_a * w_n * f_a.dot(f_n) ** 2 for w_a, f_a in zip(wa, anchors) for w_n, f_n in zip(wn, negatives))
    if sp.expand(value - direct) != 0:
        raise AssertionError("spectral repulsion is not <A, B>_F")
    reps = anchors + negatives
    variables = [x for f in reps for x in f]
    brute = sp.hessian(value, variables)
    blocks = [[sp.zeros(m, m) for _ in reps] for _ in reps]
    for a, f_a in enumerate(anchors):
        blocks[a][a] = 2 * wa[a] * second
        for j, f_n in enumerate(negatives):
            cross = 2 * wa[a] * wn[j] * (f_a.dot(f_n) * sp.eye(m) + _outer(f_n, f_a))
            blocks[a][2 + j] = cross
            blocks[2 + j][a] = cross.T
    for j in range(2):
        blocks[2 + j][2 + j] = 2 * wn[j] * first
    formula = sp.Matrix(sp.BlockMatrix(blocks))
    point = {x: random_rational(rng) for x in variables}
    _assert_close(brute, formula, point, "spectral repulsion Hessian")


def verify_symrelu_pieces() -> None:
    """sigma_b(t) = ReLU(t+b) - ReLU(-t+b) = (a1 + a2) t + (a1 - a2) b on each piece.

    a1 = [t + b > 0], a2 = [-t + b > 0]: inside a piece f is linear in (t, b), so every
    second derivative of the encoder vanishes there. Checked at a point of each of the
    four sign patterns, value and both partial derivatives.
    """
    t, b = sp.symbols("t b", real=True)
    sigma = sp.Max(t + b, 0) - sp.Max(-t + b, 0)
    for t0, b0 in ((2, 1), (-2, 1), (sp.Rational(1, 2), 1), (sp.Rational(1, 2), -1)):
        a1 = 1 if t0 + b0 > 0 else 0
        a2 = 1 if -t0 + b0 > 0 else 0
        piece = (a1 + a2) * t + (a1 - a2) * b
        point = {t: t0, b: b0}
        pairs = ((sigma, piece), (sp.diff(sigma, t), sp.diff(piece, t)), (sp.diff(sigma, b), sp.diff(piece, b)))
        for of_sigma, of_piece in pairs:
            if sp.simplify(of_sigma.subs(point) - of_piece.subs(point)) != 0:
                raise AssertionError(f"symmetric ReLU piece at t={t0}, b={b0}")


def verify(sizes: tuple[int, ...] = (1, 2, 3)) -> None:
    """Every brute-force check of this derivation (deterministic random points)."""
    rng = random.Random(20220328)
    for m in sizes:
        verify_invariant_chain_rule(m, rng)
    verify_log_sum_exp(rng)
    verify_repulsion_pool_form(rng)
    verify_predictor_chain_rule(rng)
    verify_spectral_repulsion(rng)
    verify_symrelu_pieces()


# ---------------------------------------------------------------------------------
# Code generation
# ---------------------------------------------------------------------------------


def _emit_kernel(loss: PointwiseLoss, order: int) -> str:
    """The scalar kernel of ``loss``: every derivative (order 2) or phi and its gradient in
    the invariants (order 1, ``<name>_first``)."""
    count = len(OUTPUT_NAMES) if order == 2 else FIRST_ORDER
    names = OUTPUT_NAMES[:count]
    exprs = emitted_expressions(loss)[:count]
    temporaries, reduced = sp.cse(list(exprs), symbols=sp.numbered_symbols("t"), optimizations="basic")
    function = loss.name if order == 2 else f"{loss.name}_first"
    lines = [
        "@njit(cache=True)",
        f"def {function}(A, B, C, inv_norm_r, inv_norm_c, inv_tau, shift):",
        f'    """{loss.definition}, with A = r.r, B = c.c, C = r.c.',
        "",
        "    Returns (" + ", ".join(names) + ").",
    ]
    if loss.zero_guard:
        lines += [
            "    Computed from inv_norm_r = 1/sqrt(A), inv_norm_c = 1/sqrt(B).",
            "    n(0) = 0: for A <= 0 or B <= 0 the cosine is 0 and every derivative is 0.",
        ]
    else:
        lines += ["    inv_norm_r, inv_norm_c are not used."]
    lines += ['    """']
    if loss.zero_guard:
        zero_value = codegen.float_code(value_at_zero_representation(loss))
        zeros = ", ".join(["0.0"] * (count - 1))
        lines += [
            "    if A <= 0.0 or B <= 0.0:",
            f"        return ({zero_value}, {zeros})",
        ]
    for symbol, expr in temporaries:
        lines.append(f"    {symbol} = {codegen.float_code(expr)}")
    lines.append("    return (")
    for name, expr in zip(names, reduced):
        lines.append(f"        {codegen.float_code(expr)},  # {name}")
    lines.append("    )")
    return "\n".join(lines) + "\n"


def _emit_table(loss: PointwiseLoss) -> str:
    """``<name>_table``: the kernel over arrays of couplings, full or first order by ``out``'s width."""
    arguments = "A[n], B[n], C[n], inv_norm_r[n], inv_norm_c[n], inv_tau, shift[n]"
    lines = [
        "@njit(cache=True)",
        f"def {loss.name}_table(A, B, C, inv_norm_r, inv_norm_c, inv_tau, shift, out):",
        f'    """out[n] = {loss.name}(...) of coupling n: all N_DERIVATIVES columns, or the',
        f"    first N_FIRST_DERIVATIVES (phi and its gradient, from {loss.name}_first) when out",
        '    has that many columns."""',
        "    if out.shape[1] == N_DERIVATIVES:",
        "        for n in range(A.shape[0]):",
        f"            d = {loss.name}({arguments})",
        *[f"            out[n, {t}] = d[{t}]" for t in range(len(OUTPUT_NAMES))],
        "    else:",
        "        for n in range(A.shape[0]):",
        f"            d = {loss.name}_first({arguments})",
        *[f"            out[n, {t}] = d[{t}]" for t in range(FIRST_ORDER)],
    ]
    return "\n".join(lines) + "\n"


_PRELUDE = '''"""Numba scalar kernels for the pointwise losses of the finite-measure evaluators.

Each kernel takes the invariants of one coupling of representations r, c in R^m,
A = r.r, B = c.c, C = r.c, the inverse norms inv_norm_r = 1/sqrt(A), inv_norm_c =
1/sqrt(B) (0 for a zero representation; the cosine-based kernels are written in them,
so that a coupling needs no division or square root), and two constants (the inverse
temperature ``inv_tau`` and the exponent ``shift``; kernels that do not use them ignore
them). ``<name>`` returns the tuple (phi, phi_A, phi_B, phi_C, phi_AA, phi_AB, phi_AC,
phi_BB, phi_BC, phi_CC), ``<name>_first`` its first N_FIRST_DERIVATIVES entries, and
``<name>_table(A, B, C, inv_norm_r, inv_norm_c, inv_tau, shift, out)`` evaluates either
over arrays of couplings into the columns of ``out`` (``PHI``, ``PHI_A``, ...). The
derivation, its verification and the chain rule to representations and parameters are in
derivations/pointwise_losses.py and derivations/pointwise_losses.md.
"""

import math

from numba import njit
'''


def _emit_constants(losses: Sequence[PointwiseLoss]) -> str:
    lines = ["#: Columns of a derivative table: phi and its partial derivatives in (A, B, C)."]
    lines += [f"{name.upper()} = {column}" for column, name in enumerate(OUTPUT_NAMES)]
    lines += [
        "",
        "#: Columns of a full table, and of a first-order table (PHI, PHI_A, PHI_B, PHI_C).",
        f"N_DERIVATIVES = {len(OUTPUT_NAMES)}",
        f"N_FIRST_DERIVATIVES = {FIRST_ORDER}",
        "",
        "#: The pointwise losses of this module.",
        "KERNELS = (" + ", ".join(repr(loss.name) for loss in losses) + ("," if len(losses) == 1 else "") + ")",
    ]
    return "\n".join(lines) + "\n"


def kernel_module(losses: Sequence[PointwiseLoss], script: str = "pointwise_losses") -> str:
    """The text of a module of numba kernels for ``losses`` (see the module docstring).

    ``script`` names the derivation in the header. Pure and deterministic.
    """
    chunks = [codegen.header(script) + _PRELUDE, _emit_constants(losses)]
    for loss in losses:
        chunks += [_emit_kernel(loss, 2), _emit_kernel(loss, 1), _emit_table(loss)]
    return codegen.join_chunks(chunks)


def generate() -> dict[str, str]:
    """Repository-relative path -> content of every file this derivation emits.

    Pure and deterministic: the same text on every run and for every hash seed.
    """
    return {GENERATED_PATH: kernel_module(POINTWISE_LOSSES)}


# ---------------------------------------------------------------------------------
# Checking the emitted module
# ---------------------------------------------------------------------------------


def verify_kernels(module, losses: Sequence[PointwiseLoss] = POINTWISE_LOSSES, seed: int = 7) -> None:
    """Compare every emitted kernel (full, first order, table) with the sympy derivatives at
    random points, and the zero-representation guard with the n(0) = 0 convention."""
    import numpy as np

    rng = random.Random(seed)
    arguments = (A, B, C, inv_norm_r, inv_norm_c, inv_tau, shift)
    for loss in losses:
        kernel, first = getattr(module, loss.name), getattr(module, f"{loss.name}_first")
        table = getattr(module, f"{loss.name}_table")
        exact = derivatives(loss)
        for _ in range(5):
            point = {
                A: sp.Rational(rng.randint(1, 40), 7),
                B: sp.Rational(rng.randint(1, 40), 9),
                inv_tau: sp.Rational(rng.randint(1, 20), 3),
                shift: sp.Rational(rng.randint(-9, 9), 4),
            }
            point[C] = sp.sqrt(point[A] * point[B]) * sp.Rational(rng.randint(-10, 10), 11)
            point[inv_norm_r], point[inv_norm_c] = 1 / sp.sqrt(point[A]), 1 / sp.sqrt(point[B])
            values = [float(point[s].evalf(30)) for s in arguments]
            got = kernel(*values)
            for name, value, expr in zip(OUTPUT_NAMES, got, exact):
                want = float(expr.subs(point).evalf(30))
                if abs(value - want) > 1e-10 * max(1.0, abs(want)):
                    raise AssertionError(f"emitted {loss.name} {name}: {value} != {want}")
            if tuple(first(*values)) != tuple(got[:FIRST_ORDER]):
                raise AssertionError(f"emitted {loss.name}_first differs from {loss.name}")
            columns = [np.array([value]) for value in values[:5]]
            for width in (len(OUTPUT_NAMES), FIRST_ORDER):
                out = np.empty((1, width))
                table(*columns, values[5], np.array([values[6]]), out)
                if tuple(out[0]) != tuple(got[:width]):
                    raise AssertionError(f"emitted {loss.name}_table with {width} columns differs from {loss.name}")
        if loss.zero_guard:
            got = kernel(0.0, 2.0, 0.5, 0.0, 2.0**-0.5, 1.5, 0.25)
            want = float(value_at_zero_representation(loss).subs({inv_tau: 1.5, shift: 0.25}))
            if abs(got[0] - want) > 1e-14 or any(v != 0.0 for v in got[1:]):
                raise AssertionError(f"emitted {loss.name}: zero-representation guard")


def check_emitted(files: dict[str, str]) -> None:
    """Import the emitted module from a scratch directory and check it numerically."""
    with tempfile.TemporaryDirectory() as tmp:
        module = codegen.import_text(files[GENERATED_PATH], Path(tmp) / "pointwise_kernels_check.py")
        verify_kernels(module)


def describe(loss: PointwiseLoss) -> str:
    """Plain-text summary of a pointwise loss and its invariant derivatives."""
    lines = [f"{loss.name}: {loss.definition}"]
    lines += [f"  {name} = {expr}" for name, expr in zip(OUTPUT_NAMES[1:], derivatives(loss)[1:])]
    return "\n".join(lines)


def summary() -> str:
    """What this derivation states (printed by ``python -m derivations --verbose``)."""
    return "\n".join(describe(loss) for loss in POINTWISE_LOSSES)
