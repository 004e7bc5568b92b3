"""The paper's experiments: the minibatch SGD step, NT-Xent, the configurations, a tiny run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import critpoints
from critpoints.data.finite_measure import FiniteMeasure
from critpoints.dynamics import experiments
from critpoints.landscape.labels import alignment
from critpoints.losses.batched import BatchedLoss


def _ntxent_value(u: np.ndarray, v: np.ndarray, tau: float) -> float:
    """The paper's NT-Xent on one batch, written out row by row."""
    z = np.concatenate([u, v])
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    z = np.where(norms > 0, z / np.where(norms > 0, norms, 1), 0)
    count = len(u)
    total = 0.0
    for i in range(2 * count):
        partner = (i + count) % (2 * count)
        logits = np.array([z[i] @ z[j] / tau for j in range(2 * count) if j != i])
        positive = z[i] @ z[partner] / tau
        total += np.log(np.sum(np.exp(logits))) - positive
    return total / (2 * count)


def test_ntxent_gradient_by_central_differences():
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal((1, 4, 3)), rng.standard_normal((1, 4, 3))
    grad_u, grad_v = experiments._ntxent_grad(u, v, 0.5)
    h = 1e-6
    for array, grad in ((u, grad_u), (v, grad_v)):
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + h
            plus = _ntxent_value(u[0], v[0], 0.5)
            array[index] = saved - h
            minus = _ntxent_value(u[0], v[0], 0.5)
            array[index] = saved
            assert grad[index] == pytest.approx((plus - minus) / (2 * h), abs=1e-6)


def _minibatch_measure(x1: np.ndarray, x2: np.ndarray) -> FiniteMeasure:
    weight = np.full(len(x1), 1.0 / len(x1))
    return FiniteMeasure(x1, x2, weight, x1, weight, x2, weight, True)


@pytest.mark.parametrize("method, loss", [("NCL", "ncl_cosine"), ("NCL+pred", "ncl_predictor")])
@pytest.mark.parametrize("online", [True, False])
def test_sgd_step_is_a_gradient_step_on_the_minibatch_measure(method, loss, online):
    """One paper-style step equals -lr times the online (or target) part of the batched gradient
    of the same loss over the minibatch as a finite measure (predictor bias zero)."""
    rng = np.random.default_rng(1)
    p, m, batch = 5, 4, 7
    x1, x2 = rng.standard_normal((batch, p)), rng.standard_normal((batch, p))
    state = {
        "W": rng.standard_normal((1, m, p)),
        "W_t": rng.standard_normal((1, m, p)),
        "b": rng.uniform(-0.3, 0.3, (1, m)),
        "b_t": rng.uniform(-0.3, 0.3, (1, m)),
        "P": rng.standard_normal((1, m, m)),
        "c": np.zeros((1, m)),
    }
    before = {name: value.copy() for name, value in state.items()}
    experiments.sgd_step(state, x1[None], x2[None], method, online, 0.1)
    setting = critpoints.Setting(
        p=p, d=p, m=m, loss=loss, encoder="symrelu", bias="trainable", expectation=("sample_average", 1, 0)
    )
    population = critpoints.population_loss(setting)
    blocks = {name: before[name][0] for name in population.layout.shapes}
    parts = BatchedLoss(population, _minibatch_measure(x1, x2)).evaluate(population.pack(**blocks)[None])
    expected = population.unpack(population.pack(**blocks) - 0.1 * (parts.online if online else parts.target)[0])
    for name in population.layout.shapes:
        np.testing.assert_allclose(state[name][0], expected[name], atol=1e-12)


def test_sgd_step_cl_uses_the_ntxent_gradient():
    rng = np.random.default_rng(2)
    p, m, batch = 4, 3, 5
    x1, x2 = rng.standard_normal((1, batch, p)), rng.standard_normal((1, batch, p))
    state = {"W": rng.standard_normal((1, m, p)), "b": rng.uniform(-0.2, 0.2, (1, m))}
    W0, b0 = state["W"].copy(), state["b"].copy()
    experiments.sgd_step(state, x1, x2, "CL", True, 0.01, temperature=0.5)

    def value(W, b):
        f = lambda x: np.maximum(x @ W.T + b, 0) - np.maximum(b - x @ W.T, 0)  # noqa: E731
        return _ntxent_value(f(x1[0]), f(x2[0]), 0.5)

    h = 1e-6
    grad = np.zeros_like(W0[0])
    for index in np.ndindex(grad.shape):
        step = np.zeros_like(grad)
        step[index] = h
        grad[index] = (value(W0[0] + step, b0[0]) - value(W0[0] - step, b0[0])) / (2 * h)
    np.testing.assert_allclose(state["W"][0], W0[0] - 0.01 * grad, atol=1e-8)


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
    W = np.concatenate([experiments.initial_state(cell, seed, cell.key)["W"] for seed in range(1, 21)])
    assert W.var() == pytest.approx(1 / (50 * 10), rel=0.05)
    warm = replace(cell, warm_start=8.0)
    state = experiments.initial_state(warm, 1, warm.key)
    M = experiments.dictionary(warm, 1)
    assert alignment(state["W"], M).min() > 0.99
    rows = replace(warm, constraint="unit_rows")
    np.testing.assert_allclose(np.linalg.norm(experiments.initial_state(rows, 1, rows.key)["W"], axis=1), 1.0)


def test_data_follow_the_data_model():
    cell = experiments.cells("E1")[0]  # s = 0.1: k = 2 nonzeros, one of them -1
    X = experiments.draw_data(replace(cell), 3, 500)
    M = experiments.dictionary(cell, 3)
    z = X @ M  # M has orthonormal columns: the code plus projected noise
    assert np.allclose(np.sort(np.abs(z), axis=1)[:, -2:], 1.0, atol=0.8)
    assert X.shape == (500, 50)


def test_tiny_run_prints_the_metric_table():
    budget = experiments.Budget(
        n=64, batch=32, lr=0.05, epochs=2, seeds=2, population_samples=32, population_lr=0.05, population_steps=4
    )
    select = [c for c in experiments.cells("E2")]
    results = experiments.run_experiment("E2", budget, select=select)
    assert [r.mode for r in results] == ["sgd", "population"]
    for result in results:
        text = str(result)
        assert "initial -> final" in text and "E2" in text
        for cell in result.cells:
            assert cell.initial.shape == cell.final.shape == (2, 3)
            assert np.all((cell.final >= 0) & (cell.final <= 1))
