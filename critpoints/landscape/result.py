"""The result of an enumeration: stationary points, one per orbit, as a table.

A :class:`CriticalPointSet` has a length, iterates over its points lowest loss first, prints
as a table with the completeness estimate under it, and round-trips through JSON
(:meth:`CriticalPointSet.to_json`, :func:`load_result`) and CSV.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from critpoints.landscape.critical_manifold import CriticalManifold


@dataclass(frozen=True)
class CriticalPoint:
    """One stationary point (one symmetry orbit).

    Attributes
    ----------
    loss : float
        L at the point (``ncl_predictor``: the symmetric loss (L_o + L_t)/2).
    grad_norm : float
        Norm of the Riemannian gradient (or projected field) at the point.
    kind : str
        "minimum", "maximum", "saddle", "degenerate" (gradient losses);
        "stable", "unstable", "saddle", "degenerate" (the predictor field).
    index : int
        Number of negative eigenvalues (real parts) after removing symmetry modes.
    nullity : int
        Zero eigenvalues that no symmetry explains.
    smallest_eigenvalue, largest_eigenvalue : float
    label : str
        "collapsed", "good" or "bad".
    alignment : ndarray (d,)
        a_j = max_i |cos(w_i, M_j)|.
    recovered, dead, duplicated : int
        Atoms with a_j >= tau_good; dead neurons; neurons duplicating a recovered atom.
    nonsmooth : bool
        A symrelu pre-activation lies on a kink (the Hessian is that of a one-sided piece).
    params : dict[str, ndarray]
        The point's blocks, as ``population_loss(setting).unpack`` gives them.
    count : int
        Number of starts that reached this orbit.
    certified : str or None
        None when certification was not requested; "yes" when an interval Newton
        (Krawczyk) test proved exactly one critical point in a box around the point and its
        Morse index was certified (critpoints.certify.certificate); otherwise "no: <reason>".
    certified_index : int or None
        The certified Morse index (None unless ``certified == "yes"``).
    certified_radius : float or None
        Half-width of the largest box proved to contain exactly one critical point.
    """

    loss: float
    grad_norm: float
    kind: str
    index: int
    nullity: int
    smallest_eigenvalue: float
    largest_eigenvalue: float
    label: str
    alignment: np.ndarray
    recovered: int
    dead: int
    duplicated: int
    nonsmooth: bool
    params: dict
    count: int
    certified: str | None = None
    certified_index: int | None = None
    certified_radius: float | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict (arrays as nested lists)."""
        record = asdict(self)
        record["alignment"] = self.alignment.tolist()
        record["params"] = {name: np.asarray(value).tolist() for name, value in self.params.items()}
        return record

    @classmethod
    def from_dict(cls, record: dict) -> CriticalPoint:
        """Inverse of :meth:`to_dict`."""
        record = dict(record)
        record["alignment"] = np.asarray(record["alignment"], dtype=float)
        record["params"] = {name: np.asarray(value, dtype=float) for name, value in record["params"].items()}
        for name in ("certified", "certified_index", "certified_radius"):
            if record.get(name) == "":
                record[name] = None
        return cls(**record)


@dataclass(frozen=True)
class Completeness:
    """How complete the list probably is (capture-recapture over restarts).

    ``observed`` orbits were found, ``singletons`` by exactly one start and ``doubletons``
    by exactly two. The Chao1 estimate of orbits not yet seen is f1^2 / (2 f2), or
    f1 (f1 - 1) / 2 when f2 = 0 (Chao 1984, bias-corrected form for f2 = 0).
    """

    observed: int
    singletons: int
    doubletons: int

    @property
    def unseen_estimate(self) -> float:
        """Chao1 estimate of the number of orbits not yet found."""
        f1, f2 = self.singletons, self.doubletons
        return f1 * f1 / (2.0 * f2) if f2 > 0 else f1 * (f1 - 1) / 2.0

    @classmethod
    def from_counts(cls, counts: list[int]) -> Completeness:
        """From the number of starts that reached each orbit."""
        counts = list(counts)
        return cls(observed=len(counts), singletons=counts.count(1), doubletons=counts.count(2))

    def describe(self) -> str:
        """One line for the table footer."""
        return (
            f"orbits found: {self.observed} ({self.singletons} seen once, {self.doubletons} seen twice); "
            f"Chao1 estimate of orbits not yet found: {self.unseen_estimate:.1f}"
        )


_COLUMNS = (
    ("#", 3),
    ("loss", 14),
    ("|grad|", 8),
    ("kind", 10),
    ("index", 5),
    ("null", 4),
    ("eig min", 10),
    ("eig max", 10),
    ("label", 9),
    ("a max", 5),
    ("a med", 5),
    ("a min", 5),
    ("rec", 3),
    ("dead", 4),
    ("dup", 3),
    ("count", 5),
)


@dataclass(frozen=True)
class CriticalPointSet:
    """Stationary points of one setting's loss, one per symmetry orbit, lowest loss first.

    Attributes
    ----------
    setting : str
        The setting's description (with its expectation mode: population or empirical).
    points : tuple[CriticalPoint, ...]
    status_counts : dict[str, int]
        How the restarts ended: converged, gradient_flat, stalled, diverged, max_iterations
        (critpoints.solver.newton.Status).
    completeness : Completeness
    metadata : dict
        n_restarts, seed, init, tau_good, symmetry group, tolerances.
    manifolds : tuple[CriticalManifold, ...]
        Connected critical sets of positive dimension (critpoints.landscape.flat_sets), one
        entry each; their points are not in ``points`` nor in ``completeness``.
    """

    setting: str
    points: tuple
    status_counts: dict
    completeness: Completeness
    metadata: dict = field(default_factory=dict)
    manifolds: tuple = ()

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self) -> Iterator[CriticalPoint]:
        return iter(self.points)

    def __getitem__(self, item: int) -> CriticalPoint:
        return self.points[item]

    def counts(self, by: str = "label", kind: str | None = None) -> dict[str, int]:
        """Number of orbits by ``label`` (or ``kind``), optionally among points of one kind."""
        tally: dict[str, int] = {}
        for point in self.points:
            if kind is None or point.kind == kind:
                key = getattr(point, by)
                tally[key] = tally.get(key, 0) + 1
        return tally

    def table(self) -> str:
        """The points as a fixed-width text table, with the restart statuses and completeness."""
        lines = [f"critical points of: {self.setting}"]
        statuses = ", ".join(f"{name} {count}" for name, count in self.status_counts.items())
        lines.append(f"restarts: {sum(self.status_counts.values())} ({statuses})")
        header = "  ".join(f"{name:>{width}}" for name, width in _COLUMNS)
        lines += [header, "-" * len(header)]
        for number, point in enumerate(self.points, start=1):
            a = point.alignment
            kind = point.kind + ("*" if point.nonsmooth else "")
            cells = (
                number,
                f"{point.loss:.8g}",
                f"{point.grad_norm:.1e}",
                kind,
                point.index,
                point.nullity,
                f"{point.smallest_eigenvalue:.2e}",
                f"{point.largest_eigenvalue:.2e}",
                point.label,
                f"{a.max():.3f}",
                f"{np.median(a):.3f}",
                f"{a.min():.3f}",
                point.recovered,
                point.dead,
                point.duplicated,
                point.count,
            )
            lines.append("  ".join(f"{cell:>{width}}" for cell, (_, width) in zip(cells, _COLUMNS)))
        if any(point.nonsmooth for point in self.points):
            lines.append("* nonsmooth: a symrelu pre-activation is on a kink; the spectrum is a one-sided piece's")
        if any(point.certified is not None for point in self.points):
            lines += self._certification_lines()
        if self.manifolds:
            lines.append("critical sets of positive dimension (one entry each, not counted as orbits):")
            lines += [f"  {manifold.describe()}" for manifold in self.manifolds]
        lines.append(("isolated " if self.manifolds else "") + self.completeness.describe())
        if "minima_completeness" in self.metadata:
            lines.append("minima: " + Completeness(**self.metadata["minima_completeness"]).describe())
        return "\n".join(lines)

    def _certification_lines(self) -> list[str]:
        """The certified column: one line per point, then how many are certified."""
        lines = ["certification (interval Newton / Krawczyk; index from the interval Hessian):"]
        for number, point in enumerate(self.points, start=1):
            if point.certified == "yes":
                agree = "" if point.certified_index == point.index else "  (differs from the float index)"
                lines.append(
                    f"  #{number}: certified yes, index {point.certified_index}, "
                    f"unique in a box of radius {point.certified_radius:.1e}{agree}"
                )
            else:
                lines.append(f"  #{number}: certified {point.certified}")
        certified = sum(point.certified == "yes" for point in self.points)
        lines.append(f"certified: {certified} of {len(self.points)} points")
        return lines

    def __str__(self) -> str:
        return self.table()

    # -- persistence ----------------------------------------------------------------

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            "setting": self.setting,
            "status_counts": self.status_counts,
            "completeness": asdict(self.completeness),
            "metadata": self.metadata,
            "points": [point.to_dict() for point in self.points],
            "manifolds": [manifold.to_dict() for manifold in self.manifolds],
        }

    def to_json(self, path: str | Path) -> None:
        """Write the result as JSON (read it back with :func:`load_result`)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    def to_csv(self, path: str | Path) -> None:
        """Write one row per point; the header lines starting with '#' hold the metadata as JSON.

        Array columns (alignment, params) hold JSON text. :func:`load_result` reads it back.
        """
        header = {key: value for key, value in self.to_dict().items() if key != "points"}
        names = list(CriticalPoint.__dataclass_fields__)
        with open(path, "w", newline="") as handle:
            handle.write(f"# {json.dumps(header)}\n")
            writer = csv.DictWriter(handle, fieldnames=names)
            writer.writeheader()
            for point in self.points:
                record = point.to_dict()
                record["alignment"] = json.dumps(record["alignment"])
                record["params"] = json.dumps(record["params"])
                writer.writerow(record)

    @classmethod
    def from_dict(cls, record: dict) -> CriticalPointSet:
        """Inverse of :meth:`to_dict`."""
        return cls(
            setting=record["setting"],
            points=tuple(CriticalPoint.from_dict(point) for point in record["points"]),
            status_counts=dict(record["status_counts"]),
            completeness=Completeness(**record["completeness"]),
            metadata=dict(record["metadata"]),
            manifolds=tuple(CriticalManifold.from_dict(manifold) for manifold in record.get("manifolds", ())),
        )


_CSV_TYPES: dict[str, Callable[[str], Any]] = {
    "loss": float,
    "grad_norm": float,
    "index": int,
    "nullity": int,
    "smallest_eigenvalue": float,
    "largest_eigenvalue": float,
    "recovered": int,
    "dead": int,
    "duplicated": int,
    "count": int,
    "alignment": json.loads,
    "params": json.loads,
    "nonsmooth": lambda text: text == "True",
    "certified": lambda text: text or None,
    "certified_index": lambda text: int(text) if text else None,
    "certified_radius": lambda text: float(text) if text else None,
}


def load_result(path: str | Path) -> CriticalPointSet:
    """Read a result written by ``to_json`` or ``to_csv`` (chosen by the file's first character)."""
    text = Path(path).read_text()
    if text.startswith("#"):
        first, _, body = text.partition("\n")
        record = json.loads(first[1:])
        rows = list(csv.DictReader(body.splitlines()))
        record["points"] = [{name: _CSV_TYPES.get(name, str)(value) for name, value in row.items()} for row in rows]
        return CriticalPointSet.from_dict(record)
    return CriticalPointSet.from_dict(json.loads(text))
