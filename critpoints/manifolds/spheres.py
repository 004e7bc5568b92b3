"""Riemannian geometry of a product of unit spheres and a Euclidean factor.

Under a weight constraint (derivations/MODEL.md §3) some groups of coordinates of the flat
parameter vector ``theta`` in R^n must have unit Euclidean norm, the others are free.
The admissible set is the embedded submanifold

    M = S^{k_1 - 1} x ... x S^{k_S - 1} x R^{n_free},    dim M = n - S,

where sphere ``s`` owns the coordinates ``I_s`` (``k_s = |I_s|``) and the free
coordinates are those in no group. Stationarity, the Hessian and its spectrum
(derivations/MODEL.md §6) are the Riemannian ones on M with the metric induced by R^n:

* tangent space: ``T_x M = {v : x_s . v_s = 0 for every sphere s}``, with orthogonal
  projector ``P = I - sum_s x_s x_s^T`` (``x_s`` embedded in R^n);
* Riemannian gradient: ``grad f(x) = P g`` with ``g`` the Euclidean gradient;
* Riemannian Hessian (the Weingarten-map form for embedded submanifolds, Absil, Mahony
  and Trumpf, "An extrinsic look at the Riemannian Hessian", 2013; Absil, Mahony and
  Sepulchre, "Optimization Algorithms on Matrix Manifolds", 2008, section 5.5):

      Hess f(x)[v] = P (H v) - sum_s (x_s . g_s) v_s,       v in T_x M,

  with ``H`` the Euclidean Hessian. The second term is the curvature of the spheres.

For a vector field that is not a gradient (a stop-gradient field ``F`` with a
non-symmetric Jacobian ``J``) the same construction gives the covariant derivative of
the tangent field ``P F``:

    nabla_v (P F) = P (J v) - sum_s (x_s . F_s) v_s,        v in T_x M,

which at a zero of ``P F`` is the linearisation of the flow ``d theta/dt = P F(theta)``
on M. With ``F = grad f`` it is the Riemannian Hessian.

Every method expects ``theta`` on M (use :meth:`SphereProduct.project` first); the formulas
use the sphere blocks of ``theta`` as given, so a point off M by rounding errors gives
results off by the same relative amount.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from critpoints import _validation as check

__all__ = ["SphereBlock", "SphereProduct"]

_AXES = ("rows", "columns")


class SphereBlock(NamedTuple):
    """A matrix block of ``theta`` whose rows or columns lie on unit spheres.

    Attributes
    ----------
    offset : int
        Index in ``theta`` of the block's first entry.
    shape : tuple of int
        ``(r, c)``; the block occupies ``theta[offset : offset + r * c]`` in row-major
        order, i.e. entry ``(i, j)`` is ``theta[offset + i * c + j]``.
    axis : {"rows", "columns"}
        ``"rows"``: each of the ``r`` rows (length ``c``) has unit norm (``unit_rows``);
        ``"columns"``: each of the ``c`` columns (length ``r``) has unit norm
        (``unit_columns``).
    """

    offset: int
    shape: tuple[int, int]
    axis: str


class _Bucket(NamedTuple):
    """All spheres of one size ``k``, stacked so that they are processed together."""

    index: np.ndarray  # type: ignore[assignment]  # (G, k): coordinates of each sphere in theta (shadows tuple.index)
    columns: np.ndarray  # (G, k - 1): columns of each sphere in the tangent basis


class _Reflectors(NamedTuple):
    """Householder vectors ``u`` (``Q = I - beta u u^T``) of one bucket's spheres at a point."""

    bucket: _Bucket
    u: np.ndarray  # (G, k)
    beta: np.ndarray  # (G,): 2 / (u . u)
    keep: np.ndarray  # (G, k - 1): columns of Q that span the tangent space, in order


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


class SphereProduct:
    """Product of unit spheres on disjoint coordinate groups of R^n, times R^{n_free}.

    Parameters
    ----------
    n : int
        Length of the parameter vector ``theta``.
    spheres : sequence of 1-D integer arrays
        Disjoint, non-empty groups of indices into ``theta``, each in ``[0, n)``. Group
        ``s`` with ``k_s`` indices is the unit sphere ``S^{k_s - 1}``:
        ``sum_{i in I_s} theta_i^2 = 1``. A group of one index is ``S^0 = {-1, +1}``
        (dimension 0). Coordinates in no group are free. The order of the groups and of
        the indices within a group fixes the ordering of :meth:`tangent_basis`.

    Notes
    -----
    The manifold is ``M = prod_s S^{k_s - 1} x R^{n_free}`` with the metric induced by
    R^n; ``dim M = n - S``. Instances are immutable and hashable; the index arrays they
    expose are read-only.

    Per-point methods are vectorised over spheres of equal size; the only Python loop
    is over the distinct sphere sizes.
    """

    __slots__ = ("_n", "_spheres", "_free", "_buckets", "_dim")
    _n: int
    _spheres: tuple[np.ndarray, ...]
    _free: np.ndarray
    _buckets: tuple[_Bucket, ...]
    _dim: int

    def __init__(self, n: int, spheres: Sequence[ArrayLike]) -> None:
        n = check.integer("n", n, minimum=0)
        groups: list[np.ndarray] = []
        for position, group in enumerate(spheres):
            groups.append(_validate_group(f"spheres[{position}]", group, n))
        owner = np.full(n, -1, dtype=np.intp)
        for position, group in enumerate(groups):
            taken = owner[group] >= 0
            if np.any(taken):
                duplicate = int(group[np.argmax(taken)])
                raise ValueError(
                    f"spheres must be disjoint index groups: index {duplicate} appears in "
                    f"spheres[{int(owner[duplicate])}] and spheres[{position}]={group.tolist()}"
                )
            owner[group] = position

        free = np.flatnonzero(owner < 0).astype(np.intp)
        sizes = np.array([group.size for group in groups], dtype=np.intp)
        column_start = free.size + np.concatenate(([0], np.cumsum(sizes - 1)[:-1])).astype(np.intp)
        buckets = []
        for size in np.unique(sizes):
            members = np.flatnonzero(sizes == size)
            index = np.stack([groups[s] for s in members])
            columns = column_start[members, None] + np.arange(size - 1, dtype=np.intp)
            buckets.append(_Bucket(_read_only(index), _read_only(columns)))

        object.__setattr__(self, "_n", n)
        object.__setattr__(self, "_spheres", tuple(_read_only(group) for group in groups))
        object.__setattr__(self, "_free", _read_only(free))
        object.__setattr__(self, "_buckets", tuple(buckets))
        object.__setattr__(self, "_dim", n - len(groups))

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_blocks(cls, n: int, blocks: Iterable[SphereBlock | tuple[int, tuple[int, int], str]]) -> SphereProduct:
        """Build the sphere groups of row- or column-normalised matrix blocks.

        Parameters
        ----------
        n : int
            Length of ``theta``.
        blocks : iterable of SphereBlock or ``(offset, (r, c), axis)``
            Each block is an ``r x c`` matrix stored row-major at ``theta[offset:]``.
            ``axis="rows"`` makes each row a sphere ``S^{c-1}`` (``r`` spheres, in row
            order); ``axis="columns"`` makes each column a sphere ``S^{r-1}`` (``c``
            spheres, in column order). Blocks must not overlap.

        Returns
        -------
        SphereProduct
            Spheres listed block by block, in the order given.
        """
        n = check.integer("n", n, minimum=0)
        spheres: list[np.ndarray] = []
        extents: list[tuple[int, int, int]] = []
        for position, block in enumerate(blocks):
            name = f"blocks[{position}]"
            try:
                offset, shape, axis = block
                rows, cols = shape
            except (TypeError, ValueError) as error:
                raise ValueError(
                    f"{name} must be (offset, (r, c), axis) with axis in {_AXES}, got {block!r}"
                ) from error
            offset = check.integer(f"{name}.offset", offset, minimum=0)
            rows = check.integer(f"{name}.shape[0]", rows, minimum=1)
            cols = check.integer(f"{name}.shape[1]", cols, minimum=1)
            axis = check.choice(f"{name}.axis", axis, _AXES)
            end = offset + rows * cols
            if end > n:
                raise ValueError(
                    f"{name}={tuple(block)!r} occupies theta[{offset}:{end}], beyond n={n}; "
                    f"a block must satisfy offset + r * c <= n"
                )
            for other, (start, stop, _) in enumerate(extents):
                if offset < stop and start < end:
                    raise ValueError(
                        f"{name}={tuple(block)!r} occupies theta[{offset}:{end}], which overlaps "
                        f"blocks[{other}] at theta[{start}:{stop}]; blocks must be disjoint"
                    )
            extents.append((offset, end, position))
            grid = offset + np.arange(rows * cols, dtype=np.intp).reshape(rows, cols)
            spheres.extend(grid if axis == "rows" else grid.T)
        return cls(n, spheres)

    @classmethod
    def euclidean(cls, n: int) -> SphereProduct:
        """R^n with no sphere: every Riemannian quantity is the Euclidean one.

        The tangent projector and :meth:`tangent_basis` are the identity, the retraction
        is ``theta + v``, the Riemannian gradient and Hessian are the Euclidean ones.
        """
        return cls(n, [])

    # ------------------------------------------------------------------ attributes

    @property
    def n(self) -> int:
        """Length of the ambient parameter vector ``theta``."""
        return self._n

    @property
    def dim(self) -> int:
        """Manifold dimension ``n - S`` (S the number of spheres)."""
        return self._dim

    @property
    def spheres(self) -> tuple[np.ndarray, ...]:
        """The sphere index groups (read-only arrays), in construction order."""
        return self._spheres

    @property
    def free(self) -> np.ndarray:
        """Sorted indices of the free (Euclidean) coordinates (read-only)."""
        return self._free

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[type, tuple[int, list[np.ndarray]]]:
        return (type(self), (self._n, [np.array(group) for group in self._spheres]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SphereProduct):
            return NotImplemented
        return (
            self._n == other._n
            and len(self._spheres) == len(other._spheres)
            and all(np.array_equal(a, b) for a, b in zip(self._spheres, other._spheres))
        )

    def __hash__(self) -> int:
        return hash((self._n, tuple(tuple(group.tolist()) for group in self._spheres)))

    def __repr__(self) -> str:
        sizes = [group.size for group in self._spheres]
        return f"{type(self).__name__}(n={self._n}, dim={self._dim}, sphere_sizes={sizes}, n_free={self._free.size})"

    # ------------------------------------------------------------------ points

    def project(self, theta: ArrayLike) -> np.ndarray:
        """Nearest point of M: ``x_s -> x_s / ||x_s||`` on each sphere, free part unchanged.

        Raises
        ------
        ValueError
            If some sphere block of ``theta`` is zero (no nearest point).
        """
        return self._normalise(self._vector("theta", theta, copy=True), "theta")

    def is_on_manifold(self, theta: ArrayLike, tol: float = 1e-10) -> bool:
        """Whether ``| ||x_s|| - 1 | <= tol`` for every sphere and ``theta`` is finite."""
        theta = self._vector("theta", theta)
        if not np.all(np.isfinite(theta)):
            return False
        return all(np.all(np.abs(np.linalg.norm(theta[b.index], axis=1) - 1.0) <= tol) for b in self._buckets)

    def retract(self, theta: ArrayLike, v: ArrayLike) -> np.ndarray:
        """Metric-projection retraction ``R_x(v)``.

        ``R_x(v)_s = (x_s + v_s) / ||x_s + v_s||`` on each sphere, ``x + v`` on the free
        coordinates. For tangent ``v`` it is a second-order retraction: the curve
        ``c(t) = R_x(t v)`` has ``c'(0) = v`` and normal acceleration
        ``c''(0)_s = -||v_s||^2 x_s``, so ``d^2/dt^2 f(c(t))|_0 = <v, Hess f(x) v>``.

        Raises
        ------
        ValueError
            If ``x_s + v_s = 0`` on some sphere.
        """
        theta = self._vector("theta", theta)
        v = self._vector("v", v)
        return self._normalise(theta + v, "theta + v")

    # ------------------------------------------------------------------ tangent space

    def tangent_project(self, theta: ArrayLike, v: ArrayLike) -> np.ndarray:
        """Orthogonal projection ``P v`` onto ``T_x M``: ``v_s - (x_s . v_s) x_s`` per sphere.

        Free coordinates are unchanged.
        """
        return self._project_leading(self._vector("theta", theta), self._vector("v", v))

    def tangent_projector(self, theta: ArrayLike) -> np.ndarray:
        """The ``n x n`` matrix ``P = I - sum_s x_s x_s^T`` (block diagonal, symmetric)."""
        return self._project_leading(self._vector("theta", theta), np.eye(self._n))

    def tangent_basis(self, theta: ArrayLike) -> np.ndarray:
        """An ``n x dim`` matrix ``B`` with orthonormal columns spanning ``T_x M``.

        Returns
        -------
        ndarray, shape (n, dim)
            ``B^T B = I``, ``B B^T = P``. The first columns are the unit vectors of the
            free coordinates in increasing order; then each sphere, in construction
            order, contributes ``k_s - 1`` columns supported on its own coordinates.

        Notes
        -----
        For a sphere block ``x`` (``||x|| = r``) let ``j`` be the first index of largest
        ``|x_j|`` and ``sigma = sign(x_j)`` (``+1`` if zero). The Householder reflector
        ``Q = I - 2 u u^T / (u . u)`` with ``u = x + sigma r e_j`` is orthogonal and
        symmetric and maps ``x`` to ``-sigma r e_j``; its columns other than ``j`` are
        therefore an orthonormal basis of ``x^perp``, exact up to rounding even when
        ``||x|| != 1``. ``u . u = 2 r (r + |x_j|) >= 2 r^2`` keeps the construction stable.
        The basis is a deterministic function of ``theta`` (it jumps where the index of
        the largest entry changes), which is all a spectrum computation needs.
        """
        theta = self._vector("theta", theta)
        basis = np.zeros((self._n, self._dim))
        basis[self._free, np.arange(self._free.size)] = 1.0
        for reflector in self._reflectors(theta):
            groups, size = reflector.u.shape
            cols = np.arange(size - 1)
            u_kept = np.take_along_axis(reflector.u, reflector.keep, axis=1)
            block = -reflector.beta[:, None, None] * reflector.u[:, :, None] * u_kept[:, None, :]
            block[np.arange(groups)[:, None], reflector.keep, cols[None, :]] += 1.0
            bucket = reflector.bucket
            basis[bucket.index[:, :, None], bucket.columns[:, None, :]] = block
        return basis

    # ------------------------------------------------------------------ gradient systems

    def riemannian_gradient(self, theta: ArrayLike, egrad: ArrayLike) -> np.ndarray:
        """Riemannian gradient ``P g`` of ``f`` restricted to M, from its Euclidean gradient ``g``.

        It is the unique tangent vector with ``<grad f, v> = Df(x)[v]`` for all tangent ``v``.
        """
        return self._project_leading(self._vector("theta", theta), self._vector("egrad", egrad))

    def riemannian_hessian(self, theta: ArrayLike, egrad: ArrayLike, ehess: ArrayLike) -> np.ndarray:
        """Riemannian Hessian as an ``n x n`` matrix acting on ambient coordinates.

        Parameters
        ----------
        theta : array, shape (n,)
            Point on M.
        egrad : array, shape (n,)
            Euclidean gradient ``g`` of ``f`` at ``theta``.
        ehess : array, shape (n, n)
            Euclidean Hessian ``H`` of ``f`` at ``theta``.

        Returns
        -------
        ndarray, shape (n, n)
            ``P (H - D) P`` with ``D = sum_s (x_s . g_s) I_s`` (``I_s`` the identity on
            sphere ``s``'s coordinates, zero elsewhere). Restricted to ``T_x M`` it is
            ``Hess f(x)[v] = P H v - sum_s (x_s . g_s) v_s``; it maps normal vectors to 0,
            so its spectrum is the Riemannian one plus ``S`` zeros. Symmetric if ``H`` is.
        """
        theta, egrad, ehess = self._gradient_system(theta, egrad, ehess, ("egrad", "ehess"))
        return self._ambient_form(theta, egrad, ehess)

    def riemannian_hessian_in_basis(self, theta: ArrayLike, egrad: ArrayLike, ehess: ArrayLike) -> np.ndarray:
        """Riemannian Hessian in the orthonormal basis ``B`` of :meth:`tangent_basis`.

        Returns
        -------
        ndarray, shape (dim, dim)
            ``B^T (H - D) B`` with ``D = sum_s (x_s . g_s) I_s``, symmetrised
            (``(A + A^T) / 2``, which only removes rounding when ``H`` is symmetric). Its
            eigenvalues are the spectrum of the Riemannian Hessian; they do not depend on
            the choice of orthonormal basis.
        """
        theta, egrad, ehess = self._gradient_system(theta, egrad, ehess, ("egrad", "ehess"))
        form = self._basis_form(theta, egrad, ehess)
        return 0.5 * (form + form.T)

    # ------------------------------------------------------------------ general vector fields

    def riemannian_field(self, theta: ArrayLike, field: ArrayLike) -> np.ndarray:
        """Tangent part ``P F`` of an ambient vector field ``F`` (e.g. a stop-gradient field).

        The flow ``d theta/dt = P F(theta)`` stays on M; its rest points are the zeros
        of ``P F``.
        """
        return self._project_leading(self._vector("theta", theta), self._vector("field", field))

    def riemannian_jacobian(self, theta: ArrayLike, field: ArrayLike, ejac: ArrayLike) -> np.ndarray:
        """Covariant derivative of the tangent field ``P F`` as an ``n x n`` matrix.

        Parameters
        ----------
        theta : array, shape (n,)
            Point on M.
        field : array, shape (n,)
            Ambient field ``F(theta)``.
        ejac : array, shape (n, n)
            Euclidean Jacobian ``J = DF(theta)`` (``J[i, j] = dF_i / dtheta_j``), not
            necessarily symmetric.

        Returns
        -------
        ndarray, shape (n, n)
            ``P (J - D) P`` with ``D = sum_s (x_s . F_s) I_s``.

        Notes
        -----
        The Levi-Civita connection of a Riemannian submanifold of R^n is the projected
        ambient derivative, ``nabla_v X = P DX[v]``. For ``X = P F`` on one sphere,
        ``P = I - x x^T`` and ``DP[v] = -(v x^T + x v^T)``, so

            D(P F)[v] = -(x . F) v - (v . F) x + P J v,

        and projecting (``P v = v`` for tangent ``v``, ``P x = 0``) gives
        ``nabla_v (P F) = P J v - (x . F) v``: the curvature term of the Riemannian
        Hessian, to which this reduces when ``F = grad f`` and ``J`` is the Hessian. At a
        zero of ``P F`` the covariant derivative does not depend on the connection: it
        is the linearisation of ``d theta/dt = P F(theta)`` on M.
        """
        theta, field, ejac = self._gradient_system(theta, field, ejac, ("field", "ejac"))
        return self._ambient_form(theta, field, ejac)

    def riemannian_jacobian_in_basis(self, theta: ArrayLike, field: ArrayLike, ejac: ArrayLike) -> np.ndarray:
        """Covariant derivative of ``P F`` in the basis ``B`` of :meth:`tangent_basis`.

        Returns
        -------
        ndarray, shape (dim, dim)
            ``B^T (J - D) B`` with ``D = sum_s (x_s . F_s) I_s`` (not symmetrised). At a
            zero of ``P F`` its eigenvalues classify the rest point (stable when all real
            parts are negative).
        """
        theta, field, ejac = self._gradient_system(theta, field, ejac, ("field", "ejac"))
        return self._basis_form(theta, field, ejac)

    # ------------------------------------------------------------------ internals

    def _vector(self, name: str, value: ArrayLike, *, copy: bool = False) -> np.ndarray:
        array = np.array(value, dtype=np.float64) if copy else np.asarray(value, dtype=np.float64)
        if array.shape != (self._n,):
            raise ValueError(f"{name} must have shape ({self._n},) for n={self._n}, got shape {array.shape}")
        return array

    def _matrix(self, name: str, value: ArrayLike) -> np.ndarray:
        array = np.asarray(value, dtype=np.float64)
        if array.shape != (self._n, self._n):
            raise ValueError(f"{name} must have shape ({self._n}, {self._n}) for n={self._n}, got shape {array.shape}")
        return array

    def _gradient_system(
        self, theta: ArrayLike, vector: ArrayLike, matrix: ArrayLike, names: tuple[str, str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            self._vector("theta", theta),
            self._vector(names[0], vector),
            self._matrix(names[1], matrix),
        )

    def _zero_block_message(self, name: str, norms: np.ndarray, bucket: _Bucket) -> str:
        group = bucket.index[int(np.argmin(norms))]
        return (
            f"{name} has a zero block on the sphere with indices {group.tolist()}; "
            "a sphere block needs a nonzero norm to be normalised"
        )

    def _normalise(self, y: np.ndarray, name: str) -> np.ndarray:
        """Divide each sphere block of ``y`` (modified in place) by its norm."""
        for bucket in self._buckets:
            block = y[bucket.index]
            norms = np.linalg.norm(block, axis=1)
            if np.any(norms == 0.0):
                raise ValueError(self._zero_block_message(name, norms, bucket))
            y[bucket.index] = block / norms[:, None]
        return y

    def _project_leading(self, theta: np.ndarray, a: np.ndarray) -> np.ndarray:
        """``P a`` for ``a`` of shape ``(n, ...)`` (the projector acts on the first axis)."""
        out = np.array(a, dtype=np.float64, copy=True)
        flat = out.reshape(self._n, -1)
        for bucket in self._buckets:
            x = theta[bucket.index]  # (G, k)
            block = flat[bucket.index]  # (G, k, m)
            coefficient = np.matmul(x[:, None, :], block)  # (G, 1, m): x_s . a_s
            block -= x[:, :, None] * coefficient
            flat[bucket.index] = block
        return out

    def _curvature_shift(self, theta: np.ndarray, vector: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """``matrix - sum_s (x_s . vector_s) I_s`` as a new array."""
        shift = np.zeros(self._n)
        for bucket in self._buckets:
            dots = np.einsum("gk,gk->g", theta[bucket.index], vector[bucket.index])
            shift[bucket.index] = dots[:, None]
        shifted = np.array(matrix, dtype=np.float64, copy=True)
        shifted[np.diag_indices(self._n)] -= shift
        return shifted

    def _ambient_form(self, theta: np.ndarray, vector: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        if not self._buckets:  # R^n: P = I and no curvature term
            return np.array(matrix, dtype=np.float64)
        shifted = self._curvature_shift(theta, vector, matrix)
        # P A P = (P (P A)^T)^T because P is symmetric; the copy to C order keeps the
        # row gathers of the second projection contiguous.
        left = np.ascontiguousarray(self._project_leading(theta, shifted).T)
        return np.ascontiguousarray(self._project_leading(theta, left).T)

    def _reflectors(self, theta: np.ndarray) -> list[_Reflectors]:
        """Householder reflectors of the spheres with ``k >= 2`` (see :meth:`tangent_basis`)."""
        reflectors = []
        for bucket in self._buckets:
            groups, size = bucket.index.shape
            if size == 1:
                continue
            x = theta[bucket.index]
            radius = np.linalg.norm(x, axis=1)
            if np.any(radius == 0.0):
                raise ValueError(self._zero_block_message("theta", radius, bucket))
            rows = np.arange(groups)
            j = np.argmax(np.abs(x), axis=1)
            sigma = np.where(x[rows, j] >= 0.0, 1.0, -1.0)
            u = x.copy()
            u[rows, j] += sigma * radius
            beta = 2.0 / np.einsum("gk,gk->g", u, u)
            # Columns of Q other than j: keep[g, c] = c for c < j_g and c + 1 otherwise.
            cols = np.arange(size - 1)
            keep = cols[None, :] + (cols[None, :] >= j[:, None])
            reflectors.append(_Reflectors(bucket, u, beta, keep))
        return reflectors

    def _reflect_leading(self, reflectors: list[_Reflectors], a: np.ndarray) -> np.ndarray:
        """``Q a`` for ``a`` of shape ``(n, m)``, ``Q`` the block-diagonal reflector."""
        out = np.array(a, dtype=np.float64, copy=True)
        for reflector in reflectors:
            index = reflector.bucket.index
            block = out[index]  # (G, k, m)
            projection = np.matmul(reflector.u[:, None, :], block)  # (G, 1, m)
            block -= (reflector.beta[:, None] * reflector.u)[:, :, None] * projection
            out[index] = block
        return out

    def _basis_form(self, theta: np.ndarray, vector: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """``B^T A B`` with ``A = matrix - sum_s (x_s . vector_s) I_s``, in O(n^2) work.

        ``B = Q E`` where ``Q`` is the block-diagonal reflector and ``E`` selects, for each
        basis column, one ambient coordinate (free coordinates and each sphere's kept
        indices), so ``B^T A B = (Q A Q)[sel, sel]``.
        """
        reflectors = self._reflectors(theta)
        selected = np.empty(self._dim, dtype=np.intp)
        selected[: self._free.size] = self._free
        for reflector in reflectors:
            kept = np.take_along_axis(reflector.bucket.index, reflector.keep, axis=1)
            selected[reflector.bucket.columns] = kept
        shifted = self._curvature_shift(theta, vector, matrix)
        # (E^T Q A)^T = A^T Q E; then E^T Q (A^T Q E) = (E^T Q A Q E)^T, as Q is symmetric.
        left = np.ascontiguousarray(self._reflect_leading(reflectors, shifted)[selected].T)
        return np.ascontiguousarray(self._reflect_leading(reflectors, left)[selected].T)


def _validate_group(name: str, group: ArrayLike, n: int) -> np.ndarray:
    """Return one sphere's index group as an intp array, or raise naming the problem."""
    array = np.asarray(group)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D array of indices in [0, {n}), got {group!r} (shape {array.shape})"
        )
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer indices in [0, {n}), got {group!r} (dtype {array.dtype})")
    bad = (array < 0) | (array >= n)
    if np.any(bad):
        raise ValueError(
            f"{name} has index {int(array[np.argmax(bad)])} outside [0, {n}) for n={n}: {name}={array.tolist()}"
        )
    values, counts = np.unique(array, return_counts=True)
    if np.any(counts > 1):
        raise ValueError(
            f"spheres must be disjoint index groups: index {int(values[np.argmax(counts > 1)])} "
            f"appears twice in {name}={array.tolist()}"
        )
    return array.astype(np.intp)
