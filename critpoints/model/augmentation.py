"""Augmentations: two views x1, x2 of one input by random masking (derivations/MODEL.md §2).

Each augmentation maps Sigma = E[x x^T] to the view moments (E[x1 x1^T], E[x1 x2^T],
E[x2 x2^T]), samples masks vectorised, and lists the finite law of its masks restricted
to a set of k coordinates (all that matters when x = z has k nonzeros).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from critpoints import _validation as check


def _binary_patterns(k: int) -> np.ndarray:
    """All 2^k vectors in {0, 1}^k, as a (2^k, k) float array."""
    return np.array(list(itertools.product((0.0, 1.0), repeat=k))).reshape(2**k, k)


@dataclass(frozen=True)
class IndependentMask:
    """x1 = D1 x, x2 = D2 x with D1, D2 independent diagonal masks.

    Each diagonal entry is 0 with the drop probability q and 1 otherwise, no rescaling.
    With keep probability rho = 1 - q:
    E[D A D] = rho^2 A + rho (1 - rho) diag(A) and E[D1 A D2] = rho^2 A.
    """

    q: float
    name = "independent_mask"

    def short_form(self) -> list:
        """The JSON-ready short form ``["independent_mask", q]``."""
        return ["independent_mask", self.q]

    def __post_init__(self) -> None:
        object.__setattr__(self, "q", check.real("q", self.q, low=0.0, high=1.0, high_open=True))

    @property
    def keep(self) -> float:
        """The keep probability rho = 1 - q."""
        return 1.0 - self.q

    def view_moments(self, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(E[x1 x1^T], E[x1 x2^T], E[x2 x2^T]) from Sigma = E[x x^T]."""
        rho = self.keep
        same = rho**2 * sigma + rho * (1.0 - rho) * np.diag(np.diag(sigma))
        return same, rho**2 * sigma, same.copy()

    def sample(self, rng: np.random.Generator, n: int, p: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw n mask pairs as (n, p) arrays of multipliers (D1, D2)."""
        return (rng.random((n, p)) >= self.q).astype(float), (rng.random((n, p)) >= self.q).astype(float)

    def pair_patterns(self, k: int, exact: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The law of (D1, D2) on k coordinates: multipliers (T, k), (T, k) and probabilities (T,)
        (``Fraction`` objects if ``exact``)."""
        single, single_weight = self.single_patterns(k, exact)
        first, second = (
            grid.ravel() for grid in np.meshgrid(np.arange(len(single)), np.arange(len(single)), indexing="ij")
        )
        return single[first], single[second], single_weight[first] * single_weight[second]

    def single_patterns(self, k: int, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The law of one mask on k coordinates: multipliers (T, k) and probabilities (T,).

        ``exact=True``: probabilities as ``Fraction`` objects, with q the dyadic rational its
        float is and rho = 1 - q exactly.
        """
        patterns = _binary_patterns(k)
        kept = patterns.sum(axis=1).astype(int)
        if exact:
            q = Fraction(self.q)
            weights = np.array([(1 - q) ** j * q ** (k - j) for j in kept.tolist()], dtype=object)
        else:
            weights = self.keep**kept * self.q ** (k - kept)
        nonzero = weights > 0
        return patterns[nonzero], weights[nonzero]

    def pair_pattern_count(self, k: int) -> int:
        """Number of (D1, D2) patterns on k coordinates (4^k, or 1 when q = 0)."""
        return 1 if self.q == 0 else 4**k


@dataclass(frozen=True)
class ComplementaryMask:
    """x1 = 2 D x, x2 = 2 (I - D) x with D diagonal Bernoulli(1/2).

    Then E[x1 x1^T] = E[x2 x2^T] = Sigma + diag(Sigma) and E[x1 x2^T] = Sigma - diag(Sigma).
    """

    name = "complementary_mask"

    def short_form(self) -> str:
        """The JSON-ready short form that :func:`parse_augmentation` turns back into this object."""
        return "complementary_mask"

    def view_moments(self, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(E[x1 x1^T], E[x1 x2^T], E[x2 x2^T]) from Sigma = E[x x^T]."""
        diagonal = np.diag(np.diag(sigma))
        return sigma + diagonal, sigma - diagonal, sigma + diagonal

    def sample(self, rng: np.random.Generator, n: int, p: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw n mask pairs as (n, p) arrays of multipliers (2 D, 2 (I - D))."""
        keep = (rng.random((n, p)) < 0.5).astype(float)
        return 2.0 * keep, 2.0 * (1.0 - keep)

    def pair_patterns(self, k: int, exact: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The law of (2D, 2(I - D)) on k coordinates: (T, k), (T, k), probabilities (T,)
        (``Fraction`` objects if ``exact``)."""
        single, weights = self.single_patterns(k, exact)
        return single, 2.0 - single, weights

    def single_patterns(self, k: int, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The law of 2D on k coordinates (2(I - D) has the same law); probabilities 2^-k
        (a ``Fraction`` if ``exact``)."""
        patterns = _binary_patterns(k)
        weight = Fraction(1, 2**k) if exact else 0.5**k
        return 2.0 * patterns, np.full(len(patterns), weight, dtype=object if exact else float)

    def pair_pattern_count(self, k: int) -> int:
        """Number of D patterns on k coordinates, 2^k."""
        return 2**k


Augmentation = IndependentMask | ComplementaryMask


def parse_augmentation(value: object) -> Augmentation:
    """Turn ``("independent_mask", q)``, ``"complementary_mask"`` or an object into an object."""
    if isinstance(value, (IndependentMask, ComplementaryMask)):
        return value
    if isinstance(value, list) and value and isinstance(value[0], str):  # a short form read from JSON
        value = tuple(value)
    name, args = check.short_form(
        "augmentation", value, ("independent_mask", "complementary_mask"), "an augmentation object"
    )
    if name == "independent_mask" and len(args) == 1:
        return IndependentMask(args[0])
    if name == "complementary_mask" and not args:
        return ComplementaryMask()
    if name == "independent_mask" and not args:
        raise ValueError("augmentation='independent_mask' needs a drop probability: ('independent_mask', q)")
    raise ValueError(f"augmentation must be ('independent_mask', q) or 'complementary_mask', got {value!r}")
