"""Which losses have bad minima, and which recover M? Contrastive and non-contrastive, side by side.

Run from the repository root::

    python examples/contrastive_vs_noncontrastive.py            # the answer (about 70 s; see README)
    python examples/contrastive_vs_noncontrastive.py --full     # also every loss's full tables
    python examples/contrastive_vs_noncontrastive.py --plot figures/   # and the figures

The setting is that of the paper's claims (derivations/CLAIMS.md; ``critpoints.claim_setting``):
M = I with d = 4 atoms, signed one-hot codes, independent masks dropping each coordinate with
probability q = 0.5, a symmetric-ReLU encoder with the fixed bias -0.3, unit rows, m = d
neurons. Every loss is the exact population loss. For each of the contrastive losses
(``spectral``, ``infonce``) and the non-contrastive ones (``ncl_squared``, ``ncl_cosine``, and
the stop-gradient field of ``ncl_predictor``) the script lists the stationary points Newton
reaches from seeded starts (``enumerate_critical_points``), groups non-isolated critical sets
into one entry each, evaluates the loss at the ground truth W = M, and runs gradient descent
(alternating online and target steps for the two-encoder losses; the predictor's field
dynamics) from random starts (``run_dynamics``). Then the
minima-first search (``explore_minima``) lists every minimum of the spectral loss at d = 8.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import critpoints
from critpoints.dynamics.descent import run_dynamics

#: The losses compared, with the side they are on.
LOSSES = (
    ("CL", "spectral"),
    ("CL", "infonce"),
    ("NCL", "ncl_squared"),
    ("NCL", "ncl_cosine"),
    ("NCL", "ncl_predictor"),
)

#: Kinds of flat critical sets that hold no descent direction (critpoints.landscape.flat_sets).
FLAT_MINIMA = ("flat minimum set", "flat region")


def ground_truth(setting: critpoints.Setting) -> np.ndarray:
    """theta of W = M (and W_t = M, P = I) in the setting's layout."""
    loss = critpoints.population_loss(setting)
    blocks = {name: np.zeros(shape) for name, shape in loss.layout.shapes.items()}
    for name in ("W", "W_t"):
        if name in blocks:
            blocks[name] = setting.dictionary_matrix().T
    if "P" in blocks:
        blocks["P"] = np.eye(setting.m)
    return loss.pack(**blocks)


@dataclass(frozen=True)
class Summary:
    """What one loss's enumeration and descent runs say (None where a field has no loss)."""

    field: bool
    global_min: float | None
    truth: float  # L(M), or |F(M)| for the field
    strict: dict[str, int]  # isolated minima (stable zeros of the field) by label
    flat_sets: tuple  # the flat minimum sets (critpoints.landscape.critical_manifold)
    degenerate: int  # degenerate zeros of the field
    lowest_bad: float | None
    descent: dict[str, float]  # fractions of the runs: good, bad, not converged

    @property
    def truth_is_global(self) -> bool:
        """Whether W = M attains the global minimum (is a zero of the field)."""
        if self.field:
            return self.truth <= 1e-9
        assert self.global_min is not None
        return self.truth <= self.global_min + 1e-9 * max(1.0, abs(self.global_min))


def summarise(setting: critpoints.Setting, result: critpoints.CriticalPointSet, runs) -> Summary:
    """The summary of one loss from its enumeration and its descent runs."""
    loss = critpoints.population_loss(setting)
    truth = ground_truth(setting)
    fractions = runs.basin_fractions()
    descent = {name: fractions[name].fraction for name in ("good", "bad", "not converged")}
    if loss.is_field:  # a field: stability of its zeros, no loss to minimise
        stable = result.filter(kind="stable")
        return Summary(
            True, None, float(np.linalg.norm(loss.field(truth))), stable.counts(), (),
            sum(p.kind == "degenerate" for p in result), None, descent,
        )  # fmt: skip
    flat_sets = tuple(entry for entry in result.manifolds if entry.kind in FLAT_MINIMA)
    minima = result.minima()
    levels = [p.loss for p in minima] + [entry.loss for entry in flat_sets]
    bad = [p.loss for p in minima if p.label == "bad"] + [e.loss for e in flat_sets if e.labels.get("bad", 0)]
    return Summary(
        False, min(levels), loss.value(truth), minima.counts(), flat_sets, 0, min(bad) if bad else None, descent
    )


def cells(summary: Summary) -> dict[str, str]:
    """One row of the summary table."""
    strict = "/".join(str(summary.strict.get(label, 0)) for label in ("good", "bad", "collapsed"))
    if summary.field:
        global_min, truth = "- (field)", "zero" if summary.truth_is_global else f"|F|={summary.truth:.1e}"
        flat = f"{summary.degenerate} degenerate"
    else:
        global_min = f"{summary.global_min:.6g}"
        truth = "yes" if summary.truth_is_global else f"no ({summary.truth:.4g})"
        flat = "-"
        if summary.flat_sets:
            biggest = max(entry.dimension for entry in summary.flat_sets)
            with_bad = sum(entry.labels.get("bad", 0) > 0 for entry in summary.flat_sets)
            flat = f"{len(summary.flat_sets)} (dim<={biggest}, {with_bad} bad)"
    return {
        "global min": global_min,
        "W=M attains it": truth,
        "strict minima g/b/c": strict,
        "flat minimum sets": flat,
        "lowest bad min": "-" if summary.lowest_bad is None else f"{summary.lowest_bad:.6g}",
        "GD good/bad/n.c.": "/".join(f"{value:.2f}" for value in summary.descent.values()),
    }


def verdict(name: str, summary: Summary) -> str:
    """One sentence: does the loss recover M, and does it have bad minima."""
    descent = summary.descent
    ends = f"{descent['good']:.0%} of the descents end good, {descent['not converged']:.0%} do not converge"
    if summary.field:
        zero = "W = M (P = I) is a zero of the field" if summary.truth_is_global else "W = M is not a zero"
        return f"{name}: {zero}; no stable zero was found; {ends}."
    bad_minima = summary.strict.get("bad", 0) + sum(entry.labels.get("bad", 0) > 0 for entry in summary.flat_sets)
    if not summary.truth_is_global:
        where = f"W = M does not reach the lowest loss ({summary.truth:.4g} > {summary.global_min:.4g})"
    elif summary.strict.get("good", 0) and not summary.flat_sets:
        where = "the global minimum is W = M, isolated"
    else:
        level = summary.global_min + 1e-9 * max(1.0, abs(summary.global_min))
        shared = summary.lowest_bad is not None and summary.lowest_bad <= level
        where = "W = M attains the global minimum" + ("; so do flat sets of bad minima" if shared else "")
    return f"{name}: {where}; {bad_minima} bad minima or flat sets of minima; {ends}."


def table(rows: dict[str, dict[str, str]]) -> list[str]:
    """The rows as fixed-width lines, one per loss."""
    columns = list(next(iter(rows.values())))
    widths = {name: max(len(name), *(len(r[name]) for r in rows.values())) for name in columns}
    first = max(len(name) for name in rows)
    lines = ["  ".join([f"{'loss':<{first}}"] + [f"{name:>{widths[name]}}" for name in columns])]
    lines.append("-" * len(lines[0]))
    for name, cells in rows.items():
        lines.append("  ".join([f"{name:<{first}}"] + [f"{cells[c]:>{widths[c]}}" for c in columns]))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--d", type=int, default=4, help="atoms = inputs = neurons of the exact tables")
    parser.add_argument("--q", type=float, default=0.5, help="mask drop probability")
    parser.add_argument("--beta", type=float, default=0.3, help="the fixed bias is -beta")
    parser.add_argument("--restarts", type=int, default=160, help="Newton starts per loss")
    parser.add_argument("--runs", type=int, default=100, help="gradient-descent runs per loss")
    parser.add_argument("--large-d", type=int, default=8, help="d of the minima-first search (0: skip it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="also print every loss's full tables")
    parser.add_argument("--plot", metavar="DIR", default=None, help="write the figures (PNG) into DIR")
    args = parser.parse_args(argv)

    began = time.perf_counter()
    d, q, beta = args.d, args.q, args.beta
    print(
        f"M = I (d = {d}), one-hot codes, masks q = {q}, symrelu bias -{beta}, unit rows, m = d; exact "
        f"population losses. {args.restarts} Newton starts and {args.runs} gradient-descent runs per loss."
    )
    summaries, results = {}, {}
    for side, name in LOSSES:
        setting = critpoints.claim_setting(name, d, beta=beta, q=q)
        result = critpoints.enumerate_critical_points(setting, n_restarts=args.restarts, seed=args.seed, progress=False)
        runs = run_dynamics(setting, n_starts=args.runs, seed=args.seed, lr=0.1)
        label = f"{side} {setting.loss}"
        summaries[label] = summarise(setting, result, runs)
        results[label] = (setting, result, runs)
    print()
    print("\n".join(table({label: cells(summary) for label, summary in summaries.items()})))
    print(
        "strict minima g/b/c: isolated minima (stable zeros for the field) labelled good / bad / collapsed;\n"
        "flat minimum sets: critical sets of positive dimension without descent directions, one entry each\n"
        "  (for the predictor's field: its degenerate zeros);\n"
        "GD good/bad/n.c.: fractions of the runs ending good, bad or not converged in 20,000 steps."
    )

    if args.large_d:
        setting = critpoints.claim_setting("spectral", args.large_d, beta=beta, q=q)
        tic = time.perf_counter()
        found = critpoints.explore_minima(setting, seed=args.seed, progress=False)
        good = found.filter(label="good")
        bad = found.filter(label="bad")
        print(
            f"\nCL spectral at d = {args.large_d}, minima-first search ({time.perf_counter() - tic:.0f} s): "
            f"{len(found)} minima ({found.completeness.unseen_estimate:.1f} more estimated by Chao1), "
            f"{len(good)} good at {good[0].loss:.6g} and {len(bad)} bad, every bad one with duplicated neurons: "
            f"{all(p.duplicated > 0 for p in bad)}."
        )

    print("\nWhat it shows:")
    for label, summary in summaries.items():
        print(f"  {verdict(label, summary)}")
    if args.full:
        for label, (_, result, runs) in results.items():
            print(f"\n== {label} ==")
            print(result)
            print(runs)
    if args.plot:
        from critpoints import plots

        folder = Path(args.plot)
        for setting, result, _ in results.values():
            tag = setting.loss.name
            if len(result.minima()):
                plots.minima_heatmaps(result, setting, folder / f"{tag}_minima.png")
            plots.hessian_spectra(result, setting, folder / f"{tag}_spectra.png")
        print(f"\nfigures written to {folder}/")
    print(f"\ntotal {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
