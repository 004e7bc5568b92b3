"""The paper's experiments E1-E4 (derivations/MODEL.md §9), reproduced twice.

1. **Minibatch SGD on sampled data**, as the paper's code trains (critpoints.dynamics.paper_models:
   the models, their math and the switches that select the project's model or the paper's
   code): n samples x = M z + xi drawn once, every epoch a reshuffle into batches with fresh
   masks, plain SGD, the symmetric-ReLU encoder with a trainable bias;

   * CL: one encoder, InfoNCE or the paper's NT-Xent on the 2B views of a batch (temperature
     0.05) with complementary masks x1 = 2 D x, x2 = 2 (I - D) x;
   * NCL (``ncl_cosine``, no predictor): two encoders, loss 2 - 2 mean cos(f_o(x1), f_t(x2)),
     the paper's alternating online / target steps;
   * NCL+pred (``ncl_predictor``): a linear predictor P (and, where the paper has one, a bias).

   Every (cell, seed) is one run; runs go to parallel processes (:func:`run_grid`), each
   record is written to a folder as the run finishes, and an interrupted grid resumes.

2. **Population dynamics**: full-batch gradient descent with the same initialisations on the
   expectation over a large fixed sample of (z, D1, D2, x') draws (critpoints.dynamics.descent with
   ``expectation=("sample_average", N, seed)``): the dictionary is random and the noise
   Gaussian, so no exact enumeration exists; the runs are labelled *empirical*. There, CL uses
   the population InfoNCE of derivations/MODEL.md §4 (anchors against every negative of the sample),
   NCL+pred the ``ncl_predictor`` field of derivations/MODEL.md §4 (no predictor bias).

Both print the paper's metric: for each cell, max / median / min over atoms of
a_j = max_i |cos(w_i, M_j)| (w_i the rows of the online encoder), at initialisation and at the
end, mean +- sd over seeds. The SGD runs also carry the label of their final W (collapsed /
good / bad, derivations/MODEL.md §6: claim 4 in the paper's own setting). Deviations from the
paper's code are listed in ``derivations/experiments.md``.

Budgets: :data:`QUICK` (minutes at most for the whole set, under a minute for E1) and
:data:`FULL` (the paper's n = 3000, batch 512, lr 0.005, 8000 epochs, 5 seeds).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import math
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from critpoints import _files
from critpoints import _validation as check
from critpoints.dynamics.descent import descend
from critpoints.dynamics.paper_models import (
    PaperRun,
    TrainingModel,
    dictionary,
    initial_state,
    metric,
    train_run,
)
from critpoints.landscape.labels import DEFAULT_TAU_GOOD, Label, data_inputs, label_point
from critpoints.losses.population_loss import population_loss
from critpoints.model.families import loss_family
from critpoints.model.latent import FixedCount, OneHot, sparsity_to_counts
from critpoints.model.setting import Setting
from critpoints.solver.lifeline import process_pool

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
        None: random init, W entries N(0, 1/(p d)); c: W_0 = M^T + noise (variance p^-c, or
        the paper's standard deviation c: ``TrainingModel.warm_start_noise``).
    constraint : str
        "none", "unit_rows" or "unit_columns".
    predictor_bias : bool
        NCL+pred: the paper's predictor has a bias in this experiment (E3, E3') or not (E4);
        it is trained only under ``TrainingModel(predictor_bias=True)``.
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

    def latent_object(self, positive: bool = False):
        """The latent law: one-hot with random signs (or ``positive``), or fixed_count from the sparsity."""
        if self.latent == "one_hot":
            return OneHot(positive=positive)
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
# Population dynamics
# ---------------------------------------------------------------------------------------


def population_setting(
    cell: Cell, seed: int, samples: int, positive: bool = False, noise: float | None = None
) -> Setting:
    """The Setting of a cell with E[.] over a fixed sample of ``samples`` draws (seeded).

    One-hot codes carry random signs unless ``positive``; the noise is sqrt(ln d)/d unless given.
    """
    loss = {"CL": "infonce", "NCL": "ncl_cosine", "NCL+pred": "ncl_predictor"}[cell.method]
    options: dict[str, Any] = {"temperature": cell.temperature} if "temperature" in loss_family(loss).options else {}
    return Setting(
        p=cell.p,
        d=cell.d,
        m=cell.m,
        dictionary=("random", seed),
        latent=cell.latent_object(positive),
        noise=cell.sigma if noise is None else noise,
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
        state = initial_state(cell, seed, cell_index=index)
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
# Claim 4 on the runs: labels of the final W
# ---------------------------------------------------------------------------------------


def label_run(run: PaperRun, tau_good: float = DEFAULT_TAU_GOOD) -> Label:
    """collapsed / good / bad of a run's final online encoder (critpoints.landscape.labels).

    The data law of the run (its dictionary, latent and noise) gives the inputs on which
    collapse and dead neurons are decided. Without batch normalisation this is
    ``label_point`` itself; with it the representation is that of the evaluation-mode
    encoder (running averages), to which the same rules are applied.
    """
    cell, model = run.cell, run.model
    setting = population_setting(cell, run.seed, 1, positive=model.one_hot_sign == "paper", noise=run.noise)
    state = run.state()
    label = label_point(setting, {key: state[key] for key in ("W", "b", "W_t", "b_t")}, tau_good=tau_good)
    if not run.batch_norm:
        return label
    representation = run.representation(data_inputs(setting))
    scale = max(1.0, float(np.abs(representation).max(initial=0.0)))
    tolerance = 1e-9 * scale
    collapsed = bool(np.all(np.abs(representation - representation[0]) <= tolerance))
    dead = int(np.sum(np.all(np.abs(representation) <= tolerance, axis=0)))
    good = not collapsed and label.alignment.min() >= tau_good
    return replace(label, label="collapsed" if collapsed else "good" if good else "bad", dead=dead)


# ---------------------------------------------------------------------------------------
# Runs, written as they finish
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """One SGD run of a grid: a cell, a seed, a training model and the sizes."""

    cell: Cell
    seed: int
    model: TrainingModel
    n: int
    batch: int
    lr: float
    epochs: int
    record_every: int = 0

    def fingerprint(self) -> str:
        """A digest of everything the run's result depends on (its file name carries it)."""
        payload = {
            "cell": self.cell.describe(),
            "key": self.cell.key,
            "seed": self.seed,
            "model": self.model.to_dict(),
            "sizes": [self.n, self.batch, self.lr, self.epochs, self.record_every],
            "version": RECORD_VERSION,
        }
        return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def file_name(self) -> str:
        """``<experiment>_<method>_<latent>_<q>_<init>_seed<seed>_<fingerprint>.json``."""
        label = "_".join(self.cell.describe().split()).replace("+", "p").replace("'", "prime").replace("=", "")
        return f"{label}_seed{self.seed}_{self.fingerprint()}.json"

    def cost(self) -> float:
        """Relative cost, to start the longest runs first (a CL step is ~ 2B x 2B x m)."""
        steps = self.epochs * max(self.n // self.batch, 1)
        per_step = self.batch * self.cell.m * (2 * self.batch if self.cell.method == "CL" else self.cell.p)
        return steps * per_step


#: Bumped when a record's content or meaning changes (older files are then not reused).
RECORD_VERSION = 2


def run_one(spec: RunSpec) -> dict[str, Any]:
    """Train one run (one BLAS thread) and return its record with the label of its final W.

    ``seconds`` is the run's wall time, ``cpu_seconds`` the CPU time of its process (what the
    run costs on an otherwise idle core).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        began, cpu = time.perf_counter(), time.process_time()
        run = PaperRun(spec.cell, spec.seed, spec.model, n=spec.n, batch=spec.batch, lr=spec.lr)
        record = train_run(run, spec.epochs, spec.record_every)
        label = label_run(run)
    record.update(
        fingerprint=spec.fingerprint(),
        version=RECORD_VERSION,
        label={
            "label": label.label,
            "collapsed": label.label == "collapsed",
            "recovered": label.recovered,
            "dead": label.dead,
            "duplicated": label.duplicated,
            "tau_good": DEFAULT_TAU_GOOD,
        },
        seconds=time.perf_counter() - began,
        cpu_seconds=time.process_time() - cpu,
    )
    return record


def _read(path: Path, spec: RunSpec) -> dict[str, Any] | None:
    """The stored record of ``spec``, or None if absent, unreadable or of another run."""
    try:
        record = _files.loads_record(path.read_text(), path)
    except (OSError, ValueError):
        return None
    return record if record.get("fingerprint") == spec.fingerprint() else None


def run_grid(
    specs: Iterable[RunSpec],
    directory: str | Path | None = None,
    workers: int = 1,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train every run, in parallel processes, writing each record as it finishes.

    Parameters
    ----------
    specs : iterable of RunSpec
    directory : str or Path, optional
        Folder of the run records (created). A run whose record is already there (same
        fingerprint) is not trained again, so an interrupted grid resumes where it stopped.
        Records are written atomically (a temporary file in the folder, then a rename).
    workers : int
        Processes; runs are independent and the longest start first. Each uses one BLAS thread.
        Scripts that pass workers > 1 need an ``if __name__ == "__main__":`` guard.
    progress : bool
        A tqdm bar over the runs.

    Returns
    -------
    list of dict
        The records in the order of ``specs`` (see :func:`run_one`).
    """
    specs = list(specs)
    workers = check.integer("workers", workers, minimum=1)
    folder = None if directory is None else Path(directory)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    records: dict[int, dict[str, Any]] = {}
    todo = []
    for index, spec in enumerate(specs):
        stored = None if folder is None else _read(folder / spec.file_name(), spec)
        if stored is None:
            todo.append(index)
        else:
            records[index] = stored
    todo.sort(key=lambda index: -specs[index].cost())

    def finish(index: int, record: dict[str, Any]) -> None:
        records[index] = record
        if folder is not None:
            _files.write_text(folder / specs[index].file_name(), _files.dumps_record(record))
        bar.update(1)

    with tqdm(total=len(specs), initial=len(records), disable=not progress or None, unit="run", desc="SGD") as bar:
        if workers == 1 or len(todo) <= 1:
            for index in todo:
                finish(index, run_one(specs[index]))
        else:
            with process_pool(workers, "spawn") as pool:
                futures = {pool.submit(run_one, specs[index]): index for index in todo}
                for future in concurrent.futures.as_completed(futures):
                    finish(futures[future], future.result())
    return [records[index] for index in range(len(specs))]


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellResult:
    """The paper's metric for one cell: per seed, (max, median, min) of a_j initially and finally.

    ``epochs`` and ``trajectory`` (seeds, len(epochs), d) hold a_j along training when the
    runs recorded it; ``collapsed`` whether each seed's final representation is constant on
    the data (critpoints.landscape.labels), which with the final a_j gives its label.
    """

    cell: Cell
    mode: str
    initial: np.ndarray  # (seeds, 3)
    final: np.ndarray  # (seeds, 3)
    epochs: np.ndarray | None = None
    trajectory: np.ndarray | None = None
    collapsed: tuple[bool, ...] = ()
    final_alignment: np.ndarray | None = None  # (seeds, d)

    def summary(self) -> dict[str, tuple[float, float]]:
        """Mean and sd over seeds of each entry of the metric."""
        out = {}
        for when, values in (("initial", self.initial), ("final", self.final)):
            for position, name in enumerate(("max", "median", "min")):
                column = values[:, position]
                out[f"{when} {name}"] = (float(column.mean()), float(column.std(ddof=1)) if len(column) > 1 else 0.0)
        return out

    def at(self, epoch: int, threshold: float = 0.9) -> dict[str, tuple[float, float]]:
        """Mean and sd over seeds of max / median / min a_j and of #{a_j > threshold} at ``epoch``."""
        recorded = [] if self.epochs is None else [int(e) for e in self.epochs]
        if self.trajectory is None or epoch not in recorded:
            raise ValueError(f"epoch must be one of the recorded epochs {recorded}, got epoch={epoch}")
        a = self.trajectory[:, recorded.index(epoch)]
        values = {
            "max": a.max(axis=1),
            "median": np.median(a, axis=1),
            "min": a.min(axis=1),
            f"> {threshold:g}": np.sum(a > threshold, axis=1).astype(float),
        }
        spread = (lambda v: float(v.std(ddof=1))) if len(a) > 1 else (lambda v: 0.0)
        return {name: (float(v.mean()), spread(v)) for name, v in values.items()}

    def labels(self, tau_good: float = DEFAULT_TAU_GOOD) -> tuple[str, ...]:
        """collapsed / good (min_j a_j >= tau_good) / bad, per seed (derivations/MODEL.md §6)."""
        if self.final_alignment is None or len(self.collapsed) != len(self.final_alignment):
            return ()
        return tuple(
            "collapsed" if collapsed else "good" if a.min() >= tau_good else "bad"
            for collapsed, a in zip(self.collapsed, self.final_alignment)
        )

    def recovered(self, tau_good: float = DEFAULT_TAU_GOOD) -> float:
        """Mean over seeds of the number of atoms with a_j >= tau_good at the end."""
        if self.final_alignment is None:
            return float("nan")
        return float(np.mean(np.sum(self.final_alignment >= tau_good, axis=1)))

    def label_fractions(self, tau_good: float = DEFAULT_TAU_GOOD) -> dict[str, float]:
        """Fraction of seeds whose final W is good, bad, collapsed."""
        labels = self.labels(tau_good)
        total = max(len(labels), 1)
        return {name: sum(label == name for label in labels) / total for name in ("good", "bad", "collapsed")}


@dataclass(frozen=True)
class ExperimentResult:
    """All cells of one experiment in one mode ("sgd" or "population"), with the wall time."""

    experiment: str
    mode: str
    budget: Budget
    cells: tuple
    seconds: float
    model: TrainingModel = TrainingModel()

    def table(self) -> str:
        """The paper's metric table: max / median / min of a_j, initial -> final, mean ± sd over seeds."""
        title = {
            "sgd": f"minibatch SGD on sampled data, {self.model.describe()} model",
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

    def label_table(self, tau_goods: Iterable[float] = (DEFAULT_TAU_GOOD, 0.9)) -> str:
        """Claim 4 on the runs: per cell, the fraction of seeds ending good / bad / collapsed.

        good: not collapsed and min_j a_j >= tau_good, for each tau_good given (the project's
        0.95 and the paper's 0.9 by default).
        """
        tau_goods = list(tau_goods)
        width = max([len(result.cell.describe()) for result in self.cells] + [4])
        heading = "".join(f" {f'good({tau:g})':>10} {f'bad({tau:g})':>10} {f'atoms({tau:g})':>11}" for tau in tau_goods)
        lines = [
            f"{self.experiment}: final W labelled from the ground truth (good(tau): not collapsed, min_j a_j >= tau;"
            " atoms(tau): mean number of atoms with a_j >= tau)",
            f"{'cell':<{width}}{heading} {'collapsed':>10} {'runs':>5}",
        ]
        for result in self.cells:
            row = ""
            for tau in tau_goods:
                f = result.label_fractions(tau)
                row += f" {f['good']:>10.2f} {f['bad']:>10.2f} {result.recovered(tau):>11.1f}"
            collapsed = result.label_fractions()["collapsed"]
            lines.append(f"{result.cell.describe():<{width}}{row} {collapsed:>10.2f} {len(result.collapsed):>5}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def cell_results(cells_: Iterable[Cell], records: Iterable[dict[str, Any]], mode: str = "sgd") -> tuple:
    """Group run records by cell (matched by the cell's key) into CellResults, seeds in order."""
    by_cell: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        by_cell.setdefault(record["cell_key"], []).append(record)
    out = []
    for cell in cells_:
        runs = sorted(by_cell.get(cell.key, []), key=lambda record: record["seed"])
        if not runs:
            continue
        epochs = [record["epochs"] for record in runs]
        same = all(e == epochs[0] for e in epochs)
        out.append(
            CellResult(
                cell,
                mode,
                np.array([record["initial"] for record in runs]),
                np.array([record["final"] for record in runs]),
                np.array(epochs[0]) if same else None,
                np.array([record["alignment"] for record in runs]) if same else None,
                tuple(record["label"]["collapsed"] for record in runs if "label" in record),
                np.array([record["alignment"][-1] for record in runs]),
            )
        )
    return tuple(out)


def _population_task(cell: Cell, budget: Budget) -> list[np.ndarray]:
    with threadpool_limits(limits=1, user_api="blas"):
        return _population_cell(cell, cell.key, budget)


def run_experiment(
    experiment: str,
    budget: Budget = QUICK,
    modes: Iterable[str] = ("sgd", "population"),
    select: Iterable[Cell] | None = None,
    workers: int = 1,
    model: TrainingModel | None = None,
    directory: str | Path | None = None,
    record_every: int = 0,
    progress: bool = False,
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
        Processes to spread the work over (SGD runs and population cells are independent
        tasks); 1 runs everything here. Each task uses one BLAS thread. Scripts that pass
        workers > 1 need an ``if __name__ == "__main__":`` guard.
    model : TrainingModel, optional
        The SGD training model (default the project's; ``TrainingModel.preset("paper")`` the
        paper's code). The population runs are the project's population losses.
    directory : str or Path, optional
        Keep each SGD run's record there as it finishes and reuse stored ones (:func:`run_grid`).
    record_every : int
        Record a_j every this many epochs (0: start and end only).
    progress : bool
        A progress bar over the SGD runs.

    Returns
    -------
    list of ExperimentResult
        One per mode, each printing the paper's metric table; the SGD one also
        ``label_table()``. The wall time of a mode is that of its own work.
    """
    check.choice("experiment", experiment, EXPERIMENTS)
    if not isinstance(budget, Budget):
        raise TypeError(f"budget must be a Budget (e.g. QUICK or FULL), got {type(budget).__name__}")
    chosen = list(cells(experiment) if select is None else select)
    if not chosen or not all(isinstance(cell, Cell) for cell in chosen):
        raise ValueError(f"select must hold at least one Cell of experiment {experiment!r}, got {select!r}")
    modes = list(modes)
    if not modes:
        raise ValueError("modes must name at least one of 'sgd', 'population', got none")
    for mode in modes:
        check.choice("mode", mode, ("sgd", "population"))
    workers = check.integer("workers", workers, minimum=1)
    record_every = check.integer("record_every", record_every, minimum=0)
    progress = check.flag("progress", progress)
    if model is not None and not isinstance(model, TrainingModel):
        raise TypeError(f"model must be a TrainingModel, got {type(model).__name__}")
    model = TrainingModel() if model is None else model
    results = []
    for mode in modes:
        began = time.perf_counter()
        if mode == "sgd":
            specs = [
                RunSpec(cell, seed, model, budget.n, budget.batch, budget.lr, budget.epochs, record_every)
                for cell in chosen
                for seed in range(1, budget.seeds + 1)
            ]
            records = run_grid(specs, directory, workers, progress)
            per_cell = cell_results(chosen, records)
        else:
            finals = _map(_population_task, [(cell, budget) for cell in chosen], workers)
            population = []
            for cell, weights in zip(chosen, finals):
                initial, final = [], []
                for seed, W in enumerate(weights, start=1):
                    M = dictionary(cell, seed)
                    initial.append(metric(initial_state(cell, seed, cell_index=cell.key)["W"], M))
                    final.append(metric(W, M))
                population.append(CellResult(cell, mode, np.array(initial), np.array(final)))
            per_cell = tuple(population)
        results.append(ExperimentResult(experiment, mode, budget, per_cell, time.perf_counter() - began, model))
    return results


def _map(function, arguments: list[tuple], workers: int) -> list:
    """function(*a) for each a, in a process pool of ``workers`` (spawn) or here."""
    if workers <= 1 or len(arguments) <= 1:
        return [function(*a) for a in arguments]
    with process_pool(workers, "spawn") as pool:
        return list(pool.map(function, *zip(*arguments)))
