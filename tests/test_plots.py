"""Figures: written on a small setting, non-empty PNGs of the stated pixel size."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import image

import critpoints
from critpoints import plots
from critpoints.dynamics.descent import run_dynamics
from critpoints.solver.restarts import InProcessExecutor


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
        bias=-0.3,
        constraint="unit_rows",
    )
    table = critpoints.enumerate_critical_points(
        setting, n_restarts=10, seed=0, executor=InProcessExecutor(), progress=False
    )
    runs = run_dynamics(setting, n_starts=8, seed=0, lr=0.05, max_steps=2000)
    return setting, table, runs


def _pixels(path):
    assert path.exists() and path.stat().st_size > 1000
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    height, width = image.imread(path).shape[:2]
    return width, height


def test_minima_heatmaps(small, tmp_path):
    setting, table, _ = small
    path = plots.minima_heatmaps(table, setting, tmp_path / "sub" / "minima.png", max_points=3)
    panels = min(3, sum(1 for point in table if point.index == 0))
    assert _pixels(path) == (int(3.0 * panels * plots.DPI), int(2.8 * plots.DPI))


def test_hessian_spectra_and_index_vs_loss(small, tmp_path):
    setting, table, _ = small
    assert _pixels(plots.hessian_spectra(table, setting, tmp_path / "spectra.png")) == (800, 400)
    assert _pixels(plots.index_vs_loss(table, tmp_path / "index.png")) == (600, 400)


def test_point_spectrum_matches_the_table(small):
    setting, table, _ = small
    for point in table:
        values = plots.point_spectrum(setting, point)
        assert values.min() == pytest.approx(point.smallest_eigenvalue, abs=1e-9)
        assert values.max() == pytest.approx(point.largest_eigenvalue, abs=1e-9)
        assert int(np.sum(values < -1e-7 * max(1.0, np.abs(values).max()))) == point.index


def test_basin_curves_and_alignment_histogram(small, tmp_path):
    _, _, runs = small
    fractions = runs.basin_fractions()
    curves = {"good": [fractions["good"]] * 3, "bad": [fractions["bad"]] * 3}
    assert _pixels(plots.basin_curves([1.0, 2.0, 3.0], curves, tmp_path / "basins.png", title="t")) == (600, 400)
    assert _pixels(plots.alignment_histogram(runs, tmp_path / "alignment.png")) == (600, 400)
