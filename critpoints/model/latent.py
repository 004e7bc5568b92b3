"""Latent codes z in {-1, 0, +1}^d of the sparse-coding model (derivations/MODEL.md §1).

Each family knows its exact second moment Lambda = E[z z^T], samples vectorised from a
numpy Generator, and lists its finite support with probabilities.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from critpoints import _validation as check


def _uniform_weights(count: int, exact: bool) -> np.ndarray:
    """``count`` equal probabilities 1 / count, as floats or as ``Fraction`` objects."""
    if exact:
        return np.full(count, Fraction(1, count), dtype=object)
    return np.full(count, 1.0 / count)


@dataclass(frozen=True)
class OneHot:
    """z = s e_j with j uniform on 1..d and s = +-1 with probability 1/2 (s = +1 if ``positive``).

    Lambda = I / d for both sign conventions.
    """

    positive: bool = False
    name = "one_hot"

    def short_form(self) -> str | list:
        """The JSON-ready short form that :func:`parse_latent` turns back into this object."""
        return ["one_hot", "positive"] if self.positive else "one_hot"

    def validate(self, d: int) -> None:
        """Every d >= 1 is allowed."""

    def second_moment(self, d: int) -> np.ndarray:
        """Lambda = E[z z^T] = I / d."""
        return np.eye(d) / d

    def sample(self, rng: np.random.Generator, n: int, d: int) -> np.ndarray:
        """Draw n codes as an (n, d) float array."""
        z = np.zeros((n, d))
        signs = np.ones(n) if self.positive else rng.choice((-1.0, 1.0), size=n)
        z[np.arange(n), rng.integers(0, d, size=n)] = signs
        return z

    def support(self, d: int, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """All codes with their probabilities: (values (K, d), weights (K,)).

        ``exact=True``: the weights as ``Fraction`` objects (an object array).
        """
        signs = (1.0,) if self.positive else (1.0, -1.0)
        values = np.concatenate([s * np.eye(d) for s in signs])
        return values, _uniform_weights(len(values), exact)

    def support_counts(self, d: int) -> dict[int, int]:
        """Number of codes in the support by their number of nonzeros: {1: d or 2d}."""
        return {1: d if self.positive else 2 * d}


@dataclass(frozen=True)
class FixedCount:
    """Exactly k nonzeros at uniformly random positions, k_neg of them -1, the rest +1.

    With S = k - 2 k_neg: Lambda_ii = k / d and, for i != j,
    Lambda_ij = (S^2 - k) / (d (d - 1))   (derivations/moments.md).
    """

    k: int
    k_neg: int = 0
    name = "fixed_count"

    def short_form(self) -> list:
        """The JSON-ready short form ``["fixed_count", k, k_neg]``."""
        return ["fixed_count", self.k, self.k_neg]

    def __post_init__(self) -> None:
        k = check.integer("k", self.k, minimum=1)
        k_neg = check.integer("k_neg", self.k_neg, minimum=0)
        if k_neg > k:
            raise ValueError(f"k_neg must satisfy 0 <= k_neg <= k, got k_neg={k_neg}, k={k}")
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "k_neg", k_neg)

    def validate(self, d: int) -> None:
        """Raise unless k <= d."""
        if self.k > d:
            raise ValueError(f"latent fixed_count needs k <= d, got k={self.k}, d={d}")

    def second_moment(self, d: int) -> np.ndarray:
        """Lambda with diagonal k/d and off-diagonal (S^2 - k)/(d(d-1)), S = k - 2 k_neg."""
        signed_sum = self.k - 2 * self.k_neg
        off = (signed_sum**2 - self.k) / (d * (d - 1)) if d > 1 else 0.0
        return np.full((d, d), off) + np.eye(d) * (self.k / d - off)

    def sample(self, rng: np.random.Generator, n: int, d: int) -> np.ndarray:
        """Draw n codes: a uniformly random ordering of positions, the first k_neg of the k chosen get -1."""
        positions = np.argsort(rng.random((n, d)), axis=1)[:, : self.k]
        signs = np.where(np.arange(self.k) < self.k_neg, -1.0, 1.0)
        z = np.zeros((n, d))
        np.put_along_axis(z, positions, np.broadcast_to(signs, positions.shape), axis=1)
        return z

    def support(self, d: int, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """All C(d, k) C(k, k_neg) codes, equally likely (``Fraction`` weights if ``exact``)."""
        codes = []
        for positions in itertools.combinations(range(d), self.k):
            for negatives in itertools.combinations(positions, self.k_neg):
                z = np.zeros(d)
                z[list(positions)] = 1.0
                z[list(negatives)] = -1.0
                codes.append(z)
        values = np.array(codes)
        return values, _uniform_weights(len(values), exact)

    def support_counts(self, d: int) -> dict[int, int]:
        """Number of codes in the support by their number of nonzeros: {k: C(d, k) C(k, k_neg)}."""
        return {self.k: math.comb(d, self.k) * math.comb(self.k, self.k_neg)}


def sparsity_to_counts(sparsity: float, d: int) -> tuple[int, int]:
    """The paper's code's map from a "sparsity" s to (k, k_neg).

    k_neg = ceil(d s / 2) and k = max(ceil(d s), ceil(d s / 2) + 1).
    """
    sparsity = check.real("sparsity", sparsity, low=0.0, high=1.0, low_open=True)
    d = check.integer("d", d, minimum=1)
    k_neg = math.ceil(d * sparsity / 2)
    k = max(math.ceil(d * sparsity), k_neg + 1)
    if k > d:
        raise ValueError(f"sparsity={sparsity} gives k={k} > d={d}; choose a smaller sparsity")
    return k, k_neg


@dataclass(frozen=True)
class Bernoulli:
    """Each coordinate independently 0 with probability 1 - prob, else +-1 equally.

    Lambda = prob * I.
    """

    prob: float
    name = "bernoulli"

    def short_form(self) -> list:
        """The JSON-ready short form ``["bernoulli", prob]``."""
        return ["bernoulli", self.prob]

    def __post_init__(self) -> None:
        object.__setattr__(self, "prob", check.real("prob", self.prob, low=0.0, high=1.0, low_open=True))

    def validate(self, d: int) -> None:
        """Every d >= 1 is allowed."""

    def second_moment(self, d: int) -> np.ndarray:
        """Lambda = prob * I."""
        return np.eye(d) * self.prob

    def sample(self, rng: np.random.Generator, n: int, d: int) -> np.ndarray:
        """Draw n codes as an (n, d) float array."""
        nonzero = rng.random((n, d)) < self.prob
        return np.where(nonzero, rng.choice((-1.0, 1.0), size=(n, d)), 0.0)

    def support(self, d: int, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """All 3^d codes with probability prod_i (prob/2 if z_i != 0 else 1 - prob); zero-weight codes dropped.

        ``exact=True``: the weights as ``Fraction`` objects, ``prob`` taken as the dyadic
        rational its float is.
        """
        values = np.array(list(itertools.product((0.0, 1.0, -1.0), repeat=d)))
        nonzeros = np.count_nonzero(values, axis=1)
        prob = Fraction(self.prob) if exact else self.prob
        if exact:
            weights = np.array([(prob / 2) ** j * (1 - prob) ** (d - j) for j in nonzeros.tolist()], dtype=object)
        else:
            weights = (prob / 2) ** nonzeros * (1.0 - prob) ** (d - nonzeros)
        keep = weights > 0
        return values[keep], weights[keep]

    def support_counts(self, d: int) -> dict[int, int]:
        """Number of codes in the support by their number of nonzeros j: C(d, j) 2^j."""
        return {j: math.comb(d, j) * 2**j for j in range(d + 1) if self.prob < 1 or j == d}


Latent = OneHot | FixedCount | Bernoulli


def parse_latent(value: object) -> Latent:
    """Turn a short form into a latent object.

    ``"one_hot"``, ``("one_hot", "positive")``, ``("fixed_count", k, k_neg)``,
    ``("bernoulli", prob)`` or an object of this module.
    """
    if isinstance(value, (OneHot, FixedCount, Bernoulli)):
        return value
    if isinstance(value, list) and value and isinstance(value[0], str):  # a short form read from JSON
        value = tuple(value)
    name, args = check.short_form("latent", value, ("one_hot", "fixed_count", "bernoulli"), "a latent object")
    if name == "one_hot":
        if args not in ((), ("positive",), ("signed",)):
            raise ValueError(f"latent one_hot takes no parameter or 'positive' / 'signed', got {value!r}")
        return OneHot(positive=args == ("positive",))
    if name == "fixed_count":
        if len(args) not in (1, 2):
            raise ValueError(f"latent must be ('fixed_count', k, k_neg), got {value!r}")
        return FixedCount(*args)
    if len(args) != 1:
        raise ValueError(f"latent must be ('bernoulli', prob), got {value!r}")
    return Bernoulli(args[0])
