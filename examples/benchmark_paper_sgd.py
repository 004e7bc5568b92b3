"""Cost of one SGD step of the paper's experiment E1 against the float32 GEMM bound of this CPU.

Run from the repository root::

    python examples/benchmark_paper_sgd.py            # a few seconds
    python examples/benchmark_paper_sgd.py --epochs 20

Everything runs in this one process with one BLAS thread (as each worker of a grid does) and is
timed in CPU seconds of the process (``time.process_time``), so that other jobs on a shared
machine slow the wall clock but not the numbers; the wall clock is printed beside them.

A CL step at the paper's sizes (B = 512 inputs, 2B = 1024 views, m = p = 50) costs, in
multiply-adds, two products with the 2B x 2B similarity matrix — S = Z Z^T and G = A Z,
2 (2B)^2 m flops each — plus four encoder products (x W^T and x^T dh for both views,
2 (2B) p m flops each). The bound is the time of those products at the rate of a float32 GEMM
of the same shapes, measured here in the same run; the script prints the step time, that
bound and their ratio, the rate of a large square GEMM for reference, and the extrapolated
wall time of the whole E1 grid (10 CL runs of 8000 x 5 steps, 40 NCL runs of 8000 x 6 steps)
on the given number of workers.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from critpoints.dynamics import experiments
from critpoints.dynamics.paper_models import PaperRun, TrainingModel


def _cpu(function, repeats: int) -> float:
    """CPU seconds per call (after one warm-up call)."""
    function()
    began = time.process_time()
    for _ in range(repeats):
        function()
    return (time.process_time() - began) / repeats


def gemm_rates(views: int, m: int, repeats: int) -> dict[str, float]:
    """Seconds of the float32 products of a CL step, and of a 1024^3 GEMM (one BLAS thread)."""
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((views, m)).astype(np.float32)
    ZT = np.ascontiguousarray(Z.T)
    S = np.empty((views, views), np.float32)
    G = np.empty((views, m), np.float32)
    big = rng.standard_normal((1024, 1024)).astype(np.float32)
    x = rng.standard_normal((views, m)).astype(np.float32)
    W = rng.standard_normal((m, m)).astype(np.float32)
    return {
        "similarity": _cpu(lambda: np.matmul(Z, ZT, out=S), repeats),
        "product": _cpu(lambda: np.matmul(S, Z, out=G), repeats),
        "encoder": _cpu(lambda: np.matmul(x, W), repeats * 10),
        "square": _cpu(lambda: big @ big, max(repeats // 10, 3)),
    }


def step_seconds(cell: experiments.Cell, model: TrainingModel, epochs: int) -> tuple[float, float, int]:
    """(CPU, wall) seconds per step of a run at the paper's sizes, and steps per epoch."""
    run = PaperRun(cell, 1, model, n=3000, batch=512, lr=0.005)
    run.train(1)  # compilation, caches
    steps = 3000 // 512 if cell.method == "CL" else -(-3000 // 512)
    cpu, wall = time.process_time(), time.perf_counter()
    run.train(epochs)
    return (time.process_time() - cpu) / (epochs * steps), (time.perf_counter() - wall) / (epochs * steps), steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs timed per model")
    parser.add_argument("--repeats", type=int, default=100, help="repeats of each GEMM")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="for the grid extrapolation")
    args = parser.parse_args(argv)
    cells = {c.method: c for c in experiments.cells("E1") if c.latent == 0.1 and c.q in (None, 0.5)}
    views, m, p = 1024, 50, 50
    print(f"load {' '.join(f'{v:.2f}' for v in os.getloadavg())}; one BLAS thread; CPU seconds of this process")
    with threadpool_limits(limits=1, user_api="blas"):
        rates = gemm_rates(views, m, args.repeats)
        timings = {
            ("CL", "paper"): step_seconds(cells["CL"], TrainingModel.preset("paper"), args.epochs),
            ("CL", "project"): step_seconds(cells["CL"], TrainingModel(), args.epochs),
            ("NCL", "paper"): step_seconds(cells["NCL"], TrainingModel.preset("paper"), args.epochs),
            ("NCL", "project"): step_seconds(cells["NCL"], TrainingModel(), args.epochs),
        }
        rates_after = gemm_rates(views, m, args.repeats)  # the machine may have changed meanwhile
    rates = {key: min(rates[key], rates_after[key]) for key in rates}
    big = 2 * views * views * m
    small = 2 * views * p * m
    flops = {"similarity": big, "product": big, "encoder": small, "square": 2 * 1024**3}
    print("float32 GEMM, one thread:")
    for key, seconds in rates.items():
        print(f"  {key:<10} {seconds * 1e3:8.3f} ms  {flops[key] / seconds / 1e9:7.1f} GFLOP/s")
    bound = rates["similarity"] + rates["product"] + 4 * rates["encoder"]
    step_flops = 2 * big + 4 * small
    print(f"CL step: {step_flops / 1e6:.0f} MFLOP in products; their float32 GEMM time {bound * 1e3:.3f} ms")
    for (method, name), (cpu, wall, _) in timings.items():
        extra = ""
        if method == "CL" and name == "paper":
            extra = f"  = {bound / cpu:.0%} of the GEMM bound ({step_flops / cpu / 1e9:.1f} GFLOP/s)"
        print(f"  {method:<4} {name:<8} {cpu * 1e3:7.3f} ms CPU per step ({wall * 1e3:7.3f} ms wall){extra}")
    cl, ncl = timings["CL", "paper"], timings["NCL", "paper"]
    total = 10 * 8000 * cl[2] * cl[0] + 40 * 8000 * ncl[2] * ncl[0]
    print(
        f"E1 grid, paper preset, 8000 epochs, 5 seeds: {total / 60:.1f} CPU minutes "
        f"(CL {10 * 8000 * cl[2] * cl[0] / 60:.1f}, NCL {40 * 8000 * ncl[2] * ncl[0] / 60:.1f}); "
        f"{total / 60 / args.workers:.1f} min on {args.workers} idle cores; "
        f"GEMM bound of the CL products alone {10 * 8000 * cl[2] * bound / 60 / args.workers:.1f} min"
    )


if __name__ == "__main__":
    main()
