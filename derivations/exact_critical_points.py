"""Every real critical point of small polynomial landscapes, computed exactly with sympy.

The exact completeness check of derivations/CLAIMS.md (section "Exact completeness"):
for the linear ``spectral`` and ``ncl_squared`` losses at p = d = m = 2, closed form, with
and without unit rows, the stationarity equations are polynomial with rational
coefficients. After quotienting the continuous symmetry they have finitely many complex
solutions; this script finds all of them exactly and lists the real ones, one per
symmetry orbit, with their loss and Hessian signature. tests/test_exact_completeness.py
checks that ``enumerate_critical_points`` finds every one of these orbits (and nothing
else). ``python -m derivations`` solves every setting (:func:`verify`); ``--verbose``
prints the orbits.

Settings (rational moments; see CLAIMS.md for why these and not one-hot latents):
x = M z + xi, z = fixed_count(2, 1) (z = +-(1, -1)), sigma^2 = 1/4, independent masks with
q = 1/2, and M = I ("identity") or the rotation M = [[3/5, -4/5], [4/5, 3/5]] ("rotated").

Quotients and unknowns:

* ``spectral``, no constraint: L depends on W only through A = W^T W (O(2) acts on the
  left) and grad L = 4 W (C11 A C11 - C12) (C11 = C22 = Cneg), which vanishes iff
  A (C11 A C11 - C12) = 0 (W X = 0 iff W^T W X = 0). Unknowns: the three entries of the
  symmetric A; real orbits are the positive semidefinite solutions (each is W^T W of a
  real W, unique up to O(2)).
* ``spectral``, unit rows: with w_i = (cos t_i, sin t_i), w_i w_i^T = (I + R(c_i, s_i))/2 for
  the double angle (c_i, s_i) = (cos 2t_i, sin 2t_i), which quotients the sign flips, and L
  is a quadratic polynomial in (c_1, s_1, c_2, s_2). Stationarity on each circle:
  c_i^2 + s_i^2 = 1 and dL/dc_i s_i - dL/ds_i c_i = 0.
* ``ncl_squared``, no constraint: grad L is linear with a constant non-singular Hessian,
  so (W, W_t) = 0 is the only critical point (checked exactly: det H != 0).
* ``ncl_squared``, unit rows: L is a sum over neurons of
  l(w, v) = w^T C11 w - 2 w^T C12 v + v^T C22 v, so the critical points are pairs of
  critical points of l on the torus S^1 x S^1 (unknowns w, v: two circle equations and two
  tangency equations); the joint sign flip (w, v) -> (-w, -v) and the neuron swap are
  quotiented afterwards.

Solving: a grevlex Groebner basis of the equations plus u - (generic integer combination
of the unknowns), converted to lex (FGLM), must be in shape position
{x_k - g_k(u), p(u)} with p square-free; then the complex solutions are in bijection with
the roots of p, the real ones with its real roots (g_k have rational coefficients), which
sympy isolates exactly. Coordinates are g_k(root) evaluated to 40 digits. (sympy's own
``solve_poly_system`` returned 8 of the 16 solutions of the rotated unit-row ncl_squared
system, hence this route.)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp

R = sp.Rational
DIGITS = 40
#: Entries of invariants closer than this are equal (exact solutions evaluated to DIGITS digits).
MATCH_TOLERANCE = 1e-20

ROTATED = sp.Matrix([[R(3, 5), R(-4, 5)], [R(4, 5), R(3, 5)]])
LATENT_MOMENT = sp.Matrix([[1, -1], [-1, 1]])  # fixed_count(2, 1): z = +-(1, -1)
NOISE_VARIANCE = R(1, 4)
DROP = R(1, 2)


@dataclass(frozen=True)
class ExactSetting:
    """One small polynomial landscape: loss, constraint and the data model (rational moments)."""

    loss: str
    constraint: str
    dictionary: str  # "identity" or "rotated"
    drop: sp.Rational = DROP
    noise_variance: sp.Rational = NOISE_VARIANCE

    @property
    def name(self) -> str:
        """A short label, e.g. 'spectral/unit_rows/rotated'."""
        return f"{self.loss}/{self.constraint}/{self.dictionary}"

    @property
    def input_swap(self) -> bool:
        """Whether the engine also quotients the coordinate swap of the inputs (M = I)."""
        return self.dictionary == "identity"

    def dictionary_matrix(self) -> sp.Matrix:
        """M as an exact matrix."""
        return sp.eye(2) if self.dictionary == "identity" else ROTATED

    def moments(self) -> tuple[sp.Matrix, sp.Matrix, sp.Matrix]:
        """(Sigma, C11 = C22 = Cneg, C12) exactly, from derivations/MODEL.md §1-2."""
        M = self.dictionary_matrix()
        keep = 1 - self.drop
        sigma = M * LATENT_MOMENT * M.T + self.noise_variance * sp.eye(2)
        diagonal = sp.diag(sigma[0, 0], sigma[1, 1])
        return sigma, keep**2 * sigma + keep * (1 - keep) * diagonal, keep**2 * sigma

    def package_kwargs(self) -> dict:
        """Keyword arguments of ``critpoints.Setting`` for the same landscape."""
        dictionary = "identity" if self.dictionary == "identity" else np.array(ROTATED.tolist(), dtype=float)
        return dict(
            p=2,
            d=2,
            m=2,
            loss=self.loss,
            constraint=self.constraint,
            dictionary=dictionary,
            latent=("fixed_count", 2, 1),
            noise=float(sp.sqrt(self.noise_variance)),
            augmentation=("independent_mask", float(self.drop)),
            expectation="closed_form",
        )


SETTINGS = tuple(
    ExactSetting(loss, constraint, dictionary)
    for dictionary in ("rotated", "identity")
    for loss in ("spectral", "ncl_squared")
    for constraint in ("none", "unit_rows")
    # identity + ncl_squared + unit rows has a flat set of minima {W_t = W} (CLAIMS.md): not isolated
    if not (dictionary == "identity" and loss == "ncl_squared" and constraint == "unit_rows")
)


@dataclass
class ShapeSolution:
    """All complex solutions of a zero-dimensional system in shape position.

    Attributes
    ----------
    eliminant : sympy.Poly
        Square-free p(u); its degree is the number of complex solutions.
    shape : dict
        unknown -> g(u) with unknown = g(u) on the solution set.
    real : list[tuple]
        The real solutions (coordinates evaluated to ``DIGITS`` digits), in the order of ``unknowns``.
    """

    eliminant: sp.Poly
    shape: dict
    real: list = field(default_factory=list)

    @property
    def n_complex(self) -> int:
        """Number of complex solutions."""
        return self.eliminant.degree()


def solve_exactly(equations, unknowns, weights=(1, 2, 3, 5, 7, 11, 13)) -> ShapeSolution:
    """Every complex solution of ``equations`` (rational coefficients, finitely many solutions), exactly.

    Raises ``ValueError`` if the system is not zero-dimensional or no separating linear form
    among a few tried puts it in shape position.
    """
    u = sp.Symbol("u")
    for shift in range(4):
        form = sum((w + shift * k) * x for k, (w, x) in enumerate(zip(weights, unknowns)))
        basis = sp.groebner(list(equations) + [u - form], *unknowns, u, order="grevlex")
        if not basis.is_zero_dimensional:
            raise ValueError("the system has infinitely many complex solutions")
        lex = basis.fglm("lex")
        *rest, last = lex.exprs
        eliminant = sp.Poly(last, u)
        if sp.degree(sp.gcd(eliminant, eliminant.diff(u))) > 0:  # not radical: add the square-free part
            radical = sp.Poly(sp.sqf_part(eliminant), u)
            lex = sp.groebner(list(equations) + [u - form, radical.as_expr()], *unknowns, u, order="lex")
            *rest, last = lex.exprs
            eliminant = sp.Poly(last, u)
        shape = {}
        for expr in rest:
            poly = sp.Poly(expr, *unknowns, u)
            leading = [x for x in unknowns if poly.degree(x) > 0]
            if len(leading) != 1 or poly.degree(leading[0]) != 1 or poly.coeff_monomial(leading[0]) == 0:
                break
            x = leading[0]
            shape[x] = sp.expand(-(expr - poly.coeff_monomial(x) * x) / poly.coeff_monomial(x))
            if shape[x].has(*unknowns):
                break
        if len(rest) == len(unknowns) and set(shape) == set(unknowns) and eliminant.free_symbols <= {u}:
            solution = ShapeSolution(eliminant=eliminant, shape=shape)
            for root in eliminant.real_roots():
                solution.real.append(tuple(sp.N(shape[x].subs(u, root), DIGITS) for x in unknowns))
            return solution
    raise ValueError("no separating linear form put the system in shape position")


# ----------------------------------------------------------------------------- the four landscapes


@dataclass
class ExactOrbit:
    """One real critical orbit: invariant images for matching, loss, Hessian signature.

    Attributes
    ----------
    images : list[tuple[float, ...]]
        The orbit's invariant (see :func:`invariant`) under every element of the discrete
        group left after the quotient; a point is in the orbit iff its invariant is one of them.
    loss : float
    eigenvalues : list[float]
        The Hessian spectrum after removing symmetry zero modes (Riemannian, in arc length,
        under unit rows).
    representative : dict[str, ndarray]
        Blocks W (and W_t) of one point of the orbit.
    """

    images: list
    loss: float
    eigenvalues: list
    representative: dict

    @property
    def index(self) -> int:
        """Number of negative eigenvalues."""
        return sum(value < 0 for value in self.eigenvalues)

    @property
    def kind(self) -> str:
        """minimum / maximum / saddle (every exact spectrum here is non-degenerate; checked)."""
        if self.index == 0:
            return "minimum"
        return "maximum" if self.index == len(self.eigenvalues) else "saddle"


@dataclass
class ExactLandscape:
    """All real critical orbits of one setting, with the size of the complex solution set."""

    setting: ExactSetting
    n_complex: int
    n_real: int
    orbits: list
    equations: str


def _swap_inputs(matrix: np.ndarray) -> np.ndarray:
    return matrix[:, ::-1]


def invariant(setting: ExactSetting, params: dict) -> tuple:
    """The quotient coordinates of a point (the blocks of ``PopulationLoss.unpack``).

    spectral/none: (A00, A01, A11) of A = W^T W; spectral/unit_rows: double angles
    (c_1, s_1, c_2, s_2); ncl_squared/none: the entries of (W, W_t); ncl_squared/unit_rows:
    per neuron the upper triangle of y y^T, y = (w_i, v_i), the two neurons concatenated.
    """
    W = np.asarray(params["W"], dtype=float)
    if setting.loss == "spectral" and setting.constraint == "none":
        A = W.T @ W
        return (A[0, 0], A[0, 1], A[1, 1])
    if setting.loss == "spectral":
        return tuple(v for a, b in W for v in (a * a - b * b, 2 * a * b))
    Wt = np.asarray(params["W_t"], dtype=float)
    if setting.constraint == "none":
        return tuple(np.concatenate([W.ravel(), Wt.ravel()]))
    rows = []
    for i in range(2):
        y = np.concatenate([W[i], Wt[i]])
        rows += list(np.outer(y, y)[np.triu_indices(4)])
    return tuple(rows)


def _images(setting: ExactSetting, params: dict) -> list[tuple]:
    """Invariants of the images of a point under neuron swaps (and the input swap when M = I)."""
    images = []
    for swap_neurons, swap_inputs in itertools.product(
        (False, True), (False, True) if setting.input_swap else (False,)
    ):
        moved = {}
        for name, block in params.items():
            block = np.asarray(block, dtype=float)
            block = block[::-1] if swap_neurons else block
            moved[name] = _swap_inputs(block) if swap_inputs else block
        images.append(invariant(setting, moved))
    return images


def _mp(value) -> mpmath.mpf:
    return mpmath.mpf(str(sp.N(value, DIGITS)))


def _sym_eigenvalues(matrix: mpmath.matrix) -> list[float]:
    with mpmath.workdps(DIGITS):
        values = mpmath.eigsy(matrix)[0]
    return sorted(float(v) for v in values)


def _spectral_free(setting: ExactSetting) -> ExactLandscape:
    _, C11, C12 = setting.moments()
    a00, a01, a11 = sp.symbols("a00 a01 a11", real=True)
    A = sp.Matrix([[a00, a01], [a01, a11]])
    equations = [sp.expand(e) for e in A * (C11 * A * C11 - C12)]
    solution = solve_exactly(equations, [a00, a01, a11])
    w = sp.Matrix(2, 2, sp.symbols("w0:4", real=True))
    loss = -2 * (w * C12 * w.T).trace() + (w.T * w * C11 * w.T * w * C11).trace()
    theta = list(w)
    hessian = sp.lambdify(theta, sp.hessian(loss, theta), "mpmath")
    value = sp.lambdify(theta, loss, "mpmath")
    orbits = []
    with mpmath.workdps(DIGITS):
        for point in solution.real:
            A_value = mpmath.matrix([[_mp(point[0]), _mp(point[1])], [_mp(point[1]), _mp(point[2])]])
            eigenvalues, vectors = mpmath.eigsy(A_value)
            if min(eigenvalues) < -(mpmath.mpf(10) ** (-30)):
                continue  # real but not of the form W^T W
            root = vectors * mpmath.diag([mpmath.sqrt(max(e, 0)) for e in eigenvalues]) * vectors.T
            coordinates = [root[i, j] for i in range(2) for j in range(2)]
            H = mpmath.matrix(hessian(*coordinates))
            W = np.array([[float(root[i, j]) for j in range(2)] for i in range(2)])
            generator = mpmath.matrix([root[1, 0], root[1, 1], -root[0, 0], -root[0, 1]])  # J W, J skew
            if mpmath.norm(generator) > mpmath.mpf(10) ** (-30):
                basis = _orthonormal_complement(generator)
                H = basis.T * H * basis
            images = _images(setting, {"W": W})
            if any(_close(image, orbit.images[0]) for orbit in orbits for image in images):
                continue  # the image of a known orbit under the input swap
            orbits.append(
                ExactOrbit(
                    images=images,
                    loss=float(value(*coordinates)),
                    eigenvalues=_sym_eigenvalues(H),
                    representative={"W": W},
                )
            )
    return ExactLandscape(
        setting,
        solution.n_complex,
        len(solution.real),
        orbits,
        "A (C11 A C11 - C12) = 0 for symmetric A; real orbits: A positive semidefinite",
    )


def _orthonormal_complement(vector: mpmath.matrix) -> mpmath.matrix:
    """An orthonormal basis (columns) of the complement of one vector, by Gram-Schmidt."""
    n = vector.rows
    basis = [vector / mpmath.norm(vector)]
    for k in range(n):
        candidate = mpmath.matrix([1 if i == k else 0 for i in range(n)])
        for b in basis:
            candidate -= (b.T * candidate)[0] * b
        if mpmath.norm(candidate) > mpmath.mpf("1e-10"):
            basis.append(candidate / mpmath.norm(candidate))
    columns = basis[1:]
    result = mpmath.matrix(n, len(columns))
    for j, column in enumerate(columns):
        for i in range(n):
            result[i, j] = column[i]
    return result


def _circle_hessian(loss: sp.Expr, circles: list[tuple[sp.Symbol, sp.Symbol]], factor: int) -> sp.Matrix:
    """Hessian in the angles of a function of points (c, s) = (cos phi, sin phi) on circles.

    d/dphi = -s d/dc + c d/ds. ``factor`` is d phi / d(arc length) (2 for double angles).
    """

    def derivative(expr, circle):
        c, s = circle
        return -s * sp.diff(expr, c) + c * sp.diff(expr, s)

    size = len(circles)
    return sp.Matrix(size, size, lambda i, j: factor**2 * derivative(derivative(loss, circles[i]), circles[j]))


def _spectral_unit_rows(setting: ExactSetting) -> ExactLandscape:
    _, C11, C12 = setting.moments()
    c1, s1, c2, s2 = sp.symbols("c1 s1 c2 s2", real=True)
    projector = lambda c, s: (sp.eye(2) + sp.Matrix([[c, s], [s, -c]])) / 2  # noqa: E731
    A = projector(c1, s1) + projector(c2, s2)
    loss = sp.expand(-2 * (A * C12).trace() + (A * C11 * A * C11).trace())
    circles = [(c1, s1), (c2, s2)]
    equations = [c1**2 + s1**2 - 1, c2**2 + s2**2 - 1]
    equations += [sp.expand(sp.diff(loss, c) * s - sp.diff(loss, s) * c) for c, s in circles]
    unknowns = [c1, s1, c2, s2]
    solution = solve_exactly(equations, unknowns)
    hessian = _circle_hessian(loss, circles, factor=2)
    orbits = []
    for point in solution.real:
        substitution = dict(zip(unknowns, point))
        H = mpmath.matrix([[_mp(entry.subs(substitution)) for entry in row] for row in hessian.tolist()])
        W = []
        for c, s in circles:
            angle = mpmath.atan2(_mp(substitution[s]), _mp(substitution[c])) / 2
            W.append([float(mpmath.cos(angle)), float(mpmath.sin(angle))])
        W = np.array(W)
        images = _images(setting, {"W": W})
        if any(_close(image, orbit.images[0]) for orbit in orbits for image in images):
            continue
        orbits.append(
            ExactOrbit(
                images=images,
                loss=float(sp.N(loss.subs(substitution), DIGITS)),
                eigenvalues=_sym_eigenvalues(H),
                representative={"W": W},
            )
        )
    return ExactLandscape(
        setting,
        solution.n_complex,
        len(solution.real),
        orbits,
        "double angles: c_i^2 + s_i^2 = 1, dL/dc_i s_i - dL/ds_i c_i = 0",
    )


def _ncl_free(setting: ExactSetting) -> ExactLandscape:
    _, C11, C12 = setting.moments()
    W = sp.Matrix(2, 2, sp.symbols("w0:4", real=True))
    Wt = sp.Matrix(2, 2, sp.symbols("v0:4", real=True))
    loss = (W * C11 * W.T).trace() - 2 * (W * C12 * Wt.T).trace() + (Wt * C11 * Wt.T).trace()
    theta = list(W) + list(Wt)
    hessian = sp.hessian(loss, theta)
    assert hessian.det() != 0  # the gradient (linear, zero at 0) vanishes only at 0
    eigenvalues = sorted(float(v) for v in np.linalg.eigvalsh(np.array(hessian.tolist(), dtype=float)))
    zero = {"W": np.zeros((2, 2)), "W_t": np.zeros((2, 2))}
    orbit = ExactOrbit(images=_images(setting, zero), loss=0.0, eigenvalues=eigenvalues, representative=zero)
    return ExactLandscape(setting, 1, 1, [orbit], "grad L = H theta, det H != 0")


def _ncl_unit_rows(setting: ExactSetting) -> ExactLandscape:
    _, C11, C12 = setting.moments()
    a, b, c, e = sp.symbols("a b c e", real=True)
    w, v = sp.Matrix([a, b]), sp.Matrix([c, e])
    neuron = sp.expand((w.T * C11 * w - 2 * w.T * C12 * v + v.T * C11 * v)[0])
    circles = [(a, b), (c, e)]
    equations = [a**2 + b**2 - 1, c**2 + e**2 - 1]
    equations += [sp.expand(sp.diff(neuron, x) * y - sp.diff(neuron, y) * x) for x, y in circles]
    unknowns = [a, b, c, e]
    solution = solve_exactly(equations, unknowns)
    hessian = _circle_hessian(neuron, circles, factor=1)
    # one representative per joint sign flip (w, v) -> (-w, -v)
    per_neuron = []
    for point in solution.real:
        y = np.array([float(x) for x in point])
        if any(np.allclose(y, -known[0], atol=1e-12) for known in per_neuron):
            continue
        substitution = dict(zip(unknowns, point))
        H = mpmath.matrix([[_mp(entry.subs(substitution)) for entry in row] for row in hessian.tolist()])
        per_neuron.append((y, float(sp.N(neuron.subs(substitution), DIGITS)), _sym_eigenvalues(H)))
    orbits = []
    for first, second in itertools.combinations_with_replacement(range(len(per_neuron)), 2):
        (y1, l1, e1), (y2, l2, e2) = per_neuron[first], per_neuron[second]
        params = {"W": np.array([y1[:2], y2[:2]]), "W_t": np.array([y1[2:], y2[2:]])}
        orbits.append(
            ExactOrbit(
                images=_images(setting, params), loss=l1 + l2, eigenvalues=sorted(e1 + e2), representative=params
            )
        )
    return ExactLandscape(
        setting,
        solution.n_complex**2,
        len(solution.real) ** 2,
        orbits,
        f"per neuron: {len(solution.real)} real of {solution.n_complex} complex "
        f"({len(per_neuron)} up to the joint sign flip); m = 2 neurons: unordered pairs",
    )


def _close(first: tuple, second: tuple, tolerance: float = 1e-9) -> bool:
    return len(first) == len(second) and all(
        abs(x - y) <= tolerance * max(1.0, abs(x), abs(y)) for x, y in zip(first, second)
    )


def critical_orbits(setting: ExactSetting) -> ExactLandscape:
    """Every real critical orbit of ``setting`` (see the module docstring for the quotient used)."""
    solver = {
        ("spectral", "none"): _spectral_free,
        ("spectral", "unit_rows"): _spectral_unit_rows,
        ("ncl_squared", "none"): _ncl_free,
        ("ncl_squared", "unit_rows"): _ncl_unit_rows,
    }[(setting.loss, setting.constraint)]
    landscape = solver(setting)
    for orbit in landscape.orbits:
        scale = max(1.0, max(abs(v) for v in orbit.eigenvalues))
        assert min(abs(v) for v in orbit.eigenvalues) > 1e-12 * scale, "a degenerate exact critical point"
    return landscape


def matches(setting: ExactSetting, orbit: ExactOrbit, params: dict, tolerance: float = 1e-7) -> bool:
    """Whether the point ``params`` lies on ``orbit`` (its invariant equals one of the orbit's images)."""
    key = invariant(setting, params)
    return any(_close(key, image, tolerance) for image in orbit.images)


def one_hot_is_positive_dimensional() -> bool:
    """The suggested one-hot setting (M = I, q = 1/2, sigma = 0) has a continuum of critical orbits.

    Sigma = I/2 is isotropic, so the losses are also invariant under W -> W R (R in O(2)); the
    double-angle spectral system on unit rows is then not zero-dimensional.
    """
    keep = R(1, 2)
    sigma = sp.eye(2) / 2
    C11, C12 = keep**2 * sigma + keep * (1 - keep) * sigma, keep**2 * sigma
    c1, s1, c2, s2 = sp.symbols("c1 s1 c2 s2", real=True)
    projector = lambda c, s: (sp.eye(2) + sp.Matrix([[c, s], [s, -c]])) / 2  # noqa: E731
    A = projector(c1, s1) + projector(c2, s2)
    loss = sp.expand(-2 * (A * C12).trace() + (A * C11 * A * C11).trace())
    equations = [c1**2 + s1**2 - 1, c2**2 + s2**2 - 1]
    equations += [sp.expand(sp.diff(loss, c) * s - sp.diff(loss, s) * c) for c, s in ((c1, s1), (c2, s2))]
    return not sp.groebner(equations, c1, s1, c2, s2, order="grevlex").is_zero_dimensional


def verify() -> None:
    """Solve every setting exactly (each solve checks its shape position and square-free
    univariate polynomial) and confirm that the one-hot setting is positive-dimensional."""
    for setting in SETTINGS:
        landscape = critical_orbits(setting)
        if not landscape.orbits:
            raise AssertionError(f"{setting.name}: no real critical orbit")
    if not one_hot_is_positive_dimensional():
        raise AssertionError("the one-hot setting was expected to have a continuum of critical orbits")


def summary() -> str:
    """Every setting's real critical orbits (printed by ``python -m derivations --verbose``)."""
    lines = []
    for setting in SETTINGS:
        landscape = critical_orbits(setting)
        sigma, C11, C12 = setting.moments()
        lines.append(f"{setting.name}: C11 = {C11.tolist()}, C12 = {C12.tolist()}")
        lines.append(f"    equations: {landscape.equations}")
        lines.append(
            f"    complex solutions {landscape.n_complex}, real {landscape.n_real}, real orbits {len(landscape.orbits)}"
        )
        for orbit in sorted(landscape.orbits, key=lambda o: o.loss):
            lines.append(
                f"      loss {orbit.loss: .12f}  {orbit.kind:8s} index {orbit.index}  "
                f"eigenvalues {[round(v, 6) for v in orbit.eigenvalues]}"
            )
    lines.append(
        f"one-hot, M = I, q = 1/2, sigma = 0 (spectral, unit rows): positive-dimensional = "
        f"{one_hot_is_positive_dimensional()}"
    )
    return "\n".join(lines)
