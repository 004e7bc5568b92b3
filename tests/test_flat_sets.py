"""Critical sets of positive dimension are reported as one entry each, not as many orbits.

ncl_cosine (tied), symrelu bias -0.3, unit rows, M = I, one-hot, m = d = 4: the global minima
L = 2 - 2(1-q)^2 contain an open set (derivations/CLAIMS.md, claim 2), so the Hessian vanishes on
the whole tangent space there (a "flat region"). The engine must list that set as one entry whose count is the
number of runs on it, and the number of entries must not grow with the restarts. The default
(untied) ncl_cosine and InfoNCE have global-minimum sets made of strata of different dimensions;
they too are one entry each. The merge itself (critpoints.landscape.flat_sets.critical_path) is
checked on toys whose critical sets are known: it joins points of one curved set and never two
components at one level.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from toy_systems import MexicanHat, ParallelValleys, SaddleRing

from critpoints import Setting, claim_setting, enumerate_critical_points, load_result, population_loss
from critpoints.landscape.flat_sets import (
    LOSS_TOLERANCE,
    PATH_SPACING,
    FlatSetPaths,
    continue_flat_directions,
    critical_path,
)
from critpoints.landscape.system import LossSystem
from critpoints.solver.restarts import InProcessExecutor

IN_PROCESS = InProcessExecutor()


def cosine_setting(d: int = 4, q: float = 0.5) -> Setting:
    return claim_setting("ncl_cosine", d, q=q, tied=True)


@pytest.fixture(scope="module")
def runs():
    setting = cosine_setting()
    return {n: enumerate_critical_points(setting, n_restarts=n, executor=IN_PROCESS, progress=False) for n in (80, 240)}


def test_the_flat_global_minimum_set_is_one_entry_that_does_not_multiply(runs):
    global_minimum = 2 - 2 * (1 - 0.5) ** 2
    for n, result in runs.items():
        at_minimum = [m for m in result.manifolds if abs(m.loss - global_minimum) < 1e-9]
        assert len(at_minimum) == 1, n
        assert not [p for p in result if abs(p.loss - global_minimum) < 1e-9]  # no isolated entries at it
        entry = at_minimum[0]
        assert entry.kind == "flat region" and entry.dimension == 4 * 3  # the whole tangent space
        converged = result.status_counts["converged"]
        assert sum(m.count for m in result.manifolds) + sum(p.count for p in result) == converged
    assert len(runs[80].manifolds) == len(runs[240].manifolds)
    assert runs[240].manifolds[0].count > runs[80].manifolds[0].count


def claim2_setting(loss: str, d: int = 4, q: float = 0.5) -> Setting:
    """The untied (default) ncl_cosine or InfoNCE (tau = 0.5) on the claim-2 data and encoder."""
    return claim_setting(loss, d, q=q)


def infonce_minimum(d: int = 4, q: float = 0.5, tau: float = 0.5) -> float:
    """InfoNCE's global minimum at M = I, one-hot latents, unit rows: the thresholded columns c_j
    non-zero and pairwise orthogonal. A view is non-zero with probability rho = 1 - q; both views
    of one input are, with rho^2, and then have cosine 1; for a non-zero anchor s c_j, a
    negative is zero (cosine 0) with 1 - rho, else s' c_k with cosine s s' [j = k], so
    E exp(cos / tau) = 1 - rho/d + (rho/d) cosh(1/tau) (and 1 for a zero anchor). The bound
    sum_k cosh(cos(c_j, c_k)/tau) >= cosh(1/tau) + d - 1 is tight exactly at orthogonal columns."""
    rho = 1.0 - q
    return -(rho**2) / tau + rho * np.log(1.0 - rho / d + rho / d * np.cosh(1.0 / tau))


@pytest.fixture(scope="module")
def stratified_runs():
    """Untied ncl_cosine at 80, 160 and 320 restarts, InfoNCE at 80 and 160 (320: the benchmark)."""
    runs = {}
    for loss, counts in (("ncl_cosine", (80, 160, 320)), ("infonce", (80, 160))):
        setting = claim2_setting(loss)
        runs[loss] = {
            n: enumerate_critical_points(setting, n_restarts=n, executor=IN_PROCESS, progress=False) for n in counts
        }
    return runs


@pytest.mark.parametrize(("loss", "level"), [("ncl_cosine", 2 - 2 * (1 - 0.5) ** 2), ("infonce", infonce_minimum())])
def test_a_stratified_global_minimum_set_is_one_stable_entry(stratified_runs, loss, level):
    """The global minima (a union of strata of different dimensions, derivations/CLAIMS.md claim 2)
    are one entry at every number of restarts: no isolated point at that level (so none in the
    Chao1 over isolated orbits), the runs on it counted by label, and more runs as restarts grow."""
    counts = []
    for n, result in stratified_runs[loss].items():
        at_level = [m for m in result.manifolds if abs(m.loss - level) < 1e-9]
        assert len(at_level) == 1, (loss, n, [m.describe() for m in at_level])
        assert not [p for p in result if abs(p.loss - level) < 1e-9], (loss, n)
        assert result.completeness.observed == len(result.points)
        entry = at_level[0]
        assert entry.kind == "flat minimum set" and entry.index == 0
        assert sum(entry.labels.values()) == entry.count and entry.points == entry.count > 1
        assert (
            sum(m.count for m in result.manifolds) + sum(p.count for p in result) == result.status_counts["converged"]
        )
        counts.append(entry.count)
    assert counts == sorted(counts) and counts[-1] > counts[0]


def test_the_set_is_open_by_an_independent_check(runs):
    """Random tangent perturbations of the representative (no Newton) leave the loss unchanged."""
    loss = population_loss(cosine_setting())
    entry = runs[80].manifolds[0]
    theta = loss.pack(**entry.params)
    rng = np.random.default_rng(0)
    for _ in range(10):
        moved = loss.manifold.project(theta + 1e-4 * rng.standard_normal(theta.size))
        assert loss.value(moved) == pytest.approx(entry.loss, abs=1e-12)


def test_an_isolated_minimum_has_no_null_direction_to_continue():
    setting = Setting(p=3, d=3, m=3, loss="spectral", encoder="symrelu", bias=-0.3, constraint="unit_rows")
    loss = population_loss(setting)
    test = continue_flat_directions(loss, loss.pack(W=np.eye(3)[[0, 0, 1]]))
    assert (test.nullity, test.continued, test.is_manifold) == (0, 0, False)
    assert test.index == 0 and test.smallest > 0


def test_table_and_round_trip_keep_the_entries(runs, tmp_path):
    result = runs[80]
    table = result.table()
    assert "flat region: dimension 12, loss 1.5" in table
    assert "minima: orbits found" in table
    result.to_json(tmp_path / "r.json")
    loaded = load_result(tmp_path / "r.json")
    assert json.dumps([m.to_dict() for m in loaded.manifolds]) == json.dumps([m.to_dict() for m in result.manifolds])
    result.to_csv(tmp_path / "r.csv")
    assert len(load_result(tmp_path / "r.csv").manifolds) == len(result.manifolds)


def test_paths_join_points_of_one_set_and_never_two_isolated_minima():
    """{W = W_t} of unmasked ncl_squared is a linear space of minima: any two of its points are joined.
    Two different signed-atom minima of claim 3 with the same value (d = 8: n = (3, 2, 1, 1, 1) and
    (2, 2, 2, 2)) are isolated: no path of critical points joins them."""
    unmasked = Setting(
        p=3,
        d=2,
        m=2,
        loss="ncl_squared",
        dictionary=("random", 3),
        noise=0.2,
        latent=("bernoulli", 0.5),
        augmentation=("independent_mask", 0.0),
    )
    loss = population_loss(unmasked)
    system = LossSystem(loss)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 2, 3))
    path = critical_path(system, loss.pack(W=a, W_t=a), loss.pack(W=b, W_t=b), minimum=True)
    assert path is not None
    for node in path:  # independently: every node is a point of the set, W = W_t
        blocks = loss.unpack(node)
        assert np.abs(blocks["W"] - blocks["W_t"]).max() < 1e-4
    assert critical_path(system, loss.pack(W=a, W_t=a), loss.pack(W=b, W_t=a), minimum=True) is None  # not critical

    claim3 = Setting(p=8, d=8, m=8, loss="spectral", encoder="symrelu", bias=-0.3, constraint="unit_rows")
    loss = population_loss(claim3)
    first = loss.pack(W=np.eye(8)[[0, 0, 0, 1, 1, 2, 3, 4]])  # n = (3, 2, 1, 1, 1)
    second = loss.pack(W=np.eye(8)[[0, 0, 1, 1, 2, 2, 3, 3]])  # n = (2, 2, 2, 2), the same value
    assert loss.value(first) == pytest.approx(loss.value(second), abs=1e-15)
    assert not FlatSetPaths(loss).joined(first, second, minimum=True)


def _on_ring(path: np.ndarray) -> bool:
    return bool(np.all(np.abs(np.linalg.norm(path[:, :2], axis=1) - 1.0) < 1e-3))


def test_the_string_bends_along_a_curved_set_of_minima():
    """The circle of minima of (|x|^2 - 1)^2 from angle 0 to 150 degrees: the straight segment
    dips to radius 0.26 (L = 0.87 there); the relaxed path follows the circle."""
    hat = MexicanHat()
    start, end = np.array([1.0, 0.0]), np.array([np.cos(2.6), np.sin(2.6)])
    path = critical_path(hat, start, end, minimum=True)
    assert path is not None
    assert np.all(np.abs(np.linalg.norm(path, axis=1) - 1.0) < 1e-3)
    assert np.linalg.norm(np.diff(path, axis=0), axis=1).max() <= PATH_SPACING
    assert np.all([abs(hat.value(node)) <= LOSS_TOLERANCE for node in path])


def test_two_valleys_at_one_level_are_never_joined():
    """Two lines of minima (and of index-1 saddles) at level 0, a barrier of height 1 between
    them: points of one line are joined however far apart, points of the two never."""
    for curvature, minimum in ((1.0, True), (-1.0, False)):
        valleys = ParallelValleys(curvature)
        here, further, there = np.array([1.0, 0.0, 0.0]), np.array([1.0, 3.0, 0.0]), np.array([-1.0, 0.5, 0.0])
        assert critical_path(valleys, here, further, minimum=minimum) is not None
        assert critical_path(valleys, here, there, minimum=minimum) is None
        assert critical_path(valleys, here, there, minimum=not minimum) is None


def test_a_ring_of_saddles_is_joined_by_newton_corrected_nodes():
    ring = SaddleRing()
    start, end = np.array([1.0, 0.0, 0.0]), np.array([np.cos(1.8), np.sin(1.8), 0.0])
    path = critical_path(ring, start, end, minimum=False)
    assert path is not None and _on_ring(path) and np.abs(path[:, 2]).max() < 1e-8
    assert np.linalg.norm(np.diff(path, axis=0), axis=1).max() <= PATH_SPACING
