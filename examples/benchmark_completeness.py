"""Benchmark: is the engine's list of critical points complete? Homotopy continuation and certification.

Run from the repository root after installing the package with the ``certify`` extra and
``bertini2`` (the homotopy-continuation solver, used only by this script)::

    python examples/benchmark_completeness.py [--cases ncl1_p3,ncl2_p2] [--restarts N]
                                              [--groebner] [--mptype adaptive] [--records DIR]

The default cases take about 25 minutes on one core, mostly the two largest homotopy solves
(ncl_squared m=2 p=3, 1,296 paths in adaptive precision: about 6 minutes; spectral m=2 p=4,
26,244 paths in double precision: about 15 minutes). With ``--records DIR`` Bertini keeps its
path records in DIR/<case>, and a rerun of the same case resumes from them.

Settings: linear encoders with the closed-form loss and the unit-row constraint, where the
critical points on the sphere product are isolated (unit rows break O(m)); the remaining
symmetries are discrete: neuron permutations and sign flips, 2^m m! copies of a generic
point. With a random dictionary and fixed_count(2, 1) latents the moments are generic.

* ``ncl_squared``: L(W, W_t) = tr(W C11 W^T) - 2 tr(W C12 W_t^T) + tr(W_t C22 W_t^T) on unit rows
  of W and W_t. The loss is a sum over rows i of the m = 1 loss of (w_i, wt_i), so the
  Lagrange system is m copies of the m = 1 system in disjoint variables.
* ``spectral``: L(W) = -2 tr(W C12 W^T) + tr(W^T W C11 W^T W Cneg) on (S^{p-1})^m, m = 2.
  (For m >= 3 with m = p the minima lie on continuous families: the stabiliser of the
  row-norm constraint inside O(m) has positive dimension; those settings are not isolated.)

For each setting the critical points are the solutions of the polynomial Lagrange system

    grad L(theta) - sum_s lambda_s E_s theta = 0,     |theta_s|^2 = 1   (one per row),

in the unknowns (theta, lambda). Its coefficients are the float64 view moments as
rationals: the small-denominator rational each one rounds (within 1e-15 relative, so the
rational-dictionary cases get their exact rational moments), else its exact binary value.
The engine solves the float system, which differs from it by that rounding.

Homotopy (Bertini 2)
--------------------
* ``spectral``: a total-degree homotopy, 4 * 3^(2p) paths for m = 2 (one variable group).
* ``ncl_squared``: a multihomogeneous homotopy with the variable groups {w_i, wt_i},
  {lambda_i}, {lambda_t,i} for each row i. The gradient equations of row i are bilinear in
  ({w_i, wt_i}, {lambda_i}) or ({w_i, wt_i}, {lambda_t,i}), the sphere equations quadratic in
  {w_i, wt_i}, so the m-homogeneous Bezout number is (4 p^2)^m instead of the total degree
  2^(m(2p+2)): 1,296 paths instead of 65,536 for m = 2, p = 3.

When the number of distinct finite solutions found equals the Bezout number of the start
system, no isolated solution is missing (that number bounds them, with multiplicity): the
solve is then *complete* and its real count is exact. Real solutions (|imag| <= 1e-8,
Riemannian gradient <= 1e-7 after projection onto the spheres) are the critical points.

Counts: points and orbits
-------------------------
The homotopy lists *points*; the engine lists one representative per *orbit* of the
symmetry group. Each engine orbit is expanded to all its points (every neuron permutation
and sign flip, duplicates merged), so both are compared point by point ("pts") and orbit
by orbit ("orb"). A certificate of a representative (critpoints.certify.certificate) certifies its
whole orbit: the loss is invariant, so the images of a certified box are certified boxes.

* **engine**: ``enumerate_critical_points(setting, n_restarts)``, then ``certify_point``
  on every orbit representative.
* **exact**: the complete-homotopy real count (above), or with ``--groebner`` (the p = 2
  cases with the rational dictionary ROTATION_2D only) the number of real roots of a lex
  Groebner basis in sympy.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy as sp

import critpoints
from critpoints.certify.certificate import certify_point
from critpoints.landscape.orbits import OrbitDatabase, orbit_key, same_orbit


@dataclass(frozen=True)
class Case:
    """One benchmark setting and how it is solved."""

    name: str
    loss: str
    p: int
    m: int
    dictionary_seed: int | None
    restarts: int = 400

    @property
    def mptype(self) -> str:
        """Bertini's precision model: adaptive for the multihomogeneous solves (in double
        precision some of their paths fail), double for total degree (most paths diverge,
        which adaptive precision follows slowly: 270 s instead of 0.5 s on spectral m=2 p=2)."""
        return "adaptive" if self.start == "multihomogeneous" else "double"

    def setting(self) -> critpoints.Setting:
        """The critpoints setting of the case (seed None: the rational rotation ROTATION_2D)."""
        dictionary = ROTATION_2D if self.dictionary_seed is None else ("random", self.dictionary_seed)
        return critpoints.Setting(
            p=self.p,
            d=self.p,
            m=self.m,
            loss=self.loss,
            dictionary=dictionary,
            latent=("fixed_count", 2, 1),
            constraint="unit_rows",
        )

    @property
    def start(self) -> str:
        """The homotopy's start system: row-multihomogeneous for ncl_squared, else total degree."""
        return "multihomogeneous" if self.loss == "ncl_squared" else "total degree"


#: A rotation with rational entries (Pythagorean triple), so that the moments are rational.
ROTATION_2D = np.array([[3 / 5, -4 / 5], [4 / 5, 3 / 5]])

CASES = {
    "ncl1_p2_rational": Case("ncl_squared m=1 p=2 Q", "ncl_squared", 2, 1, None),
    "spectral2_p2_rational": Case("spectral m=2 p=2 Q", "spectral", 2, 2, None),
    "ncl1_p2": Case("ncl_squared m=1 p=2", "ncl_squared", 2, 1, 2),
    "ncl1_p3": Case("ncl_squared m=1 p=3", "ncl_squared", 3, 1, 2),
    "ncl1_p4": Case("ncl_squared m=1 p=4", "ncl_squared", 4, 1, 2),
    "ncl2_p2": Case("ncl_squared m=2 p=2", "ncl_squared", 2, 2, 2, restarts=2000),
    "ncl2_p3": Case("ncl_squared m=2 p=3", "ncl_squared", 3, 2, 2, restarts=20000),
    "spectral2_p2": Case("spectral m=2 p=2", "spectral", 2, 2, 1),
    "spectral2_p3": Case("spectral m=2 p=3", "spectral", 3, 2, 1, restarts=2000),
    "spectral2_p4": Case("spectral m=2 p=4", "spectral", 4, 2, 1, restarts=4000),
}
DEFAULT_CASES = "ncl1_p2_rational,spectral2_p2_rational,ncl1_p3,ncl1_p4,spectral2_p3,ncl2_p2,ncl2_p3,spectral2_p4"


# ------------------------------------------------------------------ the polynomial system


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
        Variables are theta (the loss object's layout) then one multiplier per sphere, in
        the order of ``loss.manifold.spheres``.
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
    equations = [sp.expand(sp.diff(value, t)) for t in theta]
    for lam, idx in zip(multipliers, spheres):
        for j in idx:
            equations[j] = equations[j] - lam * theta[j]
        equations.append(sum(theta[j] ** 2 for j in idx) - 1)
    return [sp.expand(e) for e in equations], [*theta, *multipliers], loss.n_params


def variable_groups(case: Case, variables: list[sp.Symbol], n_theta: int) -> list[list[sp.Symbol]]:
    """The variable groups of the start system (see the module docstring).

    ``ncl_squared``: for each row i, {w_i, wt_i} and the multiplier of each of its two
    spheres alone; otherwise one group (total degree).
    """
    if case.start == "total degree":
        return [list(variables)]
    loss = critpoints.population_loss(case.setting())
    spheres = [set(np.asarray(s).tolist()) for s in loss.manifold.spheres]
    m, p = case.m, case.p
    groups = []
    for i in range(m):
        row = [k * m * p + i * p + a for k in range(n_theta // (m * p)) for a in range(p)]
        groups.append([variables[j] for j in row])
        groups += [[variables[n_theta + s]] for s, members in enumerate(spheres) if members <= set(row)]
    return groups


def bezout_number(equations: list[sp.Expr], groups: list[list[sp.Symbol]]) -> int:
    """Multihomogeneous Bezout number: the coefficient of prod_g z_g^|g| in
    prod_e (sum_g deg_g(e) z_g), deg_g(e) the degree of equation e in the variables of group g."""
    sizes = [len(group) for group in groups]
    counts = {tuple([0] * len(groups)): 1}
    for equation in equations:
        degrees = [sp.Poly(equation, *group).total_degree() for group in groups]
        step: dict[tuple[int, ...], int] = {}
        for exponents, count in counts.items():
            for g, degree in enumerate(degrees):
                if degree and exponents[g] < sizes[g]:
                    key = exponents[:g] + (exponents[g] + 1,) + exponents[g + 1 :]
                    step[key] = step.get(key, 0) + count * degree
        counts = step
    return counts.get(tuple(sizes), 0)


# ------------------------------------------------------------------ points and orbits


def orbit_points(loss: critpoints.PopulationLoss, theta: np.ndarray, tol: float = 1e-8) -> list[np.ndarray]:
    """Every point of the orbit of ``theta``: all neuron permutations (within the permutable
    classes) and sign flips, equal points merged."""
    group = loss.symmetries
    if group.rotations or group.scalings or group.input_permutations:
        raise ValueError("orbit_points enumerates the discrete neuron symmetries only")
    permutations = []
    for choice in itertools.product(*(itertools.permutations(members) for members in group.permutable)):
        permutation = np.arange(group.m)
        for members, image in zip(group.permutable, choice):
            permutation[list(members)] = image
        permutations.append(permutation)
    points: list[np.ndarray] = []
    for permutation in permutations:
        for signs in itertools.product((1.0, -1.0), repeat=group.m):
            image = group.flip(group.permute(theta, permutation), signs)
            if not any(np.abs(image - known).max() <= tol for known in points):
                points.append(image)
    return points


def covered(points: list[np.ndarray], others: list[np.ndarray], tol: float = 1e-6) -> np.ndarray:
    """For each of ``points``: is it within ``tol`` (max norm) of one of ``others``?"""
    if not points:
        return np.zeros(0, dtype=bool)
    if not others:
        return np.zeros(len(points), dtype=bool)
    distance = np.abs(np.array(points)[:, None, :] - np.array(others)[None, :, :]).max(axis=2)
    return distance.min(axis=1) <= tol


def orbit_list(loss: critpoints.PopulationLoss, points: list[np.ndarray], tol: float = 1e-6) -> list[np.ndarray]:
    """Representatives of the distinct symmetry orbits among ``points``."""
    database = OrbitDatabase(loss.symmetries, tol)
    for theta in points:
        database.add(theta)
    return database.points


def matched(loss: critpoints.PopulationLoss, first: list[np.ndarray], second: list[np.ndarray]) -> list[bool]:
    """For each orbit of ``first``: does ``second`` contain it?"""
    keys = [orbit_key(loss.symmetries, theta) for theta in second]
    return [any(same_orbit(orbit_key(loss.symmetries, theta), key, 1e-5) for key in keys) for theta in first]


# ------------------------------------------------------------------ the three methods


def homotopy_solve(case: Case, seed: int, mptype: str, records: str | None) -> dict:
    """Real critical points from a homotopy solve of the Lagrange system (Bertini 2)."""
    import bertini
    from bertini.sympy_bridge import from_sympy

    setting = case.setting()
    equations, variables, n_theta = lagrange_system(setting)
    loss = critpoints.population_loss(setting)
    groups = variable_groups(case, variables, n_theta)
    unknowns = {v.name: bertini.Variable(v.name) for v in variables}
    system = bertini.System()
    for equation in equations:
        system.add_function(from_sympy(equation, unknowns))
    for group in groups:
        system.add_variable_group(bertini.VariableGroup([unknowns[v.name] for v in group]))
    position = [str(v) for v in system.variable_ordering()]
    order = [position.index(v.name) for v in variables]  # system order -> our order
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        result = bertini.solve(system, seed=seed, directory=records or scratch, mptype=mptype, show_progress=False)
        solutions = [np.asarray(s, dtype=complex)[order] for s in result]
    seconds = time.perf_counter() - began
    residual = sp.lambdify(variables, equations, "numpy")
    finite = [z for z in solutions if np.abs(residual(*z)).max() <= 1e-8 * max(1.0, np.abs(z).max() ** 3)]
    distinct: list[np.ndarray] = []
    for z in finite:
        if not covered([z], distinct, 1e-6)[0]:
            distinct.append(z)
    real = []
    for z in distinct:
        if np.abs(z.imag).max() <= 1e-8 * max(1.0, np.abs(z.real).max()):
            theta = loss.manifold.project(z.real[:n_theta])
            if np.linalg.norm(loss.gradient(theta)) <= 1e-7:
                real.append(theta)
    bezout = bezout_number(equations, groups)
    return {
        "paths": bezout,
        "finite": len(distinct),
        "complete": len(distinct) == bezout,
        "points": real,
        "orbits": orbit_list(loss, real),
        "seconds": seconds,
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


def engine_solve(case: Case, restarts: int, seed: int) -> dict:
    """The engine's orbits, their points, and their certificates."""
    setting = case.setting()
    loss = critpoints.population_loss(setting)
    began = time.perf_counter()
    result = critpoints.enumerate_critical_points(setting, n_restarts=restarts, seed=seed, progress=False)
    seconds = time.perf_counter() - began
    orbits = [loss.pack(**point.params) for point in result]
    began = time.perf_counter()
    certificates = [certify_point(loss, theta) for theta in orbits]
    certify_seconds = time.perf_counter() - began
    images = [orbit_points(loss, theta) for theta in orbits]
    return {
        "orbits": orbits,
        "points": [x for image in images for x in image],
        "seconds": seconds,
        "certified_orbits": sum(c.certified for c in certificates),
        "certified_points": sum(len(image) for c, image in zip(certificates, images) if c.certified),
        "index_agree": sum(c.certified and c.index == point.index for c, point in zip(certificates, result)),
        "degenerate": sum(point.kind == "degenerate" for point in result),
        "certify_seconds": certify_seconds,
    }


def run_case(case: Case, restarts: int, seed: int, groebner: bool, mptype: str, records: str | None) -> dict:
    """Engine (with certification), homotopy and the exact count where known, for one case."""
    loss = critpoints.population_loss(case.setting())
    row = {"case": case.name, "start": case.start, "restarts": restarts}
    engine = engine_solve(case, restarts, seed)
    row.update({f"engine_{key}": value for key, value in engine.items()})
    try:
        homotopy = homotopy_solve(case, seed, mptype, records)
    except Exception as error:  # report exactly what failed, keep the other columns
        row["homotopy_error"] = f"{type(error).__name__}: {error}"
    else:
        row.update({f"homotopy_{key}": value for key, value in homotopy.items()})
        row.update(
            engine_missed_points=int(np.sum(~covered(homotopy["points"], engine["points"]))),
            homotopy_missed_points=int(np.sum(~covered(engine["points"], homotopy["points"]))),
            engine_missed_orbits=sum(not hit for hit in matched(loss, homotopy["orbits"], engine["orbits"])),
            homotopy_missed_orbits=sum(not hit for hit in matched(loss, engine["orbits"], homotopy["orbits"])),
        )
        if homotopy["complete"]:
            row["exact"] = len(homotopy["points"])
            row["exact_notes"] = [f"complete homotopy: {row['exact']}"]
    if groebner:
        began = time.perf_counter()
        count, note = groebner_real_count(case.setting())
        row["exact"] = count
        row.setdefault("exact_notes", []).append(f"Groebner: {count} ({note}, {time.perf_counter() - began:.1f} s)")
    return row


# ------------------------------------------------------------------ the table

COLUMNS = (
    ("case", 20, lambda r: r["case"]),
    ("paths", 6, lambda r: r["homotopy_paths"]),
    ("finite", 6, lambda r: r["homotopy_finite"]),
    ("cmpl", 4, lambda r: "yes" if r["homotopy_complete"] else "no"),
    ("hom.pts", 7, lambda r: len(r["homotopy_points"])),
    ("hom.orb", 7, lambda r: len(r["homotopy_orbits"])),
    ("hom.s", 7, lambda r: f"{r['homotopy_seconds']:.1f}"),
    ("restarts", 8, lambda r: r["restarts"]),
    ("eng.pts", 7, lambda r: len(r["engine_points"])),
    ("eng.orb", 7, lambda r: len(r["engine_orbits"])),
    ("eng.s", 6, lambda r: f"{r['engine_seconds']:.1f}"),
    ("cert.orb", 8, lambda r: r["engine_certified_orbits"]),
    ("cert.pts", 8, lambda r: r["engine_certified_points"]),
    ("cert.s", 6, lambda r: f"{r['engine_certify_seconds']:.1f}"),
    ("idx=", 4, lambda r: r["engine_index_agree"]),
    ("eng.miss", 9, lambda r: f"{r['engine_missed_points']}/{r['engine_missed_orbits']}"),
    ("hom.miss", 9, lambda r: f"{r['homotopy_missed_points']}/{r['homotopy_missed_orbits']}"),
    ("exact", 5, lambda r: "-" if r.get("exact") is None else r["exact"]),
)

LEGEND = """\
paths: homotopy paths (the Bezout number of the start system: total degree for spectral,
  row-multihomogeneous for ncl_squared); finite: distinct finite solutions (complex);
  cmpl: finite = paths, so no isolated solution is missing;
hom.pts / hom.orb: real critical points (theta) found by the homotopy / their symmetry orbits;
eng.pts / eng.orb: the engine's orbits expanded to all their points (neuron permutations and
  sign flips) / the orbits it lists; cert.orb / cert.pts: orbits certified by critpoints.certify.certificate
  / the points they contain; idx=: certified Morse index equal to the float index;
eng.miss: homotopy points/orbits the engine missed; hom.miss: engine points/orbits the homotopy
  missed; exact: the exact number of real points where known (complete homotopy or Groebner);
times in seconds (one process for the homotopy; the engine's restarts use the local processes)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=None, help="engine starts (default: per case)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", default=DEFAULT_CASES, help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--groebner", action="store_true", help="exact Groebner count (rational p = 2 cases only)")
    parser.add_argument(
        "--mptype",
        default=None,
        choices=("adaptive", "double", "multiple"),
        help="Bertini's precision model (default: per case)",
    )
    parser.add_argument(
        "--records",
        default=None,
        help="directory for Bertini's path records, one subdirectory per case (a rerun resumes)",
    )
    args = parser.parse_args()
    names = args.cases.split(",")
    unknown = [name for name in names if name not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    header = " ".join(f"{name:>{width}}" if k else f"{name:{width}}" for k, (name, width, _) in enumerate(COLUMNS))
    print(header)
    print("-" * len(header), flush=True)
    for name in names:
        case = CASES[name]
        exact = args.groebner and case.p <= 2 and case.dictionary_seed is None
        restarts, mptype = args.restarts or case.restarts, args.mptype or case.mptype
        records = None if args.records is None else os.path.join(args.records, name)
        row = run_case(case, restarts, args.seed, exact, mptype, records)
        if "homotopy_error" in row:
            print(f"{row['case']:20} homotopy failed: {row['homotopy_error']}", flush=True)
            continue
        cells = [f"{fn(row)!s:>{width}}" if k else f"{fn(row)!s:{width}}" for k, (_, width, fn) in enumerate(COLUMNS)]
        print(" ".join(cells), flush=True)
        if "exact_notes" in row:
            print(f"{'':20} exact: {'; '.join(row['exact_notes'])}", flush=True)
    print(LEGEND)


if __name__ == "__main__":
    main()
