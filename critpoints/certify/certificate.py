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
Every formula is generated from the sympy derivations (derivations/interval_kernels.py
reads them off and emits :mod:`critpoints.certify._generated.interval_kernels` and
:mod:`critpoints.certify._generated.exact_moments`); this module only composes them.

* ``closed_form`` (linear encoder, ``spectral`` / ``ncl_squared``): the generated arb
  gradient and Hessian (derivations/closed_form_losses.py) at enclosures of the exact view
  moments (:func:`exact_view_moments`: the latent moment, Sigma = M Lambda M^T + sigma^2 I
  and the mask identities of derivations/moments.py in rational arithmetic, the float data
  taken as the dyadic rationals they are).
* ``exact_enumeration`` (``spectral``, ``ncl_squared``, ``ncl_cosine`` tied or not,
  ``infonce``; linear or symrelu, fixed or trainable bias): the loss is a sum over couplings
  of weight * phi(r.r, c.c, r.c) (derivations/pointwise_losses.py; the spectral repulsion
  E[(f(x1).f(x'))^2] as the anchor x negative coupling phi = C^2; the infonce partition
  through log), with exact weights from :func:`exact_view_law`. Per coupling the generated
  kernels give the invariant derivatives and the chain rule to (r, c); on one activation
  piece the encoder is affine in the parameters, r = sigma(t, b) with the generated
  ``symrelu_piece``, so with U the parameter Jacobian of a representation

      grad L = sum U^T g,   Hess L = sum [U_r; U_c]^T [[H_rr, H_rc], [H_cr, H_cc]] [U_r; U_c],

  and for the infonce anchors, with Z_a the partition sum, Hess log Z_a =
  g'(Z_a) Hess Z_a + g''(Z_a) grad Z_a grad Z_a^T (g = log). The activation pattern is
  certified constant over the box (every pre-activation t of a nonzero view satisfies
  t + b != 0 and b - t != 0 throughout; a neuron with fixed b = 0 is the identity), else
  the point is "not certifiable: kink in box". A cosine of a representation that may vanish
  in the box is not certified either.

The dictionary, the biases and the parameters are floats, taken as the exact numbers they
store; the certificate is for the loss of the setting with that data.

Not certified (reported with the reason, never as certified): kinks of symrelu, degenerate
points (a flat direction no symmetry explains: the Krawczyk test or the Gershgorin test
fails), the ``ncl_predictor`` field, and sample averages (empirical, not population).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np

from critpoints import _validation as check
from critpoints.data.view_laws import view_patterns

if TYPE_CHECKING:
    from critpoints.losses.population_loss import PopulationLoss
    from critpoints.model.setting import Setting

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
    """The float ``value`` (exact) as a ball of the given radius."""
    arb = require_flint().arb
    return arb(float(value), float(radius)) if radius > 0 else arb(float(value))


def _rational_ball(value: Fraction) -> Any:
    """A ball containing the rational ``value`` (tight at the working precision)."""
    flint = require_flint()
    return flint.arb(flint.fmpq(value.numerator, value.denominator))


def _arb_matrix(array: np.ndarray) -> Any:
    """An arb_mat with the float entries of ``array``, taken as exact."""
    flint = require_flint()
    array = np.asarray(array, dtype=np.float64)
    rows, cols = array.shape
    return flint.arb_mat([[_ball(x) for x in row] for row in array]) if rows and cols else flint.arb_mat(rows, cols)


def _rational_matrix(entries: Sequence[Sequence[Fraction]]) -> Any:
    """An arb_mat enclosing a matrix of rationals."""
    return require_flint().arb_mat([[_rational_ball(x) for x in row] for row in entries])


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


# ------------------------------------------------------------------------------ exact data


def _exact_product(left: list[list[Fraction]], right: list[list[Fraction]]) -> list[list[Fraction]]:
    """The matrix product of two matrices of rationals."""
    return [[sum((x * y for x, y in zip(row, column)), Fraction(0)) for column in zip(*right)] for row in left]


def _exact_latent_moment(setting: Setting) -> list[list[Fraction]]:
    """Lambda = E[z z^T] from the generated ``latent_moment_<family>_diagonal / _off_diagonal``."""
    from critpoints.certify._generated import exact_moments as formulas

    latent, d = setting.latent, setting.d
    parameters = [getattr(latent, name) for name in formulas.LATENT_PARAMETERS[latent.name]]
    diagonal = getattr(formulas, f"latent_moment_{latent.name}_diagonal")(d, *parameters)
    if d == 1:
        return [[diagonal]]
    off = getattr(formulas, f"latent_moment_{latent.name}_off_diagonal")(d, *parameters)
    return [[diagonal if i == j else off for j in range(d)] for i in range(d)]


def _exact_input_moment(setting: Setting) -> list[list[Fraction]]:
    """Sigma = E[x x^T] = M Lambda M^T + sigma^2 I (x = M z + xi), the floats M, sigma as exact rationals."""
    dictionary = [[Fraction(float(x)) for x in row] for row in setting.dictionary_matrix()]
    transpose = [list(column) for column in zip(*dictionary)]
    sigma = _exact_product(_exact_product(dictionary, _exact_latent_moment(setting)), transpose)
    noise = Fraction(float(setting.noise))
    for a in range(setting.p):
        sigma[a][a] += noise * noise
    return sigma


def exact_view_moments(setting: Setting) -> tuple[list[list[Fraction]], list[list[Fraction]], list[list[Fraction]]]:
    """The view moments (E[x1 x1^T], E[x1 x2^T], E[x2 x2^T]) of a setting, in exact arithmetic.

    Parameters
    ----------
    setting : Setting
        Its dictionary entries, noise level and drop probability are floats, taken as the
        exact dyadic rationals they store.

    Returns
    -------
    (C11, C12, C22) : three p x p lists of lists of Fraction
        Entry (a, b) of a view moment is the mask identity of that position (diagonal or
        not) applied to Sigma_ab, E[D Sigma D']_ab (derivations/moments.py, generated
        ``exact_moments``), with rho = 1 - q the keep probability of an independent mask.
        C22 = C11: both views have the same law.
    """
    from critpoints.certify._generated import exact_moments as formulas

    sigma = _exact_input_moment(setting)
    augmentation = setting.augmentation
    rho = 1 - Fraction(float(getattr(augmentation, "q", 0.0)))  # unused by the complementary mask
    same_diagonal, same_off, cross_diagonal, cross_off = formulas.MASK_IDENTITIES[augmentation.name]

    def masked(on_diagonal: Callable, off_diagonal: Callable) -> list[list[Fraction]]:
        return [
            [on_diagonal(x, rho) if a == c else off_diagonal(x, rho) for c, x in enumerate(row)]
            for a, row in enumerate(sigma)
        ]

    same = masked(same_diagonal, same_off)
    return same, masked(cross_diagonal, cross_off), [row[:] for row in same]


def moment_enclosures(setting: Setting) -> tuple[Any, Any, Any]:
    """Balls (arb_mat) containing the exact view moments (C11, C12, C22) of :func:`exact_view_moments`."""
    return tuple(_rational_matrix(moment) for moment in exact_view_moments(setting))


class ExactViewLaw(NamedTuple):
    """The finite law of the views of an ``exact_enumeration`` setting, with exact probabilities.

    Attributes
    ----------
    views : ndarray, shape (V, p)
        The distinct views (entries 0, +-1 or +-2: exact).
    pairs : list of (int, int, Fraction)
        (index of x1, index of x2, probability) of the joint law of the two views.
    singles : list of (int, Fraction)
        (index, probability) of the law of one view: the anchors, and the negatives.
    """

    views: np.ndarray
    pairs: list
    singles: list


def exact_view_law(setting: Setting) -> ExactViewLaw:
    """The exact joint law of (x1, x2) and the law of one view, with rational probabilities.

    The enumeration of :func:`critpoints.data.view_laws.exact_view_measure`
    (:func:`~critpoints.data.view_laws.view_patterns`: M = I, sigma = 0, for every code z and
    every mask pattern on its support, the views D z) with exact probabilities
    P(z) P(pattern), equal views merged.

    Parameters
    ----------
    setting : Setting
        An ``exact_enumeration`` setting.

    Returns
    -------
    ExactViewLaw
    """
    index: dict[bytes, int] = {}
    views: list[np.ndarray] = []
    pairs: dict[tuple[int, int], Fraction] = defaultdict(Fraction)
    singles: dict[int, Fraction] = defaultdict(Fraction)

    def view(x: np.ndarray) -> int:
        key = x.tobytes()
        if key not in index:
            index[key] = len(views)
            views.append(x)
        return index[key]

    for patterns in view_patterns(setting, exact=True):
        for pair, weight in zip(patterns.pairs, patterns.pair_weights):
            pairs[(view(pair[: setting.p]), view(pair[setting.p :]))] += weight
        for single, weight in zip(patterns.singles, patterns.single_weights):
            singles[view(single)] += weight
    return ExactViewLaw(
        views=np.array(views),
        pairs=[(i, j, w) for (i, j), w in pairs.items() if w],
        singles=[(i, w) for i, w in singles.items() if w],
    )


# ------------------------------------------------------------------------------ interval models of the losses


def _interval_kernels() -> Any:
    """The generated arb kernels (imported after python-flint is known to be present)."""
    require_flint()
    from critpoints.certify._generated import interval_kernels

    return interval_kernels


class _ClosedFormModel:
    """Gradient and Hessian of a closed-form loss (linear encoder) in ball arithmetic.

    The generated ``<family>_gradient`` / ``<family>_hessian`` (read off
    derivations/closed_form_losses.py) at the parameter blocks (W[, W_t]) and at
    :func:`moment_enclosures`, with Cneg = C22 (a negative is distributed as a view).
    """

    def __init__(self, loss: PopulationLoss) -> None:
        kernels = _interval_kernels()
        family = loss.setting.loss.name
        self.layout = loss.layout
        C11, C12, C22 = moment_enclosures(loss.setting)
        self.moments = (C11, C12, C22, C22)
        self._gradient = getattr(kernels, f"{family}_gradient")
        self._hessian = getattr(kernels, f"{family}_hessian")

    def _blocks(self, theta: Sequence[Any]) -> list[Any]:
        flint = require_flint()
        blocks = []
        for name, (rows, cols) in self.layout.shapes.items():
            start = self.layout.slice(name).start
            blocks.append(flint.arb_mat([[theta[start + i * cols + a] for a in range(cols)] for i in range(rows)]))
        return blocks

    def derivatives(self, theta: Sequence[Any]) -> tuple[list[Any], Any]:
        """(gradient as a list of balls, Hessian as an arb_mat) over the balls ``theta``."""
        blocks = self._blocks(theta)
        gradient = self._gradient(*blocks, *self.moments)
        return [gradient[i, 0] for i in range(gradient.nrows())], self._hessian(*blocks, *self.moments)

    def pattern_ok(self, theta: Sequence[Any]) -> bool:
        """A polynomial loss has no activation pattern."""
        return True


class _Coupling(NamedTuple):
    """weight * phi(r.r, c.c, r.c) with r, c the representations of two (view, encoder) keys."""

    row: tuple[int, int]
    col: tuple[int, int]
    weight: Any
    kernel: str


#: Per family: (pointwise kernel of the pairs, coupling weight per unit of pair probability).
_PAIR_TERMS = {"spectral": ("inner_product", -2), "ncl_squared": ("squared_distance", 1), "ncl_cosine": ("cosine", -2)}


class _MeasureModel:
    """Gradient and Hessian of a finite-measure loss on the activation piece of theta0, in arb.

    The loss is a sum of couplings weight * phi (:class:`_Coupling`), plus for ``infonce``
    sum_a wa log Z_a with Z_a a sum of ``exp_cosine`` couplings:

    * pairs (x1, x2, w): ``spectral`` inner_product with weight -2 w, ``ncl_squared``
      squared_distance with w, ``ncl_cosine`` cosine with -2 w, ``infonce`` cosine with
      -w / tau (x1 through the online encoder, x2 through the target one);
    * ``spectral`` repulsion E[(f(x1).f(x'))^2]: squared_inner_product on every anchor x
      negative with weight wa wn; ``infonce``: Z_a = sum_j wn_j exp(cos_aj / tau).

    Each representation is r_i = sigma(w_i.x, b_i) on the piece (up, down) of theta0
    (generated ``symrelu_piece``; a linear neuron, or a symrelu neuron with fixed b = 0,
    is the piece (1, 0) at b = 0, the identity), with parameter Jacobian U
    (U[i, w_ia] = d sigma/dt x_a, U[i, b_i] = d sigma/db). Per coupling the generated kernel
    and ``representation_derivatives`` give (g_r, g_c, H_rr, H_rc, H_cc); they are summed per
    key, then grad = sum U^T g, Hess = sum U^T H_self U + sum (U_r^T H_rc U_c + transpose).
    """

    def __init__(self, loss: PopulationLoss, theta0: np.ndarray) -> None:
        setting = loss.setting
        self.kernels = _interval_kernels()
        self.m, self.p, self.layout = setting.m, setting.p, loss.layout
        self.n = loss.layout.size
        law = exact_view_law(setting)
        self.views = law.views
        spec = setting.loss
        self.encoders = [("W", "b"), ("W_t", "b_t") if spec.two_encoders else ("W", "b")]
        self.trainable = setting.trainable_bias
        fixed = np.zeros(self.m) if self.trainable or setting.encoder == "linear" else np.asarray(setting.bias, float)
        self.fixed_bias = fixed
        self.identity = np.zeros(self.m, bool) if self.trainable else (setting.encoder == "linear") | (fixed == 0.0)
        self.inv_tau = 1 / _ball(cast(float, spec.temperature)) if spec.name == "infonce" else _ball(1.0)
        self.couplings, self.partitions = self._terms(spec, law)
        every = self._all_couplings()
        self.keys = sorted({c.row for c in every} | {c.col for c in every})
        self.pattern = self._pattern(np.asarray(theta0, dtype=np.float64))

    def _all_couplings(self) -> list[_Coupling]:
        return self.couplings + [c for _, group in self.partitions for c in group]

    def _terms(self, spec: Any, law: ExactViewLaw) -> tuple[list[_Coupling], list[tuple[Any, list[_Coupling]]]]:
        """The couplings of the loss, and the infonce partitions (wa, couplings of Z_a)."""
        target = 1 if spec.name in ("ncl_squared", "ncl_cosine") else 0  # x2: the target (or tied) encoder
        if spec.name == "infonce":
            kernel, scale = "cosine", -self.inv_tau
        else:
            kernel, scale = _PAIR_TERMS[spec.name]
        couplings = [_Coupling((i, 0), (j, target), _rational_ball(w) * scale, kernel) for i, j, w in law.pairs]
        partitions = []
        if spec.name == "spectral":
            couplings += [
                _Coupling((a, 0), (j, 0), _rational_ball(wa * wn), "squared_inner_product")
                for a, wa in law.singles
                for j, wn in law.singles
            ]
        elif spec.name == "infonce":
            for a, wa in law.singles:
                group = [_Coupling((a, 0), (j, 0), _rational_ball(wn), "exp_cosine") for j, wn in law.singles]
                partitions.append((_rational_ball(wa), group))
        return couplings, partitions

    def _pre_activation(self, theta: Sequence[Any], view: int, encoder: int, neuron: int) -> Any:
        """t = w_i . x over the balls theta (the exact zeros of x skipped)."""
        start = self.layout.slice(self.encoders[encoder][0]).start + neuron * self.p
        t = _ball(0.0)
        for a, x in enumerate(self.views[view]):
            if x != 0.0:
                t += theta[start + a] * float(x)
        return t

    def _bias(self, theta: Sequence[Any], encoder: int, neuron: int) -> Any:
        if self.trainable:
            return theta[self.layout.slice(self.encoders[encoder][1]).start + neuron]
        return _ball(self.fixed_bias[neuron])

    def _active(self, view: int) -> bool:
        """A zero view has r = 0 and U = 0: sigma_b(0) = 0 for every b and w."""
        return bool(np.any(self.views[view]))

    def _pattern(self, theta0: np.ndarray) -> dict[tuple[int, int, int], tuple[int, int]]:
        """(up, down) = ([t + b > 0], [b - t > 0]) of every neuron on every nonzero view at theta0."""
        point = [_ball(v) for v in theta0]
        pattern = {}
        for view, encoder in self.keys:
            for i in range(self.m):
                if self.identity[i]:
                    pattern[(view, encoder, i)] = (1, 0)
                    continue
                t = float(self._pre_activation(point, view, encoder, i).mid())
                b = float(self._bias(point, encoder, i).mid())
                pattern[(view, encoder, i)] = (int(t + b > 0), int(b - t > 0))
        return pattern

    def pattern_ok(self, theta: Sequence[Any]) -> bool:
        """Every pre-activation of a nonzero view keeps the pattern of theta0 over the balls theta."""
        for view, encoder in self.keys:
            if not self._active(view):
                continue
            for i in range(self.m):
                if self.identity[i]:
                    continue
                t, b = self._pre_activation(theta, view, encoder, i), self._bias(theta, encoder, i)
                up, down = self.pattern[(view, encoder, i)]
                if not ((t + b > 0) if up else (t + b < 0)) or not ((b - t > 0) if down else (b - t < 0)):
                    return False
        return True

    def _encode(self, theta: Sequence[Any], view: int, encoder: int) -> tuple[Any, Any]:
        """The representation r (m x 1) of a view and its parameter Jacobian U (m x n)."""
        flint = require_flint()
        r, U = flint.arb_mat(self.m, 1), flint.arb_mat(self.m, self.n)
        if not self._active(view):
            return r, U
        x = self.views[view]
        for i in range(self.m):
            t, b = self._pre_activation(theta, view, encoder, i), self._bias(theta, encoder, i)
            value, slope, bias_slope = self.kernels.symrelu_piece(t, b, *self.pattern[(view, encoder, i)])
            r[i, 0] = value
            start = self.layout.slice(self.encoders[encoder][0]).start + i * self.p
            for a in np.flatnonzero(x):
                U[i, start + a] = slope * float(x[a])
            if self.trainable:
                U[i, self.layout.slice(self.encoders[encoder][1]).start + i] = bias_slope
        return r, U

    def _coupling_sum(self, couplings: list[_Coupling], reps: dict) -> tuple[Any, Any, Any]:
        """(value, gradient n x 1, Hessian n x n) of sum weight * phi over the couplings."""
        flint = require_flint()
        m, n = self.m, self.n
        value = _ball(0.0)
        grads: defaultdict[Any, Any] = defaultdict(lambda: flint.arb_mat(m, 1))
        selfs: defaultdict[Any, Any] = defaultdict(lambda: flint.arb_mat(m, m))
        crosses: defaultdict[Any, Any] = defaultdict(lambda: flint.arb_mat(m, n))
        zero = _ball(0.0)
        for coupling in couplings:
            (r, _), (c, U_c) = reps[coupling.row], reps[coupling.col]
            invariants = [(u.transpose() * v)[0, 0] for u, v in ((r, r), (c, c), (r, c))]
            d = getattr(self.kernels, coupling.kernel)(*invariants, self.inv_tau, zero)
            g_r, g_c, h_rr, h_rc, h_cc = self.kernels.representation_derivatives(d, r, c)
            w = coupling.weight
            value += w * d[0]
            grads[coupling.row] += g_r * w
            grads[coupling.col] += g_c * w
            selfs[coupling.row] += h_rr * w
            selfs[coupling.col] += h_cc * w
            crosses[coupling.row] += h_rc * w * U_c
        gradient, hessian = flint.arb_mat(n, 1), flint.arb_mat(n, n)
        for key, g in grads.items():
            U = reps[key][1]
            gradient += U.transpose() * g
            hessian += U.transpose() * selfs[key] * U
        for key, T in crosses.items():
            mixed = reps[key][1].transpose() * T
            hessian += mixed + mixed.transpose()
        return value, gradient, hessian

    def derivatives(self, theta: Sequence[Any]) -> tuple[list[Any], Any]:
        """(gradient as a list of balls, Hessian as an arb_mat) over the balls ``theta``.

        Raises ZeroDivisionError when a cosine's representation may vanish in the balls.
        """
        reps = {key: self._encode(theta, *key) for key in self.keys}
        _, gradient, hessian = self._coupling_sum(self.couplings, reps)
        for wa, group in self.partitions:
            partition, grad_z, hess_z = self._coupling_sum(group, reps)
            _, first, second = self.kernels.log_partition(partition)
            gradient += grad_z * (wa * first)
            hessian += hess_z * (wa * first) + grad_z * grad_z.transpose() * (wa * second)
        return [gradient[i, 0] for i in range(self.n)], hessian


def _derivative_model(loss: PopulationLoss, theta0: np.ndarray) -> Any:
    """The arb model of the setting's loss, or a string saying why there is none."""
    if loss.is_field:
        return "ncl_predictor is a stop-gradient field, not a gradient (no interval model)"
    if loss.empirical:
        return "sample_average losses are empirical; only population losses are certified"
    if loss.measure is None:
        return _ClosedFormModel(loss)
    return _MeasureModel(loss, theta0)


def enclose_derivatives(loss: PopulationLoss, theta: np.ndarray) -> tuple[Any, Any]:
    """Balls containing the Euclidean gradient and Hessian of the loss at ``theta``.

    Parameters
    ----------
    loss : PopulationLoss
    theta : ndarray, shape (n,)
        Floats, taken as exact; for symrelu, the piece is the activation pattern at theta
        (every pre-activation strictly off its kinks).

    Returns
    -------
    (gradient, hessian) : arb_mat of shapes (n, 1) and (n, n)
        From the generated interval kernels (see the module docstring).

    Raises
    ------
    ValueError
        If the setting has no interval model (the reason is the message), theta is on a kink,
        or theta has the wrong length or is not finite.
    """
    theta = loss.layout.check(theta)
    model = _derivative_model(loss, theta)
    if isinstance(model, str):
        raise ValueError(model)
    point = [_ball(v) for v in theta]
    if not model.pattern_ok(point):
        raise ValueError("theta is on a kink of the symmetric ReLU")
    gradient, hessian = model.derivatives(point)
    return _column(gradient), hessian


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
    model = _derivative_model(loss, theta0)
    if isinstance(model, str):
        return Certificate(False, model)
    try:
        return _certify(loss, model, theta0, max_radius, degeneracy_tolerance)
    except ZeroDivisionError as error:
        return Certificate(False, f"a representation may vanish in the box, where n(0) = 0 is not smooth ({error})")


def _certify(
    loss: PopulationLoss, model: Any, theta0: np.ndarray, max_radius: float, degeneracy_tolerance: float
) -> Certificate:
    """:func:`certify_point` with the interval model of the loss (may raise ZeroDivisionError)."""
    flint = require_flint()
    n = theta0.size
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

    point = _column([_ball(c) for c in center])
    if not model.pattern_ok(theta_of(point)):
        return Certificate(False, "kink in box (a symrelu pre-activation is on a kink at the point)")
    # consistency of the interval model with the float kernels at theta0
    mid_grad, _ = model.derivatives([_ball(v) for v in theta0])
    mid_grad = np.array([float(g.mid()) for g in mid_grad])
    if not np.allclose(mid_grad, egrad, rtol=1e-8, atol=1e-9 * max(1.0, np.abs(egrad).max())):
        return Certificate(False, "interval model disagrees with the float kernels (internal error)")
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
