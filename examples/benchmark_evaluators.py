"""Benchmark: one gradient + Hessian evaluation of the generated kernels against autograd.

Run from the repository root after installing the package::

    python examples/benchmark_evaluators.py

For (a) linear encoders, closed form, ``spectral`` and ``ncl_squared`` at p = d = m = 20 and
(b) symmetric ReLU with a trainable bias, exact enumeration, ``ncl_cosine`` and ``infonce``
at p = d = m = 10 with fixed_count(k=2, k_neg=1) latents (the paper's sparsity 0.1) and
independent masks q = 0.5, it prints the time of one gradient + Hessian evaluation by the
package's kernels and by autograd on the same function (vectorised numpy over the same merged
support), their ratio, and the time just to write the Hessian's n x n entries to memory. All
three are measured in the same run (best of several repeats), so the ratios hold on a busy
machine. The kernels' results are checked against autograd's before timing. Everything runs
with BLAS limited to one thread, as in the engine's worker processes (the numba kernels are
serial; a second BLAS thread only slowed the small dense products of both sides).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import autograd.numpy as anp
import numpy as np
from autograd import grad, hessian
from numba import njit
from threadpoolctl import threadpool_limits

import critpoints


@njit(cache=True)
def _write_entries(n: int) -> np.ndarray:
    out = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = i + 0.5 * j
    return out


def best_time(function: Callable[[], object], repeats: int, inner: int = 1) -> float:
    """Smallest mean wall time of ``inner`` calls over ``repeats`` repetitions (seconds)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            function()
        times.append((time.perf_counter() - start) / inner)
    return min(times)


def closed_form_autograd(setting: critpoints.Setting) -> Callable:
    """The closed-form loss of derivations/MODEL.md §5 written directly in autograd.numpy."""
    moments = critpoints.view_moments(setting)
    c11, c12, c22 = moments.x1x1, moments.x1x2, moments.x2x2
    m, p = setting.m, setting.p

    def spectral(theta):
        w = anp.reshape(theta, (m, p))
        gram = anp.dot(w.T, w)
        return -2 * anp.trace(anp.dot(anp.dot(w, c12), w.T)) + anp.trace(
            anp.dot(anp.dot(gram, c11), anp.dot(gram, c22))
        )

    def ncl_squared(theta):
        w, w_t = anp.reshape(theta[: m * p], (m, p)), anp.reshape(theta[m * p :], (m, p))
        return (
            anp.trace(anp.dot(anp.dot(w, c11), w.T))
            - 2 * anp.trace(anp.dot(anp.dot(w, c12), w_t.T))
            + anp.trace(anp.dot(anp.dot(w_t, c22), w_t.T))
        )

    return spectral if setting.loss.name == "spectral" else ncl_squared


def _symrelu(points, weights, bias):
    t = anp.dot(points, weights.T)
    return anp.maximum(t + bias, 0.0) - anp.maximum(-t + bias, 0.0)


def _normalised(rows):
    squares = anp.sum(rows * rows, axis=1, keepdims=True)
    return rows / anp.sqrt(anp.where(squares > 0, squares, 1.0))  # n(0) = 0, no 0/0 in the derivative


def measure_autograd(loss: critpoints.PopulationLoss) -> Callable:
    """ncl_cosine (untied) or infonce with a trainable-bias symrelu over the loss's finite measure."""
    measure, layout, setting = loss.measure, loss.layout, loss.setting

    def block(theta, name):
        piece = theta[layout.slice(name)]
        return anp.reshape(piece, layout.shapes[name])

    if setting.loss.name == "ncl_cosine":

        def ncl_cosine(theta):
            u = _normalised(_symrelu(measure.x1, block(theta, "W"), block(theta, "b")))
            v = _normalised(_symrelu(measure.x2, block(theta, "W_t"), block(theta, "b_t")))
            return 2 - 2 * anp.sum(measure.pair_weight * anp.sum(u * v, axis=1))

        return ncl_cosine

    tau = setting.loss.temperature

    def infonce(theta):
        w, b = block(theta, "W"), block(theta, "b")
        u, v = _normalised(_symrelu(measure.x1, w, b)), _normalised(_symrelu(measure.x2, w, b))
        anchors, negatives = _normalised(_symrelu(measure.anchor, w, b)), _normalised(_symrelu(measure.negative, w, b))
        similarity = anp.dot(anchors, negatives.T) / tau
        shift = 1.0 / tau  # cosines are at most 1
        log_partition = shift + anp.log(anp.dot(anp.exp(similarity - shift), measure.negative_weight))
        return -anp.sum(measure.pair_weight * anp.sum(u * v, axis=1)) / tau + anp.sum(
            measure.anchor_weight * log_partition
        )

    return infonce


def benchmark(label: str, setting: critpoints.Setting, reference: Callable, repeats: int) -> dict:
    loss = critpoints.population_loss(setting)
    rng = np.random.default_rng(0)
    theta = rng.normal(scale=setting.p**-0.5, size=loss.n_params)  # the engine's default start
    gradient, hess = loss.euclidean_gradient_and_hessian(theta)
    reference_gradient, reference_hessian = grad(reference)(theta), hessian(reference)(theta)
    scale = 1 + np.abs(reference_hessian).max()
    assert np.allclose(gradient, reference_gradient, atol=1e-9 * scale), f"{label}: gradients differ"
    assert np.allclose(hess, reference_hessian, atol=1e-9 * scale), f"{label}: Hessians differ"
    ours = best_time(lambda: loss.euclidean_gradient_and_hessian(theta), repeats=7, inner=repeats)
    theirs = best_time(lambda: (grad(reference)(theta), hessian(reference)(theta)), repeats=3)
    write = best_time(lambda: _write_entries(loss.n_params), repeats=7, inner=repeats)
    return dict(label=label, n=loss.n_params, support=loss.expectation, ours=ours, autograd=theirs, write=write)


def main() -> None:
    cases = []
    for name in ("spectral", "ncl_squared"):
        setting = critpoints.Setting(
            p=20, d=20, m=20, loss=name, latent=("fixed_count", 4, 2), augmentation=("independent_mask", 0.5)
        )
        cases.append((f"(a) {name}, linear, closed form, p=d=m=20", setting, closed_form_autograd(setting), 50))
    k, k_neg = critpoints.sparsity_to_counts(0.1, 10)
    for name, options in (("ncl_cosine", {}), ("infonce", {"temperature": 0.5})):
        setting = critpoints.Setting(
            p=10,
            d=10,
            m=10,
            loss=name,
            encoder="symrelu",
            bias="trainable",
            latent=("fixed_count", k, k_neg),
            augmentation=("independent_mask", 0.5),
            **options,
        )
        cases.append(
            (
                f"(b) {name}, symrelu, exact enumeration, p=d=m=10, k={k}",
                setting,
                measure_autograd(critpoints.population_loss(setting)),
                10,
            )
        )
    header = f"{'case':<58} {'n':>4} {'kernels':>10} {'autograd':>10} {'speed-up':>9} {'write-only':>11} {'/ write':>8}"
    print(header)
    print("-" * len(header))
    for label, setting, reference, repeats in cases:
        with threadpool_limits(1):
            row = benchmark(label, setting, reference, repeats)
        print(
            f"{row['label']:<58} {row['n']:>4} {row['ours'] * 1e3:>8.3f}ms {row['autograd'] * 1e3:>8.1f}ms "
            f"{row['autograd'] / row['ours']:>8.0f}x {row['write'] * 1e6:>9.1f}us {row['ours'] / row['write']:>7.1f}x"
        )
    print("\nkernels: one gradient + Hessian evaluation (PopulationLoss.euclidean_gradient_and_hessian);")
    print("write-only: allocating the n x n Hessian and writing each entry once.")
    print("targets: speed-up >= 50x; kernels within 10x of write-only.")


if __name__ == "__main__":
    main()
