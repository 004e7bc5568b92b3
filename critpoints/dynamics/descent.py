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
``max_steps`` as ``max_steps`` (slow convergence on a flat region, or oscillation across a
symmetric-ReLU kink).

Labels, matching, basin fractions
---------------------------------
Each final point is labelled by critpoints.landscape.labels.label_point (collapsed / good / bad, the
alignments a_j = max_i |cos(w_i, M_j)| and the counts of recovered atoms, dead and duplicated
neurons). Given the result of critpoints.enumerate_critical_points for the same setting,
each converged run is polished by a few Newton steps and matched to the enumerated point on
the same symmetry orbit (critpoints.landscape.orbits.orbit_key / same_orbit); a run whose orbit is not
in the table (for example a point of a continuum of minima other than the representative
the enumeration kept) is reported as unmatched, with the relative distance to the nearest key.

The basin fraction of a label is k/R (k runs of R ended with that label). Its 95% Wilson
score interval (E. B. Wilson, JASA 22, 1927) is

    (k + z^2/2) / (R + z^2)  +-  z / (R + z^2) * sqrt(k (R - k) / R + z^2 / 4),   z = 1.96,

which stays inside [0, 1] and keeps a sensible width at k = 0 and k = R.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from critpoints import _validation as check
from critpoints.data.finite_measure import FiniteMeasure
from critpoints.landscape.initialization import initial_points
from critpoints.landscape.labels import DEFAULT_TAU_GOOD, alignment, label_point
from critpoints.losses.batched import BatchedLoss, BatchedSpheres
from critpoints.losses.population_loss import PopulationLoss, population_loss
from critpoints.model.setting import Setting

if TYPE_CHECKING:
    from critpoints.landscape.result import CriticalPointSet

SCHEDULES = ("auto", "simultaneous", "alternating")
STEPS = ("riemannian", "projected")
STATUSES = ("converged", "max_steps", "diverged")
LABELS = ("good", "bad", "collapsed")

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
    """How many runs ended with one label (or in one critical point), with a 95% Wilson CI."""

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
        "converged", "max_steps" or "diverged".
    steps : int
        Steps taken.
    loss : float
        L at the final point (ncl_predictor: (L_o + L_t)/2).
    grad_norm : float
        Riemannian gradient (projected field) norm at the final point.
    label : str
        "collapsed", "good" or "bad" (of the final point).
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
        enumerated point (nan without an enumeration).
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

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            "start": self.start,
            "status": self.status,
            "steps": self.steps,
            "loss": self.loss,
            "grad_norm": self.grad_norm,
            "label": self.label,
            "alignment": self.alignment.tolist(),
            "initial_alignment": self.initial_alignment.tolist(),
            "recovered": self.recovered,
            "dead": self.dead,
            "duplicated": self.duplicated,
            "params": {k: np.asarray(v).tolist() for k, v in self.params.items()},
            "matched": self.matched,
            "match_distance": None if math.isnan(self.match_distance) else self.match_distance,
        }


def _metric(values: np.ndarray) -> tuple[float, float, float]:
    return float(values.max()), float(np.median(values)), float(values.min())


@dataclass(frozen=True)
class DynamicsResult:
    """Where gradient descent from many starts ended.

    Attributes
    ----------
    setting : str
        The setting's description (its expectation mode: population or empirical).
    trajectories : tuple[Trajectory, ...]
    metadata : dict
        Step size, schedule, step rule, init, seed, tolerances, wall time, evaluator.
    matched_points : tuple
        (row, kind, label, loss) of each enumerated point, when an enumeration was given.
    """

    setting: str
    trajectories: tuple
    metadata: dict = field(default_factory=dict)
    matched_points: tuple = ()

    def __len__(self) -> int:
        return len(self.trajectories)

    def __iter__(self):
        return iter(self.trajectories)

    def basin_fractions(self, by: str = "label") -> dict[str, BasinFraction]:
        """Fractions of runs by ``"label"``, ``"status"`` or ``"matched"`` (kind of matched point).

        Every label in ``LABELS`` (every status in ``STATUSES``) is listed, with count 0 if
        no run ended there. ``"matched"`` groups runs by the kind and label of the
        enumerated point they reached, ``"unmatched"`` otherwise.
        """
        total = len(self.trajectories)
        if by == "label":
            names = list(LABELS)
            keys = [t.label for t in self.trajectories]
        elif by == "status":
            names = list(STATUSES)
            keys = [t.status for t in self.trajectories]
        elif by == "matched":
            table = {row: f"{kind} {label}" for row, kind, label, _ in self.matched_points}
            keys = [table.get(t.matched, "unmatched") if t.matched else "unmatched" for t in self.trajectories]
            names = sorted(set(keys))
        else:
            raise ValueError(f"by must be 'label', 'status' or 'matched', got {by!r}")
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
        lines = [f"gradient descent on: {self.setting}"]
        lines.append(
            f"starts: {len(self)} (init {meta.get('init')}, seed {meta.get('seed')}); schedule {meta.get('schedule')}, "
            f"step {meta.get('step')}, lr {meta.get('lr')}, at most {meta.get('max_steps')} steps, "
            f"tol {meta.get('tol')}; {meta.get('seconds', float('nan')):.1f} s"
        )
        statuses = self.basin_fractions("status")
        lines.append("runs: " + ", ".join(f"{name} {value.count}" for name, value in statuses.items()))
        lines.append(f"{'label':>10}  {'count':>5}  {'fraction':>8}  {'95% CI (Wilson)':>17}")
        for name, value in self.basin_fractions("label").items():
            lines.append(f"{name:>10}  {value.count:>5}  {value.fraction:>8.3f}  [{value.low:.3f}, {value.high:.3f}]")
        summary = self.alignment_summary()
        for when in ("initial", "final"):
            cells = ", ".join(
                f"{name} {summary[f'{when} {name}'][0]:.3f} ± {summary[f'{when} {name}'][1]:.3f}"
                for name in ("max", "median", "min")
            )
            lines.append(f"a_j {when:>7}: {cells}")
        if self.matched_points:
            lines.append("ended at enumerated points (row: kind label loss -> runs):")
            counts: dict[int | None, int] = {}
            for t in self.trajectories:
                counts[t.matched] = counts.get(t.matched, 0) + 1
            for row, kind, label, loss in self.matched_points:
                if counts.get(row):
                    lines.append(f"  #{row:<3} {kind:>10} {label:>9} {loss:>14.8g} -> {counts[row]}")
            unmatched = counts.get(None, 0)
            lines.append(
                f"  not in the table: {unmatched} (of which converged: "
                f"{sum(1 for t in self.trajectories if t.matched is None and t.status == 'converged')})"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict:
        """JSON-ready dict (trajectories with their final parameters)."""
        return {
            "setting": self.setting,
            "metadata": self.metadata,
            "matched_points": [list(row) for row in self.matched_points],
            "basin_fractions": {
                name: {"count": v.count, "total": v.total, "fraction": v.fraction, "low": v.low, "high": v.high}
                for name, v in self.basin_fractions("label").items()
            },
            "trajectories": [t.to_dict() for t in self.trajectories],
        }

    def to_json(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, default=str))

    def to_csv(self, path: str | Path) -> None:
        """One row per run (no parameters); a first line '# {...}' holds the setting and metadata as JSON."""
        import csv

        names = [
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
        ]
        with open(path, "w", newline="") as handle:
            header = {"setting": self.setting, "metadata": {k: v for k, v in self.metadata.items() if k != "history"}}
            handle.write(f"# {json.dumps(header, default=str)}\n")
            writer = csv.writer(handle)
            writer.writerow(names)
            for t in self.trajectories:
                writer.writerow(
                    [
                        t.start,
                        t.status,
                        t.steps,
                        repr(t.loss),
                        repr(t.grad_norm),
                        t.label,
                        *_metric(t.alignment),
                        *_metric(t.initial_alignment),
                        t.recovered,
                        t.dead,
                        t.duplicated,
                        "" if t.matched is None else t.matched,
                        "" if math.isnan(t.match_distance) else repr(t.match_distance),
                    ]
                )


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
    status = np.array(["max_steps"] * count, dtype=object)
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
        status[active[done & finite]] = "converged"
        status[active[~finite]] = "diverged"
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
    seed : int
        Seed of the generator that draws every start (critpoints.landscape.initialization).
    init : str, tuple or array
        ``"gaussian"``, ``("gaussian", scale)``, ``("warm_start", c)`` (W_0 = M^T + N(0, p^-c)
        noise), ``"uniform"`` or explicit starts (R, n_params).
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
        The enumeration of the same setting; each run is matched to its orbit.
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

    Examples
    --------
    >>> import critpoints
    >>> from critpoints.dynamics.descent import run_dynamics
    >>> s = critpoints.Setting(p=4, d=4, m=4, loss="spectral", encoder="symrelu", bias=-0.3,
    ...                        constraint="unit_rows")
    >>> result = run_dynamics(s, n_starts=20, seed=0, max_steps=2000)   # doctest: +SKIP
    >>> print(result)                                                   # doctest: +SKIP
    """
    if not isinstance(setting, Setting):
        raise TypeError(f"setting must be a critpoints.Setting, got {type(setting).__name__}")
    began = time.perf_counter()
    loss = population_loss(setting)
    starts = initial_points(loss, n_starts, np.random.default_rng(seed), init)
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
        if matcher is not None and outcome["status"][index] == "converged":
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
        "init": init if isinstance(init, (str, tuple)) else "user arrays",
        "lr": lr,
        "max_steps": max_steps,
        "tol": tol,
        "schedule": outcome["schedule"],
        "step": step,
        "tau_good": tau_good,
        "evaluator": outcome["evaluator"],
        "expectation": loss.expectation,
        "empirical": bool(loss.empirical or (measure is not None and measure.empirical)),
        "match_tolerance": match_tolerance if critical_points is not None else None,
        "seconds": time.perf_counter() - began,
    }
    if record_every:
        metadata["history"] = [(step_, values.tolist()) for step_, values in outcome["history"]]
    return DynamicsResult(
        setting=setting.describe() if measure is None else f"{setting.describe()} [descended on a given measure]",
        trajectories=tuple(trajectories),
        metadata=metadata,
        matched_points=matcher.rows if matcher is not None else (),
    )
