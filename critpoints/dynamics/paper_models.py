"""The training models of the paper's experiments, with every difference from the paper's code a switch.

derivations/MODEL.md §9 describes the experiments E1-E4; derivations/experiments.md compares the
model run here with the paper's public code line by line. A :class:`TrainingModel` holds the
switches; ``TrainingModel()`` is the project's model (MODEL.md §9) and
``TrainingModel.preset("paper")`` the paper's code. A :class:`PaperRun` trains one
(cell, seed) by minibatch SGD, epoch by epoch; its compiled kernels are in
critpoints.dynamics.sgd_kernels.

The models (B the batch, lr the step, n(v) = v/|v| with n(0) = 0)
-------------------------------------------------------------------
Data: n inputs x = M z + xi drawn once per run (M the seeded random dictionary, z one-hot or
``fixed_count`` from the paper's sparsity, xi ~ N(0, sigma^2 I)). Every epoch reshuffles them;
each input of a batch gets fresh masks.

Encoder (symmetric ReLU with a trainable bias b, weights W in R^{m x p}), with h = W x:

* without batch normalisation: f_i(x) = sigma_{b_i}(h_i), sigma_b(t) = ReLU(t + b) - ReLU(b - t)
  (critpoints.losses.encoder.symrelu_piece; f = 0 on a zero view);
* with batch normalisation (the paper's ``--use_bn True`` in SimCLRModel and SparseContrastiveModel):
  the Linear layer's output h + b goes through BatchNorm1d over the batch of one view,
  t_i = gamma_i (h_i - mean_B h_i) / sqrt(var_B h_i + eps) + beta_i (biased batch variance,
  eps = 1e-5, gamma and beta trained, the bias cancelled by the centring), and then the paper's
  SymReLU(t, b) = ReLU(t) - ReLU(2b - t) = sigma_b(t - b): the bias acts only as the threshold,
  and the dead zone is (2b, 0) for b < 0 — not symmetric about 0. Running averages of the batch
  mean of h + b and of its unbiased variance (momentum 0.1) give the evaluation-mode encoder
  t_i = gamma_i (h_i + b_i - mu_i) / sqrt(v_i + eps) + beta_i (:meth:`PaperRun.representation`).

Losses and steps:

* **CL** (one encoder): views x1, x2 of the B inputs of a batch; z^ = n(f(.)) for the 2B views,
  S_ij = z^_i . z^_j / tau, i' the other view of view i. For each view the cross-entropy of its
  partner among a denominator set D_i:

      L = (1/2B) sum_i [ log sum_{j in D_i} exp S_ij - S_ii' ],

  D_i = {j != i} (NT-Xent, the positive in the denominator: the paper's ``NT_Xent``) or
  D_i = {j not in {i, i'}} (InfoNCE: the negatives are the other inputs' views, the minibatch
  form of MODEL.md §4's infonce up to the constant log(2B - 2)). With E_ij = exp S_ij on D,
  r_i = sum_j E_ij and A_ij = E_ij (1/r_i + 1/r_j) (symmetric),

      dL/dz^_i = ( sum_j A_ij z^_j - 2 z^_i' ) / (2B tau),

  then through the normalisation dL/df = (g - (g.z^) z^)/|f| and through the encoder. One SGD
  step on (W, b, gamma, beta) per batch; the last incomplete batch is dropped (``drop_last``).
* **NCL** (``ncl_cosine``, two encoders, no normalisation layer in the paper's
  SparseContrastiveModelReduced): L = 2 - 2 mean_n cos(f_o(x1_n), f_t(x2_n)); alternating
  steps, online on batches 0, 2, 4, ... of an epoch, target on 1, 3, ... (the paper's
  ``alternate_train``); the last batch is kept.
* **NCL+pred**: predictor P (and bias c): the online step minimises
  2 - 2 mean cos(P f_o(x1) + c, sg f_t(x2)) in (W_o, b_o, [gamma_o, beta_o], P, c), the target step
  2 - 2 mean cos(sg f_o(x1), P f_t(x2) + c) in (W_t, b_t, [gamma_t, beta_t], P, c). The paper's
  ||n(a) - n(b)||^2 equals 2 - 2 cos(a, b) and has the same gradient, also when one side is 0.

Under a constraint (E4) the stepped encoder's rows or columns are renormalised after each step.
The metric is a_j = max_i |cos(w_i, M_j)| (critpoints.landscape.labels.alignment).

The switches (project value / paper value)
------------------------------------------
``batch_norm``        False / True: BatchNorm1d on the pre-activations of the encoders that have
                      it in the paper's runs — CL (E1, E2) and NCL+pred (E3, E3'); not NCL (its
                      model ignores the flag) nor E4 (its script passes ``--use_bn False``).
``contrastive_loss``  "infonce" / "ntxent": the positive outside / inside the denominator.
``cl_views``          "complementary" / "complementary": x1 = 2 D x, x2 = 2 (I - D) x with D
                      Bernoulli(1/2) (the paper's DependentMaskContrastiveDataset); "independent"
                      gives the other stored version of its main_simclr.py: each view its own mask,
                      drop probability q (0.5 for E1's CL cells), no rescaling.
``bias_init``         "zero" / "uniform": encoder biases 0, or U(-1/sqrt(p), 1/sqrt(p)) (PyTorch's
                      nn.Linear default, which the paper does not overwrite).
``warm_start_noise``  "variance" / "std": W_0 = M^T + N(0, p^-c) (MODEL.md §9), or + N(0, c^2)
                      (``np.random.normal(0, c, ...)`` in the paper's gen_Winit).
``one_hot_sign``      "random" / "paper": one-hot z = +-e_j with a sign per sample (MODEL.md §1),
                      or the paper's: +e_j for CL (gen_z_one_hot), one sign per data set for NCL
                      (gen_z draws a single +-1 template and permutes it).
``predictor_bias``    False / True: a predictor bias c where the paper has one (E3, E3'; its E4
                      script passes ``--use_pred_bias False``).
``precision``         "float64" / "float32" (PyTorch's default, the paper's).
``noise``             None / None: sigma = sqrt(ln d)/d, the paper's gen_epsilon default in every
                      run of its scripts (the ``sigma0: 0`` of its yaml files is never read).

Both presets draw the predictor P with PyTorch's nn.Linear(m, m) default U(-1/sqrt(m), 1/sqrt(m))
and W from N(0, 1/(p d)) (random starts).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from critpoints import _validation as check
from critpoints.dynamics import sgd_kernels as kernels
from critpoints.landscape.labels import alignment
from critpoints.model.dictionary import RandomDictionary
from critpoints.model.latent import FixedCount, OneHot, sparsity_to_counts

if TYPE_CHECKING:
    from critpoints.dynamics.experiments import Cell

#: PyTorch BatchNorm1d defaults.
BN_EPS = 1e-5
BN_MOMENTUM = 0.1

PRESETS = ("project", "paper")
_CHOICES = {
    "contrastive_loss": ("infonce", "ntxent"),
    "cl_views": ("complementary", "independent"),
    "bias_init": ("zero", "uniform"),
    "warm_start_noise": ("variance", "std"),
    "one_hot_sign": ("random", "paper"),
    "precision": ("float64", "float32"),
}


@dataclass(frozen=True)
class TrainingModel:
    """The switches of the training model (module docstring: project value / paper value).

    Attributes
    ----------
    batch_norm : bool
    contrastive_loss : {"infonce", "ntxent"}
    cl_views : {"complementary", "independent"}
    bias_init : {"zero", "uniform"}
    warm_start_noise : {"variance", "std"}
    one_hot_sign : {"random", "paper"}
    predictor_bias : bool
    precision : {"float64", "float32"}
    noise : float or None
        Noise level sigma; None for sqrt(ln d)/d.
    """

    batch_norm: bool = False
    contrastive_loss: str = "infonce"
    cl_views: str = "complementary"
    bias_init: str = "zero"
    warm_start_noise: str = "variance"
    one_hot_sign: str = "random"
    predictor_bias: bool = False
    precision: str = "float64"
    noise: float | None = None

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            check.choice(name, getattr(self, name), allowed)
        for name in ("batch_norm", "predictor_bias"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.noise is not None:
            object.__setattr__(self, "noise", check.real("noise", self.noise, low=0.0))

    @classmethod
    def preset(cls, name: str = "project", **switches: Any) -> TrainingModel:
        """The project's model (``"project"``) or the paper's code (``"paper"``), then ``switches``.

        >>> TrainingModel.preset("paper", batch_norm=False)  # the paper's code without BN
        """
        check.choice("preset", name, PRESETS)
        base = cls(**PAPER) if name == "paper" else cls()
        return replace(base, **switches)

    @property
    def dtype(self) -> type:
        """numpy dtype of the training arrays."""
        return np.float32 if self.precision == "float32" else np.float64

    def differences(self) -> dict[str, Any]:
        """The switches whose value differs from the project's model."""
        default = TrainingModel()
        names = [f.name for f in fields(self)]
        return {name: getattr(self, name) for name in names if getattr(self, name) != getattr(default, name)}

    def describe(self) -> str:
        """ "project", "paper", or the differences from the project's model."""
        if self == TrainingModel():
            return "project"
        if self == TrainingModel(**PAPER):
            return "paper"
        return ", ".join(f"{name}={value}" for name, value in self.differences().items())

    def to_dict(self) -> dict[str, Any]:
        """The switches as JSON-ready data."""
        return asdict(self)


#: The paper's value of every switch that has one (``TrainingModel.preset("paper")``).
PAPER: dict[str, Any] = {
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


def uses_batch_norm(model: TrainingModel, cell: Cell) -> bool:
    """BN on this cell's encoders: CL of E1/E2 and NCL+pred of E3/E3' when the switch is on."""
    return model.batch_norm and cell.method != "NCL" and cell.experiment != "E4"


def uses_predictor_bias(model: TrainingModel, cell: Cell) -> bool:
    """A trained predictor bias: NCL+pred of the experiments where the paper has one."""
    return model.predictor_bias and cell.method == "NCL+pred" and cell.predictor_bias


# ---------------------------------------------------------------------------------------
# Data and initialisation
# ---------------------------------------------------------------------------------------


def _rng(cell_index: int, seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, cell_index, stream])


def dictionary(cell: Cell, seed: int) -> np.ndarray:
    """The seeded random dictionary of a run (critpoints.RandomDictionary with seed ``seed``)."""
    return RandomDictionary(seed).matrix(cell.p, cell.d)


def noise_level(cell: Cell, model: TrainingModel) -> float:
    """sigma of the run: the model's, or the paper's sqrt(ln d)/d."""
    return math.sqrt(math.log(cell.d)) / cell.d if model.noise is None else model.noise


def draw_data(cell: Cell, seed: int, n: int, model: TrainingModel | None = None, cell_index: int = 0) -> np.ndarray:
    """n inputs x = M z + xi (rows), fixed for the whole run.

    One-hot codes: a sign per sample (``one_hot_sign="random"``), or the paper's: +1 for CL,
    one sign for the whole data set for NCL. Sparse codes: ``fixed_count`` from the sparsity.
    """
    model = TrainingModel() if model is None else model
    rng = _rng(cell_index, seed, 0)
    if cell.latent == "one_hot":
        if model.one_hot_sign == "random":
            z = OneHot().sample(rng, n, cell.d)
        else:
            z = OneHot(positive=True).sample(rng, n, cell.d)
            if cell.method != "CL":
                z *= rng.choice((-1.0, 1.0))
    else:
        z = FixedCount(*sparsity_to_counts(float(cell.latent), cell.d)).sample(rng, n, cell.d)
    return z @ dictionary(cell, seed).T + noise_level(cell, model) * rng.standard_normal((n, cell.p))


def initial_state(
    cell: Cell, seed: int, model: TrainingModel | None = None, cell_index: int = 0
) -> dict[str, np.ndarray]:
    """The initialisation of one run (float64).

    W and W_t: i.i.d. N(0, 1/(p d)) entries (random start) or M^T + noise (warm start c; rows
    atoms drawn with replacement when m > d; noise N(0, p^-c) or the paper's N(0, c^2)), each
    encoder its own draw; biases 0 or U(-1/sqrt(p), 1/sqrt(p)); BN gamma = 1, beta = 0, running
    mean 0 and variance 1; predictor P ~ U(-1/sqrt(m), 1/sqrt(m)), bias c likewise or 0.
    Under a constraint W and W_t start normalised.
    """
    model = TrainingModel() if model is None else model
    rng = _rng(cell_index, seed, 1)
    p, d, m = cell.p, cell.d, cell.m
    atoms = dictionary(cell, seed).T
    state: dict[str, np.ndarray] = {}
    for name in ("W", "W_t"):
        if cell.warm_start is None:
            state[name] = rng.normal(0.0, math.sqrt(1.0 / (p * d)), (m, p))
        else:
            chosen = rng.integers(0, d, size=m) if m > d else np.arange(m) % d
            sd = p ** (-cell.warm_start / 2.0) if model.warm_start_noise == "variance" else float(cell.warm_start)
            state[name] = atoms[chosen] + rng.normal(0.0, sd, (m, p))
    bound = 1.0 / math.sqrt(p)
    for name in ("b", "b_t"):
        draw = rng.uniform(-bound, bound, m)
        state[name] = draw if model.bias_init == "uniform" else np.zeros(m)
    bound = 1.0 / math.sqrt(m)
    state["P"] = rng.uniform(-bound, bound, (m, m))
    draw = rng.uniform(-bound, bound, m)
    state["c"] = draw if uses_predictor_bias(model, cell) else np.zeros(m)
    for suffix in ("", "_t"):
        state["gamma" + suffix] = np.ones(m)
        state["beta" + suffix] = np.zeros(m)
        state["mean" + suffix] = np.zeros(m)
        state["var" + suffix] = np.ones(m)
    if cell.constraint != "none":
        axis = 1 if cell.constraint == "unit_rows" else 0
        for name in ("W", "W_t"):
            state[name] = state[name] / np.linalg.norm(state[name], axis=axis, keepdims=True)
    return state


def metric(W: np.ndarray, M: np.ndarray) -> tuple[float, float, float]:
    """The paper's metric: (max, median, min) over atoms of a_j = max_i |cos(w_i, M_j)|."""
    a = alignment(np.asarray(W, dtype=float), M)
    return float(a.max()), float(np.median(a)), float(a.min())


# ---------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------

_BRANCH_KEYS = ("W", "b", "gamma", "beta", "mean", "var")
_CONSTRAINTS = {"none": kernels.NO_CONSTRAINT, "unit_rows": kernels.UNIT_ROWS, "unit_columns": kernels.UNIT_COLUMNS}


def _seed_state(seed: int, cell_key: int) -> np.ndarray:
    return np.random.SeedSequence([seed, cell_key, 2]).generate_state(1, np.uint64)


class PaperRun:
    """Minibatch SGD of one cell and seed under a training model, advanced by :meth:`train`.

    Parameters
    ----------
    cell : critpoints.dynamics.experiments.Cell
    seed : int
        Seeds the dictionary, the data, the initialisation and the SGD stream (with the cell).
    model : TrainingModel, optional
        Default: the project's model.
    n, batch : int
        Inputs and batch size (CL drops the last incomplete batch, NCL keeps it).
    lr : float
        SGD step.

    Raises
    ------
    ValueError
        For a batch larger than n, a BN run whose last batch would hold one input, or a
        temperature outside the range in which exp(S/tau) is finite in the run's precision.
    """

    def __init__(
        self, cell: Cell, seed: int, model: TrainingModel | None = None, *, n: int, batch: int, lr: float
    ) -> None:
        self.cell, self.seed = cell, check.integer("seed", seed, minimum=0)
        self.model = TrainingModel() if model is None else model
        self.n = check.integer("n", n, minimum=2)
        self.batch = check.integer("batch", batch, minimum=2)
        if self.batch > self.n:
            raise ValueError(f"batch must be <= n = {self.n}, got batch={self.batch}")
        self.lr = check.real("lr", lr, low=0.0, low_open=True)
        self.batch_norm = uses_batch_norm(self.model, cell)
        if self.batch_norm and cell.method != "CL" and self.n % self.batch == 1:
            raise ValueError(f"n % batch must not be 1 with batch normalisation (a one-input batch), got n={n}")
        dtype = self.model.dtype
        if cell.method == "CL":
            # exp(S_ij) with |S_ij| <= 1/tau must stay finite and non-zero in the run's precision
            largest = 40.0 if dtype == np.float32 else 300.0
            check.real("temperature", cell.temperature, low=1.0 / largest)
        self.M = dictionary(cell, seed)
        self.noise = noise_level(cell, self.model)
        self.X: np.ndarray = np.ascontiguousarray(draw_data(cell, seed, self.n, self.model, cell.key), dtype=dtype)
        start = initial_state(cell, seed, self.model, cell.key)
        self.initial_W = start["W"].copy()
        self.params: dict[str, np.ndarray] = {}
        for suffix in ("", "_t"):
            self.params["WT" + suffix] = np.ascontiguousarray(start["W" + suffix].T, dtype=dtype)
            for key in _BRANCH_KEYS[1:]:
                self.params[key + suffix] = np.ascontiguousarray(start[key + suffix], dtype=dtype)
        self.params["PT"] = np.ascontiguousarray(start["P"].T, dtype=dtype)
        self.params["c"] = np.ascontiguousarray(start["c"], dtype=dtype)
        self.rng = _seed_state(seed, cell.key)
        self.order = np.arange(self.n)
        self.epoch = 0
        self.last_loss = float("nan")
        # CL: complementary masks, or independent ones at the cell's q (0.5 for E1's CL cells)
        complementary = cell.method == "CL" and self.model.cl_views == "complementary"
        q = 0.5 if cell.q is None else cell.q
        self.complementary = complementary
        self.threshold = np.uint64(min(round(q * 2.0**32), 2**32 - 1)) if not complementary else np.uint64(0)
        self.scale = 2.0 if complementary else 1.0
        self._work: dict[str, np.ndarray] = {}

    # -- parameters ----------------------------------------------------------------

    @property
    def W(self) -> np.ndarray:
        """A float64 copy of the online encoder's weights (m, p)."""
        return np.array(self.params["WT"].T, dtype=float)

    def state(self) -> dict[str, np.ndarray]:
        """A float64 copy of every trained array: W, b, gamma, beta, mean, var (and _t), P, c."""
        P = self.params
        out = {}
        for suffix in ("", "_t"):
            out["W" + suffix] = np.array(P["WT" + suffix].T, dtype=float)
            for key in _BRANCH_KEYS[1:]:
                out[key + suffix] = np.array(P[key + suffix], dtype=float)
        out["P"] = np.array(P["PT"].T, dtype=float)
        out["c"] = np.array(P["c"], dtype=float)
        return out

    def alignment(self) -> np.ndarray:
        """a_j = max_i |cos(w_i, M_j)| of the online encoder."""
        return alignment(self.W, self.M)

    def representation(self, x: np.ndarray, branch: str = "online") -> np.ndarray:
        """f(x) (rows) of the evaluation-mode encoder: sigma_b(W x), or with BN (running averages)
        sigma_b(t - b), t = gamma (W x + b - mean) / sqrt(var + eps) + beta."""
        suffix = "" if check.choice("branch", branch, ("online", "target")) == "online" else "_t"
        P = self.state()
        x = np.asarray(x, dtype=float)
        h = x @ P["W" + suffix].T
        b = P["b" + suffix]
        nonzero = np.any(x != 0.0, axis=1)
        if self.batch_norm:  # sigma_b of t - b, which is not 0 on a zero view
            normal = (h + b - P["mean" + suffix]) / np.sqrt(P["var" + suffix] + BN_EPS)
            h = P["gamma" + suffix] * normal + P["beta" + suffix] - b
            nonzero[:] = True
        out = [np.empty_like(h) for _ in range(4)]
        unused = [np.zeros(h.shape[1]) for _ in range(5)]
        kernels.encode(h, nonzero, b, unused[0], unused[1], False, BN_EPS, BN_MOMENTUM, *out, *unused[2:])
        return out[0]

    # -- training ------------------------------------------------------------------

    def train(self, epochs: int) -> None:
        """Advance the run by ``epochs`` epochs."""
        epochs = check.integer("epochs", epochs, minimum=0)
        contrastive = self.cell.method == "CL"
        # CL drops the last incomplete batch (the paper's drop_last=True), NCL keeps it
        last = self.n - self.batch + 1 if contrastive else self.n
        for _ in range(epochs):
            kernels.shuffle(self.order, self.rng)
            online = True  # the paper's alternate_train restarts with the online branch every epoch
            for start in range(0, last, self.batch):
                stop = min(start + self.batch, self.n)
                if contrastive:
                    self.last_loss = self.contrastive_step(start, stop)
                else:
                    self.last_loss = self.ncl_step(start, stop, online)
                online = not online
            self.epoch += 1

    def _buffers(self) -> dict[str, np.ndarray]:
        if not self._work:
            dtype, views, m, p = self.model.dtype, 2 * self.batch, self.cell.m, self.cell.p
            self._work = {
                "x": np.zeros((views, p), dtype),
                "h": np.zeros((views, m), dtype),
                "nonzero": np.zeros(views, np.bool_),
                "rep": np.zeros((views, m), dtype),
                "slope": np.zeros((views, m), dtype),
                "bias_slope": np.zeros((views, m), dtype),
                "xhat": np.zeros((views, m), dtype),
                "istd": np.zeros((2, m), dtype),
                "dh": np.zeros((views, m), dtype),
                "grad": np.zeros((views, m)),
            }
            if self.cell.method == "CL":
                self._work["similarity"] = np.zeros((views, views), dtype)
                self._work["product"] = np.zeros((views, m), dtype)
                self._work["rowsum"] = np.zeros(views, dtype)
        return self._work

    def _views(self, start: int, stop: int) -> tuple[slice, slice]:
        """Draw the views of order[start:stop] into the work rows 0..N and B..B+N; their slices."""
        w, B, count = self._buffers(), self.batch, stop - start
        first, second = slice(0, count), slice(B, B + count)
        x, nonzero = w["x"], w["nonzero"]
        kernels.draw_views(
            self.X,
            self.order,
            start,
            stop,
            self.complementary,
            self.threshold,
            self.scale,
            self.rng,
            x[first],
            x[second],
            nonzero[first],
            nonzero[second],
        )
        return first, second

    def _encode(self, rows: slice, view: int, suffix: str) -> np.ndarray:
        """f of the views in ``rows`` through the encoder ``suffix`` ("" online, "_t" target)."""
        w, P = self._work, self.params
        np.matmul(w["x"][rows], P["WT" + suffix], out=w["h"][rows])
        kernels.encode(
            w["h"][rows],
            w["nonzero"][rows],
            P["b" + suffix],
            P["gamma" + suffix],
            P["beta" + suffix],
            self.batch_norm,
            BN_EPS,
            BN_MOMENTUM,
            w["rep"][rows],
            w["slope"][rows],
            w["bias_slope"][rows],
            w["xhat"][rows],
            w["istd"][view],
            P["mean" + suffix],
            P["var" + suffix],
        )
        return w["rep"][rows]

    def _backward(self, grad: np.ndarray, rows: slice, view: int, suffix: str, grads: dict[str, np.ndarray]) -> None:
        """Add dL/d(WT, b, gamma, beta) of encoder ``suffix`` from dL/df of the views in ``rows``."""
        w, P = self._work, self.params
        kernels.encode_backward(
            grad,
            w["slope"][rows],
            w["bias_slope"][rows],
            w["xhat"][rows],
            w["istd"][view],
            P["gamma" + suffix],
            self.batch_norm,
            w["dh"][rows],
            grads["b"],
            grads["gamma"],
            grads["beta"],
        )
        grads["WT"] += w["x"][rows].T @ w["dh"][rows]

    def _apply(self, grads: dict[str, np.ndarray], suffix: str) -> None:
        """SGD step of encoder ``suffix`` (and of the predictor if its gradients are given)."""
        P, dtype = self.params, self.model.dtype
        for key, grad in grads.items():
            if key in ("gamma", "beta") and not self.batch_norm:
                continue
            name = key if key in ("PT", "c") else key + suffix
            P[name] -= (self.lr * grad).astype(dtype)
        if self.cell.constraint != "none":
            kernels.renormalise(P["WT" + suffix], _CONSTRAINTS[self.cell.constraint])

    def _zero_grads(self) -> dict[str, np.ndarray]:
        m, p = self.cell.m, self.cell.p
        return {"WT": np.zeros((p, m), self.model.dtype), "b": np.zeros(m), "gamma": np.zeros(m), "beta": np.zeros(m)}

    def contrastive_step(self, start: int, stop: int) -> float:
        """One CL step on the inputs order[start:stop] (a full batch); returns the loss before the step."""
        B, w = self.batch, self._buffers()
        rows = self._views(start, stop)
        for view in range(2):
            self._encode(rows[view], view, "")
        grad, value = ntxent_backward(
            w["rep"],
            self.cell.temperature,
            self.model.contrastive_loss == "ntxent",
            w["similarity"],
            w["product"],
            w["rowsum"],
        )
        grads = self._zero_grads()
        for view in range(2):
            self._backward(grad[view * B : (view + 1) * B], rows[view], view, "", grads)
        self._apply(grads, "")
        return value

    def ncl_step(self, start: int, stop: int, online: bool) -> float:
        """One alternating NCL (NCL+pred) step on order[start:stop]; returns the loss before the step."""
        w, P = self._buffers(), self.params
        first, second = self._views(start, stop)
        u = self._encode(first, 0, "")
        v = self._encode(second, 1, "_t")
        count = stop - start
        grad = w["grad"]
        grad_u, grad_v = grad[:count], grad[self.batch : self.batch + count]
        grads = self._zero_grads()
        own = u if online else v
        if self.cell.method == "NCL+pred":
            prediction = own @ P["PT"] + P["c"]
            if online:
                total = kernels.cosine_gradients(prediction, v, -2.0, grad_u, grad_v)
                grad_prediction = grad_u
            else:
                total = kernels.cosine_gradients(u, prediction, -2.0, grad_u, grad_v)
                grad_prediction = grad_v
            grads["PT"] = own.T.astype(float) @ grad_prediction
            if uses_predictor_bias(self.model, self.cell):
                grads["c"] = grad_prediction.sum(axis=0)
            grad_own = grad_prediction @ P["PT"].T.astype(float)
        else:
            total = kernels.cosine_gradients(u, v, -2.0, grad_u, grad_v)
            grad_own = grad_u if online else grad_v
        suffix, rows, view = ("", first, 0) if online else ("_t", second, 1)
        self._backward(grad_own, rows, view, suffix, grads)
        self._apply(grads, suffix)
        return 2.0 - 2.0 * total


def ntxent_backward(
    rep: np.ndarray,
    temperature: float,
    positive_in_denominator: bool,
    similarity: np.ndarray | None = None,
    product: np.ndarray | None = None,
    rowsum: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """NT-Xent (or InfoNCE) of the 2B representations ``rep`` (views 1 then views 2) and dL/drep.

    The fused path of the module docstring: z_s = n(f)/sqrt(tau) in the precision of ``rep``,
    E = exp(z_s z_s^T) (one GEMM and numpy's vectorised exp in place), the weights A in one
    compiled pass (sgd_kernels.ntxent_weights), G = A z_s (one GEMM), and
    dL/dz^ = (G - 2 z_s[i']) / (2B sqrt(tau)), pulled back through the normalisation.
    ``similarity`` (2B, 2B), ``product`` (2B, m) and ``rowsum`` (2B,) are optional workspaces.

    Returns
    -------
    grad : ndarray (2B, m), float64
        dL/df for every view.
    value : float
        The loss of the batch.
    """
    views, m = rep.shape
    half = views // 2
    dtype = rep.dtype
    similarity = np.empty((views, views), dtype) if similarity is None else similarity
    product = np.empty((views, m), dtype) if product is None else product
    rowsum = np.empty(views, dtype) if rowsum is None else rowsum
    inverse = kernels.row_norms(rep)
    root = math.sqrt(temperature)
    scaled = np.empty((views, m), dtype)
    kernels.scaled_units(rep, inverse, 1.0 / root, scaled)
    np.matmul(scaled, np.ascontiguousarray(scaled.T), out=similarity)
    np.exp(similarity, out=similarity)
    log_total = kernels.ntxent_weights(similarity, half, positive_in_denominator, rowsum)
    np.matmul(similarity, scaled, out=product)
    grad, positive = kernels.ntxent_pullback(product, scaled, inverse, half, 1.0 / (views * root), root)
    return grad, (log_total - positive) / views


def train_run(run: PaperRun, epochs: int, record_every: int = 0) -> dict[str, Any]:
    """Train ``run`` for ``epochs`` more epochs and return its record (JSON-ready).

    The record holds the cell's description and key, the seed, the model's switches, the sizes,
    the initial and final metric (max, median, min of a_j), the alignment a_j at epochs
    0, r, 2r, ..., epochs (r = ``record_every``; 0 records the two ends only) with the last batch
    loss at each (nan at 0), every trained array of the final state, and the seconds it took.
    """
    began = time.perf_counter()
    epochs = check.integer("epochs", epochs, minimum=0)
    step = epochs if record_every <= 0 else check.integer("record_every", record_every, minimum=0)
    marks, trajectory, losses = [run.epoch], [run.alignment().tolist()], [float("nan")]
    end = run.epoch + epochs
    while run.epoch < end:
        run.train(min(step, end - run.epoch))
        marks.append(run.epoch)
        trajectory.append(run.alignment().tolist())
        losses.append(run.last_loss)
    final = run.state()
    return {
        "cell": run.cell.describe(),
        "cell_key": run.cell.key,
        "method": run.cell.method,
        "seed": run.seed,
        "model": run.model.to_dict(),
        "sizes": {"n": run.n, "batch": run.batch, "lr": run.lr, "epochs": end},
        "batch_norm": run.batch_norm,
        "initial": list(metric(run.initial_W, run.M)),
        "final": list(metric(final["W"], run.M)),
        "epochs": marks,
        "alignment": trajectory,
        "loss": losses,
        "state": {key: value.tolist() for key, value in final.items()},
        "seconds": time.perf_counter() - began,
    }
