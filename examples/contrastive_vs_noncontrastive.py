"""The minima of a contrastive and a non-contrastive loss, side by side (derivations/CLAIMS.md, claims 2 and 3).

Run from the repository root::

    python examples/contrastive_vs_noncontrastive.py                 # about 30 s on 2 cores
    python examples/contrastive_vs_noncontrastive.py --plot plots/   # also the PNG figures
    python examples/contrastive_vs_noncontrastive.py --restarts 600  # a more complete search

For each of two settings — the setting of derivations/CLAIMS.md, claims 2 and 3 (M = I, sigma = 0, one-hot
latents, independent masks with drop probability q, a symmetric-ReLU encoder with a fixed
negative bias, unit rows, m = d) and an overparametrised one (m > d) — it enumerates the
stationary points of the contrastive ``spectral`` loss and of the non-contrastive
``ncl_cosine`` loss, prints both tables, and then a side-by-side summary: how many orbits of
each kind, how the minima split into good / bad / collapsed, the lowest loss of each label,
the indices of the saddles, the alignments, and the completeness estimate of each search.

What to look for: the CL global minimum is good with the claim-3 value
(1-q)^2 (-2(1-beta)^2 + (1-beta)^4/d), next to bad local minima with duplicated neurons;
the NCL global minimum value 2 - 2(1-q)^2 is attained by bad points, and its minima are
degenerate (a flat, full-dimensional set: derivations/CLAIMS.md, claim 2).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

import critpoints


def settings(d: int, m_over: int, q: float, beta: float) -> list[tuple[str, critpoints.Setting, critpoints.Setting]]:
    """(title, contrastive setting, non-contrastive setting) for m = d and m = m_over."""
    out = []
    for m in (d, m_over):
        common = dict(
            p=d,
            d=d,
            m=m,
            dictionary="identity",
            latent="one_hot",
            augmentation=("independent_mask", q),
            encoder="symrelu",
            bias=-beta,
            constraint="unit_rows",
        )
        title = f"m = d = {d}" if m == d else f"overparametrised, m = {m} > d = {d}"
        out.append(
            (title, critpoints.Setting(loss="spectral", **common), critpoints.Setting(loss="ncl_cosine", **common))
        )
    return out


def summary(result: critpoints.CriticalPointSet) -> dict[str, str]:
    """The rows of the side-by-side table for one enumeration."""
    kinds = Counter(point.kind for point in result)
    minima = [point for point in result if point.kind == "minimum"]
    flat_minima = [point for point in result if point.kind == "degenerate" and point.index == 0]
    minima_labels = Counter(point.label for point in minima)
    flat_labels = Counter(point.label for point in flat_minima)
    saddle_indices = sorted(
        point.index for point in result if point.kind in ("saddle", "degenerate") and point.index > 0
    )
    rows = {
        "orbits found": str(len(result)),
        "by kind": ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())) or "-",
        "strict minima: good/bad/coll.": "/".join(str(minima_labels.get(k, 0)) for k in ("good", "bad", "collapsed")),
        "flat minima (degenerate, index 0)": "/".join(str(flat_labels.get(k, 0)) for k in ("good", "bad", "collapsed")),
    }
    for label in ("good", "bad", "collapsed"):
        points = [point for point in result if point.label == label and point.index == 0]
        rows[f"lowest loss, {label} (index 0)"] = f"{min(p.loss for p in points):.6g}" if points else "-"
    entries = [*result, *result.manifolds]  # isolated points and flat critical sets
    lowest = min(entries, key=lambda entry: entry.loss) if entries else None
    rows["global min: loss, label"] = f"{lowest.loss:.6g}, {lowest.label}" if lowest else "-"
    rows["flat critical sets (one entry each)"] = (
        "; ".join(f"{s.kind} dim {s.dimension} at {s.loss:.6g}, runs {s.labels}" for s in result.manifolds) or "-"
    )
    rows["indices > 0 (saddle or degenerate)"] = (
        f"{saddle_indices[0]}..{saddle_indices[-1]} ({len(saddle_indices)})" if saddle_indices else "-"
    )
    good_min = [point.alignment.min() for point in result if point.index == 0]
    rows["min_j a_j over index-0 points"] = f"{np.min(good_min):.3f}..{np.max(good_min):.3f}" if good_min else "-"
    rows["starts converged"] = f"{result.status_counts.get('converged', 0)} of {sum(result.status_counts.values())}"
    rows["Chao1: orbits not yet found"] = f"{result.completeness.unseen_estimate:.1f}"
    return rows


def side_by_side(left: dict[str, str], right: dict[str, str], titles: tuple[str, str]) -> str:
    width = max(len(key) for key in left)
    lines = [f"{'':<{width}}  {titles[0]:>28}  {titles[1]:>28}", "-" * (width + 60)]
    for key in left:
        lines.append(f"{key:<{width}}  {left[key]:>28}  {right[key]:>28}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--d", type=int, default=4, help="atoms (= input dimension p)")
    parser.add_argument("--m-over", type=int, default=6, help="neurons of the overparametrised case (> d)")
    parser.add_argument("--q", type=float, default=0.5, help="mask drop probability")
    parser.add_argument("--beta", type=float, default=0.3, help="the fixed bias is -beta")
    parser.add_argument("--restarts", type=int, default=160, help="Newton starts per enumeration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", metavar="DIR", default=None, help="write PNG figures into DIR")
    args = parser.parse_args(argv)

    began = time.perf_counter()
    q, beta, d = args.q, args.beta, args.d
    print(
        f"claim 3 value of the CL good minimum: (1-q)^2 (-2(1-beta)^2 + (1-beta)^4/d) = "
        f"{(1 - q) ** 2 * (-2 * (1 - beta) ** 2 + (1 - beta) ** 4 / d):.6g}"
    )
    print(f"claim 2 value of the NCL global minimum: 2 - 2(1-q)^2 = {2 - 2 * (1 - q) ** 2:.6g}\n")
    for title, contrastive, noncontrastive in settings(d, args.m_over, q, beta):
        results = []
        for setting in (contrastive, noncontrastive):
            tic = time.perf_counter()
            result = critpoints.enumerate_critical_points(
                setting, n_restarts=args.restarts, seed=args.seed, progress=False
            )
            print(result)
            print(f"({time.perf_counter() - tic:.1f} s)\n")
            results.append(result)
        print(f"== {title}: contrastive vs non-contrastive ==")
        print(side_by_side(summary(results[0]), summary(results[1]), ("CL spectral", "NCL ncl_cosine")))
        print()
        if args.plot:
            from critpoints import plots

            tag = f"m{contrastive.m}"
            for name, setting, result in (("cl", contrastive, results[0]), ("ncl", noncontrastive, results[1])):
                written = [
                    plots.minima_heatmaps(result, setting, f"{args.plot}/{name}_{tag}_minima.png"),
                    plots.hessian_spectra(result, setting, f"{args.plot}/{name}_{tag}_spectra.png"),
                    plots.index_vs_loss(result, f"{args.plot}/{name}_{tag}_index_loss.png"),
                ]
                print("wrote " + ", ".join(str(path) for path in written))
    print(f"total {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
