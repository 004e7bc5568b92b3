"""The paper's training models: batch normalisation, NT-Xent / InfoNCE, the switches, precision, one step."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import critpoints
from critpoints.data.finite_measure import FiniteMeasure
from critpoints.dynamics import sgd_kernels as kernels
from critpoints.dynamics.experiments import Cell
from critpoints.dynamics.paper_models import PAPER, PaperRun, TrainingModel, ntxent_backward
from critpoints.losses.batched import BatchedLoss

# ---------------------------------------------------------------------------------------
# Independent references, written from the definitions (derivations/experiments.md)
# ---------------------------------------------------------------------------------------


def _bn_symrelu(h_linear: np.ndarray, b: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """The paper's encoder on a batch of Linear outputs h + b: BatchNorm1d (training mode) then
    SymReLU(t, b) = relu(t) - relu(-t + 2b)."""
    mean = h_linear.mean(axis=0)
    var = ((h_linear - mean) ** 2).mean(axis=0)
    t = gamma * (h_linear - mean) / np.sqrt(var + 1e-5) + beta
    return np.maximum(t, 0.0) - np.maximum(-t + 2.0 * b, 0.0)


def _symrelu(h: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(h + b, 0.0) - np.maximum(b - h, 0.0)


def _unit(v: np.ndarray) -> np.ndarray:
    """n(v) = v / |v|, n(0) = 0."""
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else 0.0 * v


def _contrastive_loss(rep: np.ndarray, tau: float, positive_in_denominator: bool) -> float:
    """NT-Xent / InfoNCE of 2B representations (views 1 then views 2), a loop over views."""
    count = len(rep)
    half = count // 2
    total = 0.0
    for i in range(count):
        partner = (i + half) % count
        terms = []
        for j in range(count):
            if j == i or (j == partner and not positive_in_denominator):
                continue
            terms.append(math.exp(_unit(rep[i]) @ _unit(rep[j]) / tau))
        total += math.log(sum(terms)) - _unit(rep[i]) @ _unit(rep[partner]) / tau
    return total / count


def _central(function, array: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + h
        plus = function()
        array[index] = saved - h
        minus = function()
        array[index] = saved
        grad[index] = (plus - minus) / (2 * h)
    return grad


TINY_CL = Cell("E1", "CL", 4, 2, 3, 0.5, None)
TINY_NCL = Cell("E1", "NCL", 4, 2, 3, 0.5, 0.5)
TINY_PRED = Cell("E3", "NCL+pred", 4, 2, 3, 0.5, 0.5)


# ---------------------------------------------------------------------------------------
# Batch normalisation
# ---------------------------------------------------------------------------------------


def test_batch_norm_forward_and_backward_against_central_differences():
    """encode / encode_backward with BN equal the definition and its central differences,
    including dL/db through the threshold only (the centring cancels the Linear bias)."""
    rng = np.random.default_rng(0)
    count, m = 7, 3
    h = rng.standard_normal((count, m))
    b = rng.uniform(-0.4, 0.4, m)
    gamma, beta = rng.uniform(0.5, 1.5, m), rng.uniform(-0.3, 0.3, m)
    weights = rng.standard_normal((count, m))  # L = sum weights * f
    out = {name: np.zeros((count, m)) for name in ("rep", "slope", "bias_slope", "xhat")}
    istd, rmean, rvar = np.zeros(m), np.full(m, 0.2), np.full(m, 1.3)
    nonzero = np.ones(count, bool)
    kernels.encode(
        h,
        nonzero,
        b,
        gamma,
        beta,
        True,
        1e-5,
        0.1,
        out["rep"],
        out["slope"],
        out["bias_slope"],
        out["xhat"],
        istd,
        rmean,
        rvar,
    )
    np.testing.assert_allclose(out["rep"], _bn_symrelu(h + b, b, gamma, beta), atol=1e-12)
    # PyTorch's running averages: the batch mean of h + b and its unbiased variance
    np.testing.assert_allclose(rmean, 0.9 * 0.2 + 0.1 * (h + b).mean(axis=0))
    np.testing.assert_allclose(rvar, 0.9 * 1.3 + 0.1 * (h + b).var(axis=0, ddof=1))

    dh, db, dgamma, dbeta = np.zeros((count, m)), np.zeros(m), np.zeros(m), np.zeros(m)
    kernels.encode_backward(
        weights, out["slope"], out["bias_slope"], out["xhat"], istd, gamma, True, dh, db, dgamma, dbeta
    )
    loss = lambda: float(np.sum(weights * _bn_symrelu(h + b, b, gamma, beta)))  # noqa: E731
    for analytic, array in ((dh, h), (db, b), (dgamma, gamma), (dbeta, beta)):
        np.testing.assert_allclose(analytic, _central(loss, array), atol=1e-7)


def test_without_batch_norm_the_encoder_is_the_symmetric_relu():
    rng = np.random.default_rng(1)
    count, m = 6, 3
    h, b = rng.standard_normal((count, m)), rng.uniform(-0.4, 0.4, m)
    h[2] = 0.0
    nonzero = np.ones(count, bool)
    nonzero[2] = False  # a zero view: f = 0 whatever b is, and df/db = 0
    out = {name: np.zeros((count, m)) for name in ("rep", "slope", "bias_slope", "xhat")}
    unused = np.zeros(m)
    kernels.encode(
        h, nonzero, b, unused, unused, False, 1e-5, 0.1, out["rep"], out["slope"], out["bias_slope"], out["xhat"],
        unused.copy(), unused.copy(), unused.copy(),
    )  # fmt: skip
    expected = _symrelu(h, b)
    expected[2] = 0.0
    np.testing.assert_allclose(out["rep"], expected)
    weights = rng.standard_normal((count, m))
    dh, db = np.zeros((count, m)), np.zeros(m)
    kernels.encode_backward(
        weights,
        out["slope"],
        out["bias_slope"],
        out["xhat"],
        unused,
        unused,
        False,
        dh,
        db,
        unused.copy(),
        unused.copy(),
    )

    def loss():
        f = _symrelu(h, b)
        f[2] = 0.0
        return float(np.sum(weights * f))

    np.testing.assert_allclose(db, _central(loss, b), atol=1e-7)
    np.testing.assert_allclose(dh[[0, 1, 3, 4, 5]], _central(loss, h)[[0, 1, 3, 4, 5]], atol=1e-7)


# ---------------------------------------------------------------------------------------
# NT-Xent and InfoNCE
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("positive_in_denominator", [True, False])
def test_ntxent_value_and_gradient_against_a_loop(positive_in_denominator):
    rng = np.random.default_rng(2)
    rep = rng.standard_normal((8, 3))
    tau = 0.5
    grad, value = ntxent_backward(rep, tau, positive_in_denominator)
    assert value == pytest.approx(_contrastive_loss(rep, tau, positive_in_denominator), abs=1e-12)
    expected = _central(lambda: _contrastive_loss(rep, tau, positive_in_denominator), rep)
    np.testing.assert_allclose(grad, expected, atol=1e-8)


def test_the_two_contrastive_losses_differ():
    """InfoNCE leaves the positive out of the denominator: it is below NT-Xent, and the
    gradients differ (a one-line bug making them equal fails here)."""
    rep = np.random.default_rng(3).standard_normal((6, 3))
    grad_nt, nt = ntxent_backward(rep, 0.5, True)
    grad_info, info = ntxent_backward(rep, 0.5, False)
    assert info < nt
    assert np.abs(grad_nt - grad_info).max() > 1e-3


def test_float32_fused_kernel_matches_float64():
    """The fused similarity / softmax / gradient in float32 against the same in float64, at the
    paper's sizes (2B = 1024 views, m = 50, tau = 0.05). The inputs are rounded to float32 first,
    so the difference is float32 arithmetic alone: logits up to 1/tau = 20, sums of 1024 terms,
    relative error a few 1e-6; we allow 1e-4 of the largest gradient entry."""
    rng = np.random.default_rng(4)
    rep = rng.standard_normal((1024, 50)).astype(np.float32)
    rep[rng.random(rep.shape) < 0.3] = 0.0
    grad32, value32 = ntxent_backward(rep, 0.05, True)
    grad64, value64 = ntxent_backward(rep.astype(np.float64), 0.05, True)
    assert value32 == pytest.approx(value64, rel=1e-5)
    assert np.abs(grad32 - grad64).max() <= 1e-4 * np.abs(grad64).max()


def test_ntxent_survives_a_zero_representation():
    rep = np.random.default_rng(5).standard_normal((6, 3))
    rep[1] = 0.0
    grad, value = ntxent_backward(rep, 0.5, True)
    assert np.isfinite(value) and np.all(np.isfinite(grad)) and np.all(grad[1] == 0.0)


# ---------------------------------------------------------------------------------------
# The switches
# ---------------------------------------------------------------------------------------

# The paper's code, switch by switch, as derivations/experiments.md documents it; every field of
# TrainingModel must appear here, and the preset must select each of these values.
PAPER_CODE = {
    "batch_norm": True,
    "contrastive_loss": "ntxent",
    "cl_views": "complementary",
    "bias_init": "uniform",
    "warm_start_noise": "std",
    "one_hot_sign": "paper",
    "predictor_bias": True,
    "precision": "float32",
    "noise": None,
}
PROJECT = {
    "batch_norm": False,
    "contrastive_loss": "infonce",
    "cl_views": "complementary",
    "bias_init": "zero",
    "warm_start_noise": "variance",
    "one_hot_sign": "random",
    "predictor_bias": False,
    "precision": "float64",
    "noise": None,
}


def test_the_paper_preset_selects_every_documented_switch():
    names = {field.name for field in dataclasses.fields(TrainingModel)}
    assert names == set(PAPER_CODE) == set(PROJECT)
    paper, project = TrainingModel.preset("paper"), TrainingModel.preset("project")
    assert {name: getattr(paper, name) for name in names} == PAPER_CODE
    assert {name: getattr(project, name) for name in names} == PROJECT
    assert project == TrainingModel() and paper.describe() == "paper" and project.describe() == "project"
    assert set(paper.differences()) == {name for name in names if PAPER_CODE[name] != PROJECT[name]}
    assert PAPER == PAPER_CODE
    assert TrainingModel.preset("paper", batch_norm=False).describe() == (
        "contrastive_loss=ntxent, bias_init=uniform, warm_start_noise=std, one_hot_sign=paper, "
        "predictor_bias=True, precision=float32"
    )


def test_switches_are_validated():
    with pytest.raises(ValueError, match="unknown contrastive_loss 'nt'"):
        TrainingModel(contrastive_loss="nt")
    with pytest.raises(ValueError, match="unknown preset 'pytorch'"):
        TrainingModel.preset("pytorch")
    with pytest.raises(TypeError, match="batch_norm must be True or False"):
        TrainingModel(batch_norm=1)
    with pytest.raises(ValueError, match="noise must lie in"):
        TrainingModel(noise=-0.1)
    with pytest.raises(ValueError, match="temperature must lie in"):
        PaperRun(dataclasses.replace(TINY_CL, temperature=0.01), 1, TrainingModel.preset("paper"), n=8, batch=4, lr=0.1)


def test_switches_change_what_they_document():
    from critpoints.dynamics import paper_models

    cell, paper = TINY_CL, TrainingModel.preset("paper")
    assert paper_models.uses_batch_norm(paper, cell) and not paper_models.uses_batch_norm(TrainingModel(), cell)
    assert not paper_models.uses_batch_norm(paper, TINY_NCL)  # the paper's NCL model ignores --use_bn
    state = paper_models.initial_state(cell, 1, paper)
    assert np.all(np.abs(state["b"]) <= 1 / math.sqrt(cell.p)) and np.any(state["b"] != 0)
    assert np.all(paper_models.initial_state(cell, 1)["b"] == 0)
    warm = dataclasses.replace(TINY_NCL, p=50, d=10, m=10, warm_start=1.0)
    deviation = lambda model: paper_models.initial_state(warm, 1, model)["W"] - paper_models.dictionary(warm, 1).T  # noqa: E731
    assert deviation(paper).std() == pytest.approx(1.0, rel=0.1)  # the paper's N(0, c^2)
    assert deviation(TrainingModel()).std() == pytest.approx(50**-0.5, rel=0.1)  # variance p^-c
    one_hot = dataclasses.replace(TINY_NCL, latent="one_hot", d=4, p=4)
    M = paper_models.dictionary(one_hot, 1)
    quiet = dataclasses.replace(paper, noise=0.0)
    signs = lambda model, c: np.sign((paper_models.draw_data(c, 1, 200, model) @ M).sum(axis=1))  # noqa: E731
    assert len(set(signs(quiet, one_hot))) == 1  # one sign for the whole data set
    assert set(signs(quiet, dataclasses.replace(one_hot, method="CL"))) == {1.0}
    assert set(signs(TrainingModel(noise=0.0), one_hot)) == {-1.0, 1.0}


# ---------------------------------------------------------------------------------------
# One step of each model against an independent gradient
# ---------------------------------------------------------------------------------------


def _views(run: PaperRun, count: int) -> tuple[np.ndarray, np.ndarray]:
    x = run._work["x"]
    return x[:count].astype(float).copy(), x[run.batch : run.batch + count].astype(float).copy()


@pytest.mark.parametrize("model", [TrainingModel(), TrainingModel.preset("paper", precision="float64")])
def test_contrastive_step_is_a_gradient_step(model):
    """One CL step moves (W, b[, gamma, beta]) by -lr times the central-difference gradient of
    the loss written out from its definition on the step's own views."""
    run = PaperRun(TINY_CL, 3, model, n=12, batch=5, lr=0.1)
    before = {key: value.copy() for key, value in run.state().items()}
    run.order[:] = np.arange(run.n)
    run.contrastive_step(0, 5)
    x1, x2 = _views(run, 5)
    W, b, gamma, beta = (before[key].copy() for key in ("W", "b", "gamma", "beta"))
    ntxent = model.contrastive_loss == "ntxent"

    def loss():
        if run.batch_norm:
            rep = np.concatenate([_bn_symrelu(x @ W.T + b, b, gamma, beta) for x in (x1, x2)])
        else:
            rep = _symrelu(np.concatenate([x1, x2]) @ W.T, b)
        return _contrastive_loss(rep, TINY_CL.temperature, ntxent)

    after = run.state()
    for key, array in (("W", W), ("b", b)) + ((("gamma", gamma), ("beta", beta)) if run.batch_norm else ()):
        # central differences with h = 1e-6 are good to ~1e-7 relative on these (BN-amplified) slopes
        np.testing.assert_allclose(after[key], before[key] - 0.1 * _central(loss, array), rtol=1e-6, atol=1e-8)
    if not run.batch_norm:
        assert np.all(after["gamma"] == 1.0) and np.all(after["beta"] == 0.0)


def _minibatch_measure(x1: np.ndarray, x2: np.ndarray) -> FiniteMeasure:
    weight = np.full(len(x1), 1.0 / len(x1))
    return FiniteMeasure(x1, x2, weight, x1, weight, x2, weight, True)


@pytest.mark.parametrize("cell, loss", [(TINY_NCL, "ncl_cosine"), (TINY_PRED, "ncl_predictor")])
@pytest.mark.parametrize("online", [True, False])
def test_ncl_step_is_the_batched_loss_step(cell, loss, online):
    """One alternating step equals -lr times the online (or target) part of the package's
    batched gradient of the same loss over the step's minibatch as a finite measure."""
    run = PaperRun(cell, 4, TrainingModel(bias_init="uniform"), n=12, batch=7, lr=0.1)
    before = run.state()
    run.ncl_step(0, 7, online)
    x1, x2 = _views(run, 7)
    setting = critpoints.Setting(
        p=cell.p,
        d=cell.p,
        m=cell.m,
        loss=loss,
        encoder="symrelu",
        bias="trainable",
        expectation=("sample_average", 1, 0),
    )
    population = critpoints.population_loss(setting)
    blocks = {name: before[name] for name in population.layout.shapes}
    parts = BatchedLoss(population, _minibatch_measure(x1, x2)).evaluate(population.pack(**blocks)[None])
    expected = population.unpack(population.pack(**blocks) - 0.1 * (parts.online if online else parts.target)[0])
    after = run.state()
    for name in population.layout.shapes:
        np.testing.assert_allclose(after[name], expected[name], atol=1e-12)


def test_predictor_bias_is_trained_where_the_paper_has_one():
    paper = TrainingModel.preset("paper", batch_norm=False, precision="float64")
    run = PaperRun(TINY_PRED, 2, paper, n=12, batch=6, lr=0.1)
    c0 = run.state()["c"]
    run.train(1)
    assert np.any(run.state()["c"] != c0) and np.any(c0 != 0)
    e4 = dataclasses.replace(TINY_PRED, experiment="E4", predictor_bias=False, constraint="unit_rows")
    run = PaperRun(e4, 2, paper, n=12, batch=6, lr=0.1)
    run.train(2)
    assert np.all(run.state()["c"] == 0)
    np.testing.assert_allclose(np.linalg.norm(run.W, axis=1), 1.0)


# ---------------------------------------------------------------------------------------
# Views, streams, reproducibility
# ---------------------------------------------------------------------------------------


def test_views_follow_the_masks():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((400, 50))
    order = np.arange(400)
    x1, x2 = np.zeros((400, 50)), np.zeros((400, 50))
    nz1, nz2 = np.zeros(400, bool), np.zeros(400, bool)
    state = np.array([11], np.uint64)
    kernels.draw_views(X, order, 0, 400, True, np.uint64(0), 2.0, state, x1, x2, nz1, nz2)
    np.testing.assert_array_equal((x1 + x2) / 2, X)  # complementary: x = (x1 + x2) / 2
    assert np.all((x1 == 0) | (x2 == 0))
    q = 0.75
    kernels.draw_views(X, order, 0, 400, False, np.uint64(round(q * 2**32)), 1.0, state, x1, x2, nz1, nz2)
    dropped = np.mean(x1 == 0), np.mean(x2 == 0), np.mean((x1 == 0) & (x2 == 0))
    sd = math.sqrt(q * (1 - q) / X.size)  # binomial standard deviation of a drop fraction
    assert abs(dropped[0] - q) < 5 * sd and abs(dropped[1] - q) < 5 * sd
    assert abs(dropped[2] - q * q) < 5 * math.sqrt(q * q * (1 - q * q) / X.size)  # independent masks
    assert np.all(nz1 == np.any(x1 != 0, axis=1))


def test_shuffle_is_a_uniform_permutation():
    state = np.array([3], np.uint64)
    order = np.arange(5)
    first = np.zeros(5)
    trials = 5000
    for _ in range(trials):
        kernels.shuffle(order, state)
        first[order[0]] += 1
    assert sorted(order) == list(range(5))
    sd = math.sqrt(trials * 0.2 * 0.8)
    assert np.all(np.abs(first - trials / 5) < 5 * sd)


@pytest.mark.parametrize("cell", [TINY_CL, TINY_NCL])
def test_runs_are_reproducible_from_their_seed(cell):
    def final(seed):
        run = PaperRun(cell, seed, TrainingModel.preset("paper"), n=20, batch=6, lr=0.05)
        run.train(3)
        return run.W

    np.testing.assert_array_equal(final(1), final(1))
    assert np.abs(final(1) - final(2)).max() > 1e-3


def test_eval_mode_representation_uses_the_running_averages():
    run = PaperRun(TINY_CL, 1, TrainingModel.preset("paper", precision="float64"), n=20, batch=10, lr=0.05)
    run.train(2)
    state = run.state()
    x = np.random.default_rng(7).standard_normal((5, TINY_CL.p))
    t = state["gamma"] * (x @ state["W"].T + state["b"] - state["mean"]) / np.sqrt(state["var"] + 1e-5) + state["beta"]
    np.testing.assert_allclose(run.representation(x), np.maximum(t, 0) - np.maximum(2 * state["b"] - t, 0))
    assert np.all(state["mean"] != 0) and np.all(state["var"] != 1)


def test_alternation_restarts_with_the_online_branch_every_epoch(monkeypatch):
    """The paper's alternate_train: online on batches 0, 2, 4, ... of every epoch; NCL keeps the
    last, smaller batch (3 batches of n = 16 by 6) and CL drops it (2 batches)."""
    calls = []
    run = PaperRun(TINY_NCL, 1, n=16, batch=6, lr=0.1)
    original = run.ncl_step
    monkeypatch.setattr(
        run,
        "ncl_step",
        lambda start, stop, online: calls.append((stop - start, online)) or original(start, stop, online),
    )
    run.train(2)
    assert calls == [(6, True), (6, False), (4, True)] * 2
    run = PaperRun(TINY_CL, 1, n=16, batch=6, lr=0.1)
    sizes = []
    original_cl = run.contrastive_step
    monkeypatch.setattr(
        run, "contrastive_step", lambda start, stop: sizes.append(stop - start) or original_cl(start, stop)
    )
    run.train(1)
    assert sizes == [6, 6]
