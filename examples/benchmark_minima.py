"""Benchmark: every minimum of the claim-3 landscape with explore_minima, against plain restarts.

Run from the repository root after installing the package::

    python examples/benchmark_minima.py [--d 6 8 10] [--cosine-restarts 80 320]

Claim-3 setting (derivations/CLAIMS.md, claim 3): spectral loss, symrelu with bias -0.3, unit
rows, M = I, one-hot latents, independent masks q = 0.5, m = d. Its strict local minima are the
signed-atom configurations, one per partition n of d, with value
L(n) = rho^2 sum_j (-(2/d) n_j (1-beta)^2 + n_j^2 (1-beta)^4/d^2) and Hessian eigenvalues
(4 rho^2 (1-beta)/d)(1 - n_j (1-beta)^2/d), p - 1 per row on atom j. For each d the benchmark
runs ``explore_minima`` (random starts and moves only: no start is built from the partitions),
matches every minimum found to a partition by its occupation, its value (1e-10) and its whole
spectrum (1e-9), and prints the time, the partitions found out of p(d), the minima that are not
signed-atom configurations, and the minima Chao1; then the plain random-restart engine
(``enumerate_critical_points``, default options) with as many restarts as a 100-restart
calibration run says fit in the same wall time (pool start-up included in the calibration, so
they get about 55-75 % of it in practice; the time column says how long they took), matched the
same way.
Targets (2 cores, quiet machine): all p(d) minima, Chao1 < 1, d = 6 in 60 s, d = 8 in 5 min,
d = 10 in 30 min.

Second part: ``ncl_cosine`` (tied), same encoder and data, m = d = 4, whose global-minimum set is
a continuum (claim 2): the critical-set entries and their counts as the restarts grow.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

from critpoints import Setting, claim_setting, enumerate_critical_points, explore_minima

ROOT = Path(__file__).resolve().parents[1]
BETA, Q = 0.3, 0.5


def load_derivation(name: str):
    """Import derivations/<name>.py (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "derivations" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


claims = load_derivation("claims")


def claim3_setting(d: int) -> Setting:
    return claim_setting("spectral", d, beta=BETA, q=Q)


def partition_of(point, spectrum: np.ndarray | None, d: int) -> tuple[int, ...] | None:
    """The partition a minimum is the signed-atom minimum of (occupation, value and spectrum agree), or None."""
    W = point.params["W"]
    if not np.allclose(np.abs(W).max(axis=1), 1.0, atol=1e-9):  # unit rows: then every row is a signed atom
        return None
    counts = np.bincount(np.abs(W).argmax(axis=1), minlength=d)
    occupation = sorted(counts.tolist(), reverse=True)
    if abs(point.loss - claims.signed_atom_loss(occupation, BETA, Q)) > 1e-10:
        return None
    if spectrum is not None:
        derived = np.array(claims.signed_atom_spectrum(occupation, BETA, Q))
        if len(spectrum) != len(derived) or np.abs(np.sort(spectrum) - derived).max() > 1e-9:
            return None
    return tuple(n for n in occupation if n)


def tally(result, spectra, d: int) -> tuple[set, int]:
    found, others = set(), 0
    for index, point in enumerate(result):
        if point.kind != "minimum":
            continue
        partition = partition_of(point, None if spectra is None else np.asarray(spectra[index]), d)
        if partition is None:
            others += 1
        else:
            found.add(partition)
    return found, others


def minima_chao1(result) -> float:
    counts = [point.count for point in result if point.kind == "minimum"]
    f1, f2 = counts.count(1), counts.count(2)
    return f1 * f1 / (2.0 * f2) if f2 else f1 * (f1 - 1) / 2.0


def claim3_row(d: int, seed: int) -> None:
    setting = claim3_setting(d)
    total = len(claims.partitions(d, d))
    began = time.perf_counter()
    result = explore_minima(setting, seed=seed, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - began
    found, others = tally(result, result.metadata["spectra"], d)
    meta = result.metadata
    print(
        f"{d:>3} {'explore_minima':>16} {seconds:8.1f} {meta['runs']:>7} {len(found):>4}/{total:<4} {others:>6} "
        f"{result.completeness.unseen_estimate:>8.1f}   rounds {meta['rounds']}, {meta['stopped']}",
        flush=True,
    )
    # the plain engine for the same wall time: calibrate its rate on a small run first
    calibration = 100
    began = time.perf_counter()
    enumerate_critical_points(setting, n_restarts=calibration, seed=seed + 1, progress=False)
    rate = calibration / (time.perf_counter() - began)
    restarts = max(calibration, int(rate * seconds))
    began = time.perf_counter()
    plain = enumerate_critical_points(setting, n_restarts=restarts, seed=seed, progress=sys.stderr.isatty())
    plain_seconds = time.perf_counter() - began
    found, others = tally(plain, None, d)
    print(
        f"{d:>3} {'restarts':>16} {plain_seconds:8.1f} {restarts:>7} {len(found):>4}/{total:<4} {others:>6} "
        f"{minima_chao1(plain):>8.1f}   orbits {len(plain)}, Chao1 over all orbits "
        f"{plain.completeness.unseen_estimate:.1f}",
        flush=True,
    )


def cosine_rows(restarts: list[int], seed: int) -> None:
    setting = claim_setting("ncl_cosine", 4, beta=BETA, q=Q, tied=True)
    print(f"\nncl_cosine (tied), m = d = 4: global minimum 2 - 2(1-q)^2 = {2 - 2 * (1 - Q) ** 2}")
    print(f"{'restarts':>8} {'time s':>7} {'isolated':>8} {'Chao1':>6}  critical sets (kind, dimension, loss, runs)")
    for count in restarts:
        began = time.perf_counter()
        result = enumerate_critical_points(setting, n_restarts=count, seed=seed, progress=sys.stderr.isatty())
        seconds = time.perf_counter() - began
        sets = "; ".join(f"{m.kind}, {m.dimension}, {m.loss:.6g}, {m.count}" for m in result.manifolds)
        print(f"{count:>8} {seconds:7.1f} {len(result):>8} {result.completeness.unseen_estimate:>6.1f}  {sets}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, nargs="+", default=[6, 8, 10])
    parser.add_argument("--cosine-restarts", type=int, nargs="+", default=[80, 320])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"claim 3: spectral, symrelu bias -{BETA}, unit rows, M = I, one-hot, q = {Q}, m = d")
    print(f"cores {os.cpu_count()}, load average at start {os.getloadavg()}")
    print(f"{'d':>3} {'search':>16} {'time s':>8} {'runs':>7} {'partitions':>9} {'others':>6} {'Chao1':>8}")
    for d in args.d:
        claim3_row(d, args.seed)
    cosine_rows(args.cosine_restarts, args.seed)
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
