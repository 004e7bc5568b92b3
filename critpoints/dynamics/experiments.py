"""The paper's experiments E1-E4 (derivations/MODEL.md §9), reproduced twice.

1. **Minibatch SGD on sampled data**, as the paper's code trains: n samples x = M z + xi drawn
   once, every epoch a reshuffle into batches of ``batch`` with fresh masks, plain SGD with the
   learning rate of the paper, the symmetric-ReLU encoder with a trainable bias, and

   * CL: one encoder, the paper's NT-Xent loss on the 2B views of a batch (temperature 0.05,
     each view's logits over the 2B - 1 others, the partner view as the target) with
     complementary masks x1 = 2 D x, x2 = 2 (I - D) x;
   * NCL (``ncl_cosine``, no predictor): two encoders, loss 2 - 2 mean <n(f_o(x1)), n(f_t(x2))>,
     alternating steps: within an epoch, batches 0, 2, 4, ... step the online encoder with the
     target frozen, batches 1, 3, ... the target encoder (the paper's ``alternate_train``);
   * NCL+pred (``ncl_predictor``): a linear predictor P (with a bias c in E3, without in E4),
     online loss 2 - 2 mean <n(P f_o(x1) + c), sg n(f_t(x2))>, target loss
     2 - 2 mean <sg n(f_o(x1)), n(P f_t(x2) + c)>, P and c stepped in both phases.

   Under a constraint W is renormalised (rows or columns) after every step, as in the paper.
   Runs are vectorised: every (cell, seed) is one slice of stacked arrays (float32, like the
   paper's PyTorch code) and one step of all runs is a few batched matrix products.

2. **Population dynamics**: full-batch gradient descent with the same initialisations on the
   expectation over a large fixed sample of (z, D1, D2, x') draws (critpoints.dynamics.descent with
   ``expectation=("sample_average", N, seed)``): the dictionary is random and the noise
   Gaussian, so no exact enumeration exists; the runs are labelled *empirical*. There, CL uses
   the population InfoNCE of derivations/MODEL.md §4 (anchors against every negative of the sample),
   NCL+pred the ``ncl_predictor`` field of derivations/MODEL.md §4 (no predictor bias).

Both print the paper's metric: for each cell, max / median / min over atoms of
a_j = max_i |cos(w_i, M_j)| (w_i the rows of the online encoder), at initialisation and at the
end, mean +- sd over seeds. Deviations from the paper's code are listed in
``derivations/experiments.md``.

Budgets: :data:`QUICK` (minutes at most for the whole set, under a minute for E1) and
:data:`FULL` (the paper's n = 3000, batch 512, lr 0.005, 8000 epochs, 5 seeds).
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from critpoints.dynamics.descent import descend
from critpoints.landscape.labels import alignment
from critpoints.losses.population_loss import population_loss
from critpoints.model.latent import FixedCount, OneHot, sparsity_to_counts
from critpoints.model.setting import Setting

EXPERIMENTS = ("E1", "E2", "E3", "E3'", "E4")
METHODS = ("CL", "NCL", "NCL+pred")


@dataclass(frozen=True)
class Budget:
    """Sizes of one reproduction.

    Attributes
    ----------
    n : int
        Training samples (SGD).
    batch : int
        Minibatch size.
    lr : float
        SGD learning rate.
    epochs : int
        Passes over the n samples.
    seeds : int
        Seeds 1..seeds (the paper's ``np.random.seed(i + 1)``).
    population_samples : int
        Size N of the fixed sample standing in for the expectation in the population runs.
    population_lr : float
        Step size of the full-batch population runs.
    population_steps : int
        Steps of the population runs (alternating steps count one each).
    """

    n: int
    batch: int
    lr: float
    epochs: int
    seeds: int
    population_samples: int
    population_lr: float
    population_steps: int


#: The paper's sizes (derivations/MODEL.md §9); population runs with lr x steps equal to the SGD's.
FULL = Budget(
    n=3000,
    batch=512,
    lr=0.005,
    epochs=8000,
    seeds=5,
    population_samples=2048,
    population_lr=0.05,
    population_steps=4800,
)

#: A reduced budget for a quick look: fewer samples, epochs and seeds, a larger step.
QUICK = Budget(
    n=1024, batch=256, lr=0.05, epochs=150, seeds=2, population_samples=512, population_lr=0.2, population_steps=600
)


@dataclass(frozen=True)
class Cell:
    """One configuration of an experiment (run over every seed).

    Attributes
    ----------
    experiment : str
        "E1", "E2", "E3", "E3'" or "E4".
    method : str
        "CL", "NCL" or "NCL+pred".
    p, d, m : int
    latent : str or float
        "one_hot", or the paper's sparsity s (mapped by ``sparsity_to_counts``).
    q : float or None
        Drop probability of the independent masks; None for CL's complementary masks.
    warm_start : float or None
        None: random init, W entries N(0, 1/(p d)); c: W_0 = M^T + N(0, p^-c) noise.
    constraint : str
        "none", "unit_rows" or "unit_columns".
    predictor_bias : bool
        NCL+pred: the predictor has a bias (E3) or not (E4).
    temperature : float
        CL's NT-Xent / InfoNCE temperature.
    """

    experiment: str
    method: str
    p: int
    d: int
    m: int
    latent: str | float
    q: float | None
    warm_start: float | None = None
    constraint: str = "none"
    predictor_bias: bool = True
    temperature: float = 0.05

    @property
    def sigma(self) -> float:
        """The paper's noise level sqrt(ln d) / d."""
        return math.sqrt(math.log(self.d)) / self.d

    def latent_object(self):
        """The latent law: positive one-hot (the paper's generator) or fixed_count from the sparsity."""
        if self.latent == "one_hot":
            return OneHot(positive=True)
        return FixedCount(*sparsity_to_counts(float(self.latent), self.d))

    def describe(self) -> str:
        """Short label of the cell for the tables."""
        latent = "one-hot" if self.latent == "one_hot" else f"s={self.latent:g}"
        q = "compl." if self.q is None else f"q={self.q:g}"
        init = "random" if self.warm_start is None else f"c={self.warm_start:g}"
        extra = "" if self.constraint == "none" else f" {self.constraint}"
        return f"{self.experiment:<4} {self.method:<8} {latent:<8} {q:<7} {init:<7}{extra}"

    @property
    def key(self) -> int:
        """A stable integer of the cell (seeds its random streams, whatever cells run with it)."""
        return zlib.crc32(self.describe().encode())

    def group(self) -> tuple:
        """Cells with the same group are simulated together (one stack of runs)."""
        return (
            self.method,
            self.p,
            self.d,
            self.m,
            self.constraint,
            self.predictor_bias,
            self.temperature,
            self.q is None,
        )


def cells(experiment: str) -> list[Cell]:
    """The configurations of one experiment of derivations/MODEL.md §9.

    E1: CL vs NCL, p = 50, d = 10, m = 50, random init, s in {0.1, 0.3}, q in {0.25, 0.5, 0.75, 0.9}
    (CL uses complementary masks, which do not depend on q: one CL cell per s).
    E2: as E1 with one-hot latents, q = 0.5. E3: NCL with predictor, as E1.
    E3': NCL with predictor, warm start c in {1, 1.25, 1.5, 2}, q = 0.5, s in {0.1, 0.3}.
    E4: p = d = m = 20, predictor without bias, warm start c in {1, 1.25, 1.5, 2},
    q in {0.25, 0.5, 0.75, 0.9}, one-hot or s in {0.1, 0.2, 0.3}, unit rows or unit columns.
    """
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; known: {', '.join(EXPERIMENTS)}")
    qs = (0.25, 0.5, 0.75, 0.9)
    out: list[Cell] = []
    if experiment == "E1":
        for s in (0.1, 0.3):
            out.append(Cell("E1", "CL", 50, 10, 50, s, None))
            out += [Cell("E1", "NCL", 50, 10, 50, s, q) for q in qs]
    elif experiment == "E2":
        out = [Cell("E2", "CL", 50, 10, 50, "one_hot", None), Cell("E2", "NCL", 50, 10, 50, "one_hot", 0.5)]
    elif experiment == "E3":
        out = [Cell("E3", "NCL+pred", 50, 10, 50, s, q) for s in (0.1, 0.3) for q in qs]
    elif experiment == "E3'":
        out = [Cell("E3'", "NCL+pred", 50, 10, 50, s, 0.5, warm_start=c) for s in (0.1, 0.3) for c in (1, 1.25, 1.5, 2)]
    else:
        out = [
            Cell("E4", "NCL+pred", 20, 20, 20, latent, q, warm_start=c, constraint=constraint, predictor_bias=False)
            for constraint in ("unit_rows", "unit_columns")
            for latent in ("one_hot", 0.1, 0.2, 0.3)
            for q in qs
            for c in (1, 1.25, 1.5, 2)
        ]
    return out


# ---------------------------------------------------------------------------------------
# Data and initialisation (shared by both reproductions)
# ---------------------------------------------------------------------------------------


def _rng(cell_index: int, seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, cell_index, stream])


def dictionary(cell: Cell, seed: int) -> np.ndarray:
    """The seeded random dictionary of a run (critpoints.RandomDictionary with seed ``seed``)."""
    from critpoints.model.dictionary import RandomDictionary

    return RandomDictionary(seed).matrix(cell.p, cell.d)


def draw_data(cell: Cell, seed: int, n: int, cell_index: int = 0) -> np.ndarray:
    """n inputs x = M z + xi (rows), fixed for the whole SGD run."""
    rng = _rng(cell_index, seed, 0)
    z = cell.latent_object().sample(rng, n, cell.d)
    return z @ dictionary(cell, seed).T + cell.sigma * rng.standard_normal((n, cell.p))


def initial_state(cell: Cell, seed: int, cell_index: int = 0) -> dict[str, np.ndarray]:
    """The paper's initialisation of one run.

    W and W_t: i.i.d. N(0, 1/(p d)) (random) or M^T + N(0, p^-c) with atoms drawn with
    replacement when m > d (warm start), each encoder its own draw; biases U(-1/sqrt(p), 1/sqrt(p))
    (PyTorch's default for a Linear layer); predictor P and its bias U(-1/sqrt(m), 1/sqrt(m)).
    """
    rng = _rng(cell_index, seed, 1)
    p, d, m = cell.p, cell.d, cell.m
    atoms = dictionary(cell, seed).T
    state = {}
    for name in ("W", "W_t"):
        if cell.warm_start is None:
            state[name] = rng.normal(0.0, math.sqrt(1.0 / (p * d)), (m, p))
        else:
            chosen = rng.integers(0, d, size=m) if m > d else np.arange(m) % d
            state[name] = atoms[chosen] + rng.normal(0.0, p ** (-cell.warm_start / 2.0), (m, p))
    bound = 1.0 / math.sqrt(p)
    state["b"] = rng.uniform(-bound, bound, m)
    state["b_t"] = rng.uniform(-bound, bound, m)
    bound = 1.0 / math.sqrt(m)
    state["P"] = rng.uniform(-bound, bound, (m, m))
    state["c"] = rng.uniform(-bound, bound, m) if cell.predictor_bias else np.zeros(m)
    if cell.constraint != "none":
        for name in ("W", "W_t"):
            state[name] = _normalise(state[name][None], cell.constraint)[0]
    return state


def _normalise(W: np.ndarray, constraint: str) -> np.ndarray:
    """Rows (axis 2) or columns (axis 1) of each (R, m, p) matrix to unit norm."""
    axis = 2 if constraint == "unit_rows" else 1
    return W / np.linalg.norm(W, axis=axis, keepdims=True)


def metric(W: np.ndarray, M: np.ndarray) -> tuple[float, float, float]:
    """The paper's metric: (max, median, min) over atoms of a_j = max_i |cos(w_i, M_j)|."""
    a = alignment(np.asarray(W, dtype=float), M)
    return float(a.max()), float(np.median(a)), float(a.min())


# ---------------------------------------------------------------------------------------
# Minibatch SGD, vectorised over runs
# ---------------------------------------------------------------------------------------


def _symrelu(pre: np.ndarray, bias: np.ndarray):
    up = pre + bias[:, None, :]
    down = bias[:, None, :] - pre
    a1 = up > 0
    a2 = down > 0
    rep = np.where(a1, up, 0.0) - np.where(a2, down, 0.0)
    return rep.astype(pre.dtype, copy=False), a1, a2


def _normalised(rep: np.ndarray):
    norm = np.sqrt(np.sum(rep * rep, axis=-1, keepdims=True))
    inverse = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
    return rep * inverse, inverse


def _cosine_grad(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """d/du of sum over rows of cos(u, v) (zero where u or v is zero)."""
    u_hat, inv_u = _normalised(u)
    v_hat, _ = _normalised(v)
    cosine = np.sum(u_hat * v_hat, axis=-1, keepdims=True)
    return (v_hat - cosine * u_hat) * inv_u


def _backward(grad_rep, points, a1, a2):
    """(dW, db) from dL/df through the symmetric ReLU."""
    grad_pre = grad_rep * np.add(a1, a2, dtype=grad_rep.dtype)
    grad_bias = np.sum(grad_rep * np.subtract(a1, a2, dtype=grad_rep.dtype), axis=1)
    return np.matmul(grad_pre.transpose(0, 2, 1), points), grad_bias


def _ntxent_grad(u: np.ndarray, v: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of the paper's NT-Xent loss in the representations u, v (R, B, m).

    With z = [n(u); n(v)] (2B rows) and S = z z^T / tau, the loss is
    (1/2B) sum_i [log sum_{j != i} exp S_ij - S_{i, i'}] (i' the other view of i), so
    dL/dS_ij = (softmax_i(S)_j - [j = i']) / 2B and dL/dz = (G + G^T) z / tau.
    """
    count = u.shape[1]
    z_hat, inverse = _normalised(np.concatenate([u, v], axis=1))
    logits = np.matmul(z_hat, z_hat.transpose(0, 2, 1)) / temperature
    diagonal = np.arange(2 * count)
    logits[:, diagonal, diagonal] = -np.inf
    logits -= logits.max(axis=2, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=2, keepdims=True)
    partner = np.concatenate([diagonal[count:], diagonal[:count]])
    logits[:, diagonal, partner] -= 1.0
    logits /= 2 * count
    grad_hat = np.matmul(logits + logits.transpose(0, 2, 1), z_hat) / temperature
    grad = (grad_hat - np.sum(grad_hat * z_hat, axis=-1, keepdims=True) * z_hat) * inverse
    return grad[:, :count], grad[:, count:]


def sgd_step(
    state: dict[str, np.ndarray],
    x1: np.ndarray,
    x2: np.ndarray,
    method: str,
    online: bool,
    lr: float,
    temperature: float = 0.05,
) -> None:
    """One SGD step of R stacked runs on a minibatch of views, in place.

    Parameters
    ----------
    state : dict
        W, b (R, m, p), (R, m); W_t, b_t; P (R, m, m) and c (R, m) for the predictor.
    x1, x2 : ndarray (R, B, p)
        The two views of the batch of each run.
    method : {"CL", "NCL", "NCL+pred"}
    online : bool
        NCL: step the online encoder (and the predictor by the online loss) if True, the
        target encoder (and the predictor by the target loss) otherwise. Ignored by CL.
    lr : float
    temperature : float
        CL's NT-Xent temperature.
    """
    dtype = x1.dtype.type
    lr = dtype(lr)
    W, b = state["W"], state["b"]
    if method == "CL":
        u, a1u, a2u = _symrelu(np.matmul(x1, W.transpose(0, 2, 1)), b)
        v, a1v, a2v = _symrelu(np.matmul(x2, W.transpose(0, 2, 1)), b)
        grad_u, grad_v = _ntxent_grad(u, v, temperature)
        gw1, gb1 = _backward(grad_u, x1, a1u, a2u)
        gw2, gb2 = _backward(grad_v, x2, a1v, a2v)
        W -= lr * (gw1 + gw2)
        b -= lr * (gb1 + gb2)
        return
    W_t, b_t = state["W_t"], state["b_t"]
    u, a1u, a2u = _symrelu(np.matmul(x1, W.transpose(0, 2, 1)), b)
    v, a1v, a2v = _symrelu(np.matmul(x2, W_t.transpose(0, 2, 1)), b_t)
    own, other, points, a1, a2 = (u, v, x1, a1u, a2u) if online else (v, u, x2, a1v, a2v)
    scale = dtype(-2.0 / x1.shape[1])
    if method == "NCL+pred":
        P, c = state["P"], state["c"]
        predicted = np.matmul(own, P.transpose(0, 2, 1)) + c[:, None, :]
        grad_predicted = scale * _cosine_grad(predicted, other)
        grad_own = np.matmul(grad_predicted, P)
        P -= lr * np.matmul(grad_predicted.transpose(0, 2, 1), own)
        c -= lr * grad_predicted.sum(axis=1)
    else:
        grad_own = scale * _cosine_grad(own, other)
    gw, gb = _backward(grad_own, points, a1, a2)
    if online:
        W -= lr * gw
        b -= lr * gb
    else:
        W_t -= lr * gw
        b_t -= lr * gb


def _sgd_group(runs: list[tuple[int, Cell, int]], budget: Budget, dtype=np.float32) -> list[np.ndarray]:
    """Train every run (cell index, cell, seed) of one group; returns the final W of each."""
    first = runs[0][1]
    X = np.stack([draw_data(cell, seed, budget.n, index) for index, cell, seed in runs]).astype(dtype)
    states = [initial_state(cell, seed, index) for index, cell, seed in runs]
    state = {name: np.stack([s[name] for s in states]).astype(dtype) for name in states[0]}
    q = np.array([0.0 if cell.q is None else cell.q for _, cell, _ in runs], dtype=dtype)[:, None, None]
    rng = np.random.default_rng([runs[0][2], runs[0][0], 2, len(runs)])
    count, n = X.shape[0], budget.n
    contrastive = first.method == "CL"
    complementary = first.q is None
    last = (n // budget.batch) * budget.batch if contrastive else n  # the paper drops the last CL batch
    order = np.broadcast_to(np.arange(n), (count, n))
    W, W_t = state["W"], state["W_t"]
    for _ in range(budget.epochs):
        permutation = rng.permuted(order, axis=1)
        for number, start in enumerate(range(0, last, budget.batch)):
            index = permutation[:, start : min(start + budget.batch, last)]
            inputs = np.take_along_axis(X, index[:, :, None], axis=1)
            if complementary:
                keep = (rng.random(inputs.shape, dtype=dtype) < 0.5).astype(dtype)
                x1, x2 = 2.0 * keep * inputs, 2.0 * (1.0 - keep) * inputs
            else:
                draws = rng.random((2,) + inputs.shape, dtype=dtype)
                x1, x2 = (draws[0] >= q) * inputs, (draws[1] >= q) * inputs
            sgd_step(state, x1, x2, first.method, number % 2 == 0, budget.lr, first.temperature)
            if first.constraint != "none":
                W[...] = _normalise(W, first.constraint)
                W_t[...] = _normalise(W_t, first.constraint)
    return [np.asarray(W[r], dtype=float) for r in range(count)]


# ---------------------------------------------------------------------------------------
# Population dynamics
# ---------------------------------------------------------------------------------------


def population_setting(cell: Cell, seed: int, samples: int) -> Setting:
    """The Setting of a cell with E[.] over a fixed sample of ``samples`` draws (seeded)."""
    loss = {"CL": "infonce", "NCL": "ncl_cosine", "NCL+pred": "ncl_predictor"}[cell.method]
    options: dict[str, Any] = {"temperature": cell.temperature} if loss == "infonce" else {}
    return Setting(
        p=cell.p,
        d=cell.d,
        m=cell.m,
        dictionary=("random", seed),
        latent=cell.latent_object(),
        noise=cell.sigma,
        augmentation="complementary_mask" if cell.q is None else ("independent_mask", cell.q),
        encoder="symrelu",
        bias="trainable",
        constraint=cell.constraint,
        loss=loss,
        expectation=("sample_average", samples, seed),
        **options,
    )


def _population_cell(cell: Cell, index: int, budget: Budget) -> list[np.ndarray]:
    """Full-batch descent of every seed of one cell on its fixed-sample expectation."""
    from critpoints.data.view_laws import sample_view_measure

    finals = []
    for seed in range(1, budget.seeds + 1):
        setting = population_setting(cell, seed, budget.population_samples)
        small = replace_expectation(setting, 1)
        loss = population_loss(small)  # the layout and manifold; the measure is passed below
        measure = sample_view_measure(setting, budget.population_samples, seed)
        state = initial_state(cell, seed, index)
        blocks = {name: state[name] for name in loss.layout.shapes}
        outcome = descend(
            loss,
            loss.pack(**blocks)[None],
            lr=budget.population_lr,
            max_steps=budget.population_steps,
            tol=1e-12,
            schedule="auto",
            step="projected",
            measure=measure,
        )
        finals.append(loss.unpack(outcome["theta"][0])["W"])
    return finals


def replace_expectation(setting: Setting, samples: int) -> Setting:
    """The same setting with a tiny sample (for its layout and manifold only)."""
    from critpoints.model.setting import SampleAverage

    keywords = {
        name: getattr(setting, name)
        for name in ("p", "d", "m", "dictionary", "latent", "noise", "augmentation", "encoder", "bias", "constraint")
    }
    return Setting(loss=setting.loss, expectation=SampleAverage(samples, 0), **keywords)


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellResult:
    """The paper's metric for one cell: per seed, (max, median, min) of a_j initially and finally."""

    cell: Cell
    mode: str
    initial: np.ndarray  # (seeds, 3)
    final: np.ndarray  # (seeds, 3)

    def summary(self) -> dict[str, tuple[float, float]]:
        """Mean and sd over seeds of each entry of the metric."""
        out = {}
        for when, values in (("initial", self.initial), ("final", self.final)):
            for position, name in enumerate(("max", "median", "min")):
                column = values[:, position]
                out[f"{when} {name}"] = (float(column.mean()), float(column.std(ddof=1)) if len(column) > 1 else 0.0)
        return out


@dataclass(frozen=True)
class ExperimentResult:
    """All cells of one experiment in one mode ("sgd" or "population"), with the wall time."""

    experiment: str
    mode: str
    budget: Budget
    cells: tuple
    seconds: float

    def table(self) -> str:
        """The paper's metric table: max / median / min of a_j, initial -> final, mean ± sd over seeds."""
        title = {
            "sgd": "minibatch SGD on sampled data",
            "population": f"population dynamics (empirical: fixed sample of {self.budget.population_samples} draws)",
        }
        b = self.budget
        if self.mode == "sgd":
            sizes = f"n={b.n}, batch={b.batch}, lr={b.lr:g}, epochs={b.epochs}, seeds={b.seeds}"
        else:
            sizes = f"full-batch lr={b.population_lr:g}, steps={b.population_steps}, seeds={b.seeds}"
        width = max([len(result.cell.describe()) for result in self.cells] + [4])
        lines = [
            f"{self.experiment}, {title[self.mode]} ({sizes}); {self.seconds:.1f} s",
            f"{'cell':<{width}} {'max a_j':>23} {'median a_j':>23} {'min a_j':>23}",
            f"{'':<{width}} {'initial -> final':>23} {'initial -> final':>23} {'initial -> final':>23}",
        ]
        for result in self.cells:
            s = result.summary()
            cells = []
            for name in ("max", "median", "min"):
                i_mean, _ = s[f"initial {name}"]
                f_mean, f_sd = s[f"final {name}"]
                cells.append(f"{i_mean:.2f} -> {f_mean:.3f}±{f_sd:.3f}")
            lines.append(f"{result.cell.describe():<{width}} " + " ".join(f"{cell:>23}" for cell in cells))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _task(kind: str, payload, budget: Budget) -> tuple[str, list[tuple[int, int, np.ndarray]]]:
    """One unit of work: an SGD group (stacked runs) or the seeds of one population cell."""
    with threadpool_limits(limits=1, user_api="blas"):
        if kind == "sgd":
            finals = _sgd_group(payload, budget)
            return kind, [(cell.key, seed, W) for (_, cell, seed), W in zip(payload, finals)]
        finals = _population_cell(payload, payload.key, budget)
        return kind, [(payload.key, seed, W) for seed, W in enumerate(finals, start=1)]


def run_experiment(
    experiment: str,
    budget: Budget = QUICK,
    modes: Iterable[str] = ("sgd", "population"),
    select: Iterable[Cell] | None = None,
    workers: int = 1,
) -> list[ExperimentResult]:
    """Run one experiment of derivations/MODEL.md §9 in the given modes.

    Parameters
    ----------
    experiment : {"E1", "E2", "E3", "E3'", "E4"}
    budget : Budget
        :data:`QUICK` or :data:`FULL` (or a custom one).
    modes : iterable of {"sgd", "population"}
    select : iterable of Cell, optional
        Run only these cells (default: all cells of the experiment).
    workers : int
        Processes to spread the work over (SGD groups and population cells are independent
        tasks); 1 runs everything here. Each task uses one BLAS thread. Scripts that pass
        workers > 1 need an ``if __name__ == "__main__":`` guard.

    Returns
    -------
    list of ExperimentResult
        One per mode, each printing the paper's metric table. The wall time of a mode is
        that of its tasks when run here, or the whole pool's time split by task count.
    """
    chosen = list(cells(experiment) if select is None else select)
    modes = list(modes)
    for mode in modes:
        if mode not in ("sgd", "population"):
            raise ValueError(f"mode must be 'sgd' or 'population', got {mode!r}")
    tasks: list[tuple[str, Any]] = []
    if "sgd" in modes:
        groups: dict[tuple, list] = {}
        for cell in chosen:
            for seed in range(1, budget.seeds + 1):
                groups.setdefault(cell.group(), []).append((cell.key, cell, seed))
        tasks += [("sgd", runs) for runs in groups.values()]
    if "population" in modes:
        tasks += [("population", cell) for cell in chosen]
    finals: dict[str, dict] = {mode: {} for mode in modes}
    seconds = {mode: 0.0 for mode in modes}
    began = time.perf_counter()
    if workers <= 1:
        for kind, payload in tasks:
            tic = time.perf_counter()
            _, items = _task(kind, payload, budget)
            seconds[kind] += time.perf_counter() - tic
            finals[kind].update({(key, seed): W for key, seed, W in items})
    else:
        import concurrent.futures
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        # the longest tasks first
        order = sorted(tasks, key=lambda task: task[0] != "sgd")
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_task, kind, payload, budget) for kind, payload in order]
            for future in futures:
                kind, items = future.result()
                finals[kind].update({(key, seed): W for key, seed, W in items})
        total = time.perf_counter() - began
        for mode in modes:
            seconds[mode] = total  # shared pool: each table reports the wall time of the whole run
    results = []
    for mode in modes:
        cell_results = []
        for cell in chosen:
            initial, final = [], []
            for seed in range(1, budget.seeds + 1):
                M = dictionary(cell, seed)
                initial.append(metric(initial_state(cell, seed, cell.key)["W"], M))
                final.append(metric(finals[mode][cell.key, seed], M))
            cell_results.append(CellResult(cell, mode, np.array(initial), np.array(final)))
        results.append(ExperimentResult(experiment, mode, budget, tuple(cell_results), seconds[mode]))
    return results
