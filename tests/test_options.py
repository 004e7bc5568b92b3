"""Every public option is checked before any work, with one message style (parameter, value,
what is allowed); numpy scalars are accepted; every run records a seed that reproduces it."""

from __future__ import annotations

import numpy as np
import pytest

import critpoints
import critpoints.dynamics.descent as descent
import critpoints.landscape.engine as engine
from critpoints.dynamics.descent import run_dynamics
from critpoints.landscape.initialization import check_init, initial_points
from critpoints.solver.restarts import InProcessExecutor, check_executor, solve_from_starts

IN_PROCESS = InProcessExecutor()


def small() -> critpoints.Setting:
    return critpoints.Setting(p=3, d=3, m=3, loss="spectral", encoder="symrelu", bias=-0.3, constraint="unit_rows")


@pytest.fixture
def no_work(monkeypatch):
    """Make building the loss fail: an option error must be raised before it."""

    def refuse(setting):
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(engine, "population_loss", refuse)
    monkeypatch.setattr(descent, "population_loss", refuse)


ENUMERATE_CASES = [
    (
        dict(orbit_tolerance=float("nan")),
        ValueError,
        r"orbit_tolerance must be a finite number .*got orbit_tolerance=nan",
    ),
    (dict(orbit_tolerance=float("inf")), ValueError, r"orbit_tolerance must be a finite number"),
    (dict(orbit_tolerance=2.0), ValueError, r"orbit_tolerance must lie in \(0.0, 1.0\), got orbit_tolerance=2.0"),
    (dict(tau_good=-1), ValueError, r"tau_good must lie in \(0.0, 1.0\], got tau_good=-1"),
    (dict(tau_good="x"), TypeError, r"tau_good must be a real number, got 'x'"),
    (dict(eigenvalue_tolerance=float("nan")), ValueError, r"eigenvalue_tolerance must be a finite number"),
    (dict(deflation="no"), TypeError, r"deflation must be True or False, got deflation='no'"),
    (dict(certify="yes"), TypeError, r"certify must be True or False, got certify='yes'"),
    (dict(progress=None), TypeError, r"progress must be True or False"),
    (dict(init=("uniform", 3)), ValueError, r"init 'uniform' takes no parameters, got \('uniform', 3\)"),
    (dict(init=("gaussian", 1, 2)), ValueError, r"init must be 'gaussian' or \('gaussian', scale\)"),
    (dict(init=("gaussian", -1)), ValueError, r"init scale must lie in \(0.0, inf\]"),
    (dict(init=("warm_start", float("nan"))), ValueError, r"warm-start exponent c must be a finite number"),
    (dict(init=np.zeros((10, 9)), n_restarts=4), ValueError, r"init has 10 rows \(starts\) but n_restarts=4"),
    (dict(init=np.zeros((0, 9))), ValueError, r"init arrays must hold at least one start"),
    (dict(init=np.full(9, np.nan)), ValueError, r"init must have finite entries"),
    (dict(executor="foo"), TypeError, r"executor must be None .* got executor='foo'"),
    (dict(seed="abc"), TypeError, r"seed must be an integer >= 0, None .* got seed='abc'"),
    (dict(seed=-1), ValueError, r"seed must be an integer >= 0, got seed=-1"),
    (dict(seed=1.5), TypeError, r"seed must be an integer"),
    (dict(n_restarts=0), ValueError, r"n_restarts must be an integer >= 1, got n_restarts=0"),
    (dict(n_restarts=2.0), TypeError, r"n_restarts must be an integer"),
    (dict(descent_fraction=1.5), ValueError, r"descent_fraction must lie in \[0.0, 1.0\]"),
    (dict(max_iterations=-1), ValueError, r"max_iterations must be an integer >= 0"),
    (dict(tolerance=1e-3), ValueError, r"unknown solver option\(s\) \['tolerance'\]"),
]


@pytest.mark.parametrize("options, error, message", ENUMERATE_CASES)
def test_enumerate_options_are_checked_before_work(no_work, options, error, message):
    options = {"n_restarts": 4, "progress": False, "executor": IN_PROCESS, **options}
    with pytest.raises(error, match=message):
        critpoints.enumerate_critical_points(small(), **options)


DYNAMICS_CASES = [
    (dict(n_starts=0), ValueError, r"n_starts must be an integer >= 1"),
    (dict(seed="abc"), TypeError, r"seed must be an integer >= 0, None"),
    (dict(lr=float("nan")), ValueError, r"lr must be a finite number"),
    (dict(lr=0), ValueError, r"lr must lie in \(0.0, inf\]"),
    (dict(tol=-1e-9), ValueError, r"tol must lie in"),
    (dict(max_steps=-1), ValueError, r"max_steps must be an integer >= 0"),
    (dict(schedule="sometimes"), ValueError, r"unknown schedule 'sometimes'"),
    (dict(schedule="alternating"), ValueError, r"schedule='alternating' needs two encoders"),
    (dict(step="giant"), ValueError, r"unknown step 'giant'"),
    (dict(init=("uniform", 3)), ValueError, r"init 'uniform' takes no parameters"),
    (dict(init=np.zeros((3, 9)), n_starts=5), ValueError, r"init has 3 rows \(starts\) but n_restarts=5"),
    (dict(measure="sample"), TypeError, r"measure must be None or a critpoints.FiniteMeasure"),
    (dict(critical_points=[]), TypeError, r"critical_points must be None or a CriticalPointSet"),
    (dict(match_tolerance=float("inf")), ValueError, r"match_tolerance must be a finite number"),
    (dict(polish="yes"), TypeError, r"polish must be True or False"),
    (dict(tau_good=1.5), ValueError, r"tau_good must lie in \(0.0, 1.0\]"),
    (dict(record_every=-1), ValueError, r"record_every must be an integer >= 0"),
]


@pytest.mark.parametrize("options, error, message", DYNAMICS_CASES)
def test_dynamics_options_are_checked_before_work(no_work, options, error, message):
    options = {"n_starts": 5, **options}
    with pytest.raises(error, match=message):
        run_dynamics(small(), **options)


def test_dynamics_refuses_the_table_of_another_setting():
    other = critpoints.Setting(p=3, d=3, m=3, loss="ncl_cosine", encoder="symrelu", bias=-0.3, constraint="unit_rows")
    table = critpoints.enumerate_critical_points(other, n_restarts=4, seed=0, executor=IN_PROCESS, progress=False)
    with pytest.raises(ValueError, match="critical_points holds the enumeration of another setting"):
        run_dynamics(small(), n_starts=2, critical_points=table)


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers():
    result = critpoints.enumerate_critical_points(
        small(),
        n_restarts=np.int64(6),
        seed=np.uint32(3),
        executor=IN_PROCESS,
        progress=np.bool_(False),
        tau_good=np.float32(0.9),
        orbit_tolerance=np.float64(1e-6),
    )
    assert type(result.metadata["n_restarts"]) is int and type(result.metadata["seed"]) is int
    assert type(result.metadata["tau_good"]) is float
    assert result.metadata["init"] == "gaussian"


def test_a_seed_of_none_is_drawn_recorded_and_reproduces_the_run():
    first = critpoints.enumerate_critical_points(small(), n_restarts=8, seed=None, executor=IN_PROCESS, progress=False)
    seed = first.metadata["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**63
    again = critpoints.enumerate_critical_points(small(), n_restarts=8, seed=seed, executor=IN_PROCESS, progress=False)
    assert str(again) == str(first)
    other = critpoints.enumerate_critical_points(small(), n_restarts=8, seed=None, executor=IN_PROCESS, progress=False)
    assert other.metadata["seed"] != seed


def test_a_generator_seed_gives_a_recorded_integer():
    generator = np.random.default_rng(11)
    result = run_dynamics(small(), n_starts=3, seed=generator, lr=0.05, max_steps=50)
    expected = int(np.random.default_rng(11).integers(2**63))
    assert result.metadata["seed"] == expected
    again = run_dynamics(small(), n_starts=3, seed=expected, lr=0.05, max_steps=50)
    assert [t.params["W"].tolist() for t in again] == [t.params["W"].tolist() for t in result]


def test_init_rows_one_start_repeated_or_one_per_restart():
    loss = critpoints.population_loss(small())
    theta = initial_points(loss, 1, np.random.default_rng(0))[0]
    np.testing.assert_allclose(initial_points(loss, 3, np.random.default_rng(0), theta), [theta] * 3, atol=1e-15)
    rows = initial_points(loss, 3, np.random.default_rng(1))
    np.testing.assert_allclose(initial_points(loss, 3, np.random.default_rng(0), rows), rows, atol=1e-15)
    with pytest.raises(ValueError, match=r"init arrays must have 9 columns"):
        initial_points(loss, 1, np.random.default_rng(0), np.zeros((1, 4)))
    assert check_init(("gaussian", np.float32(0.5)), 2) == ("gaussian", 0.5)


def test_solver_level_options():
    with pytest.raises(TypeError, match="executor must be None"):
        check_executor(42)
    with pytest.raises(TypeError, match="deflate must be True or False"):
        solve_from_starts(abs, (), np.zeros((1, 1)), deflate="no")
