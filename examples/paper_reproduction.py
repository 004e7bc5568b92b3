"""The paper's experiment E1 reproduced with its own models, side by side with its code's numbers.

Run from the repository root::

    python examples/paper_reproduction.py compare             # E1 s=0.1 q=0.5, CL and NCL, paper preset
    python examples/paper_reproduction.py compare --epochs 8000
    python examples/paper_reproduction.py ablate              # each switch of the preset, with and without
    python examples/paper_reproduction.py grid                # the whole E1 grid, 8000 epochs, 5 seeds

``compare`` trains E1 at sparsity s = 0.1 and drop probability q = 0.5 (CL with the paper's
complementary masks) with ``TrainingModel.preset("paper")`` — batch normalisation on the CL
encoder, NT-Xent with the positive in the denominator, PyTorch's bias initialisation, float32
— records a_j every 10 epochs and prints max / median / min of a_j and the atoms with
a_j > 0.9 at 400 and 1200 epochs (mean ± sd over seeds) beside the numbers the paper's own code
gives for seed 1 (:data:`PAPER_CODE`); it also draws a_j against epochs (``--figure``).

``ablate`` runs the paper preset beside the preset with one switch set back to the project's
value, for every switch, on the cells where the switch acts (E1, and E2 / E3 / E3' for the
one-hot signs, the predictor bias and the warm-start noise), and the project's model itself:
the measured effect of each difference. Runs already in ``--results`` are reused.

``grid`` runs every cell of E1 (2 CL cells, 8 NCL cells, 5 seeds, n = 3000, batch 512,
lr 0.005, 8000 epochs) in parallel processes, each run's record written to ``--results`` as it
finishes (an interrupted grid resumes), and prints the metric table, the fraction of runs per
cell whose final W is good / bad / collapsed (claim 4 on the paper's own setting) and the
wall time. The model and its switches: critpoints.dynamics.paper_models and
derivations/experiments.md.
"""

from __future__ import annotations

import argparse
import os
import time

from critpoints.dynamics import experiments
from critpoints.dynamics.paper_models import TrainingModel

#: The paper's code (seed 1, p = 50, d = 10, m = 50, n = 3000, batch 512, lr 0.005, s = 0.1, q = 0.5):
#: (max, median, min) of a_j and the atoms with a_j > 0.9, per method and epoch.
PAPER_CODE = {
    "CL": {400: (0.938, 0.901, 0.577, 5), 1200: (0.939, 0.904, 0.880, 6)},
    "NCL": {400: (0.613, 0.490, 0.435, 0), 1200: (0.671, 0.522, 0.439, 0)},
}
PAPER_INITIAL = (0.415, 0.345, 0.232)


def e1_cells(s: float = 0.1, q: float = 0.5) -> dict[str, experiments.Cell]:
    """The CL and NCL cells of E1 at sparsity s and drop probability q."""
    chosen = {}
    for cell in experiments.cells("E1"):
        if cell.latent == s and (cell.method == "CL" or cell.q == q):
            chosen[cell.method] = cell
    return chosen


def _format(mean_sd: tuple[float, float], digits: int = 3) -> str:
    return f"{mean_sd[0]:.{digits}f}±{mean_sd[1]:.{digits}f}"


def comparison_table(results: dict[str, experiments.CellResult], epochs: list[int]) -> str:
    """max / median / min a_j and atoms > 0.9 (mean ± sd over seeds) beside the paper's code."""
    lines = [
        f"{'run':<5} {'epochs':>6}  {'critpoints, paper preset: max / median / min a_j':<50} {'> 0.9':>9}   "
        f"{'paper code (seed 1)':<22} {'> 0.9':>5}",
    ]
    for method, result in results.items():
        seeds = len(result.final)
        for epoch in epochs:
            at = result.at(epoch)
            ours = " / ".join(_format(at[name]) for name in ("max", "median", "min"))
            reference = PAPER_CODE.get(method, {}).get(epoch)
            theirs = " / ".join(f"{v:.3f}" for v in reference[:3]) if reference else "-"
            count = f"{reference[3]} of 10" if reference else "-"
            lines.append(f"{method:<5} {epoch:>6}  {ours:<50} {_format(at['> 0.9'], 1):>9}   {theirs:<22} {count:>5}")
        initial = result.summary()
        start = " / ".join(f"{initial[f'initial {name}'][0]:.3f}" for name in ("max", "median", "min"))
        lines.append(f"{'':<5} {'0':>6}  {start + f' ({seeds} seeds, mean)':<50}")
    lines.append(f"paper code at epoch 0: {' / '.join(f'{v:.3f}' for v in PAPER_INITIAL)}")
    return "\n".join(lines)


def compare(args: argparse.Namespace) -> dict[str, experiments.CellResult]:
    """Train the two E1 cells with the paper preset and print them beside the paper's code."""
    model = TrainingModel.preset("paper")
    budget = experiments.Budget(3000, 512, 0.005, args.epochs, args.seeds, 2048, 0.05, 4800)
    chosen = e1_cells()
    began = time.perf_counter()
    (result,) = experiments.run_experiment(
        "E1",
        budget,
        modes=("sgd",),
        select=list(chosen.values()),
        workers=args.workers,
        model=model,
        directory=args.results,
        record_every=args.record_every,
        progress=True,
    )
    by_method = {cell.cell.method: cell for cell in result.cells}
    marks = sorted({e for e in (400, 1200, args.epochs) if e <= args.epochs and e % args.record_every == 0})
    print(f"E1, s = 0.1, q = 0.5, {args.seeds} seeds; wall {time.perf_counter() - began:.0f} s; load {_load()}")
    print(comparison_table(by_method, marks))
    print()
    print(result.label_table())
    if args.figure:
        from critpoints import plots

        reference = {method: {e: v[:3] for e, v in rows.items()} for method, rows in PAPER_CODE.items()}
        path = plots.alignment_curves(
            by_method,
            args.figure,
            reference=reference,
            title="E1, s = 0.1, q = 0.5, paper preset (stars: the paper's code, seed 1)",
        )
        print(f"wrote {path}")
    return by_method


def _ablation_plan() -> list[tuple[str, str, experiments.Cell]]:
    """(switch, experiment, cell) for every switch of the paper preset on the cells where it acts.

    E1 at s = 0.1, q = 0.5 for the switches that act there; one-hot signs on E2 (q = 0.5),
    predictor bias and batch normalisation of NCL+pred on E3 (s = 0.1, q = 0.5), the
    warm-start noise on E3' (s = 0.1, c = 2). ``cl_views="independent"`` (the other stored
    version of the paper's SimCLR script) is run beside them.
    """
    e1 = e1_cells()
    e2 = {cell.method: cell for cell in experiments.cells("E2")}
    e3 = next(c for c in experiments.cells("E3") if c.latent == 0.1 and c.q == 0.5)
    e3w = next(c for c in experiments.cells("E3'") if c.latent == 0.1 and c.warm_start == 2)
    return [
        ("batch_norm", "E1", e1["CL"]),
        ("contrastive_loss", "E1", e1["CL"]),
        ("cl_views", "E1", e1["CL"]),
        ("bias_init", "E1", e1["CL"]),
        ("batch_norm+bias_init", "E1", e1["CL"]),
        ("bias_init", "E1", e1["NCL"]),
        ("precision", "E1", e1["CL"]),
        ("precision", "E1", e1["NCL"]),
        ("project model", "E1", e1["CL"]),
        ("project model", "E1", e1["NCL"]),
        ("one_hot_sign", "E2", e2["CL"]),
        ("one_hot_sign", "E2", e2["NCL"]),
        ("predictor_bias", "E3", e3),
        ("batch_norm", "E3", e3),
        ("warm_start_noise", "E3'", e3w),
    ]


def ablate(args: argparse.Namespace) -> None:
    """The paper preset beside the preset with one switch changed, on the cells where it acts."""
    paper, project = TrainingModel.preset("paper"), TrainingModel()
    budget = experiments.Budget(3000, 512, 0.005, args.epochs, args.seeds, 2048, 0.05, 4800)
    print(f"{args.epochs} epochs, {args.seeds} seeds: final a_j (mean ± sd over seeds); load {_load()}")
    print(f"{'switch':<20} {'cell':<36} {'model':<46} {'max':>13} {'median':>13} {'min':>13} {'> 0.9':>9}")
    for switch, experiment, cell in _ablation_plan():
        if switch == "project model":
            variants = {"project model": project}
        elif switch == "cl_views":
            variants = {"paper, cl_views=independent": TrainingModel.preset("paper", cl_views="independent")}
        else:
            names = switch.split("+")
            changed = {name: getattr(project, name) for name in names}
            label = "paper, " + ", ".join(f"{name}={value}" for name, value in changed.items())
            variants = {label: TrainingModel.preset("paper", **changed)}
        for label, model in {"paper preset": paper, **variants}.items():
            (result,) = experiments.run_experiment(
                experiment,
                budget,
                modes=("sgd",),
                select=[cell],
                workers=args.workers,
                model=model,
                directory=args.results,
                record_every=args.epochs,
            )
            at = result.cells[0].at(args.epochs)
            row = " ".join(f"{_format(at[name]):>13}" for name in ("max", "median", "min"))
            print(f"{switch:<20} {cell.describe():<36} {label:<46} {row} {_format(at['> 0.9'], 1):>9}", flush=True)


def grid(args: argparse.Namespace) -> None:
    """Every cell of E1 at the paper's sizes with the paper preset; records in ``--results``."""
    budget = experiments.Budget(3000, 512, 0.005, args.epochs, args.seeds, 2048, 0.05, 4800)
    began = time.perf_counter()
    (result,) = experiments.run_experiment(
        "E1",
        budget,
        modes=("sgd",),
        workers=args.workers,
        model=TrainingModel.preset("paper"),
        directory=args.results,
        record_every=args.record_every,
        progress=True,
    )
    wall = time.perf_counter() - began
    print(result)
    print()
    print(result.label_table())
    print(f"wall {wall:.0f} s with {args.workers} workers; load {_load()}")


def _load() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="compare", choices=("compare", "ablate", "grid"))
    parser.add_argument("--epochs", type=int, default=None, help="compare/ablate: 1200; grid: 8000")
    parser.add_argument("--seeds", type=int, default=None, help="compare/grid: 5; ablate: 3")
    parser.add_argument("--record-every", type=int, default=10, help="record a_j every this many epochs")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all CPUs)")
    parser.add_argument("--results", default="results/paper", help="folder of the run records (resume)")
    parser.add_argument("--figure", default="examples/figures/paper_e1_alignment.png", help="compare: PNG")
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = 8000 if args.command == "grid" else 1200
    if args.seeds is None:
        args.seeds = 3 if args.command == "ablate" else 5
    {"compare": compare, "ablate": ablate, "grid": grid}[args.command](args)


if __name__ == "__main__":
    main()
