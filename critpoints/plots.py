"""Figures of a landscape and of the training dynamics, written as PNG, SVG or PDF files.

* :func:`minima_heatmaps` — |W M| (neurons x atoms, the |cosines| behind the alignments
  a_j = max_i |cos(w_i, M_j)|) of the lowest points of index 0 of an enumeration;
* :func:`hessian_spectra` — the spectrum of every enumerated point (Riemannian Hessian, or the
  real parts of the field Jacobian's eigenvalues, with the symmetry zero modes removed, as the
  classification uses them);
* :func:`index_vs_loss` — index against loss, one marker per label;
* :func:`alignment_histogram` — min_j a_j at the start and at the end of descent runs;
* :func:`basin_curves` — basin fractions (with their Wilson intervals) against a parameter,
  e.g. the warm-start exponent c or the drop probability q;
* :func:`disconnectivity_graph` — the disconnectivity graph of a landscape graph (minima at
  their loss, joined at the heights of their lowest connecting saddles), and
  :func:`disconnectivity_panels`, several side by side (PNG, SVG or PDF by the file name).

Figures are drawn on the Agg canvas directly (no pyplot state, no display needed). Each
figure has a builder ``*_figure`` returning the matplotlib Figure (to show in a notebook or
to inspect) and a writer taking a path, which saves it through :func:`save_figure`: the
format follows the file extension (.png, .svg or .pdf), the file is written atomically, and
the writer returns the path. PNG sizes are ``figsize * DPI`` pixels. Legends list only the
classes that have points; nothing is dropped silently (a figure that shows fewer points
than it was given says so in its title).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from critpoints import _files
from critpoints import _validation as check
from critpoints.landscape.labels import atom_cosines
from critpoints.landscape.points import spectrum_at
from critpoints.losses.population_loss import PopulationLoss, population_loss
from critpoints.model.setting import Setting

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from critpoints.dynamics.descent import BasinFraction, DynamicsResult
    from critpoints.dynamics.experiments import CellResult, ExperimentResult
    from critpoints.landscape.graph import LandscapeGraph
    from critpoints.landscape.result import CriticalPoint, CriticalPointSet

#: Resolution of every figure (dots per inch).
DPI = 100

LABEL_COLOURS = {"good": "tab:green", "bad": "tab:red", "collapsed": "tab:gray"}
LABEL_MARKERS = {"good": "o", "bad": "s", "collapsed": "x"}


#: File formats by extension.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` to ``path`` in the format of its extension (.png, .svg, .pdf), atomically.

    The folder is created if needed. Raises ValueError for another extension.
    """
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(
            f"path must end in one of {', '.join(FORMATS)} (the format follows the extension), got path={str(path)!r}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    return _files.atomic_write(path, lambda handle: figure.savefig(handle, dpi=DPI, format=kind))


def _legend(axis, **options) -> None:
    """A legend of the labelled artists, or none when nothing is labelled."""
    if axis.get_legend_handles_labels()[0]:
        axis.legend(**options)


def minima_heatmaps(result: CriticalPointSet, setting: Setting, path: str | Path, max_points: int = 8) -> Path:
    """Write :func:`minima_figure` to ``path`` (.png, .svg or .pdf) and return the path.

    The PNG is (3.0 * columns) x (2.8 * rows) inches at ``DPI``.
    """
    return save_figure(minima_figure(result, setting, max_points), path)


def minima_figure(result: CriticalPointSet, setting: Setting, max_points: int = 8) -> Figure:
    """|W M| (the |cosines| of neurons and atoms) of the lowest ``max_points`` points of index 0.

    Parameters
    ----------
    result : CriticalPointSet
    setting : Setting
        The setting of the enumeration (for the dictionary M).
    max_points : int
        Number of panels at most; the title says "first k of n" when there are more
        points of index 0 (minima and flat minima). Without such points, the lowest points.

    Returns
    -------
    Figure
    """
    max_points = check.integer("max_points", max_points, minimum=1)
    candidates = [point for point in result if point.index == 0] or list(result)
    points = candidates[:max_points]
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
    shown = f"first {len(points)} of {len(candidates)}" if len(points) < len(candidates) else "the"
    figure.suptitle(f"|cos(w_i, M_j)| of {shown} lowest index-0 points", fontsize=9)
    figure.tight_layout()
    return figure


def point_spectrum(setting: Setting, point: CriticalPoint, loss: PopulationLoss | None = None) -> np.ndarray:
    """Eigenvalues (real parts for a field) of one point, symmetry zero modes removed.

    ``loss`` is ``population_loss(setting)``, built here when not given.
    """
    loss = population_loss(setting) if loss is None else loss
    spectrum = spectrum_at(loss, loss.pack(**point.params))
    return np.real(np.asarray(spectrum.eigenvalues))


def hessian_spectra(
    result: CriticalPointSet, setting: Setting, path: str | Path, max_points: int | None = None
) -> Path:
    """Write :func:`spectra_figure` to ``path`` (.png, .svg or .pdf; PNG 8 x 4 inches) and return the path."""
    return save_figure(spectra_figure(result, setting, max_points), path)


def spectra_figure(result: CriticalPointSet, setting: Setting, max_points: int | None = None) -> Figure:
    """The spectrum of each enumerated point (lowest loss first), on a symmetric-log axis.

    One scatter (one column of markers) per point, coloured by label.

    Parameters
    ----------
    result : CriticalPointSet
    setting : Setting
    max_points : int, optional
        Draw only the first ``max_points`` points (the title then says "first k of n");
        default all of them.
    """
    points = list(result)
    if max_points is not None:
        points = points[: check.integer("max_points", max_points, minimum=1)]
    figure = Figure(figsize=(8.0, 4.0))
    axis = figure.add_subplot(1, 1, 1)
    loss = population_loss(setting)
    labels_drawn = []
    for number, point in enumerate(points, start=1):
        values = point_spectrum(setting, point, loss)
        axis.scatter(
            np.full(values.shape, number),
            values,
            s=10,
            marker=LABEL_MARKERS.get(point.label, "o"),
            color=LABEL_COLOURS.get(point.label, "k"),
            label=point.label if point.label not in labels_drawn else None,
        )
        labels_drawn.append(point.label)
    axis.axhline(0.0, color="k", linewidth=0.5)
    axis.set_yscale("symlog", linthresh=1e-3)
    axis.set_xlabel("point (table row, lowest loss first)")
    axis.set_ylabel("eigenvalue" + (" (real part)" if setting.loss.is_field else ""))
    shown = f"first {len(points)} of {len(result)} points" if len(points) < len(result) else f"{len(points)} points"
    axis.set_title(f"spectra ({shown}): {setting.loss} m={setting.m} d={setting.d}", fontsize=9)
    _legend(axis, fontsize=7)
    figure.tight_layout()
    return figure


def index_vs_loss(result: CriticalPointSet, path: str | Path) -> Path:
    """Write :func:`index_figure` to ``path`` (.png, .svg or .pdf; PNG 6 x 4 inches) and return the path."""
    return save_figure(index_figure(result), path)


def index_figure(result: CriticalPointSet) -> Figure:
    """Index (number of negative eigenvalues) against loss, one marker per label."""
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
    _legend(axis, fontsize=7)
    figure.tight_layout()
    return figure


def basin_curves(
    x: Sequence[float] | np.ndarray,
    curves: dict[str, Sequence[BasinFraction]],
    path: str | Path,
    *,
    xlabel: str = "c",
    ylabel: str = "fraction of runs recovering M",
    title: str = "",
) -> Path:
    """Write :func:`basin_figure` to ``path`` (.png, .svg or .pdf; PNG 6 x 4 inches) and return the path."""
    return save_figure(basin_figure(x, curves, xlabel=xlabel, ylabel=ylabel, title=title), path)


def basin_figure(
    x: Sequence[float] | np.ndarray,
    curves: dict[str, Sequence[BasinFraction]],
    *,
    xlabel: str = "c",
    ylabel: str = "fraction of runs recovering M",
    title: str = "",
) -> Figure:
    """Basin fractions with their 95% Wilson intervals against a parameter, one line per series.

    Parameters
    ----------
    x : sequence of float
        The parameter values (e.g. the warm-start exponents c).
    curves : dict[str, sequence of BasinFraction]
        One series per name, one :class:`~critpoints.dynamics.descent.BasinFraction` per x.
    xlabel, ylabel, title : str
    """
    figure = Figure(figsize=(6.0, 4.0))
    axis = figure.add_subplot(1, 1, 1)
    positions = np.asarray(x, dtype=float)
    for name, fractions in curves.items():
        y = np.array([f.fraction for f in fractions])
        low = np.array([f.low for f in fractions])
        high = np.array([f.high for f in fractions])
        error = [np.maximum(y - low, 0.0), np.maximum(high - y, 0.0)]
        axis.errorbar(positions, y, yerr=error, marker="o", capsize=3, label=name)
    axis.set_ylim(-0.03, 1.03)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    if title:
        axis.set_title(title, fontsize=9)
    _legend(axis, fontsize=7)
    figure.tight_layout()
    return figure


def alignment_histogram(result: DynamicsResult, path: str | Path, tau_good: float | None = None) -> Path:
    """Write :func:`alignment_figure` to ``path`` (.png, .svg or .pdf; PNG 6 x 4 inches) and return the path."""
    return save_figure(alignment_figure(result, tau_good), path)


def alignment_figure(result: DynamicsResult, tau_good: float | None = None) -> Figure:
    """Histograms of min_j a_j at the start and at the end of the runs of a DynamicsResult.

    Parameters
    ----------
    result : DynamicsResult
    tau_good : float, optional
        Draw the "good" threshold (default: the one the runs were labelled with).
    """
    figure = Figure(figsize=(6.0, 4.0))
    axis = figure.add_subplot(1, 1, 1)
    bins = np.linspace(0.0, 1.0, 41)
    initial = [t.initial_alignment.min() for t in result.trajectories]
    final = [t.alignment.min() for t in result.trajectories]
    axis.hist(initial, bins=bins.tolist(), alpha=0.5, label="start", color="tab:blue")
    axis.hist(final, bins=bins.tolist(), alpha=0.5, label="end", color="tab:orange")
    threshold = tau_good if tau_good is not None else result.metadata.get("tau_good")
    if threshold is not None:
        axis.axvline(threshold, color="k", linestyle="--", linewidth=0.8, label=f"tau_good = {threshold:g}")
    axis.set_xlabel("min_j a_j")
    axis.set_ylabel("runs")
    axis.set_title(f"{len(result.trajectories)} runs", fontsize=9)
    _legend(axis, fontsize=7)
    figure.tight_layout()
    return figure


def experiment_metric(result: ExperimentResult, path: str | Path) -> Path:
    """Write :func:`experiment_figure` to ``path`` (.png, .svg or .pdf) and return the path.

    The PNG is 1.0 inch wide per cell (at least 6) and 4.5 inches high.
    """
    return save_figure(experiment_figure(result), path)


def experiment_figure(result: ExperimentResult) -> Figure:
    """The paper's metric of an ExperimentResult: initial and final min_j a_j per cell (mean ± sd over seeds)."""
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
    _legend(axis, fontsize=6)
    figure.tight_layout()
    return figure


def _draw_disconnectivity(axis: Axes, graph: LandscapeGraph, title: str | None) -> None:
    """One disconnectivity graph on ``axis`` (see :func:`disconnectivity_graph`)."""
    basins = {node.id: node for node in graph.basins}
    axis.set_title(title if title is not None else f"{graph.setting.loss}, d={graph.setting.d}", fontsize=9)
    axis.set_xticks([])
    axis.set_ylabel("loss")
    if not basins:
        axis.text(0.5, 0.5, "no minima found", ha="center", va="center", transform=axis.transAxes)
        return
    tree = graph.disconnectivity()
    x = tree.positions()
    heights = [node.height for node in tree.nodes]
    span = max(max(heights) - min(heights), 1e-3 * max(1.0, abs(max(heights))))
    top = max(heights) + 0.12 * span
    for node in tree.nodes:
        if node.children:
            left, right = (x[child] for child in node.children)
            axis.plot([left, right], [node.height, node.height], color="k", linewidth=0.9)
            for child in node.children:
                axis.plot([x[child], x[child]], [tree.nodes[child].height, node.height], color="k", linewidth=0.9)
    for rank, root in enumerate(tree.roots):
        style = "-" if rank == 0 else ":"
        axis.plot([x[root], x[root]], [tree.nodes[root].height, top], linestyle=style, color="k", linewidth=0.9)
    counts = [max(node.count, 0) for node in basins.values()]
    largest = max(max(counts), 1)
    for index, node in enumerate(tree.nodes):
        if node.leaf is None:
            continue
        basin = basins[node.leaf]
        colour = LABEL_COLOURS.get(basin.label, "k")
        if basin.role == "manifold":
            axis.plot([x[index] - 0.35, x[index] + 0.35], [basin.loss, basin.loss], color=colour, linewidth=4)
            text = f"n={basin.count}\nflat {basin.point.nullity}"
        else:
            size = 20 + 120 * np.sqrt(basin.count / largest)
            axis.scatter([x[index]], [basin.loss], s=size, color=colour, zorder=3, edgecolors="k", linewidths=0.4)
            text = f"n={basin.count}"
        axis.annotate(
            text, (x[index], basin.loss), textcoords="offset points", xytext=(0, -9), ha="center", va="top", fontsize=6
        )
    axis.set_xlim(-0.8, len(tree.order) - 0.2)
    axis.set_ylim(min(heights) - 0.12 * span, top)
    for label, colour in LABEL_COLOURS.items():
        if any(basin.label == label for basin in basins.values()):
            axis.scatter([], [], color=colour, edgecolors="k", linewidths=0.4, label=label)
    if graph.manifolds:
        axis.plot([], [], color="0.5", linewidth=4, label="flat set of minima")
    if len(tree.roots) > 1:
        axis.plot([], [], color="k", linestyle=":", label="not joined by known saddles")
    axis.legend(fontsize=6, loc="best")


def disconnectivity_graph(graph: LandscapeGraph, path: str | Path, *, title: str | None = None) -> Path:
    """The disconnectivity graph of a landscape graph (6 x 4.5 inches).

    Minima are leaves at their loss, coloured good / bad / collapsed and sized by their basin
    counts (``n``, the random starts that reached them), joined at the loss of the lowest
    saddles that connect them (critpoints.landscape.disconnectivity); flat sets of minima are
    flat segments (with the number of their flat directions). Groups that no known saddle
    joins stand side by side, their stems dotted.

    Parameters
    ----------
    graph : LandscapeGraph
    path : str or Path
        The file; its suffix (.png, .svg, .pdf) sets the format.
    title : str, optional
        Default: the loss and d.
    """
    figure = Figure(figsize=(6.0, 4.5))
    _draw_disconnectivity(figure.add_subplot(1, 1, 1), graph, title)
    figure.tight_layout()
    return save_figure(figure, path)


def disconnectivity_panels(
    graphs: Sequence[LandscapeGraph], path: str | Path, *, titles: Sequence[str] | None = None
) -> Path:
    """Disconnectivity graphs side by side, e.g. a contrastive and a non-contrastive loss
    (5 x 4.5 inches per panel; see :func:`disconnectivity_graph`)."""
    figure = Figure(figsize=(5.0 * max(1, len(graphs)), 4.5))
    for number, graph in enumerate(graphs):
        title = None if titles is None else titles[number]
        _draw_disconnectivity(figure.add_subplot(1, len(graphs), number + 1), graph, title)
    figure.tight_layout()
    return save_figure(figure, path)


def alignment_curves(
    curves: dict[str, CellResult],
    path: str | Path,
    *,
    reference: dict[str, dict[int, tuple[float, float, float]]] | None = None,
    title: str = "",
) -> Path:
    """Write :func:`alignment_curves_figure` to ``path`` and return the path."""
    return save_figure(alignment_curves_figure(curves, reference=reference, title=title), path)


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
    statistics: tuple[tuple[str, Any], ...] = (("max", np.max), ("median", np.median), ("min", np.min))
    colours = ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange"]
    for panel, (name, reduce) in enumerate(statistics):
        axis = figure.add_subplot(1, 3, panel + 1)
        for colour, (label, result) in zip(colours, curves.items()):
            if result.trajectory is None:
                raise ValueError(f"curves[{label!r}] has no recorded trajectory (run with record_every > 0)")
            assert result.epochs is not None  # recorded with the trajectory
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
