"""The numbers behind the paper's claims (derivations/CLAIMS.md), per claim and setting.

Run from the repository root (about 40 s on two cores)::

    python examples/claims_table.py

For each claim it enumerates the critical points of a grid of settings and prints what the
claim is about: the spectrum at the collapsed point and the loss there (claim 1), the
values, kinds and labels of the minima found with the closed-form global minimum next to
them (claims 2 and 3), the fraction of good minima, and the exact count of critical
orbits of small polynomial landscapes against the engine's (the completeness check).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

import critpoints
from critpoints import Setting, claim_setting, enumerate_critical_points, population_loss, view_moments
from critpoints.landscape.points import describe_point

# The derivations are a package at the repository root, not part of the installed critpoints.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from derivations import claims  # noqa: E402
from derivations import exact_critical_points as exact  # noqa: E402


def enumerate_points(setting: Setting, n_restarts: int, **options) -> critpoints.CriticalPointSet:
    """The engine with the default executor, no progress bar, seed 0."""
    return enumerate_critical_points(setting, n_restarts=n_restarts, seed=0, progress=False, **options)


def header(title: str) -> None:
    print()
    print(title)
    print("=" * len(title))


def claim1() -> None:
    header("Claim 1(a): linear encoders at W = 0")
    grid = [
        ("M = I, one-hot, q = 0.5", dict(p=3, d=3, latent="one_hot", augmentation=("independent_mask", 0.5))),
        (
            "random M, bernoulli(0.4), sigma = 0.3, q = 0.25",
            dict(
                p=4,
                d=3,
                dictionary=("random", 1),
                latent=("bernoulli", 0.4),
                noise=0.3,
                augmentation=("independent_mask", 0.25),
            ),
        ),
        (
            "random M (p > d), one-hot, sigma = 0, q = 0.5",
            dict(p=4, d=2, dictionary=("random", 3), latent="one_hot", augmentation=("independent_mask", 0.5)),
        ),
        (
            "random M, fixed_count(2, 0), complementary",
            dict(
                p=3,
                d=3,
                dictionary=("random", 4),
                latent=("fixed_count", 2, 0),
                noise=0.1,
                augmentation="complementary_mask",
            ),
        ),
        ("M = I, one-hot, complementary", dict(p=3, d=3, latent="one_hot", augmentation="complementary_mask")),
    ]
    print(f"{'setting':48s} {'ncl_sq min':>10s} {'label':>9s} | {'spectral H(0) eigenvalues':>27s} {'kind at 0':>10s}")
    for name, common in grid:
        ncl = enumerate_points(Setting(m=2, loss="ncl_squared", **common), 10)
        setting = Setting(m=2, loss="spectral", **common)
        loss = population_loss(setting)
        zero = np.zeros(loss.n_params)
        eigenvalues = np.linalg.eigvalsh(loss.hessian(zero))
        C12 = view_moments(setting).x1x2
        assert np.allclose(loss.hessian(zero), -2 * np.kron(np.eye(2), C12 + C12.T))
        point = describe_point(loss, zero, 1, tau_good=0.95, eigenvalue_tolerance=1e-7)
        span = f"[{eigenvalues.min():.4f}, {eigenvalues.max():.4f}]"
        lowest = min([*ncl, *ncl.manifolds], key=lambda entry: entry.loss)  # a point or a flat set
        print(f"{name:48s} {lowest.loss:10.2e} {lowest.label:>9s} | {span:>27s} {point.kind:>10s}")
    print(
        "H(0) = -2 I (x) (C12 + C12^T) in every row; a strict maximum iff sym(E[x1 x2^T]) > 0 "
        "(never under complementary masks)"
    )

    header("Claim 1(b): symrelu, bias -0.4, every neuron dead (|W_ij| < 0.4), M = I, one-hot, q = 0.5")
    print(f"{'loss':30s} {'value':>7s} {'|grad|':>7s} {'|Hess|':>7s} {'kind':>11s} {'nullity':>7s} {'label':>9s}")
    rng = np.random.default_rng(0)
    for name, options in [
        ("spectral", {}),
        ("infonce", {"temperature": 0.5}),
        ("ncl_squared", {}),
        ("ncl_cosine", {"tied": True}),
        ("ncl_cosine", {"tied": False}),
        ("ncl_predictor", {}),
        ("ncl_predictor", {"normalize": False}),
    ]:
        setting = Setting(p=3, d=3, m=3, loss=name, encoder="symrelu", bias=-0.4, **options)
        loss = population_loss(setting)
        blocks = {
            block: rng.uniform(-0.38, 0.38, shape) if block in ("W", "W_t") else rng.standard_normal(shape)
            for block, shape in loss.layout.shapes.items()
        }
        theta = loss.pack(**blocks)
        residual, matrix = (
            (loss.field(theta), loss.jacobian(theta)) if loss.is_field else (loss.gradient(theta), loss.hessian(theta))
        )
        point = describe_point(loss, theta, 1, tau_good=0.95, eigenvalue_tolerance=1e-7)
        print(
            f"{str(setting.loss):30s} {point.loss:7.3f} {np.abs(residual).max():7.1e} {np.abs(matrix).max():7.1e} "
            f"{point.kind:>11s} {point.nullity:7d} {point.label:>9s}"
        )


def claim2() -> None:
    header("Claim 2: ncl_cosine, symrelu bias -0.3, unit rows, M = I, one-hot (m = d)")
    print(
        f"{'d':>2s} {'q':>5s} {'tied':>5s} {'starts':>6s} {'2-2(1-q)^2':>10s} {'lowest':>10s} "
        f"{'runs at global min (label)':>26s} {'kinds':>24s} {'good frac':>9s} {'P(good)':>8s}"
    )
    for d, q, tied, restarts in [
        (3, 0.5, True, 200),
        (3, 0.25, True, 200),
        (4, 0.5, True, 200),
        (5, 0.75, True, 100),
        (3, 0.5, False, 100),
        (4, 0.5, False, 60),
    ]:
        setting = claim_setting("ncl_cosine", d, q=q, tied=tied)
        result = enumerate_points(setting, restarts)
        minimum = 2 - 2 * (1 - q) ** 2
        # runs at the global minimum by label: isolated points, and the runs on flat sets there
        labels = Counter(p.label for p in result if abs(p.loss - minimum) < 1e-9 for _ in range(p.count))
        for region in result.manifolds:
            if abs(region.loss - minimum) < 1e-9:
                labels.update(region.labels)
        kinds = Counter(p.kind for p in result) + Counter(region.kind for region in result.manifolds)
        fraction = labels.get("good", 0) / max(1, sum(labels.values()))
        p_good = claims.good_probability(d, 0.95)
        lowest = min(entry.loss for entry in [*result, *result.manifolds])
        print(
            f"{d:2d} {q:5.2f} {str(tied):>5s} {restarts:6d} {minimum:10.6f} {lowest:10.6f} "
            f"{str(dict(labels)):>26s} {str(dict(kinds)):>24s} {fraction:9.3f} {p_good:8.1e}"
        )
    print("P(good): d! P(|u_1| >= 0.95)^d, the uniform-measure probability that unit rows are good")


def claim3() -> None:
    header("Claim 3: spectral, symrelu bias -beta, unit rows, M = I, one-hot, m = d (random starts only)")
    print(
        f"{'d':>2s} {'beta':>5s} {'q':>5s} {'starts':>6s} {'closed form':>12s} {'lowest':>12s} {'label':>6s} "
        f"{'minima by label':>22s} {'good frac':>9s} {'starts->good':>12s}  bad minima (occupation or 'other')"
    )
    grid = [
        (3, 0.3, 0.5, 300),
        (3, 0.1, 0.5, 300),
        (3, 0.6, 0.25, 300),
        (4, 0.3, 0.5, 300),
        (4, 0.5, 0.75, 300),
        (5, 0.3, 0.5, 200),
        (5, 0.5, 0.5, 200),
    ]
    for d, beta, q, restarts in grid:
        setting = claim_setting("spectral", d, beta=beta, q=q)
        result = enumerate_points(setting, restarts)
        minima = [p for p in result if p.kind == "minimum"]
        labels = Counter(p.label for p in minima)
        good_starts = sum(p.count for p in minima if p.label == "good")
        bad = []
        for point in minima:
            if point.label != "bad":
                continue
            W = point.params["W"]
            if np.allclose(np.abs(W).max(axis=1), 1.0, atol=1e-9):
                n = np.bincount(np.abs(W).argmax(axis=1), minlength=d)
                bad.append("".join(map(str, sorted(n, reverse=True))))
            else:
                bad.append("other")
        fraction = labels.get("good", 0) / max(1, len(minima))
        print(
            f"{d:2d} {beta:5.2f} {q:5.2f} {restarts:6d} {claims.claim3_minimum(d, beta, q):12.8f} "
            f"{result[0].loss:12.8f} {result[0].label:>6s} {str(dict(labels)):>22s} {fraction:9.3f} "
            f"{good_starts:5d}/{restarts:<6d}  {' '.join(bad)}"
        )
    print(
        "closed form (1-q)^2 (-2 (1-beta)^2 + (1-beta)^4/d); occupation n_1 n_2 ...: rows per atom of a "
        "signed-atom configuration"
    )


def completeness() -> None:
    header("Exact completeness: p = d = m = 2, closed form (derivations/exact_critical_points.py)")
    print(f"{'setting':32s} {'complex':>8s} {'real':>5s} {'real orbits':>11s} {'engine orbits':>13s} {'matched':>8s}")
    for setting in exact.SETTINGS:
        landscape = exact.critical_orbits(setting)
        restarts = 600 if (setting.loss, setting.constraint) == ("ncl_squared", "unit_rows") else 200
        result = enumerate_points(Setting(**setting.package_kwargs()), restarts)
        matched = sum(any(exact.matches(setting, orbit, p.params) for p in result) for orbit in landscape.orbits)
        print(
            f"{setting.name:32s} {landscape.n_complex:8d} {landscape.n_real:5d} {len(landscape.orbits):11d} "
            f"{len(result):13d} {matched:8d}"
        )


def main() -> None:
    began = time.perf_counter()
    claim1()
    claim2()
    claim3()
    completeness()
    print(
        "\nClaim 4 (training dynamics) is about where gradient descent ends, not about the landscape: "
        "examples/warm_start_sweep.py (population gradient descent) and examples/paper_experiments.py "
        "(minibatch SGD, the paper's E1-E4).\n"
        f"total time {time.perf_counter() - began:.0f} s"
    )


if __name__ == "__main__":
    main()
