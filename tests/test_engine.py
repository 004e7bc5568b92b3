"""enumerate_critical_points on settings with known answers; reproducibility; persistence;
executors (local processes, concurrent.futures, Dask)."""

from __future__ import annotations

import concurrent.futures
import multiprocessing

import numpy as np
import pytest

from critpoints import Setting, claim_setting, enumerate_critical_points, load_result, view_moments
from critpoints.solver.restarts import InProcessExecutor
from derivations import claims

IN_PROCESS = InProcessExecutor()


def claim3_setting(d: int, beta: float = 0.3, q: float = 0.5) -> Setting:
    return claim_setting("spectral", d, beta=beta, q=q)


@pytest.mark.parametrize("d, restarts", [(3, 60), (4, 120)])
def test_claim3_global_minimum_found_good_and_equal_to_closed_form(d, restarts):
    result = enumerate_critical_points(
        claim3_setting(d), n_restarts=restarts, seed=1, executor=IN_PROCESS, progress=False
    )
    lowest = result[0]
    assert lowest.loss == pytest.approx(claims.claim3_minimum(d, 0.3, 0.5), abs=1e-10)
    assert lowest.kind == "minimum" and lowest.label == "good" and lowest.recovered == d
    assert all(point.label == "good" for point in result if abs(point.loss - lowest.loss) < 1e-9)
    assert all(point.grad_norm <= 1e-10 * max(1.0, abs(point.loss)) * 10 for point in result)
    # the bad local minima with duplicated neurons derivations/CLAIMS.md mentions are reported, not hidden
    bad_minima = [p for p in result if p.kind == "minimum" and p.label == "bad"]
    assert bad_minima and all(p.duplicated > 0 for p in bad_minima)


def ncl_squared_setting(q: float) -> Setting:
    return Setting(
        p=3,
        d=2,
        m=2,
        loss="ncl_squared",
        dictionary=("random", 3),
        noise=0.2,
        latent=("bernoulli", 0.5),
        augmentation=("independent_mask", q),
    )


def test_linear_ncl_squared_with_masks_has_only_the_collapsed_point():
    """L = E||W x1 - W_t x2||^2 is a quadratic form with matrix the joint second moment of
    (x1, x2); with q > 0 that matrix is positive definite, so (0, 0) is the only stationary point."""
    setting = ncl_squared_setting(q=0.4)
    moments = view_moments(setting)
    joint = np.block([[moments.x1x1, moments.x1x2], [moments.x1x2.T, moments.x2x2]])
    assert np.linalg.eigvalsh(joint).min() > 1e-3  # the closed-form premise
    result = enumerate_critical_points(setting, n_restarts=20, seed=0, executor=IN_PROCESS, progress=False)
    assert len(result) == 1
    (point,) = result
    assert np.abs(point.params["W"]).max() < 1e-9 and np.abs(point.params["W_t"]).max() < 1e-9
    assert point.kind == "minimum" and point.label == "collapsed" and point.loss == pytest.approx(0, abs=1e-15)
    assert point.count == 20


def test_linear_ncl_squared_without_masks_is_the_flat_set_w_equals_w_t():
    """With q = 0 the views coincide: L = tr((W - W_t) Sigma (W - W_t)^T), stationary set {W = W_t}."""
    setting = ncl_squared_setting(q=0.0)
    result = enumerate_critical_points(setting, n_restarts=12, seed=0, executor=IN_PROCESS, progress=False)
    assert len(result) == 0  # no isolated point: every run ends on the one flat set
    (entry,) = result.manifolds
    np.testing.assert_allclose(entry.params["W"], entry.params["W_t"], atol=1e-9)
    assert entry.loss == pytest.approx(0.0, abs=1e-14)
    # the set {W = W_t} (6 dimensions) minus the O(2) orbit (1 dimension); L grows off it
    assert (entry.kind, entry.dimension, entry.index) == ("flat minimum set", 2 * 3 - 1, 0)
    assert entry.count == result.status_counts["converged"] and entry.points >= 2


def small_setting() -> Setting:
    return Setting(
        p=3, d=3, m=2, loss="ncl_cosine", encoder="symrelu", bias="trainable", augmentation=("independent_mask", 0.5)
    )


def test_same_seed_same_table_and_seed_matters():
    setting = claim3_setting(3)
    first = enumerate_critical_points(setting, n_restarts=30, seed=5, executor=IN_PROCESS, progress=False)
    second = enumerate_critical_points(setting, n_restarts=30, seed=5, executor=IN_PROCESS, progress=False)
    assert str(first) == str(second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.params["W"], b.params["W"])
    other = enumerate_critical_points(setting, n_restarts=30, seed=6, executor=IN_PROCESS, progress=False)
    assert str(other) != str(first)


def test_json_and_csv_round_trip(tmp_path):
    result = enumerate_critical_points(claim3_setting(3), n_restarts=20, seed=0, executor=IN_PROCESS, progress=False)
    for name in ("result.json", "result.csv"):
        path = tmp_path / name
        getattr(result, f"to_{name.split('.')[1]}")(path)
        loaded = load_result(path)
        assert str(loaded) == str(result)
        assert loaded.metadata == result.metadata and loaded.status_counts == result.status_counts
        for a, b in zip(result, loaded):
            assert a.loss == b.loss and a.kind == b.kind and a.count == b.count
            np.testing.assert_array_equal(a.alignment, b.alignment)
            for block in a.params:
                np.testing.assert_array_equal(a.params[block], b.params[block])


def test_process_executor_gives_the_same_table():
    setting = claim3_setting(3)
    reference = enumerate_critical_points(setting, n_restarts=16, seed=2, executor=IN_PROCESS, progress=False)
    context = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        pooled = enumerate_critical_points(setting, n_restarts=16, seed=2, executor=pool, progress=False)
    assert str(pooled) == str(reference)


def test_dask_client_gives_the_same_table():
    distributed = pytest.importorskip("distributed")
    setting = claim3_setting(3)
    reference = enumerate_critical_points(setting, n_restarts=12, seed=3, executor=IN_PROCESS, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            remote = enumerate_critical_points(setting, n_restarts=12, seed=3, executor=client, progress=False)
    assert str(remote) == str(reference)


def test_table_lists_statuses_and_completeness():
    result = enumerate_critical_points(claim3_setting(3), n_restarts=10, seed=0, executor=IN_PROCESS, progress=False)
    text = str(result)
    assert "restarts: 10 (converged" in text and "Chao1 estimate" in text and "population (exact enumeration" in text
    assert sum(result.status_counts.values()) == 10
    assert sum(point.count for point in result) == result.status_counts["converged"]
    assert result.completeness.observed == len(result)


def test_bad_arguments():
    setting = claim3_setting(3)
    with pytest.raises(ValueError, match="unknown solver option"):
        enumerate_critical_points(setting, n_restarts=2, executor=IN_PROCESS, progress=False, tolerance=1e-3)
    with pytest.raises(ValueError, match="n_restarts must be an integer >= 1, got n_restarts=0"):
        enumerate_critical_points(setting, n_restarts=0, executor=IN_PROCESS, progress=False)
    with pytest.raises(ValueError, match="unknown init 'normal'"):
        enumerate_critical_points(setting, n_restarts=2, init="normal", executor=IN_PROCESS, progress=False)
    with pytest.raises(TypeError, match="setting must be a critpoints.Setting"):
        enumerate_critical_points("spectral")
    with pytest.raises(ValueError, match="init arrays must have 9 columns"):
        enumerate_critical_points(setting, n_restarts=2, init=np.zeros((2, 4)), executor=IN_PROCESS, progress=False)


def test_the_default_eigenvalue_tolerance_classifies_as_documented():
    """Eigenvalues within 1e-7 * max(1, spectral radius) count as zero (the default, never passed
    here). With one-hot latents and M = I the loss is (1 - q)^2 times a function of W alone, so
    the good minimum of claim 3 stays stationary for every q and its spectrum scales by
    ((1 - q) / (1 - 0.5))^2: chosen so that its smallest eigenvalue is 3e-7 the point is a minimum,
    at 3e-8 (the whole spectrum then within the tolerance) it is not: degenerate, and at the
    convergence tolerance the set of stationary points around it is a flat region."""
    reference = enumerate_critical_points(claim3_setting(3), n_restarts=30, seed=1, executor=IN_PROCESS, progress=False)
    lowest = reference[0]
    assert lowest.kind == "minimum" and lowest.label == "good"
    smallest, radius = lowest.smallest_eigenvalue, lowest.largest_eigenvalue
    theta = lowest.params["W"].ravel()
    for target, kind in ((3e-7, "minimum"), (3e-8, "degenerate")):
        factor = target / smallest
        assert factor * radius < 1.0  # the threshold is then 1e-7 in absolute terms
        q = 1.0 - 0.5 * np.sqrt(factor)
        result = enumerate_critical_points(
            claim3_setting(3, q=q), n_restarts=1, init=theta, executor=IN_PROCESS, progress=False, scale=factor
        )
        assert result.metadata["eigenvalue_tolerance"] == 1e-7
        if kind == "minimum":
            (point,) = result
            assert point.kind == "minimum" and not result.manifolds
            assert point.smallest_eigenvalue == pytest.approx(target, rel=1e-6)
        else:  # every eigenvalue counts as zero: no strict minimum, a flat set (or a degenerate point)
            assert not result.minima()
            assert [point.kind for point in result] + [entry.kind for entry in result.manifolds] in (
                ["degenerate"],
                ["flat region"],
            )


def test_an_interrupted_enumeration_offers_the_points_found_so_far(monkeypatch):
    """Ctrl-C after 12 of 20 runs: the KeyboardInterrupt's ``partial`` is the table those 12 runs
    give, the same as an enumeration with just those 12 starts."""
    import critpoints.landscape.engine as engine
    from critpoints.solver.restarts import Interrupted

    setting = claim3_setting(3)
    solve = engine.solve_from_starts

    def interrupted_after_12(*args, **kwargs):
        runs = solve(*args, **kwargs)
        raise Interrupted(runs[:12] + [None] * (len(runs) - 12))

    monkeypatch.setattr(engine, "solve_from_starts", interrupted_after_12)
    with pytest.raises(KeyboardInterrupt, match="interrupted after 12 of 20 runs") as caught:
        enumerate_critical_points(
            setting, n_restarts=20, seed=4, descent_fraction=0.0, executor=IN_PROCESS, progress=False
        )
    partial = caught.value.partial
    assert partial.metadata["interrupted"] == "12 of 20 runs finished"
    monkeypatch.setattr(engine, "solve_from_starts", solve)
    expected = enumerate_critical_points(
        setting, n_restarts=12, seed=4, descent_fraction=0.0, executor=IN_PROCESS, progress=False
    )
    assert str(partial) == str(expected)
