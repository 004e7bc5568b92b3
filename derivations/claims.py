"""The paper's claims (derivations/MODEL.md §7) as symbolic proofs, written up in derivations/CLAIMS.md.

``python -m derivations`` from the repository root runs every proof (:func:`verify`);
``--verbose`` prints what each established.

Every ``prove_*`` function checks one statement with sympy, raises ``AssertionError`` if
the statement does not hold, and returns a dict of the quantities it established (printed
by the script). The tests (tests/test_claims.py) import this module and use the
exact formulas below (closed-form values, predicted spectra) as the reference the engine
is checked against.

Conventions (derivations/MODEL.md §1-4): rho = 1 - q is the keep probability of an independent
mask; a view of x = z = s e_j (one-hot) is s e_j when the mask keeps coordinate j and 0
otherwise; sigma_b(t) = ReLU(t + b) - ReLU(-t + b) with b = -beta, beta > 0, is soft
thresholding; n(0) = 0, so a cosine with a zero representation is 0.

Where a statement is proved for every size by an argument in CLAIMS.md, the sympy check is
of the identity the argument rests on, at the sizes listed; where the statement involves
general symbols (d, beta, rho, T) it is checked symbolically in them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import sympy as sp

rho = sp.Symbol("rho", positive=True)  # keep probability 1 - q
beta = sp.Symbol("beta", positive=True)  # the bias is -beta
t = sp.Symbol("t", nonnegative=True)

#: (m, p) sizes at which the matrix identities of claim 1 are checked entry by entry.
CLAIM1_SIZES = ((1, 1), (1, 2), (2, 2), (2, 3), (3, 2))


# ----------------------------------------------------------------------------- building blocks


def _matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i}{j}", real=True))


def _symmetric(name: str, n: int) -> sp.Matrix:
    return sp.Matrix(n, n, lambda i, j: sp.Symbol(f"{name}_{min(i, j)}{max(i, j)}", real=True))


def _flat(matrix: sp.Matrix) -> list[sp.Symbol]:
    """Entries row by row: the package's theta layout of a block (critpoints/losses/parameters.py)."""
    return [matrix[i, j] for i in range(matrix.rows) for j in range(matrix.cols)]


def _kron(a: sp.Matrix, b: sp.Matrix) -> sp.Matrix:
    from sympy.physics.quantum import TensorProduct

    return sp.Matrix(TensorProduct(a, b))


def _is_zero(expr) -> bool:
    if isinstance(expr, sp.MatrixBase):
        return all(sp.simplify(entry) == 0 for entry in expr)
    return sp.simplify(expr) == 0


def soft_threshold(value, threshold):
    """sigma_{-threshold}(value) = sign(value) (|value| - threshold)_+ as a sympy Piecewise."""
    return sp.Piecewise((value - threshold, value > threshold), (value + threshold, value < -threshold), (0, True))


def cosine(u: Sequence, v: Sequence):
    """<n(u), n(v)> with the convention n(0) = 0, for explicit vectors (sympy or numbers)."""
    uu = sum(a * a for a in u)
    vv = sum(b * b for b in v)
    if uu == 0 or vv == 0:
        return sp.Integer(0)
    return sum(a * b for a, b in zip(u, v)) / sp.sqrt(uu * vv)


def one_hot_view_law(d: int, keep=rho) -> list[tuple[sp.Expr, tuple, tuple]]:
    """The law of the two views (x1, x2) of a signed one-hot input under independent masks.

    Returns tuples (probability, view1, view2); a view is (j, s) for s e_j, or None for the
    zero vector (coordinate j dropped). z = s e_j has probability 1/(2d); each view keeps j
    independently with probability ``keep``.
    """
    law = []
    for j in range(d):
        for s in (1, -1):
            for kept1, kept2 in itertools.product((True, False), repeat=2):
                weight = sp.Rational(1, 2 * d)
                weight *= (keep if kept1 else 1 - keep) * (keep if kept2 else 1 - keep)
                law.append((weight, (j, s) if kept1 else None, (j, s) if kept2 else None))
    return law


def one_hot_single_view_law(d: int, keep=rho) -> list[tuple[sp.Expr, tuple | None]]:
    """The law of one view (an anchor or a negative x'): (probability, (j, s) or None)."""
    law = []
    for j in range(d):
        for s in (1, -1):
            law.append((sp.Rational(1, 2 * d) * keep, (j, s)))
            law.append((sp.Rational(1, 2 * d) * (1 - keep), None))
    return law


def _represent(columns: Sequence[Sequence], view, m: int) -> list:
    """f(view) for an odd encoder whose image of e_j is ``columns[j]``: f(s e_j) = s columns[j], f(0) = 0."""
    if view is None:
        return [sp.Integer(0)] * m
    j, s = view
    return [s * entry for entry in columns[j]]


# ----------------------------------------------------------------------------- claim 1


def spectral_trace_form(W: sp.Matrix, C11: sp.Matrix, C12: sp.Matrix, Cneg: sp.Matrix) -> sp.Expr:
    """The closed-form spectral loss -2 tr(W C12 W^T) + tr(W^T W C11 W^T W Cneg) (closed_form_losses.md)."""
    A = W.T * W
    return sp.expand(-2 * (W * C12 * W.T).trace() + (A * C11 * A * Cneg).trace())


def prove_spectral_hessian_at_zero(sizes: Sequence[tuple[int, int]] = CLAIM1_SIZES) -> dict:
    """Claim 1(a), spectral: grad L(0) = 0 and Hess L(0) = -2 I_m (x) (C12 + C12^T).

    With C11, Cneg symmetric and C12 general symbolic matrices, at each (m, p) in ``sizes``,
    for theta = W row-major. Also: under independent masks C12 = rho^2 Sigma, so
    Hess L(0) = -4 rho^2 I_m (x) Sigma; under complementary masks tr(C12) = 0, so
    C12 + C12^T is never positive definite.
    """
    for m, p in sizes:
        W = _matrix("w", m, p)
        C11, Cneg, C12 = _symmetric("a", p), _symmetric("n", p), _matrix("c", p, p)
        loss = spectral_trace_form(W, C11, C12, Cneg)
        theta = _flat(W)
        at_zero = {x: 0 for x in theta}
        gradient = sp.Matrix([sp.diff(loss, x) for x in theta]).subs(at_zero)
        hessian = sp.hessian(loss, theta).subs(at_zero)
        assert _is_zero(gradient), (m, p)
        expected = -2 * _kron(sp.eye(m), C12 + C12.T)
        assert _is_zero(hessian - expected), (m, p)
        assert _is_zero(hessian - (-4) * _kron(sp.eye(m), (C12 + C12.T) / 2)), (m, p)
        # the quartic part alone has a zero Hessian at 0 (it is homogeneous of degree 4)
        quartic = spectral_trace_form(W, C11, sp.zeros(p, p), Cneg)
        assert _is_zero(sp.hessian(quartic, theta).subs(at_zero)), (m, p)
    sigma = _symmetric("s", 2)
    independent_c12 = rho**2 * sigma
    complementary_c12 = sigma - sp.diag(*[sigma[i, i] for i in range(2)])
    assert _is_zero(-2 * _kron(sp.eye(2), 2 * independent_c12) - (-4 * rho**2) * _kron(sp.eye(2), sigma))
    assert complementary_c12.trace() == 0
    return {
        "sizes": tuple(sizes),
        "hessian at W = 0": "-2 I_m (x) (C12 + C12^T) = -4 I_m (x) sym(C12)",
        "independent masks": "-4 rho^2 I_m (x) Sigma (negative definite iff Sigma > 0)",
        "complementary masks": "tr(C12) = 0: never negative definite (indefinite, or zero when Sigma is diagonal)",
    }


def prove_ncl_squared_collapse(sizes: Sequence[tuple[int, int]] = CLAIM1_SIZES) -> dict:
    """Claim 1(a), ncl_squared: L = tr(Z J Z^T) with Z = [W, -W_t] and J the joint moment of (x1, x2).

    J = E[y y^T] for y = (x1, x2) is positive semidefinite, so L >= 0 = L(0, 0): the collapsed
    point is a global minimum with value 0 for every setting.
    """
    for m, p in sizes:
        W, Wt = _matrix("w", m, p), _matrix("v", m, p)
        C11, C22, C12 = _symmetric("a", p), _symmetric("b", p), _matrix("c", p, p)
        loss = (W * C11 * W.T).trace() - 2 * (W * C12 * Wt.T).trace() + (Wt * C22 * Wt.T).trace()
        Z = W.row_join(-Wt)
        joint = C11.row_join(C12).col_join(C12.T.row_join(C22))
        assert _is_zero(sp.expand(loss - (Z * joint * Z.T).trace())), (m, p)
        assert loss.subs({x: 0 for x in _flat(W) + _flat(Wt)}) == 0
    return {"identity": "L(W, W_t) = tr([W, -W_t] J [W, -W_t]^T) >= 0, L(0, 0) = 0", "sizes": tuple(sizes)}


def prove_predictor_field_at_zero(sizes: Sequence[tuple[int, int]] = CLAIM1_SIZES) -> dict:
    """Claim 1(a), unnormalised ncl_predictor: the field vanishes on {W = W_t = 0} for every P.

    L_o = -2 E<P W x1, sg W_t x2> = -2 tr(P W C12 W_t^T), L_t = -2 tr(W C12 W_t^T P^T);
    F = (dL_o/dW, dL_t/dW_t, dL_o/dP + dL_t/dP). Its Jacobian at (0, 0, P) is zero except
    the blocks dF_W/dW_t = -2 P^T (x) C12 and dF_{W_t}/dW = -2 P^T (x) C12^T (row-major
    layout), so for symmetric C12 its non-zero eigenvalues are +-2 mu_k(P) s_l(C12).
    """
    for m, p in sizes:
        W, Wt, P = _matrix("w", m, p), _matrix("v", m, p), _matrix("P", m, m)
        C12 = _matrix("c", p, p)
        online = -2 * (P * W * C12 * Wt.T).trace()
        target = -2 * (W * C12 * Wt.T * P.T).trace()
        w, v, pp = _flat(W), _flat(Wt), _flat(P)
        field = sp.Matrix(
            [sp.diff(online, x) for x in w]
            + [sp.diff(target, x) for x in v]
            + [sp.diff(online, x) + sp.diff(target, x) for x in pp]
        )
        at_zero = {x: 0 for x in w + v}
        assert _is_zero(field.subs(at_zero)), (m, p)
        jacobian = field.jacobian(w + v + pp).subs(at_zero)
        n = m * p
        assert _is_zero(jacobian[:n, n : 2 * n] - (-2) * _kron(P.T, C12)), (m, p)
        assert _is_zero(jacobian[n : 2 * n, :n] - (-2) * _kron(P.T, C12.T)), (m, p)
        jacobian[:n, n : 2 * n] = sp.zeros(n, n)
        jacobian[n : 2 * n, :n] = sp.zeros(n, n)
        assert _is_zero(jacobian), (m, p)
    return {
        "field at W = W_t = 0": "0 for every P (a stationary family of dimension m^2)",
        "Jacobian there": "[[0, -2 P^T (x) C12, 0], [-2 P^T (x) C12^T, 0, 0], [0, 0, 0]]",
        "sizes": tuple(sizes),
    }


def prove_dead_region() -> dict:
    """Claim 1(b): sigma_{-beta} vanishes on (-beta, beta), so every loss is constant where all neurons are dead.

    If |w_i . x| < beta for every neuron i and every view x of the finite support, the same
    holds on a neighbourhood, f = 0 there, and each loss takes the value it has with all
    representations zero (cosines 0 by n(0) = 0): spectral 0, infonce 0, ncl_squared 0,
    ncl_cosine 2, ncl_predictor 2 (normalised) or 0 (unnormalised); its gradient and Hessian
    (field and Jacobian) vanish. For one-hot data and M = I the region is
    {max_ij |W_ij| < beta}; it meets the unit-row constraint iff beta > 1/sqrt(p).
    """
    x = sp.Symbol("x", real=True)
    inside = sp.Interval.open(-beta, beta)
    symrelu = sp.Max(x + (-beta), 0) - sp.Max(-x + (-beta), 0)  # sigma_b with b = -beta
    # on (-beta, beta) both ReLU arguments are negative: write x = beta (r - 1)/(r + 1), r > 0
    r = sp.Symbol("r", positive=True)
    point = beta * (r - 1) / (r + 1)
    assert sp.simplify(point - beta).is_negative and sp.simplify(-point - beta).is_negative
    assert symrelu.subs(x, point).simplify() == 0
    for fraction in (sp.Rational(-99, 100), sp.Rational(-1, 3), 0, sp.Rational(1, 2), sp.Rational(99, 100)):
        assert symrelu.subs(x, fraction * beta) == 0
        assert soft_threshold(fraction * beta, beta) == 0
    # zero representations: the loss values (tau > 0)
    tau = sp.Symbol("tau", positive=True)
    zero = [sp.Integer(0), sp.Integer(0)]
    cos0 = cosine(zero, zero)
    values = {
        "spectral": sp.Integer(0),  # -2 (0 . 0) + (0 . 0)^2
        "infonce": -cos0 / tau + sp.log(sp.exp(cos0 / tau)),
        "ncl_squared": sp.Integer(0),  # ||0 - 0||^2
        "ncl_cosine": 2 - 2 * cos0,
        "ncl_predictor": 2 - 2 * cos0,
        "ncl_predictor (unnormalised)": sp.Integer(0),  # -2 <P 0, 0>
    }
    values = {name: sp.simplify(value) for name, value in values.items()}
    assert values == {
        "spectral": 0,
        "infonce": 0,
        "ncl_squared": 0,
        "ncl_cosine": 2,
        "ncl_predictor": 2,
        "ncl_predictor (unnormalised)": 0,
    }
    # unit rows: sum_j w_j^2 = 1 forces max_j w_j^2 >= 1/p, with equality at (1, ..., 1)/sqrt(p)
    return {
        "dead interval": str(inside),
        "loss values in the dead region": values,
        "unit rows": "dead region non-empty iff beta > 1/sqrt(p)",
    }


# ----------------------------------------------------------------------------- claim 2


def ncl_cosine_one_hot_loss(d: int, m: int, tied: bool) -> tuple[sp.Expr, list, list]:
    """L = 2 - 2 E<n(f(x1)), n(f_t(x2))> over the exact one-hot view law, as an expression.

    The encoders are odd with f(s e_j) = s c_j; the columns c_j (online) and c^t_j (target,
    equal to c_j when tied) are explicit symbolic vectors of R^m.
    """
    online = [[sp.Symbol(f"c_{i}{j}", real=True) for i in range(m)] for j in range(d)]
    target = online if tied else [[sp.Symbol(f"k_{i}{j}", real=True) for i in range(m)] for j in range(d)]
    expectation = sum(
        weight * cosine(_represent(online, v1, m), _represent(target, v2, m)) for weight, v1, v2 in one_hot_view_law(d)
    )
    return sp.expand(2 - 2 * expectation), online, target


def prove_claim2_value(sizes: Sequence[tuple[int, int]] = ((2, 2), (3, 2), (3, 3))) -> dict:
    """Claim 2: over one-hot views, L = 2 - (2 rho^2 / d) sum_j cos(c_j, c^t_j), hence min 2 - 2 rho^2.

    rho^2 = (1 - q)^2 is exactly P(both views non-zero). Tied: cos(c_j, c_j) = 1 for
    c_j != 0, so every W with all thresholded columns non-zero has L = 2 - 2 rho^2.
    Untied: the minimum needs n(c_j) = n(c^t_j) for every j (positive proportionality).
    """
    both_nonzero = sum(weight for weight, v1, v2 in one_hot_view_law(3) if v1 is not None and v2 is not None)
    assert sp.simplify(both_nonzero - rho**2) == 0
    for d, m in sizes:
        loss, online, target = ncl_cosine_one_hot_loss(d, m, tied=False)
        expected = 2 - 2 * rho**2 / d * sum(cosine(online[j], target[j]) for j in range(d))
        assert _is_zero(loss - expected), (d, m)
        tied_loss, online, _ = ncl_cosine_one_hot_loss(d, m, tied=True)
        nonzero = {entry: sp.Symbol(entry.name, positive=True) for column in online for entry in column}
        assert _is_zero(tied_loss.subs(nonzero) - (2 - 2 * rho**2)), (d, m)
    return {
        "loss": "L = 2 - (2 rho^2/d) sum_j cos(c_j, c^t_j),  rho^2 = (1-q)^2 = P(both views non-zero)",
        "global minimum": "2 - 2(1-q)^2, iff every c_j, c^t_j is non-zero and n(c_j) = n(c^t_j)",
        "sizes (d, m)": tuple(sizes),
    }


def _pattern_column(values: Sequence[sp.Symbol], pattern: Sequence[int]) -> list:
    """Soft-thresholded column on one activation region: +1 (entry > beta), -1 (< -beta), 0 (dead)."""
    return [value - beta if s > 0 else value + beta if s < 0 else sp.Integer(0) for value, s in zip(values, pattern)]


def prove_claim2_flat_regions(m: int = 2) -> dict:
    """Claim 2, flatness: on which activation regions is an atom's cosine term constant?

    The loss separates over atoms, L = 2 - (2 rho^2/d) sum_j kappa_j with kappa_j a function
    of column j of W and W_t only. For every pair of activation patterns of one column
    (3^m x 3^m regions of R^m x R^m, each entry above beta, below -beta or dead), kappa_j
    is constant on the region iff one of the two thresholded columns is zero or both have
    exactly one active entry; the constant is 1 iff that entry is the same neuron with the
    same sign in both branches (else 0 or -1). Tied (W_t = W): kappa_j = 1 on every region
    with an active entry, so the tied loss is the step function 2 - (2 rho^2/d) times the
    number of non-zero thresholded columns. Hence L = 2 - 2 rho^2 on an open set in both cases: the global
    minima form a full-dimensional set, and the gradient and Hessian vanish on it.
    """
    w = sp.symbols(f"w0:{m}", real=True)
    v = sp.symbols(f"v0:{m}", real=True)
    patterns = list(itertools.product((1, -1, 0), repeat=m))
    constant_one = 0
    for pw, pv in itertools.product(patterns, repeat=2):
        cw, cv = _pattern_column(w, pw), _pattern_column(v, pv)
        kappa = cosine(cw, cv)
        active_w = [i for i, s in enumerate(pw) if s]
        active_v = [i for i, s in enumerate(pv) if s]
        # on the region, every active entry exceeds beta in modulus: substitute w = s (beta + a), a > 0
        shift = {}
        for values, pattern, name in ((w, pw, "a"), (v, pv, "b")):
            for i, (value, s) in enumerate(zip(values, pattern)):
                if s:
                    shift[value] = s * (beta + sp.Symbol(f"{name}{i}", positive=True))
        kappa_region = sp.simplify(kappa.subs(shift)) if kappa != 0 else kappa
        free = kappa_region.free_symbols - {beta}
        constant = not any(sp.simplify(sp.diff(kappa_region, s)) != 0 for s in free)
        predicted_constant = not active_w or not active_v or (len(active_w) == 1 and len(active_v) == 1)
        assert constant == predicted_constant, (pw, pv, kappa_region)
        if constant and active_w and active_v:
            same = active_w == active_v and pw[active_w[0]] == pv[active_v[0]]
            assert sp.simplify(kappa_region - (1 if same else 0 if active_w != active_v else -1)) == 0
            constant_one += same
        if pw == pv and active_w:  # tied: the same column in both branches
            assert sp.simplify(cosine(cw, cw).subs(shift)) == 1
    return {
        "tied loss": "L = 2 - (2 rho^2/d) #{j : c_j != 0}: a step function, flat off the kinks",
        "m": m,
        "regions per column": len(patterns) ** 2,
        "regions with kappa_j = 1 constant (untied)": constant_one,
        "tied": "kappa_j = 1 on every region where column j has an active entry",
    }


#: The default alignment threshold tau_good = 0.95, exactly.
TAU_GOOD = sp.Rational(95, 100)


def sphere_coordinate_tail(d: int, tau) -> sp.Expr:
    """P(|u_1| >= tau) for u uniform on the unit sphere of R^d (density of u_1 prop. to (1 - x^2)^((d-3)/2))."""
    x = sp.Symbol("x", real=True)
    density = (1 - x**2) ** sp.Rational(d - 3, 2)
    normaliser = sp.integrate(density, (x, -1, 1))
    return sp.simplify(2 * sp.integrate(density, (x, tau, 1)) / normaliser)


def prove_good_fraction(d: int = 3, tau_good: sp.Rational = TAU_GOOD) -> dict:
    """How large the good part of the tied claim-2 global-minimum set is, for uniform unit rows (m = d).

    With tau_good > 1/sqrt(2) a row can be aligned with at most one atom, so "good" is the
    disjoint union over bijections pi of {|W_{pi(j) j}| >= tau_good for all j}:
    P(good) = d! P(|u_1| >= tau_good)^d for independent uniform rows. Good points are global
    minima (tau_good > beta), so P(good | global minimum) = P(good) / P(global minimum).
    For d = 3, P(|u_1| >= tau) = 1 - tau (Archimedes) and P(good) = 6 (1 - tau)^3.
    """
    tail = sphere_coordinate_tail(d, tau_good)
    probability = sp.factorial(d) * tail**d
    if d == 3:
        tau_symbol = sp.Symbol("tau", positive=True)
        assert sp.simplify(sphere_coordinate_tail(3, tau_symbol) - (1 - tau_symbol)) == 0
    return {
        "d": d,
        "tau_good": tau_good,
        "P(|u_1| >= tau_good)": tail,
        "P(good)": probability,
        "P(good) (float)": float(probability),
    }


def good_probability(d: int, tau_good: float) -> float:
    """d! P(|u_1| >= tau_good)^d for u uniform on S^(d-1) (needs tau_good > 1/sqrt(2)).

    See :func:`prove_good_fraction`."""
    if tau_good <= 1 / math.sqrt(2):
        raise ValueError("the formula needs tau_good > 1/sqrt(2) (a row aligned with at most one atom)")
    return float(sp.factorial(d) * sphere_coordinate_tail(d, sp.nsimplify(tau_good)) ** d)


def dead_column_probability(d: int, m: int, beta_value: float) -> float:
    """P(a given column of W has no entry above beta in modulus) for m independent uniform unit rows in R^d."""
    return float((1 - sphere_coordinate_tail(d, sp.nsimplify(beta_value))) ** m)


# ----------------------------------------------------------------------------- claim 3


def prove_soft_threshold_inequality() -> dict:
    """(t - beta)_+ <= t (1 - beta) on [0, 1] for 0 < beta < 1, with equality iff t = 0 or t = 1.

    On [0, beta] the left side is 0 and the right side t (1 - beta) >= 0 (zero iff t = 0);
    on [beta, 1] the difference is t (1 - beta) - (t - beta) = beta (1 - t) >= 0 (zero iff
    t = 1). Squaring and summing over the entries of a unit row,
    ||sigma(w)||^2 = sum_j (|w_j| - beta)_+^2 <= (1 - beta)^2 sum_j w_j^2 = (1 - beta)^2,
    with equality iff every |w_j| is 0 or 1, i.e. w = +-e_k.
    """
    assert sp.factor(t * (1 - beta) - (t - beta)) in (beta * (1 - t), -beta * (t - 1))
    s = sp.Symbol("s", real=True)
    for value in (sp.Rational(1, 10), sp.Rational(1, 2), sp.Rational(9, 10)):
        low = sp.solveset(sp.Eq(s * (1 - value), 0), s, sp.Interval(0, value))
        high = sp.solveset(sp.Eq(s * (1 - value) - (s - value), 0), s, sp.Interval(value, 1))
        assert low == sp.FiniteSet(0) and high == sp.FiniteSet(1), value
        # the inequality on the whole interval, as a statement about a polynomial's sign
        assert sp.solveset(s * (1 - value) < 0, s, sp.Interval(0, value)) == sp.EmptySet
        assert sp.solveset(value * (1 - s) < 0, s, sp.Interval(value, 1)) == sp.EmptySet
    return {
        "inequality": "(t - beta)_+ <= t (1 - beta) on [0, 1], equality iff t in {0, 1}",
        "row bound": "||sigma(w)||^2 <= (1 - beta)^2 for a unit row, equality iff w = +-e_k",
    }


def spectral_one_hot_loss(d: int, m: int) -> tuple[sp.Expr, list]:
    """The spectral loss -2 E[f(x1).f(x2)] + E[(f(x1).f(x'))^2] over the exact one-hot view law.

    The encoder is odd with f(s e_j) = s c_j (explicit symbolic columns c_j in R^m); x1, x2
    are two views of one input, x' a view of an independent input.
    """
    columns = [[sp.Symbol(f"c_{i}{j}", real=True) for i in range(m)] for j in range(d)]
    dot = lambda u, v: sum(a * b for a, b in zip(u, v))  # noqa: E731
    alignment = sum(
        weight * dot(_represent(columns, v1, m), _represent(columns, v2, m)) for weight, v1, v2 in one_hot_view_law(d)
    )
    singles = one_hot_single_view_law(d)
    repulsion = sum(
        wa * wn * dot(_represent(columns, va, m), _represent(columns, vn, m)) ** 2
        for (wa, va), (wn, vn) in itertools.product(singles, singles)
    )
    return sp.expand(-2 * alignment + repulsion), columns


def prove_spectral_gram_form(sizes: Sequence[tuple[int, int]] = ((2, 2), (3, 3), (2, 3))) -> dict:
    """Claim 3: over one-hot views, L = rho^2 (-(2/d) tr G + ||G||_F^2 / d^2), G_jk = c_j . c_k.

    The factor rho^2 = (1 - q)^2 is right for both terms: the alignment term needs both views
    of one input to keep the atom's coordinate (rho^2), the repulsion term needs the anchor
    and the independent negative to be non-zero (rho . rho).
    """
    for d, m in sizes:
        loss, columns = spectral_one_hot_loss(d, m)
        C = sp.Matrix([[column[i] for column in columns] for i in range(m)])
        G = C.T * C
        expected = rho**2 * (-sp.Rational(2, d) * G.trace() + sum(entry**2 for entry in G) / d**2)
        assert _is_zero(sp.expand(loss - expected)), (d, m)
    return {"loss": "L = (1-q)^2 (-(2/d) tr G + ||G||_F^2 / d^2)", "sizes (d, m)": tuple(sizes)}


def prove_claim3_bound() -> dict:
    """Claim 3: L >= (1-q)^2 (-2 (1-beta)^2 + (1-beta)^4/d) for m = d, equality iff W is a signed permutation.

    * ||G||_F^2 >= (tr G)^2 / d (checked: d sum l^2 - (sum l)^2 = sum_{i<j} (l_i - l_j)^2 for
      the eigenvalues, d = 2..5), with equality iff G is a multiple of I;
    * so L / rho^2 >= phi(T) = -2T/d + T^2/d^3 with T = tr G = sum_i ||sigma(w_i)||^2 <= m (1-beta)^2;
    * phi is decreasing on [0, d^2] and m (1-beta)^2 < d^2 (m = d, 0 < beta < 1), so
      L / rho^2 >= phi(d (1-beta)^2) = -2 (1-beta)^2 + (1-beta)^4 / d;
    * equality forces T = d (1-beta)^2 (every row a signed atom) and G = (1-beta)^2 I (each
      atom hit by exactly one row): W is a signed permutation matrix.
    """
    for size in range(2, 6):
        lam = sp.symbols(f"l0:{size}", real=True)
        lhs = size * sum(x**2 for x in lam) - sum(lam) ** 2
        rhs = sum((lam[i] - lam[j]) ** 2 for i in range(size) for j in range(i + 1, size))
        assert sp.expand(lhs - rhs) == 0
    d = sp.Symbol("d", positive=True)
    T = sp.Symbol("T", nonnegative=True)
    phi = -2 * T / d + T**2 / d**3
    derivative = sp.diff(phi, T)
    assert sp.simplify(derivative - 2 * (T - d**2) / d**3) == 0  # negative for T < d^2
    value = sp.simplify(phi.subs(T, d * (1 - beta) ** 2))
    assert sp.simplify(value - (-2 * (1 - beta) ** 2 + (1 - beta) ** 4 / d)) == 0
    # d (1 - beta)^2 < d^2 for 0 < beta < 1 and d >= 1
    assert sp.simplify(d**2 - d * (1 - beta) ** 2 - d * (d - 1) - d * beta * (2 - beta)) == 0
    return {
        "global minimum": "(1-q)^2 (-2 (1-beta)^2 + (1-beta)^4 / d)",
        "attained iff": "W is a signed permutation matrix (rows +-e_pi(i))",
    }


def signed_atom_loss(occupation: Sequence[int], beta_value, q_value, d: int | None = None):
    """Loss of a W whose rows are signed atoms, n_j rows on atom j: rho^2 sum_j (-(2/d) n_j a + n_j^2 a^2 / d^2).

    a = (1 - beta)^2. Exact (sympy) for sympy inputs, float otherwise.
    """
    d = len(occupation) if d is None else d
    a = (1 - beta_value) ** 2
    keep = 1 - q_value
    if any(isinstance(value, sp.Basic) for value in (beta_value, q_value)):
        total = sum(-sp.Rational(2, d) * n * a + sp.Rational(n * n, d * d) * a**2 for n in occupation)
        return sp.expand(keep**2 * total)
    return float(keep**2 * sum(-2.0 / d * n * a + n * n * a * a / d**2 for n in occupation))


def claim3_minimum(d: int, beta_value: float, q_value: float) -> float:
    """(1-q)^2 (-2 (1-beta)^2 + (1-beta)^4 / d): the global minimum of claim 3."""
    return (1 - q_value) ** 2 * (-2 * (1 - beta_value) ** 2 + (1 - beta_value) ** 4 / d)


def signed_atom_spectrum(occupation: Sequence[int], beta_value: float, q_value: float) -> list[float]:
    """Riemannian Hessian eigenvalues at a signed-atom configuration: per row on atom j, p - 1 copies of
    (4 rho^2 (1-beta) / d) (1 - n_j (1-beta)^2 / d).
    """
    d = len(occupation)
    keep2 = (1 - q_value) ** 2
    values = []
    for n in occupation:
        value = 4 * keep2 * (1 - beta_value) / d * (1 - n * (1 - beta_value) ** 2 / d)
        values += [value] * (n * (d - 1))
    return sorted(values)


def prove_signed_atom_minima() -> dict:
    """Every W whose rows are signed atoms (n_j rows on atom j, n_j (1-beta)^2 < d) is a strict local minimum.

    Near such a W the off-atom entries stay in the dead zone (-beta, beta), so G stays
    diagonal with g_j = sum_{i -> j} (t_i - beta)^2, t_i = sqrt(1 - ||delta_i||^2) for a
    tangent displacement delta_i of row i, and L = rho^2 sum_j (-(2/d) g_j + g_j^2/d^2).
    dL/dg_j = rho^2 (-2/d + 2 g_j/d^2) < 0 for g_j < d, and g_j = n_j (1-beta)^2 -
    (1-beta) sum_i ||delta_i||^2 + O(||delta||^4). So
    L = L_0 + sum_i lambda_i ||delta_i||^2 + O(||delta||^4) with
    lambda_i = (2 rho^2 (1-beta)/d)(1 - n_j (1-beta)^2 / d) > 0: the Riemannian Hessian is
    2 lambda_i on each row's tangent space (multiplicity p - 1). Values and spectra are
    :func:`signed_atom_loss` and :func:`signed_atom_spectrum`; n = (1, ..., 1) is the good
    global minimum, every other occupation is a bad (duplicated) strict local minimum.
    """
    d = sp.Symbol("d", positive=True)
    g, n = sp.symbols("g n", positive=True)
    s = sp.Symbol("s", nonnegative=True)  # ||delta||^2
    loss_of_g = rho**2 * (-2 * g / d + g**2 / d**2)
    dL = sp.diff(loss_of_g, g)
    assert sp.simplify(dL - 2 * rho**2 * (g - d) / d**2) == 0
    row = (sp.sqrt(1 - s) - beta) ** 2
    slope = sp.simplify(sp.diff(row, s).subs(s, 0))
    assert sp.simplify(slope + (1 - beta)) == 0
    # lambda = -dL/dg * slope at g = n a
    lam = sp.simplify(-dL.subs(g, n * (1 - beta) ** 2) * (-slope))
    assert sp.simplify(lam - 2 * rho**2 * (1 - beta) / d * (1 - n * (1 - beta) ** 2 / d)) == 0
    return {
        "local minima": "rows = signed atoms, any occupation n with n_j (1-beta)^2 < d",
        "Hessian eigenvalue per row on atom j": "(4 rho^2 (1-beta)/d)(1 - n_j (1-beta)^2/d), multiplicity p - 1",
    }


def partitions(total: int, parts: int, largest: int | None = None) -> list[tuple[int, ...]]:
    """Partitions of ``total`` into at most ``parts`` positive parts, largest first (orbits of occupations)."""
    largest = total if largest is None else largest
    if total == 0:
        return [()]
    if parts == 0:
        return []
    result = []
    for first in range(min(total, largest), 0, -1):
        result += [(first,) + rest for rest in partitions(total - first, parts - 1, first)]
    return result


def prove_multiple_cover(k_max: int = 3) -> dict:
    """m = k d neurons: the same bound gives min rho^2 (-2k (1-beta)^2 + k^2 (1-beta)^4 / d) if k (1-beta)^2 <= d.

    phi(m (1-beta)^2) with m = k d; attained iff every atom carries exactly k signed-atom rows.
    """
    d = sp.Symbol("d", positive=True)
    T = sp.Symbol("T", nonnegative=True)
    phi = -2 * T / d + T**2 / d**3
    for k in range(1, k_max + 1):
        value = sp.simplify(phi.subs(T, k * d * (1 - beta) ** 2))
        assert sp.simplify(value - (-2 * k * (1 - beta) ** 2 + k**2 * (1 - beta) ** 4 / d)) == 0
        occupation_value = signed_atom_loss([k] * 3, beta, 1 - rho, d=3)
        assert sp.simplify(occupation_value - rho**2 * value.subs(d, 3)) == 0
    return {"m = k d": "global minimum rho^2 (-2k (1-beta)^2 + k^2 (1-beta)^4/d), each atom k times"}


# ----------------------------------------------------------------------------- further statements


def prove_complementary_one_hot_collapse(d: int = 3) -> dict:
    """With one-hot latents and complementary masks one of the two views is always 0.

    x1 = 2 D z, x2 = 2 (I - D) z and z has one non-zero coordinate, so D keeps it in exactly one
    view. Hence E[f(x1) . f(x2)] = 0 for every encoder with f(0) = 0 (linear, symrelu), and
    the spectral loss is the repulsion alone, >= 0 = L(collapsed): collapse is a global
    minimum of the contrastive spectral loss in this setting.
    """
    columns = [[sp.Symbol(f"c_{i}{j}", real=True) for i in range(2)] for j in range(d)]
    total = 0
    for j in range(d):
        for s in (1, -1):
            for kept in (True, False):  # D_jj = 1: x1 = 2 s e_j, x2 = 0; else x1 = 0, x2 = 2 s e_j
                view1, view2 = ((j, s), None) if kept else (None, (j, s))
                f1 = _represent(columns, view1, 2)
                f2 = _represent(columns, view2, 2)
                total += sp.Rational(1, 4 * d) * sum(a * b for a, b in zip(f1, f2))
    assert total == 0
    return {"alignment term": "E[f(x1).f(x2)] = 0", "consequence": "spectral loss >= 0 = L(W = 0)"}


def prove_ncl_squared_unit_rows_flat() -> dict:
    """ncl_squared, unit rows, diag(Sigma) = s I (e.g. M = I with any exchangeable latent), independent masks.

    C11 = C22 = rho^2 Sigma + rho (1 - rho) s I, C12 = rho^2 Sigma, so on unit rows
    L = 2 m rho (1 - rho) s + rho^2 sum_i (w_i - v_i)^T Sigma (w_i - v_i): every W_t = W is a
    global minimum, a set of dimension m (p - 1); mostly bad.
    """
    sigma = _symmetric("s", 2)
    sigma = sigma.subs(sigma[1, 1], sigma[0, 0])
    w, v = _matrix("w", 2, 1), _matrix("v", 2, 1)
    C11 = rho**2 * sigma + rho * (1 - rho) * sigma[0, 0] * sp.eye(2)
    C12 = rho**2 * sigma
    loss = (w.T * C11 * w - 2 * w.T * C12 * v + v.T * C11 * v)[0]
    unit = {w[1]: sp.sqrt(1 - w[0] ** 2), v[1]: sp.sqrt(1 - v[0] ** 2)}
    expected = 2 * rho * (1 - rho) * sigma[0, 0] + rho**2 * ((w - v).T * sigma * (w - v))[0]
    assert _is_zero(sp.expand((loss - expected).subs(unit)))
    return {
        "loss per neuron": "2 rho (1-rho) s + rho^2 (w - v)^T Sigma (w - v)",
        "global minima": "{W_t = W}: every unit-row W, value 2 m rho (1 - rho) s",
    }


PROOFS = (
    ("claim 1(a): spectral Hessian at W = 0", prove_spectral_hessian_at_zero),
    ("claim 1(a): ncl_squared collapse is a global minimum", prove_ncl_squared_collapse),
    ("claim 1(a): unnormalised predictor field at W = W_t = 0", prove_predictor_field_at_zero),
    ("claim 1(b): dead symrelu region", prove_dead_region),
    ("claim 2: value of ncl_cosine over one-hot views", prove_claim2_value),
    ("claim 2: flat regions of global minima", prove_claim2_flat_regions),
    ("claim 2: size of the good part (d = 3)", prove_good_fraction),
    ("claim 3: soft-threshold inequality", prove_soft_threshold_inequality),
    ("claim 3: Gram form of the spectral loss", prove_spectral_gram_form),
    ("claim 3: global minimum and its minimisers", prove_claim3_bound),
    ("claim 3: signed-atom strict local minima", prove_signed_atom_minima),
    ("further: m = k d neurons", prove_multiple_cover),
    ("further: complementary masks with one-hot latents", prove_complementary_one_hot_collapse),
    ("further: ncl_squared with unit rows and diag(Sigma) = s I", prove_ncl_squared_unit_rows_flat),
)


def verify() -> None:
    """Run every proof of :data:`PROOFS` (each raises if its statement does not hold)."""
    for _, proof in PROOFS:
        proof()


def summary() -> str:
    """Every proof with what it established (printed by ``python -m derivations --verbose``)."""
    lines = []
    for title, proof in PROOFS:
        lines.append(f"[proved] {title}")
        lines += [f"    {key}: {value}" for key, value in proof().items()]
    return "\n".join(lines)
