"""The paper's experiments E1-E4 (derivations/MODEL.md §9): minibatch SGD and population dynamics.

Run from the repository root::

    python examples/paper_experiments.py                          # --quick: E1..E4 at reduced sizes
    python examples/paper_experiments.py --experiments E1         # E1 only (about 20 s on 2 cores)
    python examples/paper_experiments.py --full --experiments E1  # the paper's sizes (derivations/experiments.md)
    python examples/paper_experiments.py --plot plots/            # also one PNG per experiment and mode
    python examples/paper_experiments.py --paper --modes sgd      # SGD with the paper's own models

Each experiment is run twice: as minibatch SGD on n sampled inputs with the paper's
hyperparameters (``--full``: n = 3000, batch 512, lr 0.005, 8000 epochs, 5 seeds; ``--quick``:
n = 1024, batch 256, lr 0.05, 150 epochs, 2 seeds), and as full-batch gradient descent on the
expectation over a large fixed sample (the population dynamics; empirical, since the
dictionary is random and the noise Gaussian). For every cell the table gives the paper's metric,
max / median / min over atoms of a_j = max_i |cos(w_i, M_j)|, initial -> final (mean ± sd over
seeds). The SGD runs use the project's model (derivations/MODEL.md §9) or, with ``--paper``, the paper's
own code (batch normalisation, NT-Xent, its initialisation, float32: critpoints.dynamics.paper_models);
their deviations are listed in derivations/experiments.md, and examples/paper_reproduction.py
compares the paper preset with the paper's code's numbers.

The finding to compare with: CL reaches a high min_j a_j from random starts while NCL does not;
with a predictor, NCL recovers M only from warm starts close to it (large c).

``--quick`` E3' and E4 run a subset of their grids (E4 has 128 cells); ``--full`` runs all of them.
"""

from __future__ import annotations

import argparse
import os
import time

from critpoints.dynamics import experiments
from critpoints.dynamics.paper_models import TrainingModel


def quick_subset(name: str) -> list[experiments.Cell]:
    """The cells run by --quick: all of E1, E2, E3; E3' at s = 0.1; E4 at q = 0.5, one-hot and s = 0.1."""
    cells = experiments.cells(name)
    if name == "E3'":
        return [c for c in cells if c.latent == 0.1]
    if name == "E4":
        return [c for c in cells if c.q == 0.5 and c.latent in ("one_hot", 0.1)]
    return cells


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="reduced sizes (the default)")
    size.add_argument("--full", action="store_true", help="the paper's sizes")
    parser.add_argument(
        "--experiments",
        nargs="+",
        default=list(experiments.EXPERIMENTS),
        choices=experiments.EXPERIMENTS,
        metavar="E",
        help="any of E1 E2 E3 E3' E4",
    )
    parser.add_argument("--modes", nargs="+", default=["sgd", "population"], choices=("sgd", "population"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all CPUs)")
    parser.add_argument("--plot", metavar="DIR", default=None, help="write one PNG per experiment and mode")
    parser.add_argument("--paper", action="store_true", help="SGD with the paper's models (the paper preset)")
    parser.add_argument("--results", metavar="DIR", default=None, help="keep each SGD run's record there (resume)")
    args = parser.parse_args(argv)
    budget = experiments.FULL if args.full else experiments.QUICK
    began = time.perf_counter()
    for name in args.experiments:
        select = None if args.full else quick_subset(name)
        model = TrainingModel.preset("paper" if args.paper else "project")
        results = experiments.run_experiment(
            name, budget, args.modes, select=select, workers=args.workers, model=model, directory=args.results
        )
        for result in results:
            print(result)
            if result.mode == "sgd":
                print(result.label_table())
            print(flush=True)
            if args.plot:
                from critpoints import plots

                tag = name.replace("'", "prime")
                print(f"wrote {plots.experiment_metric(result, f'{args.plot}/{tag}_{result.mode}.png')}")
    print(f"total {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
