"""Disconnectivity graphs of a contrastive and a non-contrastive loss, side by side
(derivations/CLAIMS.md, claims 2 and 3).

Run from the repository root::

    python examples/disconnectivity.py                      # d = 4, about 5 s on 2 cores
    python examples/disconnectivity.py --d 6 --restarts 600
    python examples/disconnectivity.py --db examples/landscapes.sqlite   # keep (and resume) the landscapes

Both settings are those of the claims: M = I, sigma = 0, one-hot latents, independent masks
with drop probability q = 0.5, a symmetric-ReLU encoder with the fixed bias -0.3, unit rows,
m = d. For each loss, ``critpoints.map_landscape`` finds the stationary points from seeded
Newton starts, connects every index-1 saddle to the two minima below it, and searches for
saddles between minima until every minimum is joined to the good one. The figure
(``examples/figures/disconnectivity.png``, or ``--figure``) shows

* contrastive ``spectral`` (claim 3): the good minimum lowest, at
  (1-q)^2 (-2(1-beta)^2 + (1-beta)^4/d), and bad minima with duplicated neurons above it, each
  joined to it over a barrier (the table under each graph lists the lowest barrier from every
  bad minimum to the good one);
* non-contrastive ``ncl_cosine`` with one encoder (claim 2): no isolated minima, only flat sets
  (drawn as flat segments), the lowest at 2 - 2(1-q)^2, whose representatives are bad.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import critpoints
from critpoints import plots

FIGURE = Path(__file__).resolve().parent / "figures" / "disconnectivity.png"


def claim_settings(d: int, q: float, beta: float) -> list[tuple[str, critpoints.Setting]]:
    """(title, setting) of the contrastive and the non-contrastive loss of claims 3 and 2."""
    return [
        (
            f"contrastive: spectral (claim 3), d = {d}",
            critpoints.claim_setting("spectral", d, beta=beta, q=q),
        ),
        (
            f"non-contrastive: ncl_cosine, one encoder (claim 2), d = {d}",
            critpoints.claim_setting("ncl_cosine", d, beta=beta, q=q, tied=True),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--d", type=int, default=4)
    parser.add_argument("--q", type=float, default=0.5)
    parser.add_argument("--beta", type=float, default=0.3)
    parser.add_argument("--restarts", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", default=None, help="a landscape database to add to (default: in memory)")
    parser.add_argument("--figure", default=str(FIGURE), help="the figure (.png, .svg or .pdf)")
    args = parser.parse_args()

    graphs, titles = [], []
    for title, setting in claim_settings(args.d, args.q, args.beta):
        began = time.perf_counter()
        graph = critpoints.map_landscape(setting, args.db, n_restarts=args.restarts, seed=args.seed, progress=False)
        print(f"== {title} ({time.perf_counter() - began:.1f} s)")
        print(graph)
        print(f"every minimum joined to a good one: {graph.connected_to_good()}\n")
        graphs.append(graph)
        titles.append(title)
    print(f"wrote {plots.disconnectivity_panels(graphs, args.figure, titles=titles)}")


if __name__ == "__main__":
    main()
