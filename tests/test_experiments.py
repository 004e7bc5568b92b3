"""The paper's experiments: the configurations, data and starts, the grid of runs (resume), labels, a tiny run.

The training models themselves (batch normalisation, NT-Xent, one step of each) are checked in
tests/test_paper_models.py."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from critpoints.dynamics import experiments, paper_models
from critpoints.dynamics.paper_models import PaperRun, TrainingModel
from critpoints.landscape.labels import alignment


def test_cells_follow_the_spec_grid():
    e1 = experiments.cells("E1")
    assert len(e1) == 10 and sum(c.method == "CL" for c in e1) == 2
    assert {c.q for c in e1 if c.method == "NCL"} == {0.25, 0.5, 0.75, 0.9}
    e4 = experiments.cells("E4")
    assert len(e4) == 2 * 4 * 4 * 4 and all(c.p == c.d == c.m == 20 and not c.predictor_bias for c in e4)
    assert {c.warm_start for c in experiments.cells("E3'")} == {1, 1.25, 1.5, 2}
    with pytest.raises(ValueError, match="unknown experiment"):
        experiments.cells("E9")
    assert experiments.cells("E1")[0].sigma == pytest.approx(np.sqrt(np.log(10)) / 10)


def test_initialisation_scales_and_warm_start():
    cell = experiments.cells("E1")[1]
    W = np.concatenate([paper_models.initial_state(cell, seed, cell_index=cell.key)["W"] for seed in range(1, 21)])
    assert W.var() == pytest.approx(1 / (50 * 10), rel=0.05)
    warm = replace(cell, warm_start=8.0)
    state = paper_models.initial_state(warm, 1, cell_index=warm.key)
    M = paper_models.dictionary(warm, 1)
    assert alignment(state["W"], M).min() > 0.99
    rows = replace(warm, constraint="unit_rows")
    np.testing.assert_allclose(np.linalg.norm(paper_models.initial_state(rows, 1)["W"], axis=1), 1.0)


def test_data_follow_the_data_model():
    cell = experiments.cells("E1")[0]  # s = 0.1: k = 2 nonzeros, one of them -1
    X = paper_models.draw_data(replace(cell), 3, 500)
    M = paper_models.dictionary(cell, 3)
    z = X @ M  # M has orthonormal columns: the code plus projected noise
    assert np.allclose(np.sort(np.abs(z), axis=1)[:, -2:], 1.0, atol=0.8)
    assert X.shape == (500, 50)


def test_tiny_run_prints_the_metric_table(tmp_path):
    budget = experiments.Budget(
        n=64, batch=32, lr=0.05, epochs=2, seeds=2, population_samples=32, population_lr=0.05, population_steps=4
    )
    select = [c for c in experiments.cells("E2")]
    results = experiments.run_experiment("E2", budget, select=select, record_every=1)
    assert [r.mode for r in results] == ["sgd", "population"]
    for result in results:
        text = str(result)
        assert "initial -> final" in text and "E2" in text
        for cell in result.cells:
            assert cell.initial.shape == cell.final.shape == (2, 3)
            assert np.all((cell.final >= 0) & (cell.final <= 1))
    sgd = results[0]
    assert "good" in sgd.label_table() and all(len(cell.labels()) == 2 for cell in sgd.cells)
    assert sgd.cells[0].labels(0.0) == ("good", "good") and sgd.cells[0].labels(1.01) == ("bad", "bad")
    assert sgd.cells[0].recovered(0.0) == 10 and sgd.cells[0].recovered(1.01) == 0
    first = sgd.cells[0]
    assert first.trajectory.shape == (2, 3, 10)
    np.testing.assert_allclose(first.at(2)["min"][0], first.final[:, 2].mean())
    with pytest.raises(ValueError, match="epoch must be one of the recorded epochs"):
        first.at(5)
    from critpoints import plots

    path = plots.alignment_curves(
        {c.cell.method: c for c in sgd.cells}, tmp_path / "curves.png", reference={"CL": {2: (1, 1, 1)}}
    )
    assert path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="no recorded trajectory"):
        plots.alignment_curves({"pop": results[1].cells[0]}, tmp_path / "none.png")


# ---------------------------------------------------------------------------------------
# The grid of runs: records written as they finish, an interrupted grid resumes
# ---------------------------------------------------------------------------------------

TINY = experiments.Cell("E1", "NCL", 6, 3, 4, 0.5, 0.5)


def _specs(seeds=(1, 2, 3)):
    model = TrainingModel.preset("paper")
    return [experiments.RunSpec(TINY, seed, model, n=20, batch=8, lr=0.05, epochs=3, record_every=1) for seed in seeds]


def test_an_interrupted_grid_resumes(tmp_path, monkeypatch):
    trained = []
    original = experiments.run_one

    def interrupted(spec):
        if len(trained) == 2:
            raise KeyboardInterrupt
        trained.append(spec.seed)
        return original(spec)

    monkeypatch.setattr(experiments, "run_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        experiments.run_grid(_specs(), tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.json"))) == 2 and not list(tmp_path.glob("*.tmp"))

    trained.clear()
    monkeypatch.setattr(experiments, "run_one", lambda spec: trained.append(spec.seed) or original(spec))
    records = experiments.run_grid(_specs(), tmp_path, progress=False)
    assert len(trained) == 1 and len(list(tmp_path.glob("*.json"))) == 3
    fresh = experiments.run_grid(_specs(), None, progress=False)
    for stored, new in zip(records, fresh):  # a resumed grid holds what an uninterrupted one computes
        assert stored["seed"] == new["seed"] and stored["alignment"] == new["alignment"]
        assert stored["epochs"] == [0, 1, 2, 3] and stored["label"]["label"] in ("good", "bad", "collapsed")


def test_a_stored_record_of_another_run_is_not_reused(tmp_path):
    (spec,) = _specs((1,))
    experiments.run_grid([spec], tmp_path, progress=False)
    other = replace(spec, lr=0.1)
    assert other.fingerprint() != spec.fingerprint() and other.file_name() != spec.file_name()
    path = tmp_path / spec.file_name()
    path.write_text(path.read_text().replace(spec.fingerprint(), "0" * 16))  # stale content
    assert experiments._read(path, spec) is None


def test_parallel_grid_matches_serial():
    serial = experiments.run_grid(_specs((1, 2)), None, workers=1, progress=False)
    parallel = experiments.run_grid(_specs((1, 2)), None, workers=2, progress=False)
    assert [r["final"] for r in serial] == [r["final"] for r in parallel]


def test_label_of_a_collapsed_run():
    """W = 0: every input has the same representation, with or without batch normalisation."""
    for model in (TrainingModel(), TrainingModel.preset("paper")):
        cell = replace(TINY, method="CL", q=None)
        run = PaperRun(cell, 1, model, n=20, batch=8, lr=0.05)
        run.params["WT"][:] = 0.0
        assert experiments.label_run(run).label == "collapsed"
        run = PaperRun(cell, 1, model, n=20, batch=8, lr=0.05)
        run.params["WT"][:] = paper_models.dictionary(cell, 1)[:, [0, 1, 2, 0]]
        assert experiments.label_run(run).label == "good"
