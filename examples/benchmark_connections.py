"""Timing of the landscape graph on the claim-3 setting, against plain enumeration in the same run.

Run from the repository root::

    python examples/benchmark_connections.py                  # d = 4 and d = 6, 200 and 600 restarts
    python examples/benchmark_connections.py --d 4 --restarts 200
    python examples/benchmark_connections.py --minima restarts    # minima from the restarts alone

For each d it times, in this order:

1. ``enumerate_critical_points`` with the given restarts (the baseline: the same Newton starts
   without connections, searches or database);
2. ``map_landscape`` with the same restarts and seed, in a fresh database file, its minima
   also from the minima-first search (``minima="explore"``, the default here);
3. the one command ``critpoints landscape ... --minima explore --db FILE --plot DIR --json FILE``
   in a fresh process (imports included): the graph, the barrier table and the figure.

It prints the times, the ratios to the baseline, how many minima were found (against the p(d)
signed-atom minima, one per partition of d: derivations/CLAIMS.md, claim 3) and whether every
one is joined to the good minimum through index-1 saddles, and the load average, since the
machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import critpoints


def claim3(d: int) -> critpoints.Setting:
    return critpoints.claim_setting("spectral", d)


def partitions(d: int) -> int:
    """p(d), the number of partitions of d (the signed-atom minima of claim 3 at m = d)."""
    ways = [1] + [0] * d
    for part in range(1, d + 1):
        for total in range(part, d + 1):
            ways[total] += ways[total - part]
    return ways[d]


def command(d: int, restarts: int, minima: str, folder: Path) -> list[str]:
    flags = ["--p", str(d), "--d", str(d), "--m", str(d), "--loss", "spectral", "--encoder", "symrelu"]
    flags += ["--bias", "-0.3", "--constraint", "unit_rows", "--augmentation", "independent_mask:0.5"]
    return [
        sys.executable,
        "-m",
        "critpoints.cli",
        "landscape",
        *flags,
        "--restarts",
        str(restarts),
        "--minima",
        minima,
        "--db",
        str(folder / "cli.sqlite"),
        "--plot",
        str(folder),
        "--json",
        str(folder / "graph.json"),
    ]


def measure(d: int, restarts: int, seed: int, minima: str) -> None:
    setting = claim3(d)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        began = time.perf_counter()
        table = critpoints.enumerate_critical_points(setting, n_restarts=restarts, seed=seed, progress=False)
        baseline = time.perf_counter() - began
        began = time.perf_counter()
        graph = critpoints.map_landscape(
            setting, folder / "api.sqlite", n_restarts=restarts, seed=seed, minima=minima, progress=False
        )
        mapped = time.perf_counter() - began
        began = time.perf_counter()
        subprocess.run(command(d, restarts, minima, folder), check=True, stdout=subprocess.DEVNULL)
        one_command = time.perf_counter() - began
        written = critpoints.load_graph(folder / "graph.json")
    print(
        f"d={d} restarts={restarts} minima={minima}: "
        f"enumerate {baseline:.1f} s ({table.counts(kind='minimum')} minima by label); "
        f"map_landscape {mapped:.1f} s (x{mapped / baseline:.2f}); one command {one_command:.1f} s "
        f"(x{one_command / baseline:.2f})"
    )
    for name, result in (("map_landscape", graph), ("command", written)):
        print(
            f"  {name}: {len(result.minima)} minima (p({d}) = {partitions(d)}), {len(result.edges)} edges, "
            f"{sum(sum(run.newton_statuses.values()) for run in result.runs)} Newton runs, "
            f"every minimum joined to the good one: {result.connected_to_good()}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--d", type=int, nargs="*", default=[4, 6])
    parser.add_argument("--restarts", type=int, nargs="*", default=None, help="one per d (default 200, 600)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minima", choices=("restarts", "explore"), default="explore")
    args = parser.parse_args()
    restarts = args.restarts or [200 if d <= 4 else 600 for d in args.d]
    print(f"cpus: {os.cpu_count()}, load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for d, count in zip(args.d, restarts):
        measure(d, count, args.seed, args.minima)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
