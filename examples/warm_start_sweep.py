"""Where gradient descent ends: basin fractions from random and warm starts (derivations/CLAIMS.md, claim 4).

Run from the repository root::

    python examples/warm_start_sweep.py                  # about 4.5 minutes on 2 cores
    python examples/warm_start_sweep.py --quick          # fewer starts and grid points, about 50 s
    python examples/warm_start_sweep.py --plot plots/    # also basin fractions against c (per q) and q (per loss)
    python examples/warm_start_sweep.py --match 60       # also match the random-start runs to enumerated points

The setting is that of derivations/CLAIMS.md, claims 2 and 3: M = I, sigma = 0, independent masks, a
symmetric-ReLU encoder with fixed bias -0.3, unit rows, p = d = 4, with the exact population
loss (an enumeration of the view law). Three losses: the contrastive ``spectral`` (CL), the
non-contrastive ``ncl_cosine`` trained by the paper's alternating online/target steps (NCL),
and ``ncl_predictor`` with a linear predictor P (NCL+pred, the stop-gradient field, alternating).

Part 1 (claim 4) prints, for each loss, the basin fractions by label (good / bad / collapsed,
with 95% Wilson intervals) of gradient descent from random Gaussian starts and from warm
starts W_0 = M^T + noise with i.i.d. N(0, p^-c) entries, c = 1 and c = 2; one-hot latents,
q = 0.5, m = d = 4, and from random starts also the overparametrised m = 6.

Part 2 sweeps the warm-start exponent c and the drop probability q and prints the fraction of
runs that recover M (label "good": every atom has alignment a_j >= 0.95). It uses two-sparse
latents z (one +1 and one -1, ``fixed_count(2, 1)``): with one-hot latents and M = I every view
is x or 0, a pair contributes only when both views are x, so each of these losses is
(1-q)^2 times (or, for the cosine losses, 2 minus (1-q)^2 times) a function that does not
depend on q, and the basins of attraction do not change with q. With two-sparse codes M itself
is no longer stationary: the CL minimum next to M has every a_j slightly below 1 (0.93 at
q = 0.25, 0.97 at q = 0.5, 0.99 at q = 0.75 for the default bias), so the label "good"
(a_j >= 0.95) depends on q through that offset; the mean final min_j a_j is printed next to
each fraction.
"""

from __future__ import annotations

import argparse
import time

import critpoints
from critpoints.dynamics.descent import run_dynamics

LOSSES = (("CL spectral", "spectral"), ("NCL ncl_cosine", "ncl_cosine"), ("NCL+pred ncl_predictor", "ncl_predictor"))


def setting(
    loss: str, q: float, d: int = 4, m: int = 4, beta: float = 0.3, latent: object = "one_hot"
) -> critpoints.Setting:
    """The claim-2/3 setting with the given loss, drop probability, width and latent law."""
    return critpoints.claim_setting(loss, d, m=m, beta=beta, q=q, latent=latent)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer starts and grid points")
    parser.add_argument(
        "--starts",
        type=int,
        default=None,
        help="runs per cell (default 200 in part 1, 40 in part 2; --quick: 60 and 20)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--max-steps", type=int, default=20000)
    parser.add_argument("--plot", metavar="DIR", default=None, help="write basin-fraction curves into DIR")
    parser.add_argument(
        "--match",
        type=int,
        default=0,
        metavar="RESTARTS",
        help="part 1: enumerate the stationary points (this many Newton starts) and match the "
        "random-start runs to them",
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    first_starts = args.starts or (60 if args.quick else 200)
    sweep_starts = args.starts or (20 if args.quick else 40)
    exponents = (1.0, 2.0, 3.0) if args.quick else (0.5, 1.0, 1.5, 2.0, 3.0)
    drops = (0.5,) if args.quick else (0.25, 0.5, 0.75)
    options = dict(lr=args.lr, max_steps=args.max_steps, tol=1e-8)

    print("== Part 1: basin fractions by label (derivations/CLAIMS.md, claim 4), q = 0.5 ==\n")
    summary = []
    for name, loss in LOSSES:
        for init in ("gaussian", ("warm_start", 1.0), ("warm_start", 2.0)):
            table = None
            if args.match and init == "gaussian":
                table = critpoints.enumerate_critical_points(
                    setting(loss, 0.5), n_restarts=args.match, seed=0, progress=False
                )
            result = run_dynamics(
                setting(loss, 0.5), n_starts=first_starts, seed=args.seed, init=init, critical_points=table, **options
            )
            print(f"[{name}, init {init}]")
            print(result)
            print()
            fractions = result.basin_fractions()
            summary.append((name, f"m=4 {init}", fractions))
    if not args.quick:
        for name, loss in LOSSES[:2]:
            table = None
            if args.match:
                table = critpoints.enumerate_critical_points(
                    setting(loss, 0.5, m=6), n_restarts=args.match, seed=0, progress=False
                )
            result = run_dynamics(
                setting(loss, 0.5, m=6), n_starts=first_starts, seed=args.seed, critical_points=table, **options
            )
            print(f"[{name}, m = 6, init gaussian]")
            print(result)
            print()
            summary.append((name, "m=6 gaussian", result.basin_fractions()))
    print("good / bad / collapsed: runs that converged to a point with that label; fractions over all runs")
    print(f"{'loss':<24} {'width, init':<26} {'good':>22} {'bad':>22} {'collapsed':>22} {'not converged':>22}")
    for name, init, fractions in summary:
        cells = [f"{f.count:>3} {f.fraction:.2f} [{f.low:.2f},{f.high:.2f}]" for f in fractions.values()]
        print(f"{name:<24} {init:<26} " + " ".join(f"{cell:>22}" for cell in cells))

    print("\n== Part 2: fraction of runs recovering M (label good) against c and q; two-sparse latents ==\n")
    print("each cell: fraction good [95% Wilson CI] and the mean over runs of the final min_j a_j")
    header = f"{'loss':<24} {'q':>5} " + " ".join(f"{'c=' + format(c, 'g'):>22}" for c in exponents)
    print(header)
    curves: dict[float, dict[str, list]] = {q: {} for q in drops}
    for name, loss in LOSSES:
        for q in drops:
            cells = []
            for c in exponents:
                result = run_dynamics(
                    setting(loss, q, latent=("fixed_count", 2, 1)),
                    n_starts=sweep_starts,
                    seed=args.seed,
                    init=("warm_start", c),
                    **options,
                )
                good = result.basin_fractions()["good"]
                curves[q].setdefault(name, []).append(good)
                mean_min = sum(run.alignment.min() for run in result) / len(result)
                cells.append(f"{good.fraction:.2f} [{good.low:.2f},{good.high:.2f}] {mean_min:.3f}")
            print(f"{name:<24} {q:>5g} " + " ".join(f"{cell:>22}" for cell in cells), flush=True)
    if args.plot:
        from critpoints import plots

        for q, series in curves.items():
            path = plots.basin_curves(
                exponents,
                series,
                f"{args.plot}/warm_start_q{q:g}.png",
                xlabel="warm-start exponent c (noise variance p^-c)",
                title=f"recovery of M from warm starts, q = {q:g}, p = d = m = 4, two-sparse z",
            )
            print(f"wrote {path}")
        if len(drops) > 1:
            for name, _ in LOSSES:
                series = {f"c = {c:g}": [curves[q][name][k] for q in drops] for k, c in enumerate(exponents)}
                tag = name.split()[0].replace("+", "_")
                path = plots.basin_curves(
                    drops,
                    series,
                    f"{args.plot}/warm_start_{tag}_vs_q.png",
                    xlabel="drop probability q",
                    title=f"{name}: recovery of M from warm starts against q",
                )
                print(f"wrote {path}")
    print(f"\ntotal {time.perf_counter() - began:.1f} s ({sweep_starts} runs per cell in part 2)")


if __name__ == "__main__":
    main()
