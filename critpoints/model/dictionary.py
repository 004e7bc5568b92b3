"""Ground-truth dictionaries M in R^{p x d} with orthonormal columns (derivations/MODEL.md §1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np

from critpoints import _validation as check

#: Largest allowed entry of |M^T M - I| for a user dictionary.
ORTHONORMALITY_TOLERANCE = 1e-8


@dataclass(frozen=True)
class IdentityDictionary:
    """M = I_d (requires p = d)."""

    name = "identity"

    def matrix(self, p: int, d: int) -> np.ndarray:
        """Return the p x p identity; raises unless ``p == d``."""
        if p != d:
            raise ValueError(
                f"dictionary='identity' needs p == d, got p={p}, d={d}; "
                "use dictionary=('random', seed) or pass a p x d array with orthonormal columns"
            )
        return np.eye(p)

    def is_identity(self, p: int, d: int) -> bool:
        """Whether M is exactly the identity (it is)."""
        return True

    def short_form(self) -> str:
        """The JSON-ready short form that :func:`parse_dictionary` turns back into this object."""
        return "identity"


@dataclass(frozen=True)
class RandomDictionary:
    """M = Q factor of a p x d standard Gaussian matrix drawn from ``seed``.

    The sign of each column is fixed so that R has a positive diagonal, which makes
    the factor unique and hence independent of the LAPACK build.
    """

    seed: int
    name = "random"

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed", check.integer("dictionary seed", self.seed, minimum=0))

    def matrix(self, p: int, d: int) -> np.ndarray:
        """Return the seeded p x d matrix with orthonormal columns."""
        gaussian = np.random.default_rng(self.seed).standard_normal((p, d))
        q, r = np.linalg.qr(gaussian)
        return q * np.where(np.diag(r) < 0, -1.0, 1.0)

    def is_identity(self, p: int, d: int) -> bool:
        """Whether M equals the identity (never assumed for a random draw)."""
        return False

    def short_form(self) -> list:
        """The JSON-ready short form ``["random", seed]`` (:func:`parse_dictionary` reads it back)."""
        return ["random", self.seed]


@dataclass(frozen=True, eq=False)
class GivenDictionary:
    """A user-supplied p x d matrix with orthonormal columns.

    Checked when the setting's (p, d) are known: shape (p, d), finite entries and
    max |M^T M - I| <= ``ORTHONORMALITY_TOLERANCE``.
    """

    array: np.ndarray = field(repr=False)
    name = "array"

    def __post_init__(self) -> None:
        object.__setattr__(self, "array", check.finite_array("dictionary", self.array, ndim=2))

    def validate(self, p: int, d: int) -> None:
        """Raise unless the matrix has shape (p, d) and orthonormal columns."""
        if self.array.shape != (p, d):
            raise ValueError(f"dictionary must have shape (p, d) = ({p}, {d}), got shape {self.array.shape}")
        error = np.abs(self.array.T @ self.array - np.eye(d)).max()
        if error > ORTHONORMALITY_TOLERANCE:
            raise ValueError(
                f"dictionary must have orthonormal columns: max |M^T M - I| = {error:.3g} "
                f"exceeds the tolerance {ORTHONORMALITY_TOLERANCE:g}"
            )

    def matrix(self, p: int, d: int) -> np.ndarray:
        """Return the user's matrix after validating it against (p, d)."""
        self.validate(p, d)
        return np.array(self.array)

    def is_identity(self, p: int, d: int) -> bool:
        """Whether the matrix is exactly the identity: the symmetries and the exact view laws that
        M = I allows hold only then (a matrix 1e-9 away breaks them by as much)."""
        return p == d and bool(np.array_equal(self.array, np.eye(p)))

    def short_form(self) -> list:
        """The matrix as nested lists of floats (:func:`parse_dictionary` reads it back exactly)."""
        return self.array.tolist()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GivenDictionary) and np.array_equal(self.array, other.array)

    def __hash__(self) -> int:
        return hash(self.array.tobytes())


Dictionary = IdentityDictionary | RandomDictionary | GivenDictionary


def parse_dictionary(value: object) -> Dictionary:
    """Turn a short form (``"identity"``, ``("random", seed)``, an array) into an object."""
    if isinstance(value, (IdentityDictionary, RandomDictionary, GivenDictionary)):
        return value
    if isinstance(value, list) and value and isinstance(value[0], str):  # a short form read from JSON
        value = tuple(value)
    if isinstance(value, str) or (isinstance(value, tuple) and value and isinstance(value[0], str)):
        name, args = check.short_form("dictionary", value, ("identity", "random"), "a p x d array")
        if name == "identity" and not args:
            return IdentityDictionary()
        if name == "random" and len(args) == 1:
            return RandomDictionary(args[0])
        if name == "random" and not args:
            raise ValueError("dictionary='random' needs a seed: pass dictionary=('random', seed)")
        raise ValueError(f"dictionary must be 'identity' or ('random', seed), got {value!r}")
    if isinstance(value, (np.ndarray, list, tuple)):
        return GivenDictionary(cast(np.ndarray, value))  # converted and checked in __post_init__
    raise TypeError(
        f"dictionary must be 'identity', ('random', seed), a p x d array or a dictionary object, got {value!r}"
    )
