"""One entry of a result for a connected set of critical points of positive dimension.

Found and merged by critpoints.landscape.flat_sets; held by
:attr:`critpoints.landscape.result.CriticalPointSet.manifolds`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class CriticalManifold:
    """A connected set of critical points of positive dimension, reported as one entry.

    Attributes
    ----------
    kind : str
        "flat minimum set" (a set of minima with transverse eigenvalues at some of its points),
        "critical manifold" (negative transverse eigenvalues) or "flat region" (no transverse
        direction at any of its points: the Hessian is zero on the whole tangent space beyond
        the symmetries).
    dimension : int
        Dimension of the set beyond the symmetry orbits: the extra null directions of the
        Hessian along which Newton-corrected continuation stays critical at constant loss, at
        the representative (the largest over the merged points: a set may have strata).
    loss : float
        L on the set.
    index : int
        Negative transverse eigenvalues at the point that started the entry (0 for a set of
        minima, which degenerate points at its level whose smallest eigenvalue is a rounding
        error below zero may join; critpoints.landscape.flat_sets).
    smallest_transverse, largest_transverse : float
        Extreme non-zero eigenvalues over the merged points (nan when the Hessian is zero on the
        whole tangent space at every one).
    label : str
        Label of the representative ("collapsed", "good", "bad"); other points of the set may differ.
    alignment : ndarray (d,)
        The representative's alignment a_j = max_i |cos(w_i, M_j)|.
    labels : dict[str, int]
        Runs that ended on the set, by the label of the point each reached.
    count : int
        Runs that ended on the set.
    points : int
        Distinct orbits of converged points merged into the entry.
    params : dict[str, ndarray]
        The representative's blocks.
    """

    kind: str
    dimension: int
    loss: float
    index: int
    smallest_transverse: float
    largest_transverse: float
    label: str
    alignment: np.ndarray
    labels: dict
    count: int
    points: int
    params: dict

    def to_dict(self) -> dict:
        """JSON-ready dict (arrays as nested lists)."""
        record = asdict(self)
        record["alignment"] = np.asarray(self.alignment).tolist()
        record["params"] = {name: np.asarray(value).tolist() for name, value in self.params.items()}
        return record

    @classmethod
    def from_dict(cls, record: dict) -> CriticalManifold:
        """Inverse of :meth:`to_dict`."""
        record = dict(record)
        record["alignment"] = np.asarray(record["alignment"], dtype=float)
        record["params"] = {name: np.asarray(value, dtype=float) for name, value in record["params"].items()}
        return cls(**record)

    def describe(self) -> str:
        """One table line."""
        transverse = (
            "Hessian zero on the whole tangent space"
            if np.isnan(self.smallest_transverse)
            else f"transverse eig [{self.smallest_transverse:.2e}, {self.largest_transverse:.2e}], index {self.index}"
        )
        return (
            f"{self.kind}: dimension {self.dimension}, loss {self.loss:.8g}, {transverse}; representative "
            f"{self.label} (a min {self.alignment.min():.3f}); {self.count} runs on it ({self.points} orbits merged; "
            f"runs by label {dict(sorted(self.labels.items()))})"
        )
