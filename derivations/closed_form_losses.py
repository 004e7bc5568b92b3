"""Closed-form population losses of linear encoders, derived with sympy.

For a linear encoder f(x) = W x (W of shape m x p) the two polynomial losses of
derivations/MODEL.md §4 are polynomials in W whose coefficients are the second moments of
the views (derivations/MODEL.md §5, ``closed_form``)::

    C11 = E[x1 x1^T],  C12 = E[x1 x2^T],  C22 = E[x2 x2^T],  Cneg = E[x' x'^T].

C11, C22 and Cneg are second moments of one random vector, hence symmetric; C12 is
a cross moment and need not be symmetric. The losses, as matrix expressions:

* ``spectral`` (one encoder, parameters W)::

      L(W) = -2 E[f(x1).f(x2)] + E[(f(x1).f(x'))^2]
           = -2 tr(W C12 W^T) + tr(W^T W C11 W^T W Cneg)      (x1, x' independent)

* ``ncl_squared`` (online W, target W_t)::

      L(W, W_t) = E||W x1 - W_t x2||^2
                = tr(W C11 W^T) - 2 tr(W C12 W_t^T) + tr(W_t C22 W_t^T)

What this script does:

1. states each loss as a sum of traces of products of ``MatrixSymbol`` s;
2. takes the first and second differentials by the product rule on those traces
   (replace one occurrence of a parameter by a direction, then another one), reads the
   gradient off the first differential (``d tr(V R) = <R^T, V>``) and the Hessian off
   the second, as a sum of Kronecker-structured terms::

       H[(A, i, a), (B, j, b)] = sum_k  M_k[i, j] K_k[a, b]   (Kronecker M (x) K)
                               + sum_l  X_l[i, b] Y_l[j, a]   (commutation-type)

   where (A, i, a) indexes row i, column a of parameter block A;
3. verifies every formula exactly at small sizes: the trace form of each loss against
   the defining expectation (an explicit polynomial in the entries of the views whose
   degree-two monomials are replaced by moment entries), the gradient against entrywise
   differentiation of the scalar polynomial and against sympy's own matrix derivative
   ``Trace(...).diff(W)``, and the Hessian against ``sympy.hessian`` of the scalar
   polynomial; after code generation, the emitted numba kernels are compared with the
   same brute-force results;
4. emits ``critpoints/losses/_generated/closed_form_kernels.py``: numba kernels for the value,
   the flat gradient and the dense Hessian of each loss.

``generate()`` is pure and deterministic (no hashing-order dependence: every
collection is ordered by explicit sort keys). ``python -m derivations`` from the
repository root verifies the derivation, checks the emitted kernels, then writes the files.
The products, offsets and loop heads that the numba emitter writes are public
(:func:`var_name`, :func:`block_terms`, ...): derivations/interval_kernels.py prints the
same derivation as ball arithmetic with them.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import sympy as sp

from derivations import codegen

# ---------------------------------------------------------------------------------
# Symbols and losses
# ---------------------------------------------------------------------------------

m, p = sp.symbols("m p", integer=True, positive=True)

W = sp.MatrixSymbol("W", m, p)
W_t = sp.MatrixSymbol("W_t", m, p)
V = sp.MatrixSymbol("V", m, p)
V_t = sp.MatrixSymbol("V_t", m, p)
C11 = sp.MatrixSymbol("C11", p, p)
C12 = sp.MatrixSymbol("C12", p, p)
C22 = sp.MatrixSymbol("C22", p, p)
Cneg = sp.MatrixSymbol("Cneg", p, p)

MOMENTS = (C11, C12, C22, Cneg)
SYMMETRIC = frozenset({"C11", "C22", "Cneg"})
SHAPES = {
    "W": ("m", "p"),
    "W_t": ("m", "p"),
    "V": ("m", "p"),
    "V_t": ("m", "p"),
    "C11": ("p", "p"),
    "C12": ("p", "p"),
    "C22": ("p", "p"),
    "Cneg": ("p", "p"),
}
SYMBOLS = {s.name: s for s in (W, W_t, V, V_t, *MOMENTS)}
GENERATED_PATH = "critpoints/losses/_generated/closed_form_kernels.py"


@dataclass(frozen=True)
class Loss:
    """A loss family: its trace-polynomial form and its parameter blocks.

    ``params[k]`` is perturbed in the direction ``directions[k]``; the flat parameter
    vector is the row-major concatenation of the blocks in this order.
    """

    name: str
    expr: sp.Expr
    params: tuple[sp.MatrixSymbol, ...]
    directions: tuple[sp.MatrixSymbol, ...]
    definition: str


LOSSES = (
    Loss(
        name="spectral",
        expr=-2 * sp.Trace(W * C12 * W.T) + sp.Trace(W.T * W * C11 * W.T * W * Cneg),
        params=(W,),
        directions=(V,),
        definition="L(W) = -2 E[f(x1).f(x2)] + E[(f(x1).f(x'))^2] = -2 tr(W C12 W^T) + tr(W^T W C11 W^T W Cneg)",
    ),
    Loss(
        name="ncl_squared",
        expr=sp.Trace(W * C11 * W.T) - 2 * sp.Trace(W * C12 * W_t.T) + sp.Trace(W_t * C22 * W_t.T),
        params=(W, W_t),
        directions=(V, V_t),
        definition="L(W, W_t) = E||W x1 - W_t x2||^2 = tr(W C11 W^T) - 2 tr(W C12 W_t^T) + tr(W_t C22 W_t^T)",
    ),
)

# ---------------------------------------------------------------------------------
# Products of matrix symbols: atoms, transposes, canonical traces
# ---------------------------------------------------------------------------------

# An atom is (symbol name, transposed?); a product is a tuple of atoms (empty = identity).
Atom = tuple[str, bool]
Product = tuple[Atom, ...]


def atom(name: str, transposed: bool) -> Atom:
    """The atom ``name`` or ``name^T``; symmetric moments are never transposed."""
    return (name, transposed and name not in SYMMETRIC)


def atoms_of(expr: sp.MatrixExpr) -> Product:
    """Split a product of (possibly transposed) matrix symbols into atoms."""
    factors = expr.args if isinstance(expr, sp.MatMul) else (expr,)
    out = []
    for factor in factors:
        if isinstance(factor, sp.MatrixSymbol):
            out.append(atom(factor.name, False))
        elif isinstance(factor, sp.Transpose) and isinstance(factor.arg, sp.MatrixSymbol):
            out.append(atom(factor.arg.name, True))
        else:
            raise ValueError(f"not a product of matrix symbols: {expr}")
    return tuple(out)


def transpose(prod: Product) -> Product:
    """(A B ... Z)^T = Z^T ... B^T A^T."""
    return tuple(atom(name, not t) for name, t in reversed(prod))


def shape(prod: Product) -> tuple[str, str]:
    """Shape of a non-empty product, as dimension names; checks conformability."""
    rows = None
    cols = None
    for name, t in prod:
        r, c = SHAPES[name][::-1] if t else SHAPES[name]
        if cols is not None and r != cols:
            raise ValueError(f"non-conformable product {prod}")
        rows = r if rows is None else rows
        cols = c
    return rows, cols


def product_key(prod: Product) -> tuple:
    """Total order on products (by names, then transposition flags): no hashing involved."""
    return tuple((name, t) for name, t in prod)


def canonical_trace(prod: Product) -> Product:
    """Representative of tr(prod) under cyclic rotation and tr(X) = tr(X^T)."""
    candidates = []
    for seq in (prod, transpose(prod)):
        for k in range(len(seq)):
            candidates.append(seq[k:] + seq[:k])
    return min(candidates, key=product_key)


# A trace polynomial is a sorted tuple of (coefficient, canonical product): sum c tr(prod).
TracePoly = tuple[tuple[sp.Rational, Product], ...]


def merge_traces(terms: Iterable[tuple[sp.Rational, Product]]) -> TracePoly:
    """Collect equal traces (after canonicalisation), drop zeros, sort."""
    collected: dict[Product, sp.Rational] = {}
    for coeff, prod in terms:
        key = canonical_trace(prod)
        collected[key] = collected.get(key, sp.Integer(0)) + coeff
    return tuple((collected[key], key) for key in sorted(collected, key=product_key) if collected[key] != 0)


def trace_poly(expr: sp.Expr) -> TracePoly:
    """Parse ``sum_k c_k Trace(P_k)`` (P_k products of matrix symbols)."""
    terms = []
    for arg in sp.Add.make_args(sp.expand(expr)):
        coeff, rest = arg.as_coeff_Mul()
        if not isinstance(rest, sp.Trace):
            raise ValueError(f"not a trace term: {arg}")
        prod = atoms_of(rest.arg)
        rows, cols = shape(prod)
        if rows != cols:
            raise ValueError(f"trace of a non-square product: {arg}")
        terms.append((sp.Rational(coeff), prod))
    return merge_traces(terms)


# ---------------------------------------------------------------------------------
# Differentials, gradient, Hessian
# ---------------------------------------------------------------------------------


def differential(poly: TracePoly, loss: Loss) -> TracePoly:
    """dL[V] = sum over occurrences of a parameter of the trace with it replaced by its
    direction (product rule); applied twice it gives d^2L[V, V] = d^2/ds^2 L(W + sV)."""
    direction = {prm.name: d.name for prm, d in zip(loss.params, loss.directions)}
    terms = []
    for coeff, prod in poly:
        for k, (name, t) in enumerate(prod):
            if name in direction:
                terms.append((coeff, prod[:k] + ((direction[name], t),) + prod[k + 1 :]))
    return merge_traces(terms)


# A matrix polynomial is a sorted tuple of (coefficient, product): sum c prod.
MatPoly = tuple[tuple[sp.Rational, Product], ...]


def merge_products(terms: Iterable[tuple[sp.Rational, Product]]) -> MatPoly:
    """Collect equal products, drop zeros, sort."""
    collected: dict[Product, sp.Rational] = {}
    for coeff, prod in terms:
        collected[prod] = collected.get(prod, sp.Integer(0)) + coeff
    return tuple((collected[key], key) for key in sorted(collected, key=product_key) if collected[key] != 0)


def gradient(loss: Loss) -> dict[str, MatPoly]:
    """Gradient blocks from dL[V] = sum_A <G_A, V_A>: tr(V R) -> G += R^T, tr(V^T R) -> G += R."""
    dirs = {d.name: prm.name for prm, d in zip(loss.params, loss.directions)}
    first = differential(trace_poly(loss.expr), loss)
    blocks: dict[str, list] = {prm.name: [] for prm in loss.params}
    for coeff, prod in first:
        (k,) = [i for i, (name, _) in enumerate(prod) if name in dirs]
        rot = prod[k:] + prod[:k]
        (name, t), rest = rot[0], rot[1:]
        blocks[dirs[name]].append((coeff, rest if t else transpose(rest)))
    return {name: merge_products(terms) for name, terms in blocks.items()}


@dataclass(frozen=True)
class HessianBlock:
    """One parameter block (A, B) of the Hessian::

        H[(A, i, a), (B, j, b)] = sum_k M_k[i, j] K_k[a, b] + sum_l X_l[i, b] Y_l[j, a]

    ``kron``: tuple of (M, K) with M an m x m product (``()`` = identity) and K a
    p x p matrix polynomial; ``swap``: tuple of (X, Y) with X an m x p product and Y
    an m x p matrix polynomial.
    """

    row: str
    col: str
    kron: tuple[tuple[Product, MatPoly], ...]
    swap: tuple[tuple[Product, MatPoly], ...]


def hessian(loss: Loss) -> tuple[HessianBlock, ...]:
    """Hessian blocks read off d^2L[V, V] = v^T c v, H = (c + c^T) / 2.

    With U, U' directions and X, Y products, each term of d^2L is rotated to
    tr(U X U' Y) and, writing V_ia for the entries of a direction::

        tr(V^T X V Y)   = sum V_ia X_ij V_jb Y_ba  ->  c += X (x) Y^T
        tr(V X V^T Y)   = sum V_ia X_ab V_jb Y_ji  ->  c += Y^T (x) X
        tr(V^T X V^T Y) = sum V_ia X_ib V_jb Y_ja  ->  c += [X_ib Y_ja]
        tr(V X V Y)     = sum V_ia X_aj V_jb Y_bi  ->  c += [(Y^T)_ib (X^T)_ja]

    The transpose of a block maps M (x) K to M^T (x) K^T and [X_ib Y_ja] to [Y_ib X_ja].
    """
    dirs = {d.name: prm.name for prm, d in zip(loss.params, loss.directions)}
    second = differential(differential(trace_poly(loss.expr), loss), loss)
    names = [prm.name for prm in loss.params]
    kron = {(a, b): [] for a in names for b in names}
    swap = {(a, b): [] for a in names for b in names}
    half = sp.Rational(1, 2)
    for coeff, prod in second:
        k1, k2 = [i for i, (name, _) in enumerate(prod) if name in dirs]
        rot = prod[k1:] + prod[:k1]
        k = k2 - k1
        (n1, t1), x, (n2, t2), y = rot[0], rot[1:k], rot[k], rot[k + 1 :]
        a, b = dirs[n1], dirs[n2]
        c = half * coeff
        if t1 != t2:
            left, right = (x, transpose(y)) if t1 else (transpose(y), x)
            kron[(a, b)].append((c, left, right))
            kron[(b, a)].append((c, transpose(left), transpose(right)))
        else:
            left, right = (x, y) if t1 else (transpose(y), transpose(x))
            swap[(a, b)].append((c, left, right))
            swap[(b, a)].append((c, right, left))
    blocks = []
    for a in names:
        for b in names:
            blocks.append(HessianBlock(a, b, _group(kron[(a, b)]), _group(swap[(a, b)])))
    return tuple(blocks)


def _group(terms) -> tuple[tuple[Product, MatPoly], ...]:
    """Group c * L (x) R terms by their left factor L: sum_L L (x) (sum c R)."""
    grouped: dict[Product, list] = {}
    for coeff, left, right in terms:
        grouped.setdefault(left, []).append((coeff, right))
    out = []
    for left in sorted(grouped, key=product_key):
        poly = merge_products(grouped[left])
        if poly:
            out.append((left, poly))
    return tuple(out)


# ---------------------------------------------------------------------------------
# Brute-force verification at small sizes (exact rational arithmetic)
# ---------------------------------------------------------------------------------


def random_moments(rng: random.Random, n: int) -> dict[str, sp.ImmutableMatrix]:
    """Random integer moments: C11, C22, Cneg symmetric, C12 general."""

    def rand(symmetric: bool) -> sp.ImmutableMatrix:
        a = sp.Matrix(n, n, lambda i, j: rng.randint(-4, 4))
        return sp.ImmutableMatrix(a + a.T if symmetric else a)

    return {"C11": rand(True), "C12": rand(False), "C22": rand(True), "Cneg": rand(True)}


def explicit(prod: Product, values: dict[str, sp.ImmutableMatrix], dim: int) -> sp.Matrix:
    """Explicit value of a product (the identity of size ``dim`` if empty)."""
    if not prod:
        return sp.eye(dim)
    factors = [values[name].T if t else values[name] for name, t in prod]
    out = sp.Matrix(factors[0])
    for factor in factors[1:]:
        out = out * factor
    return out


def _explicit_poly(poly: MatPoly, values, dim: int) -> sp.Matrix:
    out = None
    for coeff, prod in poly:
        term = coeff * explicit(prod, values, dim)
        out = term if out is None else out + term
    return out


def parameter_values(loss: Loss, mm: int, pp: int):
    """Explicit symbolic parameter matrices and their flat row-major variable list."""
    values = {}
    flat = []
    for prm in loss.params:
        mat = sp.Matrix(mm, pp, lambda i, a, n=prm.name: sp.Symbol(f"{n}_{i}_{a}"))
        values[prm.name] = sp.ImmutableMatrix(mat)
        flat.extend(mat)
    return values, flat


def _expectation(expr: sp.Expr, groups, moments) -> sp.Expr:
    """E[expr] for a polynomial in view entries: each group of view vectors appears with
    total degree two in every monomial and is independent of the other groups; a degree
    two monomial u_a v_b of a group is replaced by its moment E[u_a v_b]."""
    variables = [s for group in groups for vec in group for s in vec]
    poly = sp.Poly(sp.expand(expr), *variables)
    position = {}
    for group in groups:
        for vec in group:
            for a, s in enumerate(vec):
                position[s] = (vec, a)
    total = sp.Integer(0)
    for powers, coeff in poly.terms():
        value = coeff
        exps = dict(zip(variables, powers))
        for group in groups:
            factors = []
            for vec in group:
                for a, s in enumerate(vec):
                    factors.extend([(vec, a)] * exps[s])
            if len(factors) != 2:
                raise ValueError("each independent group must have degree two")
            (u, a), (v, b) = factors
            value *= moments[(u, v)][a, b]
        total += value
    return sp.expand(total)


def _defining_expectation(loss: Loss, values, moments, pp: int) -> sp.Expr:
    x1 = tuple(sp.symbols(f"x1_0:{pp}"))
    x2 = tuple(sp.symbols(f"x2_0:{pp}"))
    xn = tuple(sp.symbols(f"xn_0:{pp}"))
    col = sp.Matrix
    table = {
        (x1, x1): moments["C11"],
        (x1, x2): moments["C12"],
        (x2, x1): moments["C12"].T,
        (x2, x2): moments["C22"],
        (xn, xn): moments["Cneg"],
    }
    f = values["W"]
    if loss.name == "spectral":
        attract = ((f * col(x1)).T * (f * col(x2)))[0, 0]
        repulse = ((f * col(x1)).T * (f * col(xn)))[0, 0] ** 2
        return -2 * _expectation(attract, [(x1, x2)], table) + _expectation(repulse, [(x1,), (xn,)], table)
    if loss.name == "ncl_squared":
        diff = f * col(x1) - values["W_t"] * col(x2)
        return _expectation((diff.T * diff)[0, 0], [(x1, x2)], table)
    raise ValueError(loss.name)


def _assemble_hessian(loss: Loss, values, mm: int, pp: int) -> sp.Matrix:
    names = [prm.name for prm in loss.params]
    size = mm * pp
    out = sp.zeros(len(names) * size)
    for block in hessian(loss):
        r0 = names.index(block.row) * size
        c0 = names.index(block.col) * size
        for left, right in block.kron:
            mat_m = explicit(left, values, mm)
            mat_k = _explicit_poly(right, values, pp)
            for i in range(mm):
                for j in range(mm):
                    for a in range(pp):
                        for b in range(pp):
                            out[r0 + i * pp + a, c0 + j * pp + b] += mat_m[i, j] * mat_k[a, b]
        for left, right in block.swap:
            mat_x = explicit(left, values, mm)
            mat_y = _explicit_poly(right, values, mm)
            for i in range(mm):
                for j in range(mm):
                    for a in range(pp):
                        for b in range(pp):
                            out[r0 + i * pp + a, c0 + j * pp + b] += mat_x[i, b] * mat_y[j, a]
    return out


def verify(sizes: Sequence[tuple[int, int]] = ((2, 3), (3, 2), (1, 2)), seed: int = 20220328) -> None:
    """Check every derived formula exactly against brute force; raise on a mismatch."""
    rng = random.Random(seed)
    for mm, pp in sizes:
        for loss in LOSSES:
            moments = random_moments(rng, pp)
            values, flat = parameter_values(loss, mm, pp)
            values.update(moments)
            subs = {SYMBOLS[k]: v for k, v in values.items()}
            subs.update({m: mm, p: pp})
            # loss: trace form against the defining expectation
            scalar = sp.expand(sum(c * explicit(prod, values, mm).trace() for c, prod in trace_poly(loss.expr)))
            stated = sp.expand(loss.expr.xreplace(subs).doit())
            expect = _defining_expectation(loss, values, moments, pp)
            assert sp.expand(scalar - expect) == 0, (loss.name, "value vs expectation")
            assert sp.expand(stated - scalar) == 0, (loss.name, "value vs stated")
            # gradient: entrywise derivative and sympy's matrix derivative
            grad_blocks = gradient(loss)
            derived = []
            for prm in loss.params:
                block = _explicit_poly(grad_blocks[prm.name], values, mm)
                derived.extend(block)
                by_sympy = sp.Matrix(
                    sp.Add(*[sp.Trace(t).diff(prm) * c for c, t in _trace_args(loss.expr)]).xreplace(subs).doit()
                )
                assert sp.expand(by_sympy - block) == sp.zeros(mm, pp), (loss.name, "sympy diff")
            entrywise = [sp.diff(scalar, w) for w in flat]
            assert all(sp.expand(a - b) == 0 for a, b in zip(derived, entrywise)), (
                loss.name,
                "gradient",
            )
            # Hessian: assembled Kronecker structure against sympy.hessian
            brute = sp.hessian(scalar, flat)
            assembled = _assemble_hessian(loss, values, mm, pp)
            assert (brute - assembled).expand() == sp.zeros(len(flat)), (loss.name, "hessian")


def _trace_args(expr: sp.Expr):
    for arg in sp.Add.make_args(sp.expand(expr)):
        coeff, rest = arg.as_coeff_Mul()
        yield coeff, rest.arg


def verify_kernels(
    module: ModuleType, sizes: Sequence[tuple[int, int]] = ((2, 3), (3, 2), (1, 1)), seed: int = 7
) -> None:
    """Compare the emitted kernels with the exact brute-force values at rational points."""
    import numpy as np

    rng = random.Random(seed)
    for mm, pp in sizes:
        for loss in LOSSES:
            moments = random_moments(rng, pp)
            values, flat = parameter_values(loss, mm, pp)
            point = {w: sp.Rational(rng.randint(-9, 9), rng.randint(1, 5)) for w in flat}
            values.update(moments)
            scalar = sp.expand(sum(c * explicit(prod, values, mm).trace() for c, prod in trace_poly(loss.expr)))
            want_value = float(scalar.xreplace(point))
            want_grad = np.array([float(sp.diff(scalar, w).xreplace(point)) for w in flat])
            want_hess = np.array(sp.hessian(scalar, flat).xreplace(point).tolist(), dtype=float)
            arrays = [np.array(values[prm.name].xreplace(point).tolist(), dtype=float) for prm in loss.params]
            arrays += [np.array(moments[c.name].tolist(), dtype=float) for c in MOMENTS]
            got_value = getattr(module, f"{loss.name}_value")(*arrays)
            got_grad = getattr(module, f"{loss.name}_gradient")(*arrays)
            got_hess = getattr(module, f"{loss.name}_hessian")(*arrays)
            scale = 1.0 + abs(want_value) + np.abs(want_hess).max()
            assert abs(got_value - want_value) <= 1e-12 * scale, (loss.name, "kernel value")
            assert np.abs(got_grad - want_grad).max() <= 1e-12 * scale, (loss.name, "kernel grad")
            assert np.abs(got_hess - want_hess).max() <= 1e-12 * scale, (loss.name, "kernel hess")
            theta = np.concatenate([array.ravel() for array in arrays[: len(loss.params)]])
            data = (tuple(arrays[len(loss.params) :]), module.FAMILIES.index(loss.name))
            assert module.flat_value(theta, data) == got_value, (loss.name, "flat value")
            assert np.array_equal(module.flat_gradient(theta, data), got_grad), (loss.name, "flat grad")
            assert np.array_equal(module.flat_hessian(theta, data), got_hess), (loss.name, "flat hess")
            assert module.BLOCKS[data[1]] == len(loss.params), (loss.name, "blocks")


# ---------------------------------------------------------------------------------
# Code generation
# ---------------------------------------------------------------------------------


def var_name(prod: Product) -> str:
    """Variable name of a product in the generated code, e.g. ``W_C11_WT``."""
    return "_".join(f"{name}T" if t else name for name, t in prod)


def _num(c: sp.Rational) -> str:
    """A coefficient as a float literal."""
    c = sp.Rational(c)
    return f"{int(c.p)}.0" if c.q == 1 else repr(float(c))


def _linear_combination(parts: list[tuple[sp.Rational, str]], code: bool = True) -> str:
    """``sum c * v`` written without unit coefficients and with subtraction; as code
    (float literals) or as text (``2 W C11``)."""
    out = []
    for k, (c, v) in enumerate(parts):
        c = sp.Rational(c)
        mag = abs(c)
        if mag == 1:
            term = v
        elif code:
            term = f"{_num(mag)} * {v}"
        else:
            term = f"{mag} {v}" if mag.q == 1 else f"({mag}) {v}"
        if k == 0:
            out.append(f"-{term}" if c < 0 else term)
        else:
            out.append(f"- {term}" if c < 0 else f"+ {term}")
    return " ".join(out)


def common_left(poly: MatPoly) -> Product:
    """Longest product that starts every product of the polynomial (and leaves each
    of them non-empty)."""
    prods = [prod for _, prod in poly]
    prefix: Product = ()
    for k in range(min(len(q) for q in prods) - 1):
        if all(q[k] == prods[0][k] for q in prods):
            prefix += (prods[0][k],)
        else:
            break
    return prefix


class _Emitter:
    """Straight-line numba code computing each product once, left to right."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.known: list[str] = []

    def product(self, prod: Product) -> str:
        if len(prod) == 1 and not prod[0][1]:
            return prod[0][0]
        name = var_name(prod)
        if name not in self.known:
            if len(prod) == 1:
                self.lines.append(f"    {name} = np.ascontiguousarray({prod[0][0]}.T)")
            else:
                left = self.product(prod[:-1])
                right = self.product(prod[-1:])
                self.lines.append(f"    {name} = _mm({left}, {right})")
            self.known.append(name)
        return name

    def poly(self, poly: MatPoly, target: str) -> str:
        """Assign ``target = sum c prod``, factoring a common left product out."""
        left = common_left(poly) if len(poly) > 1 else ()
        if left:
            inner = self.poly(tuple((c, prod[len(left) :]) for c, prod in poly), f"{target}_inner")
            self.lines.append(f"    {target} = _mm({self.product(left)}, {inner})")
            return target
        expr = _linear_combination([(c, self.product(prod)) for c, prod in poly])
        if len(poly) == 1 and poly[0][0] == 1 and expr == self.product(poly[0][1]):
            return expr
        self.lines.append(f"    {target} = {expr}")
        return target


def _tex_product(prod: Product, dim: str) -> str:
    if not prod:
        return f"I_{dim}"
    return " ".join(f"{name}^T" if t else name for name, t in prod)


def _tex_poly(poly: MatPoly) -> str:
    return _linear_combination([(c, _tex_product(prod, "")) for c, prod in poly], code=False)


def hessian_lines(loss: Loss) -> list[str]:
    """The Hessian blocks as text: ``(M) (x) (K)`` and ``[(X)_ib (Y)_ja]`` terms."""
    lines = []
    for block in hessian(loss):
        for left, right in block.kron:
            lines.append(f"H[{block.row},{block.col}] += ({_tex_product(left, 'm')}) (x) ({_tex_poly(right)})")
        for left, right in block.swap:
            lines.append(f"H[{block.row},{block.col}] += [({_tex_product(left, 'm')})_ib ({_tex_poly(right)})_ja]")
    return lines


def gradient_lines(loss: Loss) -> list[str]:
    return [f"grad_{name} L = {_tex_poly(poly)}" for name, poly in gradient(loss).items()]


def describe(loss: Loss) -> str:
    """Plain-text summary of a loss, its gradient and its Hessian (printed by the script)."""
    lines = [f"{loss.name}: {loss.definition}"]
    lines += [f"  {line}" for line in gradient_lines(loss) + hessian_lines(loss)]
    return "\n".join(lines)


_PRELUDE = '''"""Numba kernels for the closed-form population losses of linear encoders.

For f(x) = W x with W of shape (m, p) and the view moments C11 = E[x1 x1^T],
C12 = E[x1 x2^T], C22 = E[x2 x2^T], Cneg = E[x' x'^T] (C11, C22, Cneg symmetric;
C12 arbitrary):

* ``spectral``:    L(W) = -2 tr(W C12 W^T) + tr(W^T W C11 W^T W Cneg)
* ``ncl_squared``: L(W, W_t) = tr(W C11 W^T) - 2 tr(W C12 W_t^T) + tr(W_t C22 W_t^T)

Each family has ``<family>_value``, ``<family>_gradient`` (flat, row-major, W first then
W_t) and ``<family>_hessian`` (dense, flat x flat, symmetric). Every kernel takes the
parameter blocks followed by ``C11, C12, C22, Cneg`` as C-contiguous float64 arrays.
``flat_value``, ``flat_gradient`` and ``flat_hessian`` take the flat theta and
``data = ((C11, C12, C22, Cneg), family)``, family an index into ``FAMILIES``.
The derivation and its verification are in derivations/closed_form_losses.py and
derivations/closed_form_losses.md.
"""

import numpy as np
from numba import njit


@njit(cache=True)
def _mm(a, b):
    """Matrix product a @ b by explicit loops."""
    n, k = a.shape
    q = b.shape[1]
    out = np.zeros((n, q))
    for i in range(n):
        for l in range(k):
            s = a[i, l]
            for j in range(q):
                out[i, j] += s * b[l, j]
    return out


@njit(cache=True)
def _trace_mm(a, b):
    """tr(a @ b) without forming the product."""
    n, k = a.shape
    s = 0.0
    for i in range(n):
        for l in range(k):
            s += a[i, l] * b[l, i]
    return s
'''


def signature(loss: Loss) -> str:
    return ", ".join([prm.name for prm in loss.params] + [c.name for c in MOMENTS])


def block_offset(block_index: int, index: str) -> str:
    if block_index == 0:
        return f"{index} * p"
    if block_index == 1:
        return f"n_w + {index} * p"
    return f"{block_index} * n_w + {index} * p"


def _emit_value(loss: Loss) -> str:
    em = _Emitter()
    parts = []
    for coeff, prod in trace_poly(loss.expr):
        left = em.product(prod[:-1])
        right = em.product(prod[-1:])
        parts.append((coeff, f"_trace_mm({left}, {right})"))
    lines = [
        "@njit(cache=True)",
        f"def {loss.name}_value({signature(loss)}):",
        f'    """Population loss {loss.definition}."""',
        *em.lines,
        f"    return {_linear_combination(parts)}",
    ]
    return "\n".join(lines) + "\n"


def _emit_gradient(loss: Loss) -> str:
    em = _Emitter()
    grads = gradient(loss)
    count = len(loss.params)
    lines = [
        "@njit(cache=True)",
        f"def {loss.name}_gradient({signature(loss)}):",
        f'    """Flat gradient of the {loss.name} loss (row-major blocks {", ".join(grads)}):',
        "",
        *[f"    {line}" for line in gradient_lines(loss)],
        '    """',
        "    m, p = W.shape",
        "    n_w = m * p",
    ]
    tail = [f"    out = np.empty({count} * n_w)" if count > 1 else "    out = np.empty(n_w)"]
    for k, prm in enumerate(loss.params):
        target = em.poly(grads[prm.name], f"g_{prm.name}")
        lo = "" if k == 0 else ("n_w" if k == 1 else f"{k} * n_w")
        hi = "n_w" if k == 0 else f"{k + 1} * n_w"
        tail.append(f"    out[{lo}:{hi}] = {target}.ravel()")
    lines += em.lines + tail + ["    return out"]
    return "\n".join(lines) + "\n"


def block_terms(em, block, counter: int) -> tuple[list[str], list[str], list[str], list[str], int]:
    """The code of one Hessian block's terms, for an emitter with ``poly`` and ``product``.

    Returns ``(scalars_ij, scalars_ja, summands, diagonal, counter)``: assignments made per
    neuron pair (i, j) and per (j, a), the summands of entry ((i, a), (j, b)), the terms
    present only when i = j (Kronecker terms with an identity factor), and the next free
    counter for temporary names.
    """
    scalars_ij, scalars_ja, summands, diagonal = [], [], [], []
    for left, right in block.kron:
        kname = em.poly(right, f"K{counter}")
        counter += 1
        if left:
            s = f"s{len(scalars_ij)}"
            scalars_ij.append(f"{s} = {em.product(left)}[i, j]")
            summands.append(f"{s} * {kname}[a, b]")
        else:
            diagonal.append(f"{kname}[a, b]")
    for left, right in block.swap:
        yname = em.poly(right, f"Y{counter}")
        counter += 1
        y = f"y{len(scalars_ja)}"
        scalars_ja.append(f"{y} = {yname}[j, a]")
        summands.append(f"{em.product(left)}[i, b] * {y}")
    return scalars_ij, scalars_ja, summands, diagonal, counter


def block_loop_head(block, r0: int, c0: int, scalars_ij: list[str]) -> list[str]:
    """The loops over the neuron pair (i, j) of a Hessian block, with its offsets."""
    return [
        f"    # block ({block.row}, {block.col})",
        "    for i in range(m):",
        f"        r_i = {block_offset(r0, 'i')}",
        "        for j in range(m):",
        f"            c_j = {block_offset(c0, 'j')}",
        *[f"            {s}" for s in scalars_ij],
    ]


def _emit_hessian(loss: Loss) -> str:
    em = _Emitter()
    names = [prm.name for prm in loss.params]
    loops = []
    counter = 0
    for block in hessian(loss):
        r0 = names.index(block.row)
        c0 = names.index(block.col)
        scalars_ij, scalars_ja, summands, diagonal, counter = block_terms(em, block, counter)
        loop = block_loop_head(block, r0, c0, scalars_ij)

        def inner(terms: list[str], depth: int, scalars_ja: list[str] = scalars_ja) -> list[str]:
            pad = " " * depth
            return [
                f"{pad}for a in range(p):",
                *[f"{pad}    {s}" for s in scalars_ja],
                f"{pad}    row = H[r_i + a]",
                f"{pad}    for b in range(p):",
                f"{pad}        row[c_j + b] = {' + '.join(terms) if terms else '0.0'}",
            ]

        if diagonal:
            loop += ["            if i == j:", *inner(diagonal + summands, 16)]
            loop += ["            else:", *inner(summands, 16)]
        else:
            loop += inner(summands, 12)
        loops.append("\n".join(loop))
    lines = [
        "@njit(cache=True)",
        f"def {loss.name}_hessian({signature(loss)}):",
        f'    """Dense Hessian of the {loss.name} loss (flat x flat, symmetric).',
        "",
        "    Entry ((A, i, a), (B, j, b)) couples row i, column a of block A with row j,",
        "    column b of block B; M (x) K is the Kronecker product (entry M_ij K_ab) and",
        "    [X_ib Y_ja] the commutation-type term:",
        "",
        *[f"    {line}" for line in hessian_lines(loss)],
        '    """',
        "    m, p = W.shape",
        "    n_w = m * p",
        f"    H = np.empty(({len(names)} * n_w, {len(names)} * n_w))"
        if len(names) > 1
        else "    H = np.empty((n_w, n_w))",
    ]
    lines += em.lines + loops + ["    return H"]
    return "\n".join(lines) + "\n"


def _emit_flat(kind: str, description: str) -> str:
    """``flat_<kind>(theta, data)``: the loss ``data[1]`` (an index into FAMILIES) of the flat
    row-major theta, with the moments ``data[0]``."""
    lines = [
        "@njit(cache=True)",
        f"def flat_{kind}(theta, data):",
        f'    """{description} of the loss FAMILIES[data[1]] at the flat theta (its blocks row-major),',
        '    with data[0] = (C11, C12, C22, Cneg)."""',
        "    (C11, C12, C22, Cneg), family = data",
        "    p = C11.shape[0]",
    ]
    for index, loss in enumerate(LOSSES):
        names = [prm.name for prm in loss.params]
        body = [f"    m = theta.size // ({len(names)} * p)"]
        body += [f"    {name} = theta[{k} * m * p : {k + 1} * m * p].reshape(m, p)" for k, name in enumerate(names)]
        body.append(f"    return {loss.name}_{kind}({signature(loss)})")
        if index < len(LOSSES) - 1:
            lines.append(f"    if family == {index}:")
            lines += ["    " + line for line in body]
        else:
            lines += body
    return "\n".join(lines) + "\n"


def _emit_families() -> str:
    return (
        "\n".join(
            [
                "#: The losses of this module, in the order of the ``family`` index of the flat kernels.",
                "FAMILIES = (" + ", ".join(repr(loss.name) for loss in LOSSES) + ")",
                "",
                "#: The number of (m, p) parameter blocks of each (W, or W and W_t).",
                "BLOCKS = (" + ", ".join(str(len(loss.params)) for loss in LOSSES) + ")",
            ]
        )
        + "\n"
    )


def generate() -> dict[str, str]:
    """Repository-relative path -> content of every file this derivation emits.

    Pure and deterministic: the same text on every run and for every hash seed.
    """
    chunks = [codegen.header("closed_form_losses") + _PRELUDE, _emit_families()]
    for loss in LOSSES:
        chunks += [_emit_value(loss), _emit_gradient(loss), _emit_hessian(loss)]
    chunks += [
        _emit_flat("value", "L(theta)"),
        _emit_flat("gradient", "nabla L(theta)"),
        _emit_flat("hessian", "nabla^2 L(theta)"),
    ]
    return {GENERATED_PATH: codegen.join_chunks(chunks)}


def check_emitted(files: dict[str, str]) -> None:
    """Import the emitted module from a scratch directory and check it numerically."""
    with tempfile.TemporaryDirectory() as tmp:
        verify_kernels(codegen.import_text(files[GENERATED_PATH], Path(tmp) / "closed_form_kernels_check.py"))


def summary() -> str:
    """What this derivation states (printed by ``python -m derivations --verbose``)."""
    return "\n".join(describe(loss) for loss in LOSSES)
