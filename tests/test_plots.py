"""Figures: their content (the data drawn, colours of known cells, legends, titles) against
independent computations, and the file formats chosen by extension."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from autograd import grad, hessian
from autograd_reference import Setup
from autograd_reference import loss as reference_loss
from matplotlib import colormaps, image
from matplotlib.collections import PathCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.image import AxesImage

import critpoints
from critpoints import plots
from critpoints.dynamics.descent import run_dynamics
from critpoints.solver.restarts import InProcessExecutor

BIAS = -0.3


@pytest.fixture(scope="module")
def small():
    setting = critpoints.Setting(
        p=3,
        d=3,
        m=3,
        loss="spectral",
        latent="one_hot",
        augmentation=("independent_mask", 0.5),
        encoder="symrelu",
        bias=BIAS,
        constraint="unit_rows",
    )
    table = critpoints.enumerate_critical_points(
        setting, n_restarts=10, seed=0, executor=InProcessExecutor(), progress=False
    )
    runs = run_dynamics(setting, n_starts=8, seed=0, lr=0.05, max_steps=2000)
    return setting, table, runs


def _cosines(weights: np.ndarray, dictionary: np.ndarray) -> np.ndarray:
    """|cos(w_i, M_j)| written out (zero rows give 0)."""
    norms = np.linalg.norm(weights, axis=1, keepdims=True)
    rows = np.divide(weights, norms, out=np.zeros_like(weights), where=norms > 0)
    return np.abs(rows @ (dictionary / np.linalg.norm(dictionary, axis=0)))


def test_minima_heatmaps_draw_the_cosines_of_the_lowest_index_0_points(small, tmp_path):
    setting, table, _ = small
    index_0 = [point for point in table if point.index == 0]
    assert len(index_0) > 2
    figure = plots.minima_figure(table, setting, max_points=2)
    images = [artist for axis in figure.axes for artist in axis.get_children() if isinstance(artist, AxesImage)]
    assert len(images) == 2
    for artist, point in zip(images, index_0):
        np.testing.assert_allclose(artist.get_array(), _cosines(point.params["W"], setting.dictionary_matrix()))
    assert f"first 2 of {len(index_0)}" in figure._suptitle.get_text()

    # the saved PNG: the centre pixel of every cell (i, j) has the viridis colour of |cos(w_i, M_j)|
    path = plots.minima_heatmaps(table, setting, tmp_path / "sub" / "minima.png", max_points=1)
    figure = plots.minima_figure(table, setting, max_points=1)
    figure.savefig(tmp_path / "again.png", dpi=plots.DPI)  # draws, so the transforms are final
    pixels = image.imread(path)
    axis = figure.axes[0]
    values = _cosines(index_0[0].params["W"], setting.dictionary_matrix())
    assert values.max() > 0.9 and values.min() < 0.1  # both ends of the colour scale are checked
    for i, j in np.ndindex(values.shape):
        x, y = axis.transData.transform((j, i))
        colour = pixels[int(round(pixels.shape[0] - y)), int(round(x)), :3]
        np.testing.assert_allclose(colour, colormaps["viridis"](values[i, j])[:3], atol=2.5 / 255)


def _independent_spectrum(setting: critpoints.Setting, params: dict) -> np.ndarray:
    """Eigenvalues of the Riemannian Hessian on the product of unit-row spheres, from the
    autograd reference loss: B^T (grad^2 f - blockdiag((w_i . g_i) I)) B with B an orthonormal
    basis of the tangent space (no continuous symmetry for symrelu)."""
    measure = critpoints.exact_view_measure(setting)
    bias = np.full(setting.m, BIAS)
    setup = Setup("spectral", "symrelu", setting.m, setting.p, fixed_bias=(bias, bias))
    f = reference_loss(setup, measure)
    w = params["W"]
    theta = w.ravel()
    gradient, second = grad(f)(theta).reshape(w.shape), hessian(f)(theta)
    curvature = np.kron(np.diag(np.sum(w * gradient, axis=1)), np.eye(setting.p))
    basis = []
    for i, row in enumerate(w):
        tangent = np.linalg.svd(np.eye(setting.p) - np.outer(row, row))[0][:, : setting.p - 1]
        block = np.zeros((theta.size, setting.p - 1))
        block[i * setting.p : (i + 1) * setting.p] = tangent
        basis.append(block)
    basis = np.hstack(basis)
    return np.linalg.eigvalsh(basis.T @ (second - curvature) @ basis)


def test_point_spectrum_matches_an_independent_riemannian_hessian(small):
    setting, table, _ = small
    smooth = [point for point in table if not point.nonsmooth]
    assert smooth
    for point in smooth:
        expected = _independent_spectrum(setting, point.params)
        np.testing.assert_allclose(np.sort(plots.point_spectrum(setting, point)), expected, atol=1e-8)
        assert expected.min() == pytest.approx(point.smallest_eigenvalue, abs=1e-8)
        assert expected.max() == pytest.approx(point.largest_eigenvalue, abs=1e-8)
        assert int(np.sum(expected < -1e-6)) == point.index


def test_spectra_draw_every_point_unless_told_and_then_say_so(small):
    setting, table, _ = small
    figure = plots.spectra_figure(table, setting)
    axis = figure.axes[0]
    columns = [c for c in axis.collections if isinstance(c, PathCollection)]
    assert len(columns) == len(table)
    for number, (column, point) in enumerate(zip(columns, table), start=1):
        offsets = column.get_offsets()
        assert np.all(offsets[:, 0] == number)
        np.testing.assert_allclose(np.sort(offsets[:, 1]), np.sort(plots.point_spectrum(setting, point)))
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    assert sorted(legend) == sorted({point.label for point in table})
    assert f"{len(table)} points" in axis.get_title()
    partial = plots.spectra_figure(table, setting, max_points=2).axes[0]
    assert len([c for c in partial.collections if isinstance(c, PathCollection)]) == 2
    assert f"first 2 of {len(table)} points" in partial.get_title()


def test_legends_list_only_the_classes_drawn(small):
    setting, table, _ = small
    good = table.filter(label="good")
    assert 0 < len(good) < len(table)
    for figure in (plots.spectra_figure(good, setting), plots.index_figure(good)):
        assert [text.get_text() for text in figure.axes[0].get_legend().get_texts()] == ["good"]
    axis = plots.index_figure(table).axes[0]
    for column in axis.collections:
        label = column.get_label()
        members = [point for point in table if point.label == label]
        np.testing.assert_allclose(column.get_offsets(), [[p.loss, p.index] for p in members])


def test_basin_curves_and_alignment_histogram_content(small):
    _, _, runs = small
    fractions = runs.basin_fractions()
    curves = {"good": [fractions["good"]] * 3, "bad": [fractions["bad"]] * 3}
    axis = plots.basin_figure([1.0, 2.0, 3.0], curves, title="t").axes[0]
    series = [c for c in axis.containers if isinstance(c, ErrorbarContainer)]
    assert len(series) == 2
    for container, name in zip(series, ("good", "bad")):
        fraction = fractions[name]
        np.testing.assert_allclose(container.lines[0].get_ydata(), [fraction.fraction] * 3)
        for segment in container.lines[2][0].get_segments():  # the bars span the Wilson interval
            np.testing.assert_allclose(segment[:, 1], [fraction.low, fraction.high], atol=1e-12)
    assert [text.get_text() for text in axis.get_legend().get_texts()] == ["good", "bad"]
    axis = plots.alignment_figure(runs).axes[0]
    heights = [sum(patch.get_height() for patch in container) for container in axis.containers]
    assert heights == [len(runs), len(runs)]


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG\r\n\x1a\n"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_format_follows_the_extension(small, tmp_path, suffix, magic):
    _, table, _ = small
    path = plots.index_vs_loss(table, tmp_path / f"index{suffix}")
    assert path.read_bytes().startswith(magic)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    if suffix == ".png":
        assert image.imread(path).shape[:2] == (400, 600)


def test_unknown_extension_is_refused(small, tmp_path):
    _, table, _ = small
    with pytest.raises(ValueError, match=r"path must end in one of \.png, \.svg, \.pdf .*index\.jpg"):
        plots.index_vs_loss(table, tmp_path / "index.jpg")


def test_empty_result_draws_without_a_legend(small):
    setting, table, _ = small
    empty = dataclasses.replace(table, points=())
    assert plots.index_figure(empty).axes[0].get_legend() is None
    assert plots.spectra_figure(empty, setting).axes[0].get_legend() is None
