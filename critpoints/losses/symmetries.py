"""Symmetries of a setting's loss: the group acting on theta that leaves it invariant.

derivations/MODEL.md §6 lists neuron permutations, sign flips of odd encoders and, for linear
encoders with rotation-invariant losses, W -> Q W with Q in O(m). Additions and refinements,
derived in derivations/symmetries.md:

* Every loss here depends on the representations only through inner products, so O(m)
  acts on (W, W_t, P) as (Q W, Q W_t, Q P Q^T) whenever the encoder is linear (a symrelu
  with a fixed bias of 0 is the identity map, hence linear). A unit-row constraint on W or
  P breaks it; a unit-column constraint does not.
* Cosine losses are invariant under a positive rescaling of each branch (and of P in the
  normalised predictor loss, and of every block in the unnormalised one, whose stationary
  set is invariant). For symrelu the rescaling acts on (w_i, b_i) jointly, so it is a
  symmetry only with a trainable (or zero) bias. A sphere constraint on a block removes it.

* Symmetries of the data (also not in the list of derivations/MODEL.md §6). When M = I, the law of x = z is invariant
  under permutations of the coordinates (every latent family is exchangeable), and under
  coordinate sign flips when the latent law is sign-symmetric (signed one_hot, bernoulli).
  Masks act coordinate-wise, so the view laws are invariant too, and
  L(W R) = L(W) for such a signed permutation R acting on the inputs of every encoder.
  These map a stationary point to one that differs only by relabelling the atoms, with the
  same loss, spectrum and sorted alignments; they are quotiented like the others.
* Entry sign flips (derivations/symmetries.md, item 6): (W_ij, W_t_ij) -> -(W_ij, W_t_ij)
  for each entry independently, the group Z_2^(m x p) (it contains the neuron and the input
  sign flips), for a loss without repulsion and without predictor when M = I, sigma = 0 and
  the latent law is sign-symmetric, and either (a) every input is +-e_j or 0 (a one-sparse
  law): every view is a s e_j, f(a s e_j) = s sigma_b(a W e_j), and the pair term depends
  on sigma_b(a W e_j) and sigma_b(a' W_t e_j) only through inner products, which negating
  component i of both keeps; or (b) the pair term is separable (linear in the inner
  products, ncl_squared) and the expectation is the population one: the loss is a sum over
  neurons, and in the term of neuron i negating column j of its rows is negating x_j, whose
  law is symmetric (that of a finite sample is not). Sign-symmetric codes keep the labels
  invariant too (with positive codes an entry flip can make f constant on the data); with
  O(m) (linear encoders) the two generate the per-column group O(m)^p, whose generators are
  not declared, so nothing is added there.
* Row-entry permutations (derivations/symmetries.md, item 7): the entries of each row of W and
  W_t permuted together by a permutation of that row's own, the group (S_p)^m (it contains the
  input permutations), for a loss without repulsion and without predictor whose pair term is
  separable (ncl_squared) under the population law, when M = I: the loss is a sum over neurons,
  and in the term of neuron i permuting the entries of its rows is permuting the coordinates of
  x, masks and noise, whose joint law is exchangeable (every latent family here is). It keeps
  row norms, not column norms: declared without O(m) and without a unit-column constraint.

Continuous symmetries generate zero modes of the Hessian (or field Jacobian) at stationary
points; ``generators`` returns them as tangent vectors at theta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from critpoints.losses.parameters import ParameterLayout
from critpoints.model.setting import SampleAverage


@dataclass(frozen=True)
class SymmetryGroup:
    """The symmetry group of one setting's loss.

    Attributes
    ----------
    layout : ParameterLayout
    permutable : tuple[tuple[int, ...], ...]
        Classes of neurons that may be permuted among themselves (neurons with equal fixed
        bias; all neurons otherwise). Permutations act on the rows of W, W_t, b, b_t and as
        Pi P Pi^T on P.
    sign_flips : bool
        w_i -> -w_i on the same neuron of every branch (and S P S on P); the encoders are odd.
    rotations : bool
        The continuous O(m) action (Q W, Q W_t, Q P Q^T).
    scalings : tuple[tuple[str, ...], ...]
        Groups of blocks rescaled together by a positive factor, one continuous symmetry each.
    input_permutations : bool
        Coordinate permutations of the inputs, W -> W R (the data law is invariant).
    input_sign_flips : bool
        Coordinate sign flips of the inputs (with a sign-symmetric latent law).
    entry_sign_flips : bool
        (W_ij, W_t_ij) -> -(W_ij, W_t_ij) for each entry (i, j) independently: the group
        Z_2^(m x p) of derivations/symmetries.md item 6 (it contains ``sign_flips`` and
        ``input_sign_flips``). Only without rotations and without a predictor.
    row_entry_permutations : bool
        (W_ij, W_t_ij) -> (W_i,pi_i(j), W_t_i,pi_i(j)) with a permutation pi_i of the inputs for
        each neuron i: the group (S_p)^m of derivations/symmetries.md item 7 (it contains
        ``input_permutations``). Only without rotations, without a predictor and, unless
        ``entry_sign_flips``, without ``input_sign_flips``.
    """

    layout: ParameterLayout
    permutable: tuple
    sign_flips: bool
    rotations: bool
    scalings: tuple
    input_permutations: bool = False
    input_sign_flips: bool = False
    entry_sign_flips: bool = False
    row_entry_permutations: bool = False

    def __post_init__(self) -> None:
        for name in ("entry_sign_flips", "row_entry_permutations"):
            if getattr(self, name) and (self.rotations or "P" in self.layout.shapes):
                raise ValueError(
                    f"{name}=True is allowed only without rotations and without a predictor P "
                    f"(got rotations={self.rotations}, blocks {tuple(self.layout.shapes)})"
                )
        if self.row_entry_permutations and self.input_sign_flips and not self.entry_sign_flips:
            raise ValueError(
                "row_entry_permutations=True with input_sign_flips=True needs entry_sign_flips=True "
                "(row permutations and column signs alone are not quotiented)"
            )

    @property
    def m(self) -> int:
        """Number of neurons."""
        return self.layout.shapes["W"][0]

    @property
    def continuous_dimension(self) -> int:
        """Number of continuous generators (m(m-1)/2 for O(m), one per scaling group)."""
        return (self.m * (self.m - 1) // 2 if self.rotations else 0) + len(self.scalings)

    def describe(self) -> str:
        """Human-readable list, e.g. 'S_4 x Z_2^4 x O(4)' or 'S_4 x Z_2^(4x4) entry signs x inputs: S_4'
        or 'S_4 x Z_2^(4x4) entry signs x (S_4)^4 row entries'.

        Entry sign flips contain the neuron and the input sign flips, and row-entry
        permutations the input permutations, which are then not listed.
        """
        parts = []
        p = self.layout.shapes["W"][1]
        sizes = [len(c) for c in self.permutable if len(c) > 1]
        if sizes:
            parts.append(" x ".join(f"S_{s}" for s in sizes))
        if self.entry_sign_flips:
            parts.append(f"Z_2^({self.m}x{p}) entry signs")
        elif self.sign_flips:
            parts.append(f"Z_2^{self.m}")
        if self.rotations:
            parts.append(f"O({self.m})")
        parts += [f"R+({'+'.join(group)})" for group in self.scalings]
        if self.row_entry_permutations:
            parts.append(f"(S_{p})^{self.m} row entries")
        elif self.input_permutations:
            signed = self.input_sign_flips and not self.entry_sign_flips
            parts.append(f"inputs: {'signed ' if signed else ''}S_{p}")
        return " x ".join(parts) if parts else "trivial"

    # -- actions -------------------------------------------------------------------

    def _act(self, theta: np.ndarray, left: np.ndarray, vector_map) -> np.ndarray:
        """Apply X -> left X to W, W_t; v -> vector_map(v) to b, b_t; P -> left P left^T."""
        blocks = self.layout.unpack(theta)
        for name in ("W", "W_t"):
            if name in blocks:
                blocks[name] = left @ blocks[name]
        for name in ("b", "b_t"):
            if name in blocks:
                blocks[name] = vector_map(blocks[name])
        if "P" in blocks:
            blocks["P"] = left @ blocks["P"] @ left.T
        return self.layout.pack(**blocks)

    def permute(self, theta: np.ndarray, permutation) -> np.ndarray:
        """Relabel neurons: new neuron i is old neuron permutation[i]."""
        permutation = np.asarray(permutation)
        left = np.eye(self.m)[permutation]
        return self._act(theta, left, lambda v: v[permutation])

    def flip(self, theta: np.ndarray, signs) -> np.ndarray:
        """Multiply neuron i of every branch by signs[i] in {-1, +1} (biases unchanged)."""
        return self._act(theta, np.diag(np.asarray(signs, dtype=float)), lambda v: v)

    def rotate(self, theta: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """The O(m) action (Q W, Q W_t, Q P Q^T); biases untouched (rotations need a linear encoder)."""
        return self._act(theta, np.asarray(rotation, dtype=float), lambda v: v)

    def act_on_inputs(self, theta: np.ndarray, permutation, signs) -> np.ndarray:
        """W -> W R^T on every encoder, R the signed permutation x -> signs * x[permutation]."""
        blocks = self.layout.unpack(theta)
        for name in ("W", "W_t"):
            if name in blocks:
                blocks[name] = blocks[name][:, np.asarray(permutation)] * np.asarray(signs, dtype=float)
        return self.layout.pack(**blocks)

    def flip_entries(self, theta: np.ndarray, signs) -> np.ndarray:
        """Multiply entry (i, j) of W and of W_t by signs[i, j] in {-1, +1} (an (m, p) array)."""
        blocks = self.layout.unpack(theta)
        for name in ("W", "W_t"):
            if name in blocks:
                blocks[name] = blocks[name] * np.asarray(signs, dtype=float)
        return self.layout.pack(**blocks)

    def permute_row_entries(self, theta: np.ndarray, permutations) -> np.ndarray:
        """Permute the entries of row i of W and of W_t by ``permutations[i]`` (an (m, p) array
        of permutations): new entry (i, j) is old entry (i, permutations[i, j])."""
        permutations = np.asarray(permutations)
        blocks = self.layout.unpack(theta)
        for name in ("W", "W_t"):
            if name in blocks:
                blocks[name] = np.take_along_axis(blocks[name], permutations, axis=1)
        return self.layout.pack(**blocks)

    def scale(self, theta: np.ndarray, group: tuple[str, ...], factor: float) -> np.ndarray:
        """Multiply the blocks of one scaling group by ``factor`` > 0."""
        theta = np.array(theta, dtype=float)
        for name in group:
            theta[self.layout.slice(name)] *= factor
        return theta

    def generators(self, theta: np.ndarray) -> np.ndarray:
        """Tangent vectors of the continuous symmetries at theta, as columns of an (n, k) array.

        For O(m): d/dt of the action of exp(t A) for each elementary skew matrix
        A = e_i e_j^T - e_j e_i^T (i < j): (A W, A W_t, A P - P A). For a scaling group:
        the blocks of the group themselves, zero elsewhere.
        """
        theta = self.layout.check(theta)
        m = self.m
        count = m * (m - 1) // 2 if self.rotations else 0
        columns = np.zeros((count + len(self.scalings), self.layout.size))
        for name in ("W", "W_t", "P"):
            if not count or name not in self.layout.shapes:
                continue
            block = theta[self.layout.slice(name)]
            tangent = rotation_generators(np.ascontiguousarray(block), m, 1).T.reshape(count, m, -1)  # A X
            if name == "P":  # - P A: column j loses column i, column i gains column j
                first, second = np.triu_indices(m, 1)
                P = block.reshape(m, m)
                tangent[np.arange(count), :, second] -= P[:, first].T
                tangent[np.arange(count), :, first] += P[:, second].T
            columns[:count, self.layout.slice(name)] = tangent.reshape(count, -1)
        for index, group in enumerate(self.scalings, start=count):
            for name in group:
                columns[index, self.layout.slice(name)] = theta[self.layout.slice(name)]
        return columns.T


@njit(cache=True)
def rotation_generators(theta: np.ndarray, m: int, blocks: int) -> np.ndarray:
    """The O(m) generators at a ``theta`` made of ``blocks`` consecutive (m, p) weight blocks.

    Column k, for the k-th pair i < j in row-major order, is the tangent of
    t -> exp(t A) X on every block X, A = e_i e_j^T - e_j e_i^T: row i of the tangent is row
    j of X, row j is minus row i. :meth:`SymmetryGroup.generators` builds its O(m) columns
    from it; compiled callers (critpoints.solver.compiled) call it directly.
    """
    size = theta.size // blocks
    p = size // m
    columns = np.zeros((theta.size, m * (m - 1) // 2))
    column = 0
    for i in range(m):
        for j in range(i + 1, m):
            for block in range(blocks):
                row_i = block * size + i * p
                row_j = block * size + j * p
                for a in range(p):
                    columns[row_i + a, column] = theta[row_j + a]
                    columns[row_j + a, column] = -theta[row_i + a]
            column += 1
    return columns


def setting_symmetries(setting, layout: ParameterLayout) -> SymmetryGroup:
    """The symmetry group of a setting's loss (see the module docstring for the rules)."""
    fixed_bias = setting.bias if isinstance(setting.bias, np.ndarray) else None
    permutable: tuple[tuple[Any, ...], ...]  # neuron indices (numpy integers for a fixed bias)
    if fixed_bias is None:
        permutable = (tuple(range(setting.m)),)
    else:
        permutable = tuple(tuple(np.flatnonzero(fixed_bias == value)) for value in np.unique(fixed_bias))
    linear_action = setting.encoder == "linear" or (fixed_bias is not None and not np.any(fixed_bias))
    loss = setting.loss
    predictor_rows = loss.is_field and loss.predictor_constraint == "unit_rows"
    rotations = linear_action and setting.constraint != "unit_rows" and not predictor_rows

    scale_free = setting.constraint == "none"
    scalable_encoder = linear_action or setting.trainable_bias
    branches = [("W", "b") if setting.trainable_bias else ("W",)]
    if loss.two_encoders:
        branches.append(("W_t", "b_t") if setting.trainable_bias else ("W_t",))
    scalings = []
    # cosine losses are scale-invariant; the unnormalised predictor field is scale-equivariant
    if loss.family.scale_invariant and scale_free and scalable_encoder:
        scalings += branches
    if loss.is_field and not predictor_rows:
        scalings.append(("P",))
    identity_data = setting.dictionary.is_identity(setting.p, setting.d)
    latent = setting.latent
    sign_symmetric = latent.name == "bernoulli" or (latent.name == "one_hot" and not latent.positive)
    # a pair loss (no repulsion, no predictor) on noise-free data whose law is invariant under each
    # coordinate's sign, and either one-sparse inputs (every view pair is invariant) or a term that
    # is a sum over neurons under the population law (a finite sample is not sign-symmetric)
    pair_loss = loss.family.repulsion == "none" and not loss.is_field
    signed_data = identity_data and sign_symmetric and setting.noise == 0
    one_sparse = max(latent.support_counts(setting.d)) <= 1
    population = not isinstance(setting.expectation, SampleAverage)
    separable = loss.family.pair_term(loss.normalize).separable and population
    entry_sign_flips = pair_loss and signed_data and (one_sparse or separable) and not rotations
    input_sign_flips = identity_data and sign_symmetric
    # a separable pair loss under the population law of exchangeable data: a sum over neurons, each
    # invariant under permuting its own row's entries (not quotiented together with column signs alone)
    row_entry_permutations = (
        pair_loss
        and separable
        and identity_data
        and not rotations
        and setting.constraint != "unit_columns"
        and (entry_sign_flips or not input_sign_flips)
    )
    return SymmetryGroup(
        layout=layout,
        permutable=permutable,
        sign_flips=True,
        rotations=rotations,
        scalings=tuple(scalings),
        input_permutations=identity_data,
        input_sign_flips=input_sign_flips,
        entry_sign_flips=entry_sign_flips,
        row_entry_permutations=row_entry_permutations,
    )
