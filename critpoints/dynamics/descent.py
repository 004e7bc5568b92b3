"""Training dynamics: gradient descent on a setting's loss from many starts at once.

derivations/CLAIMS.md, claim 4 asks where training ends: gradient descent on the population loss from random
starts (and from warm starts near the dictionary), each run labelled collapsed / good / bad
from the ground truth and, when an enumeration of the stationary points is at hand, matched
to the one it converged to. This module runs those descents, vectorised over starts
(critpoints.losses.batched), and reports basin fractions with binomial confidence intervals.

Cost (measured on a shared 2-core machine, p = d = m = 4, exact view law): one gradient of the
loss object takes 0.1-8 ms per start; the batched evaluation (the encoder's linear maps as one
BLAS product for all starts, the pointwise terms in numba kernels) takes 0.15-1.3 ms for 40
starts. Closed-form settings without a measure are evaluated one start at a time through the
loss object.

The iteration
-------------
For a gradient loss L on the constraint manifold M (a product of spheres, or R^n), with
step size eta and the metric-projection retraction R_theta(v) (critpoints.manifolds.spheres):

* ``step="riemannian"`` (default): theta <- R_theta(-eta grad L(theta)), with
  grad L = P nabla L the Riemannian gradient (P the tangent projector);
* ``step="projected"``: theta <- proj_M(theta - eta nabla L(theta)), an ambient step
  followed by renormalisation, as the paper's code does. On a sphere block with x.g = gamma
  it equals the Riemannian step with eta replaced by eta / (1 - eta gamma), so both have the
  same fixed points.

Without a constraint both are theta <- theta - eta nabla L(theta).

Schedules
---------
* ``"simultaneous"``: every block moves at every step along the whole gradient (for
  ``ncl_predictor``: along the stop-gradient field F = (dL_o/dtheta_o, dL_t/dtheta_t,
  dL_o/dP + dL_t/dP), the iteration theta <- theta - eta F whose rest points are the zeros of F);
* ``"alternating"`` (two-encoder losses): the paper's schedule. Steps alternate between the
  online branch, theta_o <- theta_o - eta dL/dtheta_o with the target frozen (the stop
  gradient), and the target branch, theta_t <- theta_t - eta dL/dtheta_t. For ``ncl_cosine`` this
  is block-coordinate descent on the one joint loss L(theta_o, theta_t) (derivations/MODEL.md §4). For
  ``ncl_predictor`` the online step also moves P by dL_o/dP and the target step by dL_t/dP,
  so two consecutive steps apply the field F (to first order in eta).
* ``"auto"``: alternating for two-encoder losses (ncl_squared, untied ncl_cosine,
  ncl_predictor), simultaneous otherwise.

Stopping and status
-------------------
A run stops as ``converged`` when the Riemannian gradient (projected field) has
||grad|| <= tol * max(1, |L(theta_0)|), the stationarity test of critpoints.solver.newton; as
``diverged`` when theta leaves ``divergence_radius`` or becomes non-finite; otherwise after
``max_steps`` steps as ``max_iterations`` (slow convergence on a flat region, or oscillation
across a symmetric-ReLU kink). The statuses are those of the Newton runs
(critpoints.solver.newton.Status).

Labels, matching, basin fractions
---------------------------------
Each final point is labelled by critpoints.landscape.labels.label_point (collapsed / good / bad, the
alignments a_j = max_i |cos(w_i, M_j)| and the counts of recovered atoms, dead and duplicated
neurons). Given the result of critpoints.enumerate_critical_points for the same setting,
each converged run is polished by a few Newton steps and matched to the enumerated point on
the same symmetry orbit (critpoints.landscape.orbits.orbit_key / same_orbit); a run whose orbit is not
in the table (for example a point of a continuum of minima other than the representative
the enumeration kept) is reported as unmatched, with the relative distance to the nearest key.

The basin fraction of a label is k/R: k of all R runs converged to a point with that label;
the runs that did not converge form a class of their own ("not converged"), so the fractions
add up to one over all runs. Its 95% Wilson score interval (E. B. Wilson, JASA 22, 1927) is

    (k + z^2/2) / (R + z^2)  +-  z / (R + z^2) * sqrt(k (R - k) / R + z^2 / 4),   z = 1.96,

which stays inside [0, 1] and keeps a sensible width at k = 0 and k = R.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from critpoints import _files
from critpoints import _validation as check
from critpoints._version import __version__
from critpoints.data.finite_measure import FiniteMeasure
from critpoints.landscape.initialization import check_init, describe_init, initial_points
from critpoints.landscape.labels import DEFAULT_TAU_GOOD, LABELS, alignment, label_point
from critpoints.landscape.result import CriticalPointSet
from critpoints.landscape.thresholds import warn_if_threshold_is_coarse
from critpoints.losses.batched import BatchedLoss, BatchedSpheres
from critpoints.losses.population_loss import PopulationLoss, population_loss
from critpoints.model.setting import Setting
from critpoints.solver.newton import Status

SCHEDULES = ("auto", "simultaneous", "alternating")
STEPS = ("riemannian", "projected")

#: How a descent run ends: the Newton runs' vocabulary (critpoints.solver.newton.Status).
STATUSES = (Status.CONVERGED.value, Status.MAX_ITERATIONS.value, Status.DIVERGED.value)

#: The class of the runs that did not converge, in the basin fractions by label.
NOT_CONVERGED = "not converged"

#: The record type and version of the files this module writes.
FORMAT = "DynamicsResult"
FORMAT_VERSION = 2

#: Two-sided 95% normal quantile used by the Wilson intervals.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion.

    Parameters
    ----------
    successes, trials : int
        k and R with 0 <= k <= R.
    z : float
        Normal quantile (1.96 for 95%).

    Returns
    -------
    (low, high) : tuple of float
        (k + z^2/2)/(R + z^2) -+ z/(R + z^2) sqrt(k(R - k)/R + z^2/4); (0, 1) when R = 0.
    """
    successes = check.integer("successes", successes, minimum=0)
    trials = check.integer("trials", trials, minimum=0)
    if successes > trials:
        raise ValueError(f"successes must be <= trials, got {successes} > {trials}")
    if trials == 0:
        return 0.0, 1.0
    denominator = trials + z * z
    centre = (successes + z * z / 2.0) / denominator
    half = z / denominator * math.sqrt(successes * (trials - successes) / trials + z * z / 4.0)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class BasinFraction:
    """How many runs ended in one class (a label, a status or a matched point), with a 95% Wilson CI."""

    name: str
    count: int
    total: int
    low: float
    high: float

    @property
    def fraction(self) -> float:
        """count / total (nan for no runs)."""
        return self.count / self.total if self.total else float("nan")


@dataclass(frozen=True)
class Trajectory:
    """The end of one descent run.

    Attributes
    ----------
    start : int
        Index of the start.
    status : str
        "converged", "max_iterations" (the step budget ran out) or "diverged": the values
        of critpoints.solver.newton.Status.
    steps : int
        Steps taken.
    loss : float
        L at the final point (ncl_predictor: (L_o + L_t)/2).
    grad_norm : float
        Riemannian gradient (projected field) norm at the final point.
    label : str
        "collapsed", "good" or "bad" of the final point (also when the run did not converge:
        where it was heading; the basin fractions count such runs as not converged).
    alignment : ndarray (d,)
        Final a_j = max_i |cos(w_i, M_j)|.
    initial_alignment : ndarray (d,)
        a_j at the start.
    recovered, dead, duplicated : int
        As in critpoints.landscape.labels.Label.
    params : dict[str, ndarray]
        The final point's blocks.
    matched : int or None
        1-based row of the matched point in the enumeration table, or None.
    match_distance : float
        Relative distance between the orbit keys of the final point and the nearest
        enumerated point (nan without an enumeration, or for a run that did not converge).
    """

    start: int
    status: str
    steps: int
    loss: float
    grad_norm: float
    label: str
    alignment: np.ndarray
    initial_alignment: np.ndarray
    recovered: int
    dead: int
    duplicated: int
    params: dict
    matched: int | None = None
    match_distance: float = float("nan")

    @property
    def converged(self) -> bool:
        """Whether the run stopped at a stationary point."""
        return self.status == Status.CONVERGED

    def to_dict(self) -> dict:
        """The run as plain data (arrays as lists)."""
        record = {name.name: getattr(self, name.name) for name in dataclasses.fields(self)}
        for name in ("alignment", "initial_alignment"):
            record[name] = getattr(self, name).tolist()
        record["params"] = {k: np.asarray(v).tolist() for k, v in self.params.items()}
        return record

    @classmethod
    def from_dict(cls, record: dict, source: str | Path = "<record>") -> Trajectory:
        """Inverse of :meth:`to_dict`; raises ResultFileError for missing or unknown fields."""
        _files.check_fields(record, _TRAJECTORY_FIELDS, "a trajectory", source)
        record = dict(record)
        for name in ("alignment", "initial_alignment"):
            record[name] = np.asarray(record[name], dtype=float)
        record["params"] = {k: np.asarray(v, dtype=float) for k, v in record["params"].items()}
        return cls(**record)


_TRAJECTORY_FIELDS = tuple(f.name for f in dataclasses.fields(Trajectory))

#: The columns of :meth:`DynamicsResult.to_csv`: the scalar fields, the alignments
#: summarised by their max / median / min over atoms (a0: at the start).
TABLE_COLUMNS = (
    "start",
    "status",
    "steps",
    "loss",
    "grad_norm",
    "label",
    "a_max",
    "a_median",
    "a_min",
    "a0_max",
    "a0_median",
    "a0_min",
    "recovered",
    "dead",
    "duplicated",
    "matched",
    "match_distance",
)

_ARRAY_FIELDS = ("alignment", "initial_alignment", "params")


def _metric(values: np.ndarray) -> tuple[float, float, float]:
    return float(values.max()), float(np.median(values)), float(values.min())


def _row(t: Trajectory) -> list:
    return [
        t.start,
        t.status,
        t.steps,
        t.loss,
        t.grad_norm,
        t.label,
        *_metric(t.alignment),
        *_metric(t.initial_alignment),
        t.recovered,
        t.dead,
        t.duplicated,
        t.matched,
        None if math.isnan(t.match_distance) else t.match_distance,
    ]


_COLUMN_TYPES: dict[str, Callable[[str], Any]] = {
    "start": int,
    "status": str,
    "steps": int,
    "loss": float,
    "grad_norm": float,
    "label": str,
    "recovered": int,
    "dead": int,
    "duplicated": int,
    "matched": lambda text: int(text) if text else None,
    "match_distance": lambda text: float(text) if text else float("nan"),
}


def _tally(values: Iterable[str]) -> str:
    """'bad 20, good 4' (most frequent first)."""
    counts = Counter(values)
    return ", ".join(f"{name} {count}" for name, count in counts.most_common())


@dataclass(frozen=True)
class DynamicsResult:
    """Where gradient descent from many starts ended.

    Attributes
    ----------
    setting : Setting
        The setting descended (stored in files as :meth:`Setting.to_dict`).
    trajectories : tuple[Trajectory, ...]
    metadata : dict
        Every option of the run (step size, schedule, step rule, init, the seed the starts
        were drawn with, tolerances), the wall time, the evaluator and the critpoints version.
    matched_points : tuple
        (row, kind, label, loss) of each enumerated point, when an enumeration was given.
    description : str
        The setting's one-line description (with a note when a given measure was descended).
    """

    setting: Setting
    trajectories: tuple
    metadata: dict = field(default_factory=dict)
    matched_points: tuple = ()
    description: str = field(default="", kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.setting, Setting):
            raise TypeError(f"setting must be a critpoints.Setting, got {type(self.setting).__name__}")
        if not self.description:
            object.__setattr__(self, "description", self.setting.describe())
        object.__setattr__(self, "trajectories", tuple(self.trajectories))
        object.__setattr__(self, "matched_points", tuple(tuple(row) for row in self.matched_points))

    def __len__(self) -> int:
        return len(self.trajectories)

    def __iter__(self) -> Iterator[Trajectory]:
        return iter(self.trajectories)

    def basin_fractions(self, by: str = "label") -> dict[str, BasinFraction]:
        """Fractions of all runs by ``"label"``, ``"status"`` or ``"matched"``, with Wilson intervals.

        ``"label"``: the converged runs by the label of their stationary point (good, bad,
        collapsed) and every other run as ``"not converged"``; ``"status"``: converged,
        max_iterations, diverged; ``"matched"``: the converged runs by the kind and label of
        the enumerated point they reached, ``"unmatched"`` when their orbit is not in the
        table, and ``"not converged"``. Every fraction is over all runs, and every class of
        ``"label"`` and ``"status"`` is listed, with count 0 if no run ended there.
        """
        check.choice("by", by, ("label", "status", "matched"))
        total = len(self.trajectories)
        if by == "label":
            names = [*LABELS, NOT_CONVERGED]
            keys = [t.label if t.converged else NOT_CONVERGED for t in self.trajectories]
        elif by == "status":
            names = list(STATUSES)
            keys = [t.status for t in self.trajectories]
        else:
            table = {row: f"{kind} {label}" for row, kind, label, _ in self.matched_points}
            keys = [NOT_CONVERGED if not t.converged else table.get(t.matched, "unmatched") for t in self.trajectories]
            names = sorted(set(keys))
        out = {}
        for name in names:
            count = sum(1 for key in keys if key == name)
            low, high = wilson_interval(count, total)
            out[name] = BasinFraction(name, count, total, low, high)
        return out

    def alignment_summary(self) -> dict[str, tuple[float, float]]:
        """Mean and sd over runs of max / median / min_j a_j, initial and final (the paper's metric)."""
        rows = {}
        for when, attribute in (("initial", "initial_alignment"), ("final", "alignment")):
            metrics = np.array([_metric(getattr(t, attribute)) for t in self.trajectories]).reshape(-1, 3)
            for position, name in enumerate(("max", "median", "min")):
                column = metrics[:, position]
                sd = float(column.std(ddof=1)) if len(column) > 1 else 0.0
                rows[f"{when} {name}"] = (float(column.mean()), sd)
        return rows

    def table(self) -> str:
        """Basin fractions by label (and by matched point), statuses and alignments, as text."""
        meta = self.metadata
        lines = [f"gradient descent on: {self.description}"]
        lines.append(
            f"starts: {len(self)} (init {meta.get('init')}, seed {meta.get('seed')}); schedule {meta.get('schedule')}, "
            f"step {meta.get('step')}, lr {meta.get('lr')}, at most {meta.get('max_steps')} steps, "
            f"tol {meta.get('tol')}; {meta.get('seconds', float('nan')):.1f} s"
        )
        statuses = self.basin_fractions("status")
        lines.append("runs: " + ", ".join(f"{name} {value.count}" for name, value in statuses.items()))
        lines.append(f"{'class':>13}  {'count':>5}  {'fraction':>8}  {'95% CI (Wilson)':>17}")
        for name, value in self.basin_fractions("label").items():
            line = f"{name:>13}  {value.count:>5}  {value.fraction:>8.3f}  [{value.low:.3f}, {value.high:.3f}]"
            if name == NOT_CONVERGED and value.count:
                line += f"  (last iterate: {_tally(t.label for t in self if not t.converged)})"
            lines.append(line)
        lines.append("(good / bad / collapsed: converged runs by the label of their point; fractions over all runs)")
        summary = self.alignment_summary()
        for when in ("initial", "final"):
            cells = ", ".join(
                f"{name} {summary[f'{when} {name}'][0]:.3f} ± {summary[f'{when} {name}'][1]:.3f}"
                for name in ("max", "median", "min")
            )
            lines.append(f"a_j {when:>7}: {cells}")
        if self.matched_points:
            lines += self._matching_lines()
        return "\n".join(lines)

    def _matching_lines(self) -> list[str]:
        """Runs per enumerated point, and why every other run is not matched."""
        lines = ["ended at enumerated points (row: kind label loss -> runs):"]
        counts = Counter(t.matched for t in self.trajectories if t.converged and t.matched is not None)
        for row, kind, label, loss in self.matched_points:
            if counts.get(row):
                lines.append(f"  #{row:<3} {kind:>10} {label:>9} {loss:>14.8g} -> {counts[row]}")
        unconverged = [t for t in self if not t.converged]
        elsewhere = [t for t in self if t.converged and t.matched is None]
        lines.append(f"  not matched: {len(unconverged) + len(elsewhere)} runs")
        if unconverged:
            lines.append(f"    {len(unconverged)} did not converge ({_tally(t.status for t in unconverged)})")
        if elsewhere:
            distances = np.array([t.match_distance for t in elsewhere])
            lines.append(
                f"    {len(elsewhere)} converged to orbits the table does not list (labels: "
                f"{_tally(t.label for t in elsewhere)}; orbit-key distance to the nearest listed orbit: median "
                f"{np.nanmedian(distances):.1e}, max {np.nanmax(distances):.1e}, match tolerance "
                f"{self.metadata.get('match_tolerance')}):"
            )
            lines.append(
                "    points of a continuum of minima other than the representative the enumeration kept, or orbits "
                "its restarts did not reach (more restarts find more)"
            )
        return lines

    def __str__(self) -> str:
        return self.table()

    # -- records --------------------------------------------------------------------

    def _record(self) -> dict:
        return {
            **_files.record_header(FORMAT, FORMAT_VERSION),
            "setting": self.setting.to_dict(),
            "description": self.description,
            "metadata": self.metadata,
            "matched_points": [list(row) for row in self.matched_points],
            "basin_fractions": {
                name: {"count": v.count, "total": v.total, "fraction": v.fraction, "low": v.low, "high": v.high}
                for name, v in self.basin_fractions("label").items()
            },
        }

    def to_dict(self) -> dict:
        """The result as plain data (format, version, setting as data, runs with their final
        parameters, and the basin fractions by label as a summary)."""
        return {**self._record(), "trajectories": [t.to_dict() for t in self.trajectories]}

    def to_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as strict JSON, atomically (:func:`load_dynamics` reads it back)."""
        return _files.write_text(path, _files.dumps_record(self.to_dict()))

    def to_csv(self, path: str | Path) -> Path:
        """One row per run (columns :data:`TABLE_COLUMNS`; the first line is the header, for
        ``pandas.read_csv`` and ``csv.DictReader``); the setting, metadata and the runs'
        arrays go to ``<path>.meta.json``. Both written atomically; :func:`load_dynamics`
        reads them back and detects a truncated table."""
        arrays = [{name: value for name, value in t.to_dict().items() if name in _ARRAY_FIELDS} for t in self]
        record = {**self._record(), "arrays": arrays}
        return _files.write_table(path, TABLE_COLUMNS, [_row(t) for t in self], record)

    @classmethod
    def from_dict(cls, record: dict, source: str | Path = "<record>") -> DynamicsResult:
        """Inverse of :meth:`to_dict`; raises ResultFileError for another format or version,
        or missing or unknown fields."""
        _files.check_record(record, FORMAT, FORMAT_VERSION, _RESULT_FIELDS, ("basin_fractions",), source)
        trajectories = [Trajectory.from_dict(t, source) for t in record["trajectories"]]
        return cls._from_record(record, trajectories, source)

    @classmethod
    def _from_record(cls, record: dict, trajectories: list[Trajectory], source: str | Path) -> DynamicsResult:
        setting = Setting.from_dict(record["setting"], source)
        return cls(
            setting=setting,
            trajectories=tuple(trajectories),
            metadata=dict(record["metadata"]),
            matched_points=tuple(tuple(row) for row in record["matched_points"]),
            description=record["description"],
        )


_RESULT_FIELDS = frozenset({"setting", "description", "metadata", "matched_points", "trajectories"})


def load_dynamics(path: str | Path) -> DynamicsResult:
    """Read a result written by :meth:`DynamicsResult.to_json` or :meth:`DynamicsResult.to_csv`.

    A path with a metadata file next to it (``<path>.meta.json``) is read as the CSV table
    with its metadata; any other as JSON. Raises critpoints._files.ResultFileError (a
    ValueError) for another format, an unknown version, missing or unknown fields, or a
    table that does not match its metadata.
    """
    path = Path(path)
    if not _files.metadata_path(path).exists():
        return DynamicsResult.from_dict(_files.loads_record(path.read_text(encoding="utf-8"), path), path)
    record, rows = _files.read_table(path)
    arrays = record.pop("arrays", None)
    if not isinstance(arrays, list) or len(arrays) != len(rows):
        raise _files.ResultFileError(f"{path}: its metadata holds no run arrays for its {len(rows)} rows")
    meta = _files.metadata_path(path)
    _files.check_record(record, FORMAT, FORMAT_VERSION, _RESULT_FIELDS - {"trajectories"}, ("basin_fractions",), meta)
    trajectories = []
    for number, (row, extra) in enumerate(zip(rows, arrays), start=1):
        try:
            values = {name: convert(row[name]) for name, convert in _COLUMN_TYPES.items()}
        except ValueError as error:
            raise _files.ResultFileError(f"{path}: row {number} has a cell that does not parse: {error}") from error
        trajectories.append(Trajectory.from_dict({**values, **extra}, path))
    return DynamicsResult._from_record(record, trajectories, path)


# ---------------------------------------------------------------------------------------
# The descent
# ---------------------------------------------------------------------------------------


class _LoopEvaluator:
    """Per-start evaluation through the loss object (closed-form settings without a measure)."""

    def __init__(self, loss: PopulationLoss) -> None:
        self.loss = loss
        self.layout = loss.layout
        online = np.zeros(loss.n_params, dtype=bool)
        for name in ("W", "b"):
            if name in loss.layout.shapes:
                online[loss.layout.slice(name)] = True
        self.online_mask = online if "W_t" in loss.layout.shapes else np.ones(loss.n_params, dtype=bool)

    def evaluate(self, thetas: np.ndarray):
        from critpoints.losses.batched import BatchedGradient

        values = np.array([self.loss.value(theta) for theta in thetas])
        grads = np.array([self.loss.euclidean_gradient(theta) for theta in thetas]).reshape(thetas.shape)
        online = np.where(self.online_mask, grads, 0.0)
        return BatchedGradient(values, online, grads - online)


def _evaluator(loss: PopulationLoss, measure: FiniteMeasure | None):
    if measure is None and loss.measure is None:
        return _LoopEvaluator(loss), "loss object, one start at a time (closed form)"
    batched = BatchedLoss(loss, measure)
    source = "fixed measure given by the caller" if measure is not None else loss.expectation
    return batched, f"batched over starts ({source})"


def resolve_schedule(setting: Setting, schedule: str) -> str:
    """The schedule ``"auto"`` stands for, checked against the setting."""
    check.choice("schedule", schedule, SCHEDULES)
    two = setting.loss.two_encoders
    if schedule == "auto":
        return "alternating" if two else "simultaneous"
    if schedule == "alternating" and not two:
        raise ValueError(f"schedule='alternating' needs two encoders; loss {setting.loss} has one")
    return schedule


def descend(
    loss: PopulationLoss,
    starts: np.ndarray,
    *,
    lr: float,
    max_steps: int,
    tol: float = 1e-9,
    schedule: str = "auto",
    step: str = "riemannian",
    measure: FiniteMeasure | None = None,
    divergence_radius: float = 1e6,
    record_every: int = 0,
) -> dict[str, Any]:
    """Gradient descent (or the stop-gradient iteration) from every row of ``starts``.

    Parameters
    ----------
    loss : PopulationLoss
    starts : ndarray (R, n_params)
        Starts (projected onto the constraint manifold first).
    lr : float
        Step size eta > 0.
    max_steps : int
        Step budget per run.
    tol : float
        Converged when ||grad|| <= tol * max(1, |L(theta_0)|) (Riemannian gradient, or
        projected field).
    schedule : {"auto", "simultaneous", "alternating"}
    step : {"riemannian", "projected"}
    measure : FiniteMeasure, optional
        Descend the loss of this measure instead of the setting's own expectation.
    divergence_radius : float
        A run with ||theta|| above this (or non-finite) has diverged.
    record_every : int
        If > 0, also return the loss value of every run every ``record_every`` steps.

    Returns
    -------
    dict
        ``theta`` (R, n), ``status`` (R,) str, ``steps`` (R,), ``value`` (R,),
        ``grad_norm`` (R,), ``history`` (list of (step, values)) and ``evaluator`` (str).

    Notes
    -----
    The matrix products are small (views x neurons x inputs), where a multithreaded BLAS
    spends more time synchronising than computing (measured: 0.06 ms single-threaded against
    0.7 ms with two threads for a 512 x 50 by 50 x 50 product), so the descent runs with one
    BLAS thread.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _descend(
            loss,
            starts,
            lr=lr,
            max_steps=max_steps,
            tol=tol,
            schedule=schedule,
            step=step,
            measure=measure,
            divergence_radius=divergence_radius,
            record_every=record_every,
        )


def _descend(loss, starts, *, lr, max_steps, tol, schedule, step, measure, divergence_radius, record_every):
    setting = loss.setting
    lr = check.real("lr", lr, low=0.0, low_open=True)
    max_steps = check.integer("max_steps", max_steps, minimum=0)
    tol = check.real("tol", tol, low=0.0, low_open=True)
    check.choice("step", step, STEPS)
    schedule = resolve_schedule(setting, schedule)
    evaluator, description = _evaluator(loss, measure)
    spheres = BatchedSpheres(loss.manifold)
    thetas = spheres.project(np.atleast_2d(np.asarray(starts, dtype=float)))
    count = thetas.shape[0]
    status = np.array([Status.MAX_ITERATIONS.value] * count, dtype=object)
    steps = np.full(count, max_steps)
    first = evaluator.evaluate(thetas)
    scale = np.maximum(1.0, np.abs(first.value))
    value = first.value.copy()
    grad_norm = np.full(count, np.inf)
    active = np.arange(count)
    history = []
    current = first
    for iteration in range(max_steps + 1):
        if iteration > 0:
            current = evaluator.evaluate(thetas[active])
        residual = spheres.tangent(thetas[active], current.full) if spheres.constrained else current.full
        norms = np.linalg.norm(residual, axis=1)
        value[active] = current.value
        grad_norm[active] = norms
        if record_every and iteration % record_every == 0:
            history.append((iteration, value.copy()))
        finite = np.isfinite(norms) & np.all(np.isfinite(thetas[active]), axis=1)
        finite &= (
            np.linalg.norm(np.where(np.isfinite(thetas[active]), thetas[active], 0.0), axis=1) <= divergence_radius
        )
        done = norms <= tol * scale[active]
        stopped = done | ~finite
        status[active[done & finite]] = Status.CONVERGED.value
        status[active[~finite]] = Status.DIVERGED.value
        steps[active[stopped]] = iteration
        if iteration == max_steps:
            break
        keep = ~stopped
        active, current, residual = active[keep], _select(current, keep), residual[keep]
        if active.size == 0:
            break
        if schedule == "alternating":
            direction = current.online if iteration % 2 == 0 else current.target
        else:
            direction = current.full
        if step == "riemannian" and spheres.constrained:
            direction = spheres.tangent(thetas[active], direction)
        moved = thetas[active] - lr * direction
        thetas[active] = spheres.project(moved) if spheres.constrained else moved
    return {
        "theta": thetas,
        "status": status.astype(str),
        "steps": steps,
        "value": value,
        "grad_norm": grad_norm,
        "history": history,
        "evaluator": description,
        "schedule": schedule,
    }


def _select(gradient, keep: np.ndarray):
    return type(gradient)(gradient.value[keep], gradient.online[keep], gradient.target[keep])


# ---------------------------------------------------------------------------------------
# Matching to an enumeration
# ---------------------------------------------------------------------------------------


class _Matcher:
    """Orbit keys of the enumerated points, and the nearest one to a final point."""

    def __init__(self, loss: PopulationLoss, critical_points, tolerance: float, polish: bool) -> None:
        from critpoints.landscape.orbits import orbit_key

        self.loss = loss
        self.tolerance = tolerance
        self.polish = polish
        self.keys = [orbit_key(loss.symmetries, loss.pack(**point.params)) for point in critical_points]
        self.rows = tuple(
            (row, point.kind, point.label, float(point.loss)) for row, point in enumerate(critical_points, start=1)
        )

    def _polished(self, theta: np.ndarray) -> np.ndarray:
        from critpoints.landscape.system import LossSystem
        from critpoints.solver.newton import NewtonOptions, newton_stationary

        try:
            result = newton_stationary(LossSystem(self.loss), theta, NewtonOptions(max_iterations=25))
        except (ValueError, np.linalg.LinAlgError):
            return theta
        moved = np.linalg.norm(result.theta - theta)
        if result.converged and moved <= 1e-3 * max(1.0, float(np.linalg.norm(theta))):
            return result.theta
        return theta

    def match(self, theta: np.ndarray) -> tuple[int | None, float]:
        from critpoints.landscape.orbits import orbit_key

        if not self.keys:
            return None, float("nan")
        if self.polish:
            theta = self._polished(theta)
        key = orbit_key(self.loss.symmetries, theta)
        best, best_distance = None, float("inf")
        for row, known in enumerate(self.keys, start=1):
            if known.shape != key.shape:
                continue
            scale = max(1.0, float(np.abs(key).max(initial=0.0)), float(np.abs(known).max(initial=0.0)))
            distance = float(np.abs(key - known).max(initial=0.0)) / scale
            if distance < best_distance:
                best, best_distance = row, distance
        return (best if best_distance <= self.tolerance else None), best_distance


# ---------------------------------------------------------------------------------------
# The user-facing entry point
# ---------------------------------------------------------------------------------------


def run_dynamics(
    setting: Setting,
    n_starts: int = 100,
    seed: int = 0,
    init: Any = "gaussian",
    *,
    lr: float = 0.02,
    max_steps: int = 20000,
    tol: float = 1e-9,
    schedule: str = "auto",
    step: str = "riemannian",
    measure: FiniteMeasure | None = None,
    critical_points: CriticalPointSet | None = None,
    match_tolerance: float = 1e-6,
    polish: bool = True,
    tau_good: float = DEFAULT_TAU_GOOD,
    record_every: int = 0,
) -> DynamicsResult:
    """Gradient descent on ``setting``'s loss from ``n_starts`` seeded starts; labels and basins.

    Parameters
    ----------
    setting : Setting
    n_starts : int
        Number of runs R.
    seed : int, None or numpy Generator
        Seed of the generator that draws every start (critpoints.landscape.initialization);
        None draws a fresh one. The seed used is recorded in ``metadata["seed"]``.
    init : str, tuple or array
        ``"gaussian"``, ``("gaussian", scale)``, ``("warm_start", c)`` (W_0 = M^T + N(0, p^-c)
        noise), ``"uniform"`` or explicit starts: one theta, or ``n_starts`` rows.
    lr : float
        Step size eta.
    max_steps : int
        Step budget per run.
    tol : float
        Stationarity tolerance relative to max(1, |L(theta_0)|).
    schedule : {"auto", "simultaneous", "alternating"}
        See the module docstring; ``"auto"`` alternates for two-encoder losses (the paper).
    step : {"riemannian", "projected"}
        Retracted Riemannian step, or ambient step then renormalisation (the paper's code).
    measure : FiniteMeasure, optional
        Descend the loss over this measure (a fixed sample, a minibatch) instead of the
        setting's expectation. Required for closed-form settings only if a batched
        evaluation is wanted; without it they are evaluated one start at a time.
    critical_points : CriticalPointSet, optional
        The enumeration of the same setting (another setting is refused); each converged
        run is matched to its orbit.
    match_tolerance : float
        Relative orbit-key distance under which a run matches an enumerated point.
    polish : bool
        Refine converged runs by Newton before matching (only the matching uses it).
    tau_good : float
        Alignment threshold of "good".
    record_every : int
        Record the loss of every run every this many steps (metadata "history").

    Returns
    -------
    DynamicsResult
        Printing it gives the table of basin fractions with Wilson intervals.

    Raises
    ------
    ValueError, TypeError
        Naming the option, its value and what is allowed, for any bad option, before any
        work is done.

    Warns
    -----
    UserWarning
        When the stationarity threshold is within three orders of magnitude of the gradient
        norm at the starts (critpoints.landscape.thresholds).

    Examples
    --------
    >>> import critpoints
    >>> from critpoints.dynamics.descent import run_dynamics
    >>> s = critpoints.Setting(p=4, d=4, m=4, loss="spectral", encoder="symrelu", bias=-0.3,
    ...                        constraint="unit_rows")
    >>> result = run_dynamics(s, n_starts=20, seed=0, max_steps=2000)   # doctest: +SKIP
    >>> print(result)                                                   # doctest: +SKIP
    """
    began = time.perf_counter()
    if not isinstance(setting, Setting):
        raise TypeError(f"setting must be a critpoints.Setting, got {type(setting).__name__}")
    n_starts = check.integer("n_starts", n_starts, minimum=1)
    seed = check.seed("seed", seed)
    init = check_init(init, n_starts)
    lr = check.real("lr", lr, low=0.0, low_open=True)
    max_steps = check.integer("max_steps", max_steps, minimum=0)
    tol = check.real("tol", tol, low=0.0, low_open=True)
    schedule = resolve_schedule(setting, schedule)
    check.choice("step", step, STEPS)
    if measure is not None and not isinstance(measure, FiniteMeasure):
        raise TypeError(f"measure must be None or a critpoints.FiniteMeasure, got {type(measure).__name__}")
    if critical_points is not None:
        if not isinstance(critical_points, CriticalPointSet):
            raise TypeError(f"critical_points must be None or a CriticalPointSet, got {type(critical_points).__name__}")
        if critical_points.setting != setting:
            raise ValueError(
                "critical_points holds the enumeration of another setting "
                f"({critical_points.description}); enumerate this one: {setting.describe()}"
            )
    match_tolerance = check.real("match_tolerance", match_tolerance, low=0.0, high=1.0, low_open=True)
    polish = check.flag("polish", polish)
    tau_good = check.real("tau_good", tau_good, low=0.0, high=1.0, low_open=True)
    record_every = check.integer("record_every", record_every, minimum=0)

    loss = population_loss(setting)
    starts = initial_points(loss, n_starts, np.random.default_rng(seed), init)
    if measure is None:
        warn_if_threshold_is_coarse(loss, tol, stacklevel=2)
    outcome = descend(
        loss,
        starts,
        lr=lr,
        max_steps=max_steps,
        tol=tol,
        schedule=schedule,
        step=step,
        measure=measure,
        record_every=record_every,
    )
    matcher = None
    if critical_points is not None:
        matcher = _Matcher(loss, critical_points, match_tolerance, polish and measure is None)
    dictionary = setting.dictionary_matrix()
    views = None if loss.measure is None else np.concatenate([loss.measure.anchor, loss.measure.x2])
    trajectories = []
    for index, theta in enumerate(outcome["theta"]):
        params = loss.unpack(theta)
        label = label_point(setting, params, views=views, tau_good=tau_good)
        matched, distance = None, float("nan")
        if matcher is not None and outcome["status"][index] == Status.CONVERGED:
            matched, distance = matcher.match(theta)
        trajectories.append(
            Trajectory(
                start=index,
                status=str(outcome["status"][index]),
                steps=int(outcome["steps"][index]),
                loss=float(outcome["value"][index]),
                grad_norm=float(outcome["grad_norm"][index]),
                label=label.label,
                alignment=label.alignment,
                initial_alignment=alignment(loss.unpack(starts[index])["W"], dictionary),
                recovered=label.recovered,
                dead=label.dead,
                duplicated=label.duplicated,
                params=params,
                matched=matched,
                match_distance=distance,
            )
        )
    metadata = {
        "n_starts": n_starts,
        "seed": seed,
        "init": describe_init(init),
        "lr": lr,
        "max_steps": max_steps,
        "tol": tol,
        "schedule": outcome["schedule"],
        "step": step,
        "tau_good": tau_good,
        "evaluator": outcome["evaluator"],
        "expectation": loss.expectation,
        "empirical": bool(loss.empirical or (measure is not None and measure.empirical)),
        "measure": None if measure is None else "given by the caller (not stored)",
        "match_tolerance": match_tolerance if critical_points is not None else None,
        "polish": polish,
        "critpoints_version": __version__,
        "seconds": time.perf_counter() - began,
    }
    if record_every:
        metadata["history"] = [(step_, values.tolist()) for step_, values in outcome["history"]]
    description = setting.describe() if measure is None else f"{setting.describe()} [descended on a given measure]"
    return DynamicsResult(
        setting=setting,
        trajectories=tuple(trajectories),
        metadata=metadata,
        matched_points=matcher.rows if matcher is not None else (),
        description=description,
    )
