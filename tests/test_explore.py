"""explore_minima: every signed-atom minimum of claim 3 from random starts and moves alone,
checked against the derived values and spectra (derivations/CLAIMS.md, claim 3); the other bad
minimum at small beta; reproducibility; budgets and bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from critpoints import Setting, claim_setting, explore_minima
from critpoints.solver.restarts import InProcessExecutor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "derivations"))
import claims  # noqa: E402

IN_PROCESS = InProcessExecutor()


def claim3_setting(d: int, beta: float = 0.3, q: float = 0.5) -> Setting:
    return claim_setting("spectral", d, beta=beta, q=q)


def occupation(W: np.ndarray) -> tuple[int, ...] | None:
    """The partition (n_j sorted, zeros dropped) of a signed-atom W, or None."""
    if not np.allclose(np.abs(W).max(axis=1), 1.0, atol=1e-9):
        return None
    counts = np.bincount(np.abs(W).argmax(axis=1), minlength=W.shape[1])
    return tuple(sorted((int(n) for n in counts if n), reverse=True))


@pytest.mark.parametrize("d", [4, 5])
def test_every_signed_atom_minimum_with_its_derived_value_and_spectrum(d):
    beta, q = 0.3, 0.5
    result = explore_minima(claim3_setting(d, beta, q), seed=1, executor=IN_PROCESS, progress=False)
    found = {}
    for point, spectrum in zip(result, result.metadata["spectra"]):
        partition = occupation(point.params["W"])
        assert partition is not None, "at beta = 0.3 every minimum is a signed-atom configuration"
        n = list(partition) + [0] * (d - len(partition))
        assert point.loss == pytest.approx(claims.signed_atom_loss(n, beta, q), abs=1e-10)
        np.testing.assert_allclose(spectrum, claims.signed_atom_spectrum(n, beta, q), atol=1e-9)
        assert point.kind == "minimum" and (point.label == "good") == (partition == (1,) * d)
        found[partition] = point.count
    assert set(found) == set(claims.partitions(d, d))  # p(d) minima, each once
    assert len(result) == len(found)
    assert result.completeness.unseen_estimate < 1
    assert "consecutive rounds" in result.metadata["stopped"]


def test_the_other_bad_minimum_at_small_beta():
    """d = 3, beta = 0.1: rows (1, 0, 0), (0.423, 0, +-0.906), loss -0.31065 (CLAIMS.md), besides the signed atoms."""
    result = explore_minima(claim3_setting(3, beta=0.1), seed=0, executor=IN_PROCESS, progress=False)
    others = [point for point in result if occupation(point.params["W"]) is None]
    assert [round(point.loss, 5) for point in others] == [-0.31065]
    assert others[0].label == "bad" and others[0].kind == "minimum"
    assert len(result) == len(claims.partitions(3, 3)) + 1


def test_same_seed_same_minima_and_budgets_stop_the_search():
    setting = claim3_setting(4)
    first = explore_minima(setting, seed=3, executor=IN_PROCESS, progress=False, max_rounds=2)
    second = explore_minima(setting, seed=3, executor=IN_PROCESS, progress=False, max_rounds=2)
    assert [p.loss for p in first] == [p.loss for p in second]
    assert [p.count for p in first] == [p.count for p in second]
    assert first.metadata["rounds"] == 2 and first.metadata["stopped"] == "max_rounds = 2 reached"
    capped = explore_minima(setting, seed=3, executor=IN_PROCESS, progress=False, initial_starts=10, max_runs=5)
    assert capped.metadata["runs"] == 10 and capped.metadata["stopped"] == "max_runs = 5 reached"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"patience": 0}, "patience"),
        ({"max_seconds": -1.0}, "max_seconds"),
        ({"descent_iterations": 0}, "descent_iterations"),
        ({"not_an_option": 1}, "unknown solver option"),
    ],
)
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(ValueError, match=message):
        explore_minima(claim3_setting(3), progress=False, **options)


def test_the_predictor_field_is_refused():
    setting = Setting(p=3, d=3, m=3, loss="ncl_predictor")
    with pytest.raises(ValueError, match="vector field"):
        explore_minima(setting, progress=False)


def test_a_dask_client_gives_the_same_minima():
    distributed = pytest.importorskip("distributed")
    setting = claim3_setting(3)
    options = dict(seed=2, progress=False, max_rounds=2)
    reference = explore_minima(setting, executor=IN_PROCESS, **options)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            remote = explore_minima(setting, executor=client, **options)
    assert str(remote) == str(reference)
    assert remote.metadata["spectra"] == reference.metadata["spectra"]


def test_flat_regions_met_by_the_search_are_reported_as_sets():
    """ncl_cosine (tied), claim 2: the descents end on flat regions, which have no strict minimum to hop from."""
    setting = Setting(p=3, d=3, m=3, loss="ncl_cosine", tied=True, encoder="symrelu", bias=-0.3, constraint="unit_rows")
    result = explore_minima(setting, executor=IN_PROCESS, progress=False)
    assert len(result) == 0 and result.metadata["stopped"] == "no moves: no minimum found"
    regions = {round(region.loss, 12): region for region in result.manifolds}
    assert 2 - 2 * (1 - 0.5) ** 2 in regions and all(r.kind == "flat region" for r in regions.values())
    assert sum(region.count for region in result.manifolds) == result.status_counts["converged"]
