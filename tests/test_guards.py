"""Guards before the work: the resource estimate and its memory limit, the InfoNCE temperature
bound (just above and below it, and where the arithmetic breaks), and the warning when the
stationarity threshold cannot tell stationary points from the starts."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
from conftest import LOSS_FAMILIES, ROOT

import critpoints
from critpoints.data.finite_measure import FiniteMeasure
from critpoints.dynamics.descent import run_dynamics
from critpoints.landscape.thresholds import threshold_ratio
from critpoints.losses.measure import MeasureEvaluator
from critpoints.losses.resources import GIB, check_resources, estimate_resources
from critpoints.model.families import MIN_TEMPERATURE
from critpoints.solver.restarts import InProcessExecutor

UNIT_ROUNDOFF = 2.0**-53


@pytest.mark.parametrize("family, options", LOSS_FAMILIES)
@pytest.mark.parametrize("encoder, bias", [("linear", None), ("symrelu", -0.3), ("symrelu", "trainable")])
def test_estimate_counts_what_the_loss_builds(family, options, encoder, bias):
    setting = critpoints.Setting(p=3, d=3, m=2, loss=family, encoder=encoder, bias=bias, **options)
    loss = critpoints.population_loss(setting)
    estimate = estimate_resources(setting)
    assert estimate.n_params == loss.n_params
    assert estimate.hessian_bytes == 8 * loss.n_params**2
    if loss.measure is None:
        assert estimate.support == 0 and estimate.pool == 0
    else:
        assert estimate.support == setting.expectation.support_size
        views = np.unique(np.concatenate([loss.measure.anchor, loss.measure.negative]), axis=0)
        assert (estimate.pool >= len(views)) if family == "infonce" else (estimate.pool == 0)


def _measured_growth(warm_up: str, code: str) -> dict:
    """Run ``code`` (which defines ``setting``) in a fresh process after ``warm_up`` (a small
    setting of the same kind, so that compiling or loading the kernels is done): the growth of
    the peak resident memory (VmHWM, reset through /proc/self/clear_refs) while the loss is
    built, its Hessian evaluated and eigendecomposed."""
    script = textwrap.dedent(
        """
        import json, numpy as np, critpoints
        from critpoints.losses.resources import BASE_BYTES, estimate_resources
        def run(setting):
            loss = critpoints.population_loss(setting)
            theta = loss.manifold.project(np.random.default_rng(0).standard_normal(loss.n_params))
            np.linalg.eigh(loss.hessian_in_basis(theta))
        def status(key):
            for line in open("/proc/self/status"):
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        {warm_up}
        run(setting)
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # the peak (VmHWM) restarts from the current resident memory
        base = status("VmRSS")
        {code}
        run(setting)
        growth = status("VmHWM") - base
        print(json.dumps(dict(growth=growth, estimate=estimate_resources(setting).memory_bytes - BASE_BYTES)))
        """
    ).format(warm_up=warm_up, code=code)
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT, env=environment
    )
    assert output.returncode == 0, output.stderr
    return json.loads(output.stdout.splitlines()[-1])


INFONCE = (
    "setting = critpoints.Setting(p=4, d=4, m=4, loss='infonce', encoder='symrelu', bias=-0.3, "
    "dictionary=('random', 0), noise=0.1, expectation=('sample_average', {n}, 0))"
)


@pytest.mark.parametrize(
    "warm_up, code",
    [
        (
            "setting = critpoints.Setting(p=3, d=3, m=3, loss='spectral')",
            "setting = critpoints.Setting(p=50, d=50, m=50, loss='spectral')",
        ),
        (INFONCE.format(n=20), INFONCE.format(n=1000)),
    ],
    ids=["dense Hessian", "InfoNCE couplings"],
)
def test_memory_estimate_bounds_the_measured_growth(warm_up, code):
    """Beyond the interpreter and the compiled kernels (BASE_BYTES), the estimate covers the
    measured growth of the peak memory while the loss is built and one Newton iteration's
    matrices are formed, and is not more than three times it."""
    run = _measured_growth(warm_up, code)
    assert run["growth"] <= run["estimate"] <= 3 * run["growth"], run


def test_oversized_settings_are_refused_before_any_allocation():
    began = time.perf_counter()
    big = critpoints.Setting(p=200, d=200, m=200, loss="spectral")
    with pytest.raises(ValueError, match=r"needs ~119 GiB of memory per process, more than the default limit") as error:
        critpoints.population_loss(big)
    assert "Hessian 11.9 GiB" in str(error.value) and "max_memory_gib" in str(error.value)
    huge_sample = critpoints.Setting(
        p=4, d=4, m=4, loss="infonce", encoder="symrelu", bias=-0.3, expectation=("sample_average", 10**6, 0)
    )
    with pytest.raises(ValueError, match=r"InfoNCE couplings 2000000\^2"):
        critpoints.enumerate_critical_points(huge_sample, n_restarts=2, progress=False)
    assert time.perf_counter() - began < 5.0


def test_the_memory_limit_is_an_option_of_the_setting():
    tight = critpoints.Setting(p=60, d=60, m=60, loss="spectral", max_memory_gib=0.5)
    with pytest.raises(ValueError, match=r"more than max_memory_gib=0.5 \(512 MiB\)"):
        check_resources(tight)
    roomy = critpoints.Setting(p=60, d=60, m=60, loss="spectral", max_memory_gib=2.0)
    assert check_resources(roomy).memory_bytes < 2.0 * GIB
    assert critpoints.Setting.from_dict(roomy.to_dict()).max_memory_gib == 2.0
    for bad, error in ((-1.0, ValueError), (math.nan, ValueError), ("8G", TypeError)):
        with pytest.raises(error, match="max_memory_gib"):
            critpoints.Setting(p=3, d=3, m=3, loss="spectral", max_memory_gib=bad)


def test_temperature_bound_is_enforced_just_below_and_accepted_at_it():
    accepted = critpoints.Setting(p=3, d=3, m=2, loss="infonce", temperature=MIN_TEMPERATURE)
    assert accepted.temperature == MIN_TEMPERATURE
    for below in (MIN_TEMPERATURE * (1 - 1e-9), 1e-19, 1e-300):
        with pytest.raises(ValueError, match=r"temperature must be >= 1e-05 .*got temperature="):
            critpoints.Setting(p=3, d=3, m=2, loss="infonce", temperature=below)


def _measure(rng: np.random.Generator, p: int = 3, size: int = 6) -> FiniteMeasure:
    points = lambda: rng.normal(size=(size, p))  # noqa: E731
    weights = np.full(size, 1.0 / size)
    return FiniteMeasure(points(), points(), weights, points(), weights, points(), weights, True)


def _reference_value(measure: FiniteMeasure, weights: np.ndarray, tau: float) -> np.longdouble:
    """The InfoNCE value in extended precision (64-bit mantissa), shifted log-sum-exp."""
    ld = np.longdouble
    w = weights.astype(ld)

    def cosine(x, y):
        u, v = w @ x.astype(ld), w @ y.astype(ld)
        return (u @ v) / np.sqrt((u @ u) * (v @ v))

    value = -sum(ld(pw) * cosine(a, b) for a, b, pw in zip(measure.x1, measure.x2, measure.pair_weight)) / ld(tau)
    for a, wa in zip(measure.anchor, measure.anchor_weight):
        exponents = np.array([cosine(a, j) / ld(tau) for j in measure.negative], dtype=ld)
        top = exponents.max()
        value += ld(wa) * (top + np.log(np.sum(measure.negative_weight.astype(ld) * np.exp(exponents - top))))
    return value


@pytest.mark.parametrize("tau", [MIN_TEMPERATURE, 1e-3, 0.05])
def test_infonce_rounding_is_within_the_derived_budget_at_and_above_the_bound(tau):
    """The derivation of MIN_TEMPERATURE: the exponents cos/tau carry rounding of a few units u/tau;
    the loss value then differs from an extended-precision evaluation by at most ~10 u / tau."""
    rng = np.random.default_rng(3)
    worst = 0.0
    for _ in range(20):
        measure = _measure(rng)
        evaluator = MeasureEvaluator("infonce", measure, encoder="linear", m=2, temperature=tau)
        weights = rng.normal(size=(2, 3))
        error = abs(np.longdouble(evaluator.value(weights.ravel())) - _reference_value(measure, weights, tau))
        worst = max(worst, float(error) * tau / UNIT_ROUNDOFF)
    assert worst <= 10.0, worst


def test_infonce_arithmetic_breaks_down_far_below_the_bound():
    """Where the derivation says the arithmetic fails outright (tau ~ 4u/745): the partition
    function underflows. The Setting never gets there; the raw evaluator shows why it must not."""
    rng = np.random.default_rng(4)
    failures = 0
    for _ in range(5):
        measure = _measure(rng)
        evaluator = MeasureEvaluator("infonce", measure, encoder="linear", m=2, temperature=1e-20)
        try:
            value = evaluator.value(rng.normal(size=6))
        except ZeroDivisionError:
            failures += 1
            continue
        failures += not math.isfinite(value)
    assert failures > 0


def test_threshold_warning_for_a_loss_flat_at_its_own_scale():
    """InfoNCE at tau = 1e-3 on one-hot data: the gradient at generic points is ~1e-13 while
    tol * |L| ~ 2.5e-8, so every start would pass the stationarity test where it begins."""
    flat = critpoints.Setting(
        p=4, d=4, m=4, loss="infonce", temperature=1e-3, encoder="symrelu", bias=-0.3, constraint="unit_rows"
    )
    assert threshold_ratio(critpoints.population_loss(flat), 1e-10) > 1e3
    with pytest.warns(UserWarning, match=r"times the stationarity threshold .* runs stop where they start"):
        critpoints.enumerate_critical_points(flat, n_restarts=2, seed=0, executor=InProcessExecutor(), progress=False)
    with pytest.warns(UserWarning, match="stationarity threshold"):
        run_dynamics(flat, n_starts=2, seed=0, max_steps=5)


@pytest.mark.parametrize(
    "options",
    [
        dict(loss="spectral", encoder="symrelu", bias=-0.3, constraint="unit_rows"),
        dict(loss="infonce", temperature=0.5, encoder="symrelu", bias=-0.3, constraint="unit_rows"),
        dict(loss="ncl_cosine", encoder="symrelu", bias=-5.0, constraint="unit_rows"),  # every neuron dead: exact zeros
    ],
)
def test_no_threshold_warning_where_the_test_is_meaningful(options):
    setting = critpoints.Setting(p=3, d=3, m=3, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        critpoints.enumerate_critical_points(
            setting, n_restarts=2, seed=0, executor=InProcessExecutor(), progress=False
        )
