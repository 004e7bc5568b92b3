"""Benchmark: flat global-minimum sets reported as one entry, stable as the restarts grow.

Run from the repository root after installing the package::

    python examples/benchmark_flat_sets.py [--restarts 80 160 320] [--losses ncl_cosine infonce]

Settings (derivations/CLAIMS.md, claim 2): M = I, one-hot latents, independent masks q = 0.5,
symrelu with bias -0.3, unit rows, m = p = d = 4; ``ncl_cosine`` (untied, the default) and
InfoNCE (tau = 0.5). Their global minima are a union of strata of different dimensions
(derivations/MODEL.md §6, "Flat critical sets"). For each loss and number of restarts it times
``enumerate_critical_points`` (default options and executor) and prints: the entries at the
lowest level found (kind, dimension, runs, runs by label), the points listed as isolated at that
level (should be none), all entries and isolated points, and the Chao1 estimate over isolated
orbits. Then ``map_landscape`` on the untied ``ncl_cosine`` (200 restarts, database in memory):
its manifold nodes at the lowest level and in all. The load average is printed at start and end:
the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from critpoints import Setting, claim_setting, enumerate_critical_points, map_landscape

LEVEL_TOLERANCE = 1e-9


def setting(loss: str, d: int = 4) -> Setting:
    return claim_setting(loss, d)


def enumeration_rows(loss: str, restarts: list[int], seed: int) -> None:
    print(f"\n{setting(loss).describe()}")
    print(f"{'restarts':>8} {'time s':>7} {'entries':>7} {'isolated':>8} {'Chao1':>7}  lowest level: entries; isolated")
    for count in restarts:
        began = time.perf_counter()
        result = enumerate_critical_points(setting(loss), n_restarts=count, seed=seed, progress=sys.stderr.isatty())
        seconds = time.perf_counter() - began
        level = min([m.loss for m in result.manifolds] + [p.loss for p in result])
        entries = [m for m in result.manifolds if abs(m.loss - level) <= LEVEL_TOLERANCE]
        isolated = [p for p in result if abs(p.loss - level) <= LEVEL_TOLERANCE]
        described = "; ".join(
            f"{m.kind}, dimension {m.dimension}, {m.count} runs {dict(sorted(m.labels.items()))}" for m in entries
        )
        print(
            f"{count:>8} {seconds:7.1f} {len(result.manifolds):>7} {len(result.points):>8} "
            f"{result.completeness.unseen_estimate:>7.1f}  L = {level:.8g}: {len(entries)} ({described}); "
            f"{len(isolated)} isolated",
            flush=True,
        )


def landscape_row(restarts: int, seed: int) -> None:
    began = time.perf_counter()
    graph = map_landscape(setting("ncl_cosine"), None, n_restarts=restarts, seed=seed, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - began
    level = min(node.loss for node in graph.basins)
    lowest = [node for node in graph.manifolds if abs(node.loss - level) <= LEVEL_TOLERANCE]
    print(
        f"\nmap_landscape, ncl_cosine, {restarts} restarts: {seconds:.1f} s; manifold nodes {len(graph.manifolds)} "
        f"({len(lowest)} at the lowest level {level:.8g}, {sum(node.point.count for node in lowest)} runs), "
        f"minima {len(graph.minima)}, saddles {len(graph.saddles)}, edges {len(graph.edges)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, nargs="+", default=[80, 160, 320])
    parser.add_argument("--losses", nargs="+", default=["ncl_cosine", "infonce"])
    parser.add_argument("--landscape-restarts", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average at start {os.getloadavg()}")
    for loss in args.losses:
        enumeration_rows(loss, args.restarts, args.seed)
    if args.landscape_restarts:
        landscape_row(args.landscape_restarts, args.seed)
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
