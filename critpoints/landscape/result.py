"""The result of an enumeration: stationary points, one per orbit, as a table and as a record.

A :class:`CriticalPointSet` has a length, iterates over its points lowest loss first, slices
and filters into smaller sets (``result[:3]``, :meth:`~CriticalPointSet.minima`,
:meth:`~CriticalPointSet.filter`), prints as a table with a legend of its columns, shows as
HTML in a notebook, converts to a pandas DataFrame, and round-trips through JSON and CSV
(:meth:`~CriticalPointSet.to_json`, :meth:`~CriticalPointSet.to_csv`, :func:`load_result`).

A result is a reproducible record: it holds the :class:`~critpoints.model.setting.Setting`
itself (stored as data, rebuilt on loading), the seed the starts were drawn with, the
package version that computed it and every option of the run (``metadata``). Files carry a
format version (critpoints._files).
"""

from __future__ import annotations

import dataclasses
import html
import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from critpoints import _files
from critpoints.landscape.classification import KINDS
from critpoints.landscape.critical_manifold import CriticalManifold
from critpoints.landscape.labels import LABELS
from critpoints.model.setting import Setting

#: The record type and version of the files this module writes.
FORMAT = "CriticalPointSet"
FORMAT_VERSION = 2


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
        Extreme eigenvalues after removing symmetry modes (NaN when none remain).
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
    certified : bool or None
        None when certification was not requested; True when an interval Newton (Krawczyk)
        test proved exactly one critical point in a box around the point and its Morse
        index was certified (critpoints.certify.certificate); False otherwise.
    certification_reason : str or None
        Why certification failed (None unless ``certified`` is False).
    certified_index : int or None
        The certified Morse index (None unless ``certified``).
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
    certified: bool | None = None
    certification_reason: str | None = None
    certified_index: int | None = None
    certified_radius: float | None = None

    def to_dict(self) -> dict:
        """The point as plain data (arrays as nested lists)."""
        record = asdict(self)
        record["alignment"] = self.alignment.tolist()
        record["params"] = {name: np.asarray(value).tolist() for name, value in self.params.items()}
        return record

    @classmethod
    def from_dict(cls, record: dict, source: str | Path = "<record>") -> CriticalPoint:
        """Inverse of :meth:`to_dict`; raises ResultFileError for missing or unknown fields."""
        _files.check_fields(record, POINT_FIELDS, "a point", source)
        record = dict(record)
        record["alignment"] = np.asarray(record["alignment"], dtype=float)
        record["params"] = {name: np.asarray(value, dtype=float) for name, value in record["params"].items()}
        return cls(**record)

    def describe_certificate(self) -> str:
        """'not requested', 'yes' or 'no: <reason>'."""
        if self.certified is None:
            return "not requested"
        return "yes" if self.certified else f"no: {self.certification_reason}"


#: The fields of a point record.
POINT_FIELDS = tuple(f.name for f in dataclasses.fields(CriticalPoint))

#: Array fields, stored beside the CSV table (in its metadata file), not in it.
_ARRAY_FIELDS = ("alignment", "params")

#: The columns of the CSV table and of :meth:`CriticalPointSet.to_dataframe`: every scalar
#: field, with the alignment summarised as its max, median and min over atoms.
TABLE_COLUMNS = (
    "loss",
    "grad_norm",
    "kind",
    "index",
    "nullity",
    "smallest_eigenvalue",
    "largest_eigenvalue",
    "label",
    "a_max",
    "a_median",
    "a_min",
    "recovered",
    "dead",
    "duplicated",
    "nonsmooth",
    "count",
    "certified",
    "certification_reason",
    "certified_index",
    "certified_radius",
)


def _optional(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda text: convert(text) if text != "" else None


def _boolean(text: str) -> bool:
    if text not in ("True", "False"):
        raise ValueError(f"expected True or False, got {text!r}")
    return text == "True"


#: How each CSV column reads back (the a_* columns are recomputed from the alignment).
_COLUMN_TYPES: dict[str, Callable[[str], Any]] = {
    "loss": float,
    "grad_norm": float,
    "kind": str,
    "index": int,
    "nullity": int,
    "smallest_eigenvalue": float,
    "largest_eigenvalue": float,
    "label": str,
    "recovered": int,
    "dead": int,
    "duplicated": int,
    "nonsmooth": _boolean,
    "count": int,
    "certified": _optional(_boolean),
    "certification_reason": _optional(str),
    "certified_index": _optional(int),
    "certified_radius": _optional(float),
}


def _alignment_summary(alignment: np.ndarray) -> tuple[float, float, float]:
    """(max, median, min) over atoms of a_j (NaN for no atoms)."""
    if alignment.size == 0:
        return (float("nan"),) * 3
    return float(alignment.max()), float(np.median(alignment)), float(alignment.min())


def _row(point: CriticalPoint) -> list:
    """The point's cells in the order of :data:`TABLE_COLUMNS`."""
    a_max, a_median, a_min = _alignment_summary(point.alignment)
    values = {**{name: getattr(point, name) for name in POINT_FIELDS}, "a_max": a_max, "a_median": a_median}
    values["a_min"] = a_min
    return [values[name] for name in TABLE_COLUMNS]


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

#: What the columns of the printed table mean (printed under it).
LEGEND = (
    "columns: loss = L at the point; |grad| = norm of the Riemannian gradient (projected field);",
    "  kind from the spectrum with symmetry zero modes removed (* = on a symrelu kink); index = negative",
    "  eigenvalues; null = zero eigenvalues no symmetry explains; eig min / eig max = extreme eigenvalues;",
    "  label = collapsed / good / bad; a max / a med / a min = max / median / min over atoms j of",
    "  a_j = max_i |cos(w_i, M_j)|; rec = atoms with a_j >= tau_good; dead = neurons zero on every input;",
    "  dup = neurons duplicating a recovered atom; count = starts that reached this orbit",
)


def _cells(number: int, point: CriticalPoint) -> tuple:
    """The printed cells of one point, in the order of ``_COLUMNS``."""
    a_max, a_median, a_min = _alignment_summary(point.alignment)
    return (
        number,
        f"{point.loss:.8g}",
        f"{point.grad_norm:.1e}",
        point.kind + ("*" if point.nonsmooth else ""),
        point.index,
        point.nullity,
        f"{point.smallest_eigenvalue:.2e}",
        f"{point.largest_eigenvalue:.2e}",
        point.label,
        f"{a_max:.3f}",
        f"{a_median:.3f}",
        f"{a_min:.3f}",
        point.recovered,
        point.dead,
        point.duplicated,
        point.count,
    )


def _matcher(name: str, wanted: Any) -> Callable[[Any], bool]:
    """A test of one field's value: equality, membership in a collection, or a predicate."""
    if callable(wanted):
        return wanted
    allowed = {"kind": KINDS, "label": LABELS}.get(name)
    values = tuple(wanted) if isinstance(wanted, Iterable) and not isinstance(wanted, (str, bytes)) else (wanted,)
    if allowed is not None:
        unknown = [value for value in values if value not in allowed]
        if unknown:
            raise ValueError(f"unknown {name} {unknown[0]!r}; known: {', '.join(map(repr, allowed))}")
    return lambda value: value in values


@dataclass(frozen=True)
class CriticalPointSet:
    """Stationary points of one setting's loss, one per symmetry orbit, lowest loss first.

    Attributes
    ----------
    setting : Setting
        The setting whose loss was explored (stored in files as :meth:`Setting.to_dict`).
    points : tuple[CriticalPoint, ...]
    status_counts : dict[str, int]
        How the restarts ended: converged, gradient_flat, stalled, diverged, max_iterations
        (critpoints.solver.newton.Status).
    completeness : Completeness
    metadata : dict
        Every option of the run: n_restarts, seed (the one the starts were drawn with, also
        when the caller passed None), init, tau_good, tolerances, symmetry group,
        expectation mode, and the critpoints version that computed it.
    description : str
        The setting's one-line description (``setting.describe()`` when not given).
    manifolds : tuple[CriticalManifold, ...]
        Connected critical sets of positive dimension (critpoints.landscape.flat_sets), one
        entry each; their points are not in ``points`` nor in ``completeness``.
    """

    setting: Setting
    points: tuple
    status_counts: dict
    completeness: Completeness
    metadata: dict = field(default_factory=dict)
    description: str = field(default="", kw_only=True)
    manifolds: tuple = field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.setting, Setting):
            raise TypeError(f"setting must be a critpoints.Setting, got {type(self.setting).__name__}")
        if not self.description:
            object.__setattr__(self, "description", self.setting.describe())
        object.__setattr__(self, "points", tuple(self.points))

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self) -> Iterator[CriticalPoint]:
        return iter(self.points)

    def __getitem__(self, item: int | slice) -> Any:
        """One point for an integer; a CriticalPointSet of the selected points for a slice."""
        if isinstance(item, slice):
            return self._with_points(self.points[item])
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
            raise TypeError(f"a CriticalPointSet is indexed by an integer or a slice, got {item!r}")
        return self.points[item]

    def _with_points(self, points: Iterable[CriticalPoint]) -> CriticalPointSet:
        """The same run with only ``points`` (statuses and completeness still those of the run)."""
        return dataclasses.replace(self, points=tuple(points))

    # -- selection ------------------------------------------------------------------

    def filter(self, **criteria: Any) -> CriticalPointSet:
        """The points whose fields match every criterion, as a CriticalPointSet.

        Each keyword names a field of :class:`CriticalPoint`; its value is a value the field
        must equal, a collection of allowed values, or a predicate ``f(value) -> bool``.
        ``kind`` and ``label`` values are checked against the known names.

        Examples
        --------
        ``result.filter(kind="minimum", label="bad")``,
        ``result.filter(label=("good", "collapsed"))``, ``result.filter(loss=lambda L: L < 0)``.
        """
        unknown = sorted(set(criteria) - set(POINT_FIELDS))
        if unknown:
            raise ValueError(f"unknown point field(s) {unknown} to filter on; known: {', '.join(POINT_FIELDS)}")
        tests = [(name, _matcher(name, wanted)) for name, wanted in criteria.items()]
        return self._with_points(p for p in self.points if all(test(getattr(p, name)) for name, test in tests))

    def minima(self, include_degenerate: bool = False) -> CriticalPointSet:
        """The local minima (``stable`` points of a field), as a CriticalPointSet.

        With ``include_degenerate=True`` also the degenerate points of index 0 (no negative
        eigenvalue, some zero ones no symmetry explains: flat minima, or points where the
        second-order test is inconclusive).
        """
        kinds = ("minimum", "stable") + (("degenerate",) if include_degenerate else ())
        return self._with_points(p for p in self.points if p.kind in kinds and p.index == 0)

    def counts(self, by: str = "label", kind: str | None = None) -> dict[str, int]:
        """Number of orbits by ``label`` (or ``kind``), optionally among points of one kind."""
        tally: dict[str, int] = {}
        for point in self.points:
            if kind is None or point.kind == kind:
                key = getattr(point, by)
                tally[key] = tally.get(key, 0) + 1
        return tally

    # -- display --------------------------------------------------------------------

    def _status_line(self) -> str:
        statuses = ", ".join(f"{name} {count}" for name, count in self.status_counts.items())
        return f"restarts: {sum(self.status_counts.values())} ({statuses})"

    def table(self, legend: bool = True) -> str:
        """The points as a fixed-width text table, with the restart statuses, completeness and
        (``legend=True``) what the columns mean."""
        lines = [f"critical points of: {self.description}", self._status_line()]
        header = "  ".join(f"{name:>{width}}" for name, width in _COLUMNS)
        lines += [header, "-" * len(header)]
        for number, point in enumerate(self.points, start=1):
            lines.append("  ".join(f"{cell:>{width}}" for cell, (_, width) in zip(_cells(number, point), _COLUMNS)))
        if any(point.nonsmooth for point in self.points):
            lines.append("* nonsmooth: a symrelu pre-activation is on a kink; the spectrum is a one-sided piece's")
        if any(point.certified is not None for point in self.points):
            lines += self._certification_lines()
        lines += self._completeness_lines()
        if legend:
            lines += LEGEND
        return "\n".join(lines)

    def _completeness_lines(self) -> list[str]:
        """The critical sets of positive dimension, then the Chao1 lines (isolated orbits; minima)."""
        lines = []
        if self.manifolds:
            lines.append("critical sets of positive dimension (one entry each, not counted as orbits):")
            lines += [f"  {manifold.describe()}" for manifold in self.manifolds]
        lines.append(("isolated " if self.manifolds else "") + self.completeness.describe())
        if "minima_completeness" in self.metadata:
            lines.append("minima: " + Completeness(**self.metadata["minima_completeness"]).describe())
        return lines

    def _certification_lines(self) -> list[str]:
        """The certified column: one line per point, then how many are certified."""
        lines = ["certification (interval Newton / Krawczyk; index from the interval Hessian):"]
        for number, point in enumerate(self.points, start=1):
            if point.certified:
                agree = "" if point.certified_index == point.index else "  (differs from the float index)"
                lines.append(
                    f"  #{number}: certified yes, index {point.certified_index}, "
                    f"unique in a box of radius {point.certified_radius:.1e}{agree}"
                )
            else:
                lines.append(f"  #{number}: certified {point.describe_certificate()}")
        certified = sum(bool(point.certified) for point in self.points)
        lines.append(f"certified: {certified} of {len(self.points)} points")
        return lines

    def __str__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        """The table as HTML (shown by Jupyter): caption, one row per point, statuses, legend."""
        escape = html.escape
        head = "".join(f"<th>{escape(name)}</th>" for name, _ in _COLUMNS)
        rows = []
        for number, point in enumerate(self.points, start=1):
            cells = "".join(f"<td>{escape(str(cell))}</td>" for cell in _cells(number, point))
            rows.append(f"<tr>{cells}</tr>")
        notes = [self._status_line(), *self._completeness_lines(), *LEGEND]
        return (
            '<table class="critpoints">'
            f"<caption>critical points of: {escape(self.description)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<pre>{escape(chr(10).join(notes))}</pre>"
        )

    # -- records --------------------------------------------------------------------

    def _record(self) -> dict:
        """Everything but the points, as plain data."""
        return {
            **_files.record_header(FORMAT, FORMAT_VERSION),
            "setting": self.setting.to_dict(),
            "description": self.description,
            "status_counts": dict(self.status_counts),
            "completeness": asdict(self.completeness),
            "metadata": self.metadata,
            "manifolds": [manifold.to_dict() for manifold in self.manifolds],
        }

    def to_dict(self) -> dict:
        """The result as plain data (format, version, setting as data, points); :meth:`from_dict` inverts it."""
        return {**self._record(), "points": [point.to_dict() for point in self.points]}

    def to_json(self, path: str | Path) -> Path:
        """Write the result as strict JSON, atomically; :func:`load_result` reads it back.

        Non-finite numbers (e.g. the eigenvalues of a point with no eigenvalue left after
        removing symmetry modes) are stored as null and listed under ``"nonfinite"``.
        """
        return _files.write_text(path, _files.dumps_record(self.to_dict()))

    def to_csv(self, path: str | Path) -> Path:
        """Write one row per point as CSV, and the rest of the record next to it.

        The CSV's first line is its header, so ``pandas.read_csv(path)`` and
        ``csv.DictReader`` read it as it is; its columns are :data:`TABLE_COLUMNS`. The
        setting, statuses, metadata and each point's alignment and parameters go to
        ``<path>.meta.json``, with the row count and a checksum of the table, so that
        :func:`load_result` restores the result exactly and detects a truncated table.
        Both files are written atomically.
        """
        arrays = [{name: value for name, value in point.to_dict().items() if name in _ARRAY_FIELDS} for point in self]
        return _files.write_table(
            path, TABLE_COLUMNS, [_row(point) for point in self], {**self._record(), "arrays": arrays}
        )

    def to_dataframe(self) -> Any:
        """The points as a pandas DataFrame (needs pandas, the ``pandas`` extra).

        One row per point (index 1, 2, ... as in the printed table), the columns of
        :data:`TABLE_COLUMNS` plus ``alignment`` and ``params`` (arrays, object columns);
        ``DataFrame.attrs`` holds the rest of the record (setting as data, description,
        statuses, completeness, metadata), so :meth:`from_dataframe` restores the result.
        """
        try:
            pandas = importlib.import_module("pandas")
        except ImportError as error:
            raise ImportError(
                "CriticalPointSet.to_dataframe needs pandas: pip install 'critpoints[pandas]' (or pip install pandas)"
            ) from error
        frame = pandas.DataFrame([_row(point) for point in self.points], columns=list(TABLE_COLUMNS))
        frame["alignment"] = [point.alignment for point in self.points]
        frame["params"] = [point.params for point in self.points]
        frame.index = pandas.RangeIndex(1, len(self.points) + 1, name="point")
        frame.attrs.update(self._record())
        return frame

    @classmethod
    def from_dataframe(cls, frame: Any) -> CriticalPointSet:
        """Inverse of :meth:`to_dataframe` (the rows may have been reordered or filtered)."""
        record = dict(frame.attrs)
        _files.check_record(record, FORMAT, FORMAT_VERSION, _SET_FIELDS - {"points"}, source="DataFrame.attrs")
        points = []
        for row in frame.to_dict("records"):
            values = {name: row[name] for name in POINT_FIELDS if name not in _ARRAY_FIELDS}
            values = {name: (None if _is_missing(value) else value) for name, value in values.items()}
            for name in ("loss", "grad_norm", "smallest_eigenvalue", "largest_eigenvalue"):
                values[name] = float(row[name])
            points.append(CriticalPoint(**values, alignment=np.asarray(row["alignment"]), params=row["params"]))
        return cls._from_record(record, points, "DataFrame.attrs")

    @classmethod
    def from_dict(cls, record: dict, source: str | Path = "<record>") -> CriticalPointSet:
        """Inverse of :meth:`to_dict`; raises ResultFileError for another format or version,
        or missing or unknown fields."""
        _files.check_record(record, FORMAT, FORMAT_VERSION, _SET_FIELDS, source=source)
        points = [CriticalPoint.from_dict(point, source) for point in record["points"]]
        return cls._from_record(record, points, source)

    @classmethod
    def _from_record(cls, record: dict, points: list[CriticalPoint], source: str | Path) -> CriticalPointSet:
        setting = Setting.from_dict(record["setting"], source)
        _files.check_fields(record["completeness"], ("observed", "singletons", "doubletons"), "completeness", source)
        return cls(
            setting=setting,
            points=tuple(points),
            status_counts=dict(record["status_counts"]),
            completeness=Completeness(**record["completeness"]),
            metadata=dict(record["metadata"]),
            description=record["description"],
            manifolds=tuple(CriticalManifold.from_dict(manifold) for manifold in record["manifolds"]),
        )


#: The fields of a CriticalPointSet record (besides the format header).
_SET_FIELDS = frozenset({"setting", "description", "status_counts", "completeness", "metadata", "manifolds", "points"})


def _is_missing(value: Any) -> bool:
    """None, or a float NaN that pandas put in place of a missing value."""
    return value is None or (isinstance(value, float) and np.isnan(value))


def _from_table(path: Path) -> CriticalPointSet:
    record, rows = _files.read_table(path)
    arrays = record.pop("arrays", None)
    if not isinstance(arrays, list) or len(arrays) != len(rows):
        raise _files.ResultFileError(f"{path}: its metadata holds no point arrays for its {len(rows)} rows")
    _files.check_record(record, FORMAT, FORMAT_VERSION, _SET_FIELDS - {"points"}, source=_files.metadata_path(path))
    points = []
    for number, (row, extra) in enumerate(zip(rows, arrays), start=1):
        try:
            values = {name: _COLUMN_TYPES[name](row[name]) for name in _COLUMN_TYPES}
        except ValueError as error:
            raise _files.ResultFileError(f"{path}: row {number} has a cell that does not parse: {error}") from error
        points.append(CriticalPoint.from_dict({**values, **extra}, path))
    return CriticalPointSet._from_record(record, points, path)


def load_result(path: str | Path) -> CriticalPointSet:
    """Read a result written by :meth:`CriticalPointSet.to_json` or :meth:`CriticalPointSet.to_csv`.

    A path with a metadata file next to it (``<path>.meta.json``) is read as the CSV table
    with its metadata; any other as JSON.

    Raises
    ------
    critpoints._files.ResultFileError
        (a ValueError) for a file of another format, an unknown format version, missing or
        unknown fields, or a CSV that does not match its metadata (truncated or altered).
    """
    path = Path(path)
    if _files.metadata_path(path).exists():
        return _from_table(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv" and not text.lstrip().startswith("{"):
        raise _files.ResultFileError(
            f"{path}: the metadata file {_files.metadata_path(path).name} is missing; a critpoints CSV is "
            "read together with it"
        )
    return CriticalPointSet.from_dict(_files.loads_record(text, path), path)
