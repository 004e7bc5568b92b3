"""Derivation of the second moments of the latent codes and of the masked views.

``python -m derivations`` verifies every identity (:func:`verify`); ``--verbose`` prints
them. The package's closed forms (critpoints/model/latent.py, critpoints/model/augmentation.py,
critpoints/data/moments.py) are tested against the expressions derived here
(tests/test_moments.py imports this module).

Masks. Entry (i, j) of E[D A D'] involves only the diagonal entries i and j of D and D',
so deriving the identities on 2 x 2 symbolic matrices, where both the case i = j and the
case i != j occur, proves them for every size. The expectation is taken by summing over
all mask patterns with their probabilities.

Latents. The moments are derived in closed form in the symbols d, k, k_neg, prob by
counting, then checked against explicit enumeration of the support at small sizes.
"""

from __future__ import annotations

import itertools

import sympy as sp

rho = sp.Symbol("rho", positive=True)  # keep probability of an independent mask, 1 - q
d, k, k_neg = sp.symbols("d k k_neg", positive=True, integer=True)
prob = sp.Symbol("prob", positive=True)


def _pattern_expectation(entries, weight_of) -> sp.Matrix:
    """Sum over mask patterns of weight * matrix, for a function of the 0/1 pattern."""
    total = sp.zeros(2, 2)
    for pattern in itertools.product((0, 1), repeat=2):
        total += weight_of(pattern) * entries(pattern)
    return total.applyfunc(sp.expand)


def mask_identities() -> dict[str, tuple[sp.Matrix, sp.Matrix]]:
    """Each mask identity as (expectation by summation over patterns, closed form), on 2 x 2 A.

    Keys: "independent same" E[D A D], "independent cross" E[D1 A D2],
    "complementary same" E[(2D) A (2D)], "complementary cross" E[(2D) A (2(I-D))].
    """
    a = sp.Matrix(2, 2, sp.symbols("a00 a01 a10 a11"))
    diag_a = sp.diag(a[0, 0], a[1, 1])

    def independent_weight(pattern):
        return sp.Mul(*[rho if kept else 1 - rho for kept in pattern])

    def half(pattern):
        return sp.Rational(1, 4)

    same = _pattern_expectation(lambda s: sp.diag(*s) * a * sp.diag(*s), independent_weight)
    cross = sp.zeros(2, 2)
    for first in itertools.product((0, 1), repeat=2):
        for second in itertools.product((0, 1), repeat=2):
            weight = independent_weight(first) * independent_weight(second)
            cross += weight * sp.diag(*first) * a * sp.diag(*second)
    cross = cross.applyfunc(sp.factor)
    comp_same = _pattern_expectation(lambda s: 4 * sp.diag(*s) * a * sp.diag(*s), half)
    comp_cross = _pattern_expectation(lambda s: 4 * sp.diag(*s) * a * (sp.eye(2) - sp.diag(*s)), half)
    return {
        "independent same": (same, rho**2 * a + rho * (1 - rho) * diag_a),
        "independent cross": (cross, rho**2 * a),
        "complementary same": (comp_same, a + diag_a),
        "complementary cross": (comp_cross, a - diag_a),
    }


def fixed_count_moments() -> tuple[sp.Expr, sp.Expr]:
    """(E[z_i^2], E[z_i z_j], i != j) of fixed_count(k, k_neg) on d coordinates, by counting.

    P(i in support) = k/d; P(i, j in support) = k(k-1)/(d(d-1)); given both are in the
    support, the ordered pair of signs is uniform over ordered pairs of distinct slots among
    k_neg negative and k - k_neg positive ones.
    """
    k_pos = k - k_neg
    same_sign_pairs = k_neg * (k_neg - 1) + k_pos * (k_pos - 1)
    opposite_sign_pairs = 2 * k_neg * k_pos
    sign_product = (same_sign_pairs - opposite_sign_pairs) / (k * (k - 1))
    diagonal = k / d
    off_diagonal = sp.simplify(k * (k - 1) / (d * (d - 1)) * sign_product)  # k(k - 1) cancels
    signed_sum = k - 2 * k_neg
    assert sp.simplify(off_diagonal - (signed_sum**2 - k) / (d * (d - 1))) == 0  # the form of derivations/MODEL.md §1
    return diagonal, off_diagonal


def latent_moment_formulas() -> dict[str, tuple[sp.Expr, sp.Expr]]:
    """(diagonal, off-diagonal) of Lambda = E[z z^T] for each latent family, in closed form."""
    return {
        "one_hot": (1 / d, sp.Integer(0)),
        "fixed_count": fixed_count_moments(),
        "bernoulli": (prob, sp.Integer(0)),
    }


def _enumerated_latent_moment(values_and_weights) -> sp.Matrix:
    values, weights = values_and_weights
    n = len(values[0])
    total = sp.zeros(n, n)
    for value, weight in zip(values, weights):
        z = sp.Matrix(value)
        total += weight * z * z.T
    return total.applyfunc(sp.simplify)


def enumerate_latent(family: str, size: int, **params) -> tuple[list, list]:
    """The support of a latent law on ``size`` coordinates with exact (rational or symbolic) weights."""
    if family == "one_hot":
        values = [tuple(s if i == j else 0 for i in range(size)) for j in range(size) for s in (1, -1)]
        return values, [sp.Rational(1, 2 * size)] * len(values)
    if family == "fixed_count":
        count, negatives = params["k"], params["k_neg"]
        values = []
        for support in itertools.combinations(range(size), count):
            for negative in itertools.combinations(support, negatives):
                values.append(tuple(-1 if i in negative else 1 if i in support else 0 for i in range(size)))
        return values, [sp.Rational(1, len(values))] * len(values)
    if family == "bernoulli":
        values = list(itertools.product((0, 1, -1), repeat=size))
        weights = [sp.Mul(*[prob / 2 if v else 1 - prob for v in value]) for value in values]
        return values, weights
    raise ValueError(f"unknown latent family {family!r}")


def check_latent_formulas(max_size: int = 4) -> None:
    """Compare the closed forms with explicit enumeration for every size up to ``max_size``."""
    formulas = latent_moment_formulas()
    for size in range(2, max_size + 1):
        cases = [("one_hot", {}), ("bernoulli", {})]
        cases += [("fixed_count", {"k": kk, "k_neg": kn}) for kk in range(1, size + 1) for kn in range(kk + 1)]
        for family, params in cases:
            enumerated = _enumerated_latent_moment(enumerate_latent(family, size, **params))
            diagonal, off_diagonal = formulas[family]
            subs = {d: size, k: params.get("k", 0), k_neg: params.get("k_neg", 0)}
            off_value = off_diagonal.subs(subs)
            on_value = diagonal.subs(subs)
            expected = sp.Matrix([[on_value if i == j else off_value for j in range(size)] for i in range(size)])
            difference = (enumerated - expected).applyfunc(sp.simplify)
            assert difference == sp.zeros(size, size), (family, size, params, difference)


def check_mask_identities() -> None:
    """Assert that every mask identity holds symbolically."""
    for name, (summed, closed) in mask_identities().items():
        assert (summed - closed).applyfunc(sp.simplify) == sp.zeros(2, 2), name


def verify() -> None:
    """Every mask identity symbolically, every latent moment against enumeration (d <= 4)."""
    check_mask_identities()
    check_latent_formulas()


def summary() -> str:
    """The identities, as printed by ``python -m derivations --verbose``."""
    lines = [f"{name:>20}: {closed.tolist()}" for name, (_, closed) in mask_identities().items()]
    lines += [
        f"{name:>20}: Lambda_ii = {diagonal}, Lambda_ij = {sp.factor(off_diagonal)}"
        for name, (diagonal, off_diagonal) in latent_moment_formulas().items()
    ]
    return "\n".join(lines)
