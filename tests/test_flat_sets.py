"""Critical sets of positive dimension are reported as one entry each, not as many orbits.

ncl_cosine (tied), symrelu bias -0.3, unit rows, M = I, one-hot, m = d = 4: the global minima
L = 2 - 2(1-q)^2 contain an open set (derivations/CLAIMS.md, claim 2), so the Hessian vanishes on
the whole tangent space there (a "flat region"). The engine must list that set as one entry whose count is the
number of runs on it, and the number of entries must not grow with the restarts.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from critpoints import Setting, enumerate_critical_points, load_result, population_loss
from critpoints.landscape.flat_sets import connected_by_critical_path, continue_flat_directions
from critpoints.solver.restarts import InProcessExecutor

IN_PROCESS = InProcessExecutor()


def cosine_setting(d: int = 4, q: float = 0.5) -> Setting:
    return Setting(
        p=d,
        d=d,
        m=d,
        loss="ncl_cosine",
        tied=True,
        encoder="symrelu",
        bias=-0.3,
        constraint="unit_rows",
        augmentation=("independent_mask", q),
    )


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
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 2, 3))
    assert connected_by_critical_path(loss, loss.pack(W=a, W_t=a), loss.pack(W=b, W_t=b))
    assert not connected_by_critical_path(loss, loss.pack(W=a, W_t=a), loss.pack(W=b, W_t=a))  # not critical

    claim3 = Setting(p=8, d=8, m=8, loss="spectral", encoder="symrelu", bias=-0.3, constraint="unit_rows")
    loss = population_loss(claim3)
    first = loss.pack(W=np.eye(8)[[0, 0, 0, 1, 1, 2, 3, 4]])  # n = (3, 2, 1, 1, 1)
    second = loss.pack(W=np.eye(8)[[0, 0, 1, 1, 2, 2, 3, 3]])  # n = (2, 2, 2, 2), the same value
    assert loss.value(first) == pytest.approx(loss.value(second), abs=1e-15)
    assert not connected_by_critical_path(loss, first, second)
