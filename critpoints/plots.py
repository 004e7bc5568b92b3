"""Figures of a landscape and of the training dynamics, written as PNG files.

* :func:`minima_heatmaps` — |W M| (neurons x atoms, the |cosines| behind the alignments
  a_j = max_i |cos(w_i, M_j)|) of the lowest points of index 0 of an enumeration;
* :func:`hessian_spectra` — the spectrum of every enumerated point (Riemannian Hessian, or the
  real parts of the field Jacobian's eigenvalues, with the symmetry zero modes removed, as the
  classification uses them);
* :func:`index_vs_loss` — index against loss, one marker per label;
* :func:`alignment_histogram` — min_j a_j at the start and at the end of descent runs;
* :func:`basin_curves` — basin fractions (with their Wilson intervals) against a parameter,
  e.g. the warm-start exponent c or the drop probability q.

Figures are drawn on the Agg canvas directly (no pyplot state, no display needed); each
function returns the path it wrote. Sizes are ``figsize * dpi`` pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from critpoints.landscape.labels import atom_cosines
from critpoints.landscape.points import spectrum_at
from critpoints.losses.population_loss import PopulationLoss, population_loss
from critpoints.model.setting import Setting

if TYPE_CHECKING:
    from critpoints.dynamics.descent import BasinFraction, DynamicsResult
    from critpoints.dynamics.experiments import CellResult, ExperimentResult
    from critpoints.landscape.result import CriticalPoint, CriticalPointSet

#: Resolution of every figure (dots per inch).
DPI = 100

LABEL_COLOURS = {"good": "tab:green", "bad": "tab:red", "collapsed": "tab:gray"}
LABEL_MARKERS = {"good": "o", "bad": "s", "collapsed": "x"}


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI, format="png")
    return path


def minima_heatmaps(result: CriticalPointSet, setting: Setting, path: str | Path, max_points: int = 8) -> Path:
    """|W M| of the lowest ``max_points`` points of index 0 (minima and flat minima).

    Parameters
    ----------
    result : CriticalPointSet
    setting : Setting
        The setting of the enumeration (for the dictionary M).
    path : str or Path
        PNG file to write; its size is (3.0 * columns) x (2.8 * rows) inches at ``DPI``.
    max_points : int
        Number of panels at most.

    Returns
    -------
    Path
    """
    points = [point for point in result if point.index == 0][:max_points] or list(result)[:max_points]
    dictionary = setting.dictionary_matrix()
    columns = min(4, max(1, len(points)))
    rows = max(1, int(np.ceil(len(points) / columns)))
    figure = Figure(figsize=(3.0 * columns, 2.8 * rows))
    for number, point in enumerate(points):
        axis = figure.add_subplot(rows, columns, number + 1)
        image = axis.imshow(
            atom_cosines(point.params["W"], dictionary), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto"
        )
        axis.set_title(f"{point.kind} {point.label}\nL={point.loss:.5g}", fontsize=8)
        axis.set_xlabel("atom j", fontsize=7)
        axis.set_ylabel("neuron i", fontsize=7)
        axis.set_xticks(range(dictionary.shape[1]))
        axis.set_yticks(range(point.params["W"].shape[0]))
        axis.tick_params(labelsize=6)
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    if not points:
        figure.add_subplot(1, 1, 1).text(0.5, 0.5, "no points", ha="center")
    figure.suptitle("|cos(w_i, M_j)| of the lowest index-0 points", fontsize=9)
    figure.tight_layout()
    return _save(figure, path)


def point_spectrum(setting: Setting, point: CriticalPoint, loss: PopulationLoss | None = None) -> np.ndarray:
    """Eigenvalues (real parts for a field) of one point, symmetry zero modes removed.

    ``loss`` is ``population_loss(setting)``, built here when not given.
    """
    loss = population_loss(setting) if loss is None else loss
    spectrum = spectrum_at(loss, loss.pack(**point.params))
    return np.real(np.asarray(spectrum.eigenvalues))


def hessian_spectra(result: CriticalPointSet, setting: Setting, path: str | Path, max_points: int = 40) -> Path:
    """The spectrum of each enumerated point (lowest loss first), on a symmetric-log axis.

    Parameters
    ----------
    result : CriticalPointSet
    setting : Setting
    path : str or Path
        PNG file, 8 x 4 inches at ``DPI``.
    max_points : int
        Number of points shown at most.
    """
    figure = Figure(figsize=(8.0, 4.0))
    axis = figure.add_subplot(1, 1, 1)
    loss = population_loss(setting)
    for number, point in enumerate(list(result)[:max_points], start=1):
        values = point_spectrum(setting, point, loss)
        axis.scatter(
            np.full(values.shape, number),
            values,
            s=10,
            marker=LABEL_MARKERS.get(point.label, "o"),
            color=LABEL_COLOURS.get(point.label, "k"),
        )
    axis.axhline(0.0, color="k", linewidth=0.5)
    axis.set_yscale("symlog", linthresh=1e-3)
    axis.set_xlabel("point (table row, lowest loss first)")
    axis.set_ylabel("eigenvalue" + (" (real part)" if setting.loss.is_field else ""))
    axis.set_title(f"spectra: {setting.loss} m={setting.m} d={setting.d}", fontsize=9)
    for label, colour in LABEL_COLOURS.items():
        axis.scatter([], [], color=colour, marker=LABEL_MARKERS[label], label=label)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return _save(figure, path)


def index_vs_loss(result: CriticalPointSet, path: str | Path) -> Path:
    """Index (number of negative eigenvalues) against loss, one marker per label (6 x 4 inches)."""
    figure = Figure(figsize=(6.0, 4.0))
    axis = figure.add_subplot(1, 1, 1)
    for label in LABEL_COLOURS:
        points = [point for point in result if point.label == label]
        if points:
            axis.scatter(
                [p.loss for p in points],
                [p.index for p in points],
                color=LABEL_COLOURS[label],
                marker=LABEL_MARKERS[label],
                label=label,
            )
    axis.set_xlabel("loss")
    axis.set_ylabel("index")
    axis.set_title("index against loss", fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return _save(figure, path)


def basin_curves(
    x: Sequence[float],
    curves: dict[str, Sequence[BasinFraction]],
    path: str | Path,
    *,
    xlabel: str = "c",
    ylabel: str = "fraction of runs recovering M",
    title: str = "",
) -> Path:
    """Basin fractions with their 95% Wilson intervals against a parameter (6 x 4 inches).

    Parameters
    ----------
    x : sequence of float
        The parameter values (e.g. the warm-start exponents c).
    curves : dict[str, sequence of BasinFraction]
        One series per name, one :class:`~critpoints.dynamics.descent.BasinFraction` per x.
    path : str or Path
    xlabel, ylabel, title : str
    """
    figure = Figure(figsize=(6.0, 4.0))
    axis = figure.add_subplot(1, 1, 1)
    x = np.asarray(x, dtype=float)
    for name, fractions in curves.items():
        y = np.array([f.fraction for f in fractions])
        low = np.array([f.low for f in fractions])
        high = np.array([f.high for f in fractions])
        error = [np.maximum(y - low, 0.0), np.maximum(high - y, 0.0)]
        axis.errorbar(x, y, yerr=error, marker="o", capsize=3, label=name)
    axis.set_ylim(-0.03, 1.03)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    if title:
        axis.set_title(title, fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return _save(figure, path)


def alignment_histogram(result: DynamicsResult, path: str | Path, tau_good: float | None = None) -> Path:
    """Histograms of min_j a_j at the start and at the end of the runs of a DynamicsResult (6 x 4 inches).

    Parameters
    ----------
    result : DynamicsResult
    path : str or Path
    tau_good : float, optional
        Draw the "good" threshold (default: the one the runs were labelled with).
    """
    figure = Figure(figsize=(6.0, 4.0))
    axis = figure.add_subplot(1, 1, 1)
    bins = np.linspace(0.0, 1.0, 41)
    initial = [t.initial_alignment.min() for t in result.trajectories]
    final = [t.alignment.min() for t in result.trajectories]
    axis.hist(initial, bins=bins, alpha=0.5, label="start", color="tab:blue")
    axis.hist(final, bins=bins, alpha=0.5, label="end", color="tab:orange")
    threshold = tau_good if tau_good is not None else result.metadata.get("tau_good")
    if threshold is not None:
        axis.axvline(threshold, color="k", linestyle="--", linewidth=0.8, label=f"tau_good = {threshold:g}")
    axis.set_xlabel("min_j a_j")
    axis.set_ylabel("runs")
    axis.set_title(f"{len(result.trajectories)} runs", fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return _save(figure, path)


def experiment_metric(result: ExperimentResult, path: str | Path) -> Path:
    """The paper's metric of an ExperimentResult: initial and final min_j a_j per cell (mean ± sd over seeds).

    Parameters
    ----------
    result : critpoints.dynamics.experiments.ExperimentResult
    path : str or Path
        PNG file; width 1.0 inch per cell (at least 6), height 4.5 inches.
    """
    cells = result.cells
    width = max(6.0, 1.0 * len(cells))
    figure = Figure(figsize=(width, 4.5))
    axis = figure.add_subplot(1, 1, 1)
    x = np.arange(len(cells))
    for offset, (when, colour) in zip((-0.2, 0.2), (("initial", "tab:blue"), ("final", "tab:orange"))):
        means = [c.summary()[f"{when} min"][0] for c in cells]
        sds = [c.summary()[f"{when} min"][1] for c in cells]
        axis.bar(x + offset, means, width=0.4, yerr=sds, capsize=2, color=colour, label=f"{when} min_j a_j")
        maxima = [c.summary()[f"{when} max"][0] for c in cells]
        axis.scatter(
            x + offset,
            maxima,
            marker="_",
            color="navy" if offset < 0 else "saddlebrown",
            s=80,
            label=f"{when} max_j a_j",
        )
    axis.set_xticks(x)
    axis.set_xticklabels([" ".join(c.cell.describe().split()[1:]) for c in cells], rotation=60, ha="right", fontsize=6)
    axis.set_ylim(0.0, 1.05)
    axis.set_ylabel("alignment")
    axis.set_title(f"{result.experiment} ({result.mode})", fontsize=9)
    axis.legend(fontsize=6)
    figure.tight_layout()
    return _save(figure, path)


def alignment_curves(
    curves: dict[str, CellResult],
    path: str | Path,
    *,
    reference: dict[str, dict[int, tuple[float, float, float]]] | None = None,
    title: str = "",
) -> Path:
    """Write :func:`alignment_curves_figure` to ``path`` and return the path."""
    return _save(alignment_curves_figure(curves, reference=reference, title=title), path)


def alignment_curves_figure(
    curves: dict[str, CellResult],
    *,
    reference: dict[str, dict[int, tuple[float, float, float]]] | None = None,
    title: str = "",
) -> Figure:
    """max / median / min over atoms of a_j against epochs, mean over seeds with a ±1 sd band.

    One panel per statistic (12 x 4 inches), one line per entry of ``curves``.

    Parameters
    ----------
    curves : dict[str, CellResult]
        Name -> a cell's SGD result whose runs recorded a_j along training
        (``run_experiment(..., record_every=r)``).
    reference : dict[str, dict[int, (max, median, min)]], optional
        Points to mark, per name and epoch (e.g. the paper's own runs).
    title : str
    """
    figure = Figure(figsize=(12.0, 4.0))
    statistics = (("max", np.max), ("median", np.median), ("min", np.min))
    colours = ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange"]
    for panel, (name, reduce) in enumerate(statistics):
        axis = figure.add_subplot(1, 3, panel + 1)
        for colour, (label, result) in zip(colours, curves.items()):
            if result.trajectory is None:
                raise ValueError(f"curves[{label!r}] has no recorded trajectory (run with record_every > 0)")
            values = reduce(result.trajectory, axis=2)  # (seeds, epochs)
            mean = values.mean(axis=0)
            sd = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros_like(mean)
            axis.plot(result.epochs, mean, color=colour, label=f"{label} ({len(values)} seeds)")
            axis.fill_between(result.epochs, mean - sd, mean + sd, color=colour, alpha=0.2, linewidth=0)
            for epoch, triple in (reference or {}).get(label, {}).items():
                axis.plot([epoch], [triple[panel]], marker="*", markersize=10, color=colour, linestyle="none")
        axis.set_ylim(0.0, 1.02)
        axis.set_xlabel("epoch")
        axis.set_ylabel(f"{name}$_j\\, a_j$")
        axis.grid(alpha=0.3)
        if panel == 0:
            axis.legend(fontsize=7, loc="lower right")
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure
