"""Interval kernels and exact moment formulas for the certification, emitted from the derivations.

``critpoints.certify.certificate`` proves critical points in ball arithmetic (python-flint's ``arb``).
It needs the gradient and Hessian of the same losses as the float evaluators, and the view
moments as proved enclosures. This script states no loss formula of its own: it reads the
formulas off the derivations that generate the float kernels and prints them as code
(apart from two one-line definitions, marked below, that those derivations use but do
not expose as expressions):

* ``closed_form_losses.py``: the gradient blocks and the Kronecker / commutation-type
  Hessian blocks of ``spectral`` and ``ncl_squared`` -> ``<family>_gradient`` and
  ``<family>_hessian`` on ``arb_mat`` (the same straight-line products as the numba
  kernels, with exact integer or rational coefficients);
* ``pointwise_losses.py``: the invariant derivatives (phi, phi_A, ..., phi_CC) of every
  pointwise function phi(A, B, C) -> one scalar ``arb`` kernel per phi; the chain rule from
  invariants to representations (``representation_derivatives``), read off as the
  coefficients of I, r r^T, r c^T, c r^T, c c^T (gradients: of r, c) and checked to
  reproduce it exactly at m = 1, 2, 3;
* ``moments.py``: the latent second moments (diagonal, off-diagonal) and the mask identities
  (entries (i, i) and (i, j) of E[D A D'] in terms of A_ii, A_ij and the keep probability)
  -> exact rational functions (``fractions.Fraction``) in
  ``critpoints/certify/_generated/exact_moments.py``.

Definitions stated here (each is the definition of a term, not a derived formula):

* the outer function of the infonce partition sum, log Z, with its first two derivatives;
* the symmetric ReLU sigma_b(t) = ReLU(t + b) - ReLU(-t + b): on the piece where the
  indicators up = [t + b > 0] and down = [b - t > 0] are fixed it is
  up (t + b) - down (b - t), with its derivatives in t and b.

Every emitted kernel is checked before anything is written: the arb kernels are imported
from a scratch directory and evaluated at exact rational points; each returned ball must
contain the exact value computed by sympy (closed-form gradients and Hessians against
``sympy.hessian`` of the trace polynomial, pointwise kernels against the sympy derivatives,
the chain rule against brute-force differentiation of phi(r.r, c.c, r.c)). The exact moment
functions must equal the sympy formulas exactly.

``generate()`` is pure and deterministic; ``python -m derivations`` from the repository
root verifies, generates, checks and writes.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import sympy as sp

from derivations import closed_form_losses as cf
from derivations import codegen
from derivations import moments as mo
from derivations import pointwise_losses as pw
from derivations.codegen import arb_code as _arb_code
from derivations.codegen import fraction_code as _fraction_code

INTERVAL_PATH = "critpoints/certify/_generated/interval_kernels.py"
MOMENTS_PATH = "critpoints/certify/_generated/exact_moments.py"
HEADER = codegen.header("interval_kernels")

# ---------------------------------------------------------------------------------
# The two definitions stated here
# ---------------------------------------------------------------------------------

Z = sp.Symbol("Z", positive=True)
LOG_PARTITION = sp.log(Z)

t, b = sp.symbols("t b", real=True)
up, down = sp.symbols("up down", integer=True, nonnegative=True)
RISING, FALLING = sp.Max(t + b, 0), sp.Max(b - t, 0)
SIGMA = RISING - FALLING


def symrelu_piece() -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """(sigma, d sigma/dt, d sigma/db) on the piece with indicators up, down fixed."""
    piece = SIGMA.xreplace({RISING: up * (t + b), FALLING: down * (b - t)})
    return sp.expand(piece), sp.expand(sp.diff(piece, t)), sp.expand(sp.diff(piece, b))


def verify_symrelu_piece() -> None:
    """The piece equals sigma, and its derivatives sigma's, at a point of each sign pattern."""
    value, slope, bias_slope = symrelu_piece()
    for t0, b0 in ((2, 1), (-2, 1), (sp.Rational(1, 2), 1), (sp.Rational(1, 2), -1), (3, -1), (-3, -1)):
        pattern = {up: int(bool(t0 + b0 > 0)), down: int(bool(b0 - t0 > 0))}
        point = {t: t0, b: b0}
        pairs = ((SIGMA, value), (sp.diff(SIGMA, t), slope), (sp.diff(SIGMA, b), bias_slope))
        for exact, piece in pairs:
            if sp.simplify(exact.subs(point) - piece.subs(pattern).subs(point)) != 0:
                raise AssertionError(f"symmetric ReLU piece at t={t0}, b={b0}")


# ---------------------------------------------------------------------------------
# Exact coefficients
# ---------------------------------------------------------------------------------


def _coefficient(c: sp.Rational) -> str:
    c = sp.Rational(c)
    return str(int(c)) if c.q == 1 else f"_exact({int(c.p)}, {int(c.q)})"


def _combination(parts: list[tuple[sp.Rational, str]]) -> str:
    """``sum c * v`` with exact coefficients (unit coefficients omitted)."""
    out = []
    for k, (c, v) in enumerate(parts):
        c = sp.Rational(c)
        term = v if abs(c) == 1 else f"{_coefficient(abs(c))} * {v}"
        sign = "-" if c < 0 else "+"
        out.append((f"-{term}" if c < 0 else term) if k == 0 else f"{sign} {term}")
    return " ".join(out)


# ---------------------------------------------------------------------------------
# Closed-form losses: arb_mat products read off closed_form_losses
# ---------------------------------------------------------------------------------


class _MatrixEmitter:
    """Straight-line arb_mat code computing each product of the derivation once, left to right."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.known: list[str] = []

    def product(self, prod: cf.Product) -> str:
        if len(prod) == 1 and not prod[0][1]:
            return prod[0][0]
        name = cf.var_name(prod)
        if name not in self.known:
            if len(prod) == 1:
                self.lines.append(f"    {name} = {prod[0][0]}.transpose()")
            else:
                self.lines.append(f"    {name} = {self.product(prod[:-1])} * {self.product(prod[-1:])}")
            self.known.append(name)
        return name

    def poly(self, poly: cf.MatPoly, target: str) -> str:
        """Assign ``target = sum c prod``, factoring a common left product out."""
        left = cf.common_left(poly) if len(poly) > 1 else ()
        if left:
            inner = self.poly(tuple((c, prod[len(left) :]) for c, prod in poly), f"{target}_inner")
            self.lines.append(f"    {target} = {self.product(left)} * {inner}")
            return target
        if len(poly) == 1 and poly[0][0] == 1:
            return self.product(poly[0][1])
        self.lines.append(f"    {target} = {_combination([(c, self.product(prod)) for c, prod in poly])}")
        return target


def _size(count: int) -> str:
    """``count`` blocks of n_w = m p entries."""
    return "n_w" if count == 1 else f"{count} * n_w"


def _emit_closed_form_gradient(loss: cf.Loss) -> str:
    em = _MatrixEmitter()
    grads = cf.gradient(loss)
    count = len(loss.params)
    lines = [
        f"def {loss.name}_gradient({cf.signature(loss)}):",
        f'    """Gradient of the {loss.name} loss as a ({_size(count).replace("n_w", "m p")}) x 1 arb_mat '
        "(row-major blocks):",
        "",
        *[f"    {line}" for line in cf.gradient_lines(loss)],
        '    """',
        "    m, p = W.nrows(), W.ncols()",
        "    n_w = m * p",
    ]
    tail = [f"    out = flint.arb_mat({_size(count)}, 1)"]
    for k, prm in enumerate(loss.params):
        target = em.poly(grads[prm.name], f"g_{prm.name}")
        tail += [
            "    for i in range(m):",
            "        for a in range(p):",
            f"            out[{cf.block_offset(k, 'i')} + a, 0] = {target}[i, a]",
        ]
    return "\n".join(lines + em.lines + tail + ["    return out"]) + "\n"


def _emit_closed_form_hessian(loss: cf.Loss) -> str:
    em = _MatrixEmitter()
    names = [prm.name for prm in loss.params]
    loops = []
    counter = 0
    for block in cf.hessian(loss):
        r0, c0 = names.index(block.row), names.index(block.col)
        scalars_ij, scalars_ja, summands, diagonal, counter = cf.block_terms(em, block, counter)
        if not summands and not diagonal:
            continue

        def inner(terms: list[str], depth: int, scalars_ja: list[str] = scalars_ja) -> list[str]:
            pad = " " * depth
            return [
                f"{pad}for a in range(p):",
                *[f"{pad}    {s}" for s in scalars_ja],
                f"{pad}    for b in range(p):",
                f"{pad}        H[r_i + a, c_j + b] = {' + '.join(terms)}",
            ]

        loop = cf.block_loop_head(block, r0, c0, scalars_ij)
        if diagonal:
            loop += ["            if i == j:", *inner(diagonal + summands, 16)]
            if summands:
                loop += ["            else:", *inner(summands, 16)]
        else:
            loop += inner(summands, 12)
        loops.append("\n".join(loop))
    lines = [
        f"def {loss.name}_hessian({cf.signature(loss)}):",
        f'    """Hessian of the {loss.name} loss as an arb_mat (flat x flat, symmetric).',
        "",
        "    Entry ((A, i, a), (B, j, b)) couples row i, column a of block A with row j,",
        "    column b of block B; M (x) K is the Kronecker product (entry M_ij K_ab) and",
        "    [X_ib Y_ja] the commutation-type term:",
        "",
        *[f"    {line}" for line in cf.hessian_lines(loss)],
        '    """',
        "    m, p = W.nrows(), W.ncols()",
        "    n_w = m * p",
        f"    H = flint.arb_mat({_size(len(names))}, {_size(len(names))})",
    ]
    return "\n".join(lines + em.lines + loops + ["    return H"]) + "\n"


# ---------------------------------------------------------------------------------
# Pointwise losses: scalar kernels, the chain rule to representations
# ---------------------------------------------------------------------------------


def _emit_pointwise_kernel(loss: pw.PointwiseLoss) -> str:
    exprs = pw.derivatives(loss)
    temporaries, reduced = sp.cse(list(exprs), symbols=sp.numbered_symbols("t"), optimizations="basic")
    lines = [
        f"def {loss.name}(A, B, C, inv_tau, shift):",
        f'    """{loss.definition}, with A = r.r, B = c.c, C = r.c (arb balls).',
        "",
        "    Returns (" + ", ".join(pw.OUTPUT_NAMES) + ").",
    ]
    if loss.zero_guard:
        lines += [
            "    n(0) = 0: if A or B is exactly 0 the cosine is 0 and every derivative is 0; if a",
            "    ball contains 0 but is not exactly 0, ZeroDivisionError (not decidable).",
        ]
    lines.append('    """')
    if loss.zero_guard:
        zero_value = _arb_code(pw.value_at_zero_representation(loss))
        zeros = ", ".join(["_ZERO"] * (len(pw.OUTPUT_NAMES) - 1))
        lines += [
            "    if A == 0 or B == 0:",
            f"        return ({zero_value} + _ZERO, {zeros})",
            "    if not (A > 0 and B > 0):",
            f'        raise ZeroDivisionError("{loss.name}: a representation in the box may vanish")',
        ]
    for symbol, expr in temporaries:
        lines.append(f"    {symbol} = {_arb_code(expr)}")
    lines.append("    return (")
    for name, expr in zip(pw.OUTPUT_NAMES, reduced):
        lines.append(f"        {_arb_code(expr)} + _ZERO,  # {name}")
    lines.append("    )")
    return "\n".join(lines) + "\n"


#: Basis of the chain rule: gradients are combinations of r and c, Hessian blocks of I and
#: the four outer products (entry [0, 1] of r c^T is r_1 c_2).
GRADIENT_BASIS = ("r", "c")
HESSIAN_BASIS = ("identity", "rr", "rc", "cr", "cc")
CHAIN_OUTPUTS = ("g_r", "g_c", "h_rr", "h_rc", "h_cc")


def _symbolic_invariant_derivatives() -> dict[str, sp.Symbol]:
    return {name: sp.Symbol(name) for name in pw.OUTPUT_NAMES}


def chain_rule_coefficients() -> dict[str, tuple[sp.Expr, ...]]:
    """Coefficients of ``representation_derivatives`` in the bases above, read off at m = 3."""
    r, c = pw.vector("r", 3), pw.vector("c", 3)
    outputs = dict(zip(CHAIN_OUTPUTS, pw.representation_derivatives(_symbolic_invariant_derivatives(), r, c)))
    coefficients = {}
    for name in ("g_r", "g_c"):
        entry = outputs[name][0]
        coefficients[name] = (sp.diff(entry, r[0]), sp.diff(entry, c[0]))
    for name in ("h_rr", "h_rc", "h_cc"):
        off = outputs[name][0, 1]
        outer = (
            sp.diff(off, r[0], r[1]),
            sp.diff(off, r[0], c[1]),
            sp.diff(off, c[0], r[1]),
            sp.diff(off, c[0], c[1]),
        )
        rest = outer[0] * r[0] ** 2 + outer[1] * r[0] * c[0] + outer[2] * c[0] * r[0] + outer[3] * c[0] ** 2
        coefficients[name] = (sp.expand(outputs[name][0, 0] - rest), *outer)
    return coefficients


def _rebuild(coefficients: dict[str, tuple[sp.Expr, ...]], r: sp.Matrix, c: sp.Matrix) -> list[sp.Matrix]:
    m = r.shape[0]
    basis = {"r": r, "c": c, "identity": sp.eye(m), "rr": r * r.T, "rc": r * c.T, "cr": c * r.T, "cc": c * c.T}
    out = []
    for name in CHAIN_OUTPUTS:
        names = GRADIENT_BASIS if name.startswith("g") else HESSIAN_BASIS
        out.append(sum((k * basis[n] for k, n in zip(coefficients[name], names)), sp.zeros(*basis[names[0]].shape)))
    return out


def verify_chain_rule_coefficients(sizes: tuple[int, ...] = (1, 2, 3)) -> None:
    """The read-off coefficients are free of r, c and rebuild representation_derivatives exactly."""
    coefficients = chain_rule_coefficients()
    for m in sizes:
        r, c = pw.vector("r", m), pw.vector("c", m)
        stated = pw.representation_derivatives(_symbolic_invariant_derivatives(), r, c)
        for name, want, got in zip(CHAIN_OUTPUTS, stated, _rebuild(coefficients, r, c)):
            if (want - got).applyfunc(sp.expand) != sp.zeros(*want.shape):
                raise AssertionError(f"chain rule {name} at m={m}: the coefficients do not rebuild it")
    free = set().union(*(k.free_symbols for ks in coefficients.values() for k in ks))
    if free - set(_symbolic_invariant_derivatives().values()):
        raise AssertionError(f"chain rule coefficients depend on {free}")


def _emit_chain_rule() -> str:
    coefficients = chain_rule_coefficients()
    basis_code = {"r": "r", "c": "c", "identity": "identity", "rr": "rr", "rc": "rc", "cr": "cr", "cc": "cc"}
    docs, body = [], []
    for name in CHAIN_OUTPUTS:
        names = GRADIENT_BASIS if name.startswith("g") else HESSIAN_BASIS
        terms = [(k, n) for k, n in zip(coefficients[name], names) if k != 0]
        docs.append(f"    {name} = " + " + ".join(f"({k}) {n}" for k, n in terms))
        body.append(f"    {name} = " + " + ".join(f"{basis_code[n]} * ({_arb_code(k)})" for k, n in terms))
    lines = [
        "def representation_derivatives(d, r, c):",
        '    """Gradient (g_r, g_c) and Hessian blocks (H_rr, H_rc, H_cc) of phi(r.r, c.c, r.c) in (r, c).',
        "",
        "    d = (phi, phi_A, ..., phi_CC) from a pointwise kernel; r, c are m x 1 arb_mat.",
        "    With rr = r r^T, rc = r c^T, cr = c r^T, cc = c c^T:",
        "",
        *docs,
        '    """',
        "    " + ", ".join(pw.OUTPUT_NAMES) + " = d",
        "    identity = _identity(r.nrows())",
        "    rr, rc, cr, cc = r * r.transpose(), r * c.transpose(), c * r.transpose(), c * c.transpose()",
        *body,
        "    return " + ", ".join(CHAIN_OUTPUTS),
    ]
    return "\n".join(lines) + "\n"


def _emit_log_partition() -> str:
    exprs = [LOG_PARTITION, sp.diff(LOG_PARTITION, Z), sp.diff(LOG_PARTITION, Z, 2)]
    return (
        "\n".join(
            [
                "def log_partition(Z):",
                '    """(g, g\', g\'\') of g(Z) = log Z, the outer function of an infonce partition sum."""',
                f"    return ({', '.join(_arb_code(e) for e in exprs)})",
            ]
        )
        + "\n"
    )


def _emit_symrelu_piece() -> str:
    value, slope, bias_slope = symrelu_piece()
    return (
        "\n".join(
            [
                "def symrelu_piece(t, b, up, down):",
                '    """(sigma_b(t), d sigma/dt, d sigma/db) of sigma_b(t) = ReLU(t + b) - ReLU(-t + b) on the',
                "    piece with up = [t + b > 0] and down = [b - t > 0] (0 or 1) fixed:",
                "",
                f"    sigma = {value},  d/dt = {slope},  d/db = {bias_slope}",
                '    """',
                f"    return ({_arb_code(value)} + _ZERO, {_arb_code(slope)} + _ZERO, {_arb_code(bias_slope)} + _ZERO)",
            ]
        )
        + "\n"
    )


_INTERVAL_PRELUDE = '''"""Ball-arithmetic (python-flint arb) kernels for the certification of critical points.

The same formulas as the float kernels, read off the same derivations:

* ``spectral_gradient`` / ``spectral_hessian`` and ``ncl_squared_gradient`` /
  ``ncl_squared_hessian``: the closed-form losses of linear encoders
  (derivations/closed_form_losses.py), taking (W[, W_t], C11, C12, C22, Cneg) as arb_mat;
* one scalar kernel per pointwise function phi(A, B, C) (derivations/pointwise_losses.py,
  ``squared_inner_product``, phi = C^2, being the spectral repulsion), returning
  (phi, phi_A, phi_B, phi_C, phi_AA, phi_AB, phi_AC, phi_BB, phi_BC, phi_CC);
* ``representation_derivatives``: the chain rule from the invariants to the representations;
* ``log_partition``: log Z and its derivatives (infonce); ``symrelu_piece``: the symmetric
  ReLU on one activation piece.

Every ball returned contains the exact value for every input in the argument balls.
Emitted and checked by derivations/interval_kernels.py (see derivations/interval_kernels.md).
"""
'''

_ARB_HELPERS = '''import flint

_ZERO = flint.arb(0)


def _exact(p, q):
    """The rational p / q as a ball."""
    return flint.arb(flint.fmpq(p, q))


def _sqrt(x):
    return x.sqrt()


def _exp(x):
    return x.exp()


def _log(x):
    return x.log()


def _identity(n):
    out = flint.arb_mat(n, n)
    for i in range(n):
        out[i, i] = 1
    return out
'''


def _emit_interval_module() -> str:
    chunks = [HEADER + _INTERVAL_PRELUDE + "\n" + _ARB_HELPERS]
    for loss in cf.LOSSES:
        chunks += [_emit_closed_form_gradient(loss), _emit_closed_form_hessian(loss)]
    chunks += [_emit_pointwise_kernel(loss) for loss in pw.POINTWISE_LOSSES]
    chunks += [_emit_chain_rule(), _emit_log_partition(), _emit_symrelu_piece()]
    return codegen.join_chunks(chunks)


def pointwise_module(losses: Sequence[pw.PointwiseLoss]) -> str:
    """The text of a module of ball-arithmetic kernels for the pointwise functions ``losses``
    (the interval twin of :func:`derivations.pointwise_losses.kernel_module`, for a pointwise
    function that is not one of the package's)."""
    docstring = '"""Ball-arithmetic pointwise kernels, emitted and checked by derivations/interval_kernels.py."""\n'
    return codegen.join_chunks(
        [HEADER + docstring + "\n" + _ARB_HELPERS, *(_emit_pointwise_kernel(loss) for loss in losses)]
    )


# ---------------------------------------------------------------------------------
# Moments: exact rational functions read off moments.py
# ---------------------------------------------------------------------------------

#: The symbols of moments.py that parametrise each latent family, in signature order.
LATENT_PARAMETERS = {"one_hot": (), "fixed_count": ("k", "k_neg"), "bernoulli": ("prob",)}
#: augmentation name -> (key of the same-view identity, key of the cross-view identity).
MASKS = {
    "independent_mask": ("independent same", "independent cross"),
    "complementary_mask": ("complementary same", "complementary cross"),
}


def mask_entry_formulas() -> dict[str, tuple[sp.Expr, sp.Expr]]:
    """(entry (i, i) as a function of a = A_ii, entry (i, j) as a function of a = A_ij), per identity.

    Read off the 2 x 2 closed forms of moments.py: entry (0, 0) must depend on a00 only and
    entry (0, 1) on a01 only, and entries (1, 1), (1, 0) must be the same functions of a11,
    a10 (so the formula holds for every size, derivations/moments.md)."""
    a = sp.Symbol("a")
    a00, a01, a10, a11 = sp.symbols("a00 a01 a10 a11")
    out = {}
    for name, (_, closed) in mo.mask_identities().items():
        diagonal, off = closed[0, 0].subs(a00, a), closed[0, 1].subs(a01, a)
        if (diagonal.free_symbols | off.free_symbols) - {a, mo.rho}:
            raise AssertionError(f"{name}: an entry depends on another entry of A")
        if sp.simplify(closed[1, 1] - diagonal.subs(a, a11)) != 0 or sp.simplify(closed[1, 0] - off.subs(a, a10)) != 0:
            raise AssertionError(f"{name}: the entries are not one formula per position")
        out[name] = (sp.factor(diagonal), sp.factor(off))
    return out


def _emit_fraction_function(name: str, arguments: tuple[str, ...], exprs: tuple[sp.Expr, ...], doc: str) -> str:
    lines = [
        f"def {name}({', '.join(arguments)}):",
        f'    """{doc}"""',
        *[f"    {argument} = Fraction({argument})" for argument in arguments],
        "    return " + ", ".join(f"Fraction({_fraction_code(e)})" for e in exprs),
    ]
    return "\n".join(lines) + "\n"


_MOMENTS_PRELUDE = '''"""Exact second moments of latents and masked views, as rational functions.

Read off derivations/moments.py (derivations/moments.md) by derivations/interval_kernels.py.
Arguments are converted to ``fractions.Fraction`` (a float is an exact dyadic rational), so
every result is the exact moment of the setting's data as given:

* ``latent_moment_<family>_diagonal(d, ...)`` -> Lambda_ii and ``..._off_diagonal`` ->
  Lambda_ij (i != j, d >= 2) of Lambda = E[z z^T];
* ``<identity>(a, rho)`` -> entry (i, i) of E[D A D'] from a = A_ii (``*_diagonal``) or entry
  (i, j) from a = A_ij (``*_off_diagonal``), rho the keep probability 1 - q of an
  independent mask (unused by the complementary mask).
"""

from fractions import Fraction
'''


def _emit_moments_module() -> str:
    d = "d"
    chunks = [HEADER + _MOMENTS_PRELUDE]
    for family, (diagonal, off) in mo.latent_moment_formulas().items():
        arguments = (d, *LATENT_PARAMETERS[family])
        for suffix, expr in (("diagonal", diagonal), ("off_diagonal", off)):
            chunks.append(
                _emit_fraction_function(
                    f"latent_moment_{family}_{suffix}",
                    arguments,
                    (expr,),
                    f"Lambda_{'ii' if suffix == 'diagonal' else 'ij, i != j'} of the {family} latent: {expr}.",
                )
            )
    for name, (diagonal, off) in mask_entry_formulas().items():
        stem = name.replace(" ", "_")
        for suffix, expr in (("diagonal", diagonal), ("off_diagonal", off)):
            chunks.append(
                _emit_fraction_function(
                    f"{stem}_{suffix}",
                    ("a", "rho"),
                    (expr,),
                    f"{name}: entry {'(i, i)' if suffix == 'diagonal' else '(i, j)'} = {expr}.",
                )
            )
    parameters = [f"    {family!r}: {params!r}," for family, params in LATENT_PARAMETERS.items()]
    identities = []
    for augmentation, keys in MASKS.items():
        names = [f"{key.replace(' ', '_')}_{suffix}" for key in keys for suffix in ("diagonal", "off_diagonal")]
        identities.append(f"    {augmentation!r}: ({', '.join(names)}),")
    chunks.append(
        "\n".join(
            [
                "#: Parameters of each latent family, in the order of latent_moment_<family>_*(d, ...).",
                "LATENT_PARAMETERS = {",
                *parameters,
                "}",
                "",
                "#: augmentation -> (same diagonal, same off-diagonal, cross diagonal, cross off-diagonal).",
                "MASK_IDENTITIES = {",
                *identities,
                "}",
            ]
        )
        + "\n"
    )
    return codegen.join_chunks(chunks)


def generate() -> dict[str, str]:
    """Repository-relative path -> content of every file this derivation emits (pure, deterministic)."""
    return {INTERVAL_PATH: _emit_interval_module(), MOMENTS_PATH: _emit_moments_module()}


# ---------------------------------------------------------------------------------
# Checking the emitted modules
# ---------------------------------------------------------------------------------


def _import_emitted(files: dict[str, str], path: str, tmp: str) -> ModuleType:
    return codegen.import_text(files[path], Path(tmp) / f"{Path(path).stem}_check.py")


def _ball(flint: ModuleType, value: sp.Rational):
    value = sp.Rational(value)
    return flint.arb(flint.fmpq(int(value.p), int(value.q)))


def _contains(flint: ModuleType, ball, exact: sp.Expr) -> bool:
    """Whether ``ball`` contains ``exact`` (a rational, or its 60-digit value), enclosed at 250 bits."""
    exact = sp.sympify(exact)
    precision = flint.ctx.prec
    flint.ctx.prec = 250
    try:
        if exact.is_Rational:
            reference = flint.arb(flint.fmpq(int(exact.p), int(exact.q)))
        else:
            reference = flint.arb(str(sp.N(exact, 60)))
    finally:
        flint.ctx.prec = precision
    return ball.contains(reference)


def verify_closed_form_kernels(module: ModuleType, flint: ModuleType, seed: int = 11) -> None:
    """Every ball contains the exact gradient / Hessian of the trace polynomial at rational points."""
    rng = random.Random(seed)
    for mm, pp in ((2, 3), (3, 2), (1, 1)):
        for loss in cf.LOSSES:
            moments = cf.random_moments(rng, pp)
            values, flat = cf.parameter_values(loss, mm, pp)
            point = {w: sp.Rational(rng.randint(-9, 9), rng.randint(1, 5)) for w in flat}
            values.update(moments)
            scalar = sp.expand(sum(c * cf.explicit(prod, values, mm).trace() for c, prod in cf.trace_poly(loss.expr)))
            want_grad = [sp.diff(scalar, w).xreplace(point) for w in flat]
            want_hess = sp.hessian(scalar, flat).xreplace(point)
            matrices = [values[prm.name].xreplace(point) for prm in loss.params]
            matrices += [moments[c.name] for c in cf.MOMENTS]
            arguments = [flint.arb_mat([[_ball(flint, x) for x in row] for row in mat.tolist()]) for mat in matrices]
            got_grad = getattr(module, f"{loss.name}_gradient")(*arguments)
            got_hess = getattr(module, f"{loss.name}_hessian")(*arguments)
            for i, want in enumerate(want_grad):
                if not _contains(flint, got_grad[i, 0], want):
                    raise AssertionError(f"interval {loss.name} gradient entry {i}")
            for i in range(len(flat)):
                for j in range(len(flat)):
                    if not _contains(flint, got_hess[i, j], want_hess[i, j]):
                        raise AssertionError(f"interval {loss.name} Hessian entry {(i, j)}")


def verify_pointwise_kernels(
    module: ModuleType, flint: ModuleType, seed: int = 7, losses: Sequence[pw.PointwiseLoss] = pw.POINTWISE_LOSSES
) -> None:
    """Every kernel's balls contain the sympy derivatives; the zero guard returns phi at cosine 0."""
    rng = random.Random(seed)
    for loss in losses:
        kernel = getattr(module, loss.name)
        exact = pw.derivatives(loss)
        for _ in range(5):
            point = {
                pw.A: sp.Rational(rng.randint(1, 40), 7),
                pw.B: sp.Rational(rng.randint(1, 40), 9),
                pw.C: sp.Rational(rng.randint(-10, 10), 11),
                pw.inv_tau: sp.Rational(rng.randint(1, 20), 3),
                pw.shift: sp.Rational(rng.randint(-9, 9), 4),
            }
            got = kernel(*(_ball(flint, point[s]) for s in (pw.A, pw.B, pw.C, pw.inv_tau, pw.shift)))
            for name, ball, expr in zip(pw.OUTPUT_NAMES, got, exact):
                if not _contains(flint, ball, expr.subs(point)):
                    raise AssertionError(f"interval {loss.name} {name}: {ball} misses {expr.subs(point)}")
        if loss.zero_guard:
            got = kernel(flint.arb(0), flint.arb(2), flint.arb(0.5), flint.arb(1.5), flint.arb(0.25))
            constants = {pw.inv_tau: sp.Rational(3, 2), pw.shift: sp.Rational(1, 4)}
            want = pw.value_at_zero_representation(loss).subs(constants)
            if not _contains(flint, got[0], want) or any(v != 0 for v in got[1:]):
                raise AssertionError(f"interval {loss.name}: zero-representation guard")


def verify_chain_rule_kernel(module: ModuleType, flint: ModuleType, seed: int = 5) -> None:
    """representation_derivatives against brute-force derivatives of phi(r.r, c.c, r.c), m = 1, 2, 3."""
    rng = random.Random(seed)
    for m in (1, 2, 3):
        r, c = pw.vector("r", m), pw.vector("c", m)
        variables = list(r) + list(c)
        for loss in pw.POINTWISE_LOSSES:
            scalar = loss.expr.subs({pw.A: r.dot(r), pw.B: c.dot(c), pw.C: r.dot(c)})
            point = {x: pw.random_rational(rng) for x in variables} | pw.random_constants(rng)
            brute_grad = [sp.diff(scalar, x).subs(point) for x in variables]
            brute_hess = sp.hessian(scalar, variables).subs(point)
            invariants = [v.subs(point) for v in (r.dot(r), c.dot(c), r.dot(c), pw.inv_tau, pw.shift)]
            d = getattr(module, loss.name)(*(_ball(flint, v) for v in invariants))
            r_ball, c_ball = (flint.arb_mat([[_ball(flint, x.subs(point))] for x in v]) for v in (r, c))
            g_r, g_c, h_rr, h_rc, h_cc = module.representation_derivatives(d, r_ball, c_ball)
            got_grad = [g_r[i, 0] for i in range(m)] + [g_c[i, 0] for i in range(m)]
            for ball, want in zip(got_grad, brute_grad):
                if not _contains(flint, ball, want):
                    raise AssertionError(f"interval chain rule {loss.name} gradient, m={m}")
            blocks = ((h_rr, 0, 0), (h_rc, 0, m), (h_cc, m, m))
            for block, r0, c0 in blocks:
                for i in range(m):
                    for j in range(m):
                        if not _contains(flint, block[i, j], brute_hess[r0 + i, c0 + j]):
                            raise AssertionError(f"interval chain rule {loss.name} Hessian, m={m}")


def verify_scalar_kernels(module: ModuleType, flint: ModuleType) -> None:
    """log_partition and symrelu_piece against sympy at exact points."""
    for z0 in (sp.Rational(1, 3), sp.Rational(7, 2)):
        got = module.log_partition(_ball(flint, z0))
        for ball, expr in zip(got, (LOG_PARTITION, sp.diff(LOG_PARTITION, Z), sp.diff(LOG_PARTITION, Z, 2))):
            if not _contains(flint, ball, expr.subs(Z, z0)):
                raise AssertionError("interval log_partition")
    for t0, b0 in ((2, 1), (-2, 1), (sp.Rational(1, 2), 1), (sp.Rational(1, 2), -1)):
        pattern = (int(bool(t0 + b0 > 0)), int(bool(b0 - t0 > 0)))
        got = module.symrelu_piece(_ball(flint, t0), _ball(flint, b0), *pattern)
        for ball, expr in zip(got, (SIGMA, sp.diff(SIGMA, t), sp.diff(SIGMA, b))):
            if not _contains(flint, ball, expr.subs({t: t0, b: b0})):
                raise AssertionError("interval symrelu_piece")


def verify_moment_functions(module: ModuleType) -> None:
    """The exact functions equal the sympy formulas at exact rational arguments."""
    for family, (diagonal, off) in mo.latent_moment_formulas().items():
        for size in (2, 3, 5):
            params = {"k": 2, "k_neg": 1, "prob": Fraction(2, 5)}
            arguments = [params[name] for name in LATENT_PARAMETERS[family]]
            subs = {mo.d: size, mo.k: 2, mo.k_neg: 1, mo.prob: sp.Rational(2, 5)}
            for suffix, expr in (("diagonal", diagonal), ("off_diagonal", off)):
                got = getattr(module, f"latent_moment_{family}_{suffix}")(size, *arguments)
                if got != Fraction(str(sp.Rational(expr.subs(subs)))):
                    raise AssertionError(f"exact latent moment {family} {suffix}, d={size}")
    for name, (diagonal, off) in mask_entry_formulas().items():
        a, rho = Fraction(3, 7), Fraction(5, 8)
        symbol = sp.Symbol("a")
        for suffix, expr in (("diagonal", diagonal), ("off_diagonal", off)):
            got = getattr(module, f"{name.replace(' ', '_')}_{suffix}")(a, rho)
            want = Fraction(str(sp.Rational(expr.subs({symbol: sp.Rational(3, 7), mo.rho: sp.Rational(5, 8)}))))
            if got != want:
                raise AssertionError(f"exact mask moment {name} {suffix}")


def verify() -> None:
    """The formulas read off here reproduce the ones they are read from."""
    verify_chain_rule_coefficients()
    verify_symrelu_piece()
    mask_entry_formulas()


def check_emitted(files: dict[str, str]) -> None:
    """Import the emitted modules from a scratch directory and check them against sympy."""
    import flint

    with tempfile.TemporaryDirectory() as tmp:
        interval = _import_emitted(files, INTERVAL_PATH, tmp)
        verify_closed_form_kernels(interval, flint)
        verify_pointwise_kernels(interval, flint)
        verify_chain_rule_kernel(interval, flint)
        verify_scalar_kernels(interval, flint)
        verify_moment_functions(_import_emitted(files, MOMENTS_PATH, tmp))
