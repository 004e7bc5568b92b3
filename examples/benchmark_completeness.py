"""Benchmark: is the engine's list of critical points complete? Homotopy continuation and certification.

Run from the repository root after installing the package with the ``certify`` extra and
``bertini2`` (the homotopy-continuation solver, used only by this script)::

    python examples/benchmark_completeness.py [--restarts 400] [--cases ncl1_p3,spectral2_p3]
                                              [--groebner] [--mptype double]

Settings: linear encoders with the closed-form loss and the unit-row constraint, where the
critical points on the sphere product are isolated after quotienting the discrete
symmetries (neuron permutations and sign flips; unit rows break O(m)). With a random
dictionary and fixed_count(2, 1) latents the moments are generic.

* ``ncl_squared``, m = 1: L(w, w_t) = w^T C11 w - 2 w^T C12 w_t + w_t^T C22 w_t on S^{p-1} x S^{p-1}.
* ``spectral``, m = 2: L(W) = -2 tr(W C12 W^T) + tr(W^T W C11 W^T W Cneg) on (S^{p-1})^2.
  (For m >= 3 with m = p the minima lie on continuous families: the stabiliser of the
  row-norm constraint inside O(m) has positive dimension; those settings are not isolated.)

For each setting the critical points are the solutions of the polynomial Lagrange system

    grad L(theta) - sum_s lambda_s E_s theta = 0,     |theta_s|^2 = 1   (one per row),

in the unknowns (theta, lambda). Its coefficients are the float64 view moments, converted
exactly to rationals, so every method solves the same system.

* **homotopy**: a total-degree homotopy solve of that system with Bertini 2 (every isolated
  solution is the end of some path, barring path failures); real solutions (|imag| <= 1e-8,
  Riemannian gradient <= 1e-7 after projection onto the spheres) are grouped into orbits with
  the engine's orbit keys. The default precision model is ``double``: on ``spectral m=2 p=2``
  the ``adaptive`` model gave the same 24 real solutions in about 430 s instead of 1 s.
* **engine**: ``enumerate_critical_points(setting, n_restarts, certify=True)``.
* **exact** (``--groebner``, the p = 2 cases with the rational dictionary ROTATION_2D only): a lex Groebner basis in sympy; when it
  is in shape position the number of real solutions is the number of real roots of its
  univariate polynomial.

The table lists the orbits found by each method, the time taken, the points the engine
certified (critpoints.certify), and the misses on either side. Orbit counts stay small at
the sizes a total-degree homotopy handles here (2^(2p+2) paths for ncl_squared m = 1,
3^(2p) 4 for spectral m = 2): counts in the hundreds need larger p or m, beyond what this
benchmark runs in minutes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy as sp

import critpoints
from critpoints.certify import certify_point
from critpoints.engine import OrbitDatabase
from critpoints.orbits import orbit_key, same_orbit


@dataclass(frozen=True)
class Case:
    """One benchmark setting."""

    name: str
    loss: str
    p: int
    m: int
    dictionary_seed: int | None

    def setting(self) -> critpoints.Setting:
        """The critpoints setting of the case (seed None: the rational rotation ROTATION_2D)."""
        dictionary = ROTATION_2D if self.dictionary_seed is None else ("random", self.dictionary_seed)
        return critpoints.Setting(
            p=self.p, d=self.p, m=self.m, loss=self.loss, dictionary=dictionary,
            latent=("fixed_count", 2, 1), constraint="unit_rows",
        )


#: A rotation with rational entries (Pythagorean triple), so that the moments are rational.
ROTATION_2D = np.array([[3 / 5, -4 / 5], [4 / 5, 3 / 5]])

CASES = {
    "ncl1_p2_rational": Case("ncl_squared m=1 p=2 Q", "ncl_squared", 2, 1, None),
    "spectral2_p2_rational": Case("spectral m=2 p=2 Q", "spectral", 2, 2, None),
    "ncl1_p2": Case("ncl_squared m=1 p=2", "ncl_squared", 2, 1, 2),
    "ncl1_p3": Case("ncl_squared m=1 p=3", "ncl_squared", 3, 1, 2),
    "ncl1_p4": Case("ncl_squared m=1 p=4", "ncl_squared", 4, 1, 2),
    "spectral2_p2": Case("spectral m=2 p=2", "spectral", 2, 2, 1),
    "spectral2_p3": Case("spectral m=2 p=3", "spectral", 3, 2, 1),
    "spectral2_p4": Case("spectral m=2 p=4", "spectral", 4, 2, 1),
}


def _rational(x: float) -> sp.Rational:
    """A float64 moment as an exact rational: the small-denominator rational it rounds
    (within 1e-15 relative; rational data give rational moments), else its exact binary value."""
    small = Fraction(float(x)).limit_denominator(10**6)
    if abs(float(small) - x) <= 1e-15 * max(1.0, abs(x)):
        return sp.Rational(small.numerator, small.denominator)
    return sp.Rational(Fraction(float(x)))


def _rational_matrix(array: np.ndarray) -> sp.Matrix:
    """The moments as exact rationals (see :func:`_rational`)."""
    return sp.Matrix([[_rational(x) for x in row] for row in np.asarray(array)])


def lagrange_system(setting: critpoints.Setting) -> tuple[list[sp.Expr], list[sp.Symbol], int]:
    """The polynomial Lagrange system of the closed-form loss on the unit-row sphere product.

    Returns
    -------
    equations, variables, n_theta
        Variables are theta (the loss object's layout) then one multiplier per row.
    """
    loss = critpoints.population_loss(setting)
    moments = critpoints.view_moments(setting)
    C11, C12, C22 = (_rational_matrix(x) for x in (moments.x1x1, moments.x1x2, moments.x2x2))
    C11 = (C11 + C11.T) / 2
    C22 = (C22 + C22.T) / 2
    m, p = setting.m, setting.p
    theta = sp.symbols(f"t0:{loss.n_params}", real=True)
    W = sp.Matrix(m, p, theta[: m * p])
    if setting.loss.name == "spectral":
        A = W.T * W
        value = -2 * (W * C12 * W.T).trace() + (A * C11 * A * C22).trace()
    else:
        Wt = sp.Matrix(m, p, theta[m * p :])
        value = (W * C11 * W.T).trace() - 2 * (W * C12 * Wt.T).trace() + (Wt * C22 * Wt.T).trace()
    spheres = [np.asarray(s) for s in loss.manifold.spheres]
    multipliers = sp.symbols(f"l0:{len(spheres)}", real=True)
    gradient = [sp.expand(sp.diff(value, t)) for t in theta]
    equations = list(gradient)
    for lam, idx in zip(multipliers, spheres):
        for j in idx:
            equations[j] = equations[j] - lam * theta[j]
        equations.append(sum(theta[j] ** 2 for j in idx) - 1)
    return [sp.expand(e) for e in equations], [*theta, *multipliers], loss.n_params


def orbit_list(loss: critpoints.PopulationLoss, points: list[np.ndarray], tol: float = 1e-6) -> list[np.ndarray]:
    """Representatives of the distinct symmetry orbits among ``points``."""
    database = OrbitDatabase(loss, tol)
    for theta in points:
        database.add(theta)
    return database.points


def matched(loss: critpoints.PopulationLoss, first: list[np.ndarray], second: list[np.ndarray]) -> list[bool]:
    """For each orbit of ``first``: does ``second`` contain it?"""
    keys = [orbit_key(loss.symmetries, theta) for theta in second]
    return [any(same_orbit(orbit_key(loss.symmetries, theta), key, 1e-5) for key in keys) for theta in first]


def homotopy_solve(setting: critpoints.Setting, seed: int, mptype: str = "adaptive") -> dict:
    """Real critical points from a total-degree homotopy (Bertini 2)."""
    import bertini
    from bertini.sympy_bridge import system_from_sympy

    equations, variables, n_theta = lagrange_system(setting)
    loss = critpoints.population_loss(setting)
    degree = int(np.prod([sp.Poly(e, *variables).total_degree() for e in equations]))
    system = system_from_sympy(equations, variables)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as records:
        result = bertini.solve(system, seed=seed, directory=records, mptype=mptype, show_progress=False)
        solutions = [np.asarray(s, dtype=complex) for s in result]
    seconds = time.perf_counter() - began
    real = []
    for z in solutions:
        if np.abs(z.imag).max() <= 1e-8 * max(1.0, np.abs(z.real).max()):
            theta = loss.manifold.project(z.real[:n_theta])
            if np.linalg.norm(loss.gradient(theta)) <= 1e-7:
                real.append(theta)
    return {
        "paths": degree, "finite": len(solutions), "real": len(real), "seconds": seconds,
        "orbits": orbit_list(loss, real),
    }


def groebner_real_count(setting: critpoints.Setting, seed: int = 0) -> tuple[int | None, str]:
    """Exact number of distinct real solutions of the Lagrange system (Groebner basis, sympy).

    A grevlex Groebner basis G gives the quotient ring Q[v]/I (finite-dimensional when the
    system is zero-dimensional) with the standard monomials as a basis. The matrix of
    multiplication by a linear form u = sum_i c_i v_i (small random integers c_i) has as
    eigenvalues the values u(v*) at the solutions (Stickelberger); for generic c these are
    distinct, real exactly at the real solutions. The count is the number of distinct real
    roots of its characteristic polynomial (sympy.real_roots, exact). Returns None when the
    system is not zero-dimensional.
    """
    equations, variables, _ = lagrange_system(setting)
    basis = sp.groebner(equations, *variables, order="grevlex")
    if not basis.is_zero_dimensional:
        return None, "not zero-dimensional"
    leads = [sp.Poly(g, *variables).monoms(order="grevlex")[0] for g in basis.exprs]
    divisible = lambda mono: any(all(a >= b for a, b in zip(mono, lead)) for lead in leads)  # noqa: E731
    standard, frontier = [], [tuple([0] * len(variables))]
    seen = set(frontier)
    while frontier:
        mono = frontier.pop()
        if divisible(mono):
            continue
        standard.append(mono)
        for i in range(len(variables)):
            step = tuple(a + (j == i) for j, a in enumerate(mono))
            if step not in seen:
                seen.add(step)
                frontier.append(step)
    position = {mono: k for k, mono in enumerate(standard)}
    rng = np.random.default_rng(seed)
    coefficients = [int(c) or 1 for c in rng.integers(-5, 6, size=len(variables))]
    form = sum(c * v for c, v in zip(coefficients, variables))
    matrix = sp.zeros(len(standard), len(standard))
    for k, mono in enumerate(standard):
        product = sp.expand(form * sp.Mul(*[v**a for v, a in zip(variables, mono)]))
        _, remainder = basis.reduce(product)
        for term, coefficient in sp.Poly(remainder, *variables).terms():
            matrix[position[term], k] = coefficient
    lam = sp.Symbol("lam")
    characteristic = sp.Poly(matrix.charpoly(lam).as_expr(), lam)
    squarefree = sp.Poly(sp.quo(characteristic, sp.gcd(characteristic, characteristic.diff(lam))), lam)
    distinct = squarefree.degree()
    return len(sp.real_roots(squarefree)), (
        f"quotient ring of dimension {len(standard)}, {distinct} distinct complex solutions"
    )


def run_case(case: Case, restarts: int, seed: int, groebner: bool, mptype: str = "adaptive") -> dict:
    """Engine (with certification), homotopy and optional exact count for one case."""
    setting = case.setting()
    loss = critpoints.population_loss(setting)
    began = time.perf_counter()
    result = critpoints.enumerate_critical_points(setting, n_restarts=restarts, seed=seed, progress=False)
    engine_seconds = time.perf_counter() - began
    engine_points = [loss.pack(**point.params) for point in result]
    began = time.perf_counter()
    certificates = [certify_point(loss, theta) for theta in engine_points]
    certify_seconds = time.perf_counter() - began
    row = {
        "case": case.name, "engine_orbits": len(engine_points), "engine_seconds": engine_seconds,
        "certified": sum(c.certified for c in certificates), "certify_seconds": certify_seconds,
        "index_agree": sum(
            c.certified and c.index == point.index for c, point in zip(certificates, result)
        ),
        "degenerate": sum(point.kind == "degenerate" for point in result),
    }
    try:
        homotopy = homotopy_solve(setting, seed, mptype)
    except Exception as error:  # report exactly what failed, keep the other columns
        row["homotopy_error"] = f"{type(error).__name__}: {error}"
    else:
        row.update(
            paths=homotopy["paths"], finite=homotopy["finite"], real=homotopy["real"],
            homotopy_orbits=len(homotopy["orbits"]), homotopy_seconds=homotopy["seconds"],
            engine_missed=sum(not hit for hit in matched(loss, homotopy["orbits"], engine_points)),
            homotopy_missed=sum(not hit for hit in matched(loss, engine_points, homotopy["orbits"])),
        )
    if groebner:
        began = time.perf_counter()
        count, note = groebner_real_count(setting)
        row.update(exact_real=count, exact_note=note, exact_seconds=time.perf_counter() - began)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", default="ncl1_p2_rational,spectral2_p2_rational,ncl1_p3,ncl1_p4,spectral2_p3")
    parser.add_argument("--groebner", action="store_true", help="exact Groebner count (rational p = 2 cases only)")
    parser.add_argument("--mptype", default="double", choices=("adaptive", "double", "multiple"),
                        help="Bertini's precision model")
    args = parser.parse_args()
    header = (
        f"{'case':22} {'paths':>6} {'real':>5} {'hom.orb':>7} {'hom.s':>7} {'eng.orb':>7} {'eng.s':>6} "
        f"{'cert':>4} {'cert.s':>6} {'idx=':>4} {'degen':>5} {'eng.miss':>8} {'hom.miss':>8} {'exact':>5}"
    )
    print(header)
    print("-" * len(header))
    for name in args.cases.split(","):
        case = CASES[name]
        exact = args.groebner and case.p <= 2 and case.dictionary_seed is None
        row = run_case(case, args.restarts, args.seed, exact, args.mptype)
        exact = row.get("exact_real")
        exact_text = "-" if exact is None else str(exact)
        if "homotopy_error" in row:
            print(f"{row['case']:22} homotopy failed: {row['homotopy_error']}")
            continue
        print(
            f"{row['case']:22} {row['paths']:>6} {row['real']:>5} {row['homotopy_orbits']:>7} "
            f"{row['homotopy_seconds']:>7.1f} {row['engine_orbits']:>7} {row['engine_seconds']:>6.1f} "
            f"{row['certified']:>4} {row['certify_seconds']:>6.1f} {row['index_agree']:>4} {row['degenerate']:>5} "
            f"{row['engine_missed']:>8} {row['homotopy_missed']:>8} {exact_text:>5}"
        )
        if "exact_note" in row:
            print(f"{'':22} exact: {exact_text} real solutions ({row['exact_note']}, {row['exact_seconds']:.1f} s)")
    print(
        "paths: total-degree homotopy paths; real: real solutions (theta, lambda); hom.orb / eng.orb: orbits "
        "found by the homotopy / the engine; cert: engine points certified; idx=: certified index equal to the "
        "float index; eng.miss: homotopy orbits the engine missed; hom.miss: engine orbits the homotopy missed; "
        "exact: real solutions of the Lagrange system from a Groebner basis (counts points, not orbits)."
    )


if __name__ == "__main__":
    main()
