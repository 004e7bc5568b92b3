"""Where the landscape searches run their batches (critpoints.solver.batch_runner).

The pool policy is checked with a stand-in for the pool (a recording in-process executor) and
a cost per start set by hand, so the decision does not depend on the machine's speed; the
results are compared with the runs of ``solve_from_starts`` in this process, start by start.
"""

from __future__ import annotations

import numpy as np
import pytest

from critpoints import Setting, population_loss
from critpoints.landscape.initialization import initial_points
from critpoints.landscape.system import loss_system
from critpoints.solver import batch_runner
from critpoints.solver.batch_runner import POOL_PAYOFF, BatchRunner
from critpoints.solver.newton import NewtonOptions
from critpoints.solver.restarts import POOL_STARTUP_SECONDS, InProcessExecutor, solve_from_starts

SETTING = Setting(p=3, d=3, m=3, loss="spectral", encoder="symrelu", bias=-0.3, constraint="unit_rows")
OPTIONS = NewtonOptions(descent_iterations=20)


class RecordingExecutor:
    """Runs each submitted call in this process (as a foreign executor: the solver's in-process
    shortcut does not recognise it) and counts the calls and its shutdowns."""

    def __init__(self) -> None:
        self.submitted = 0
        self.shutdowns = 0

    def submit(self, fn, /, *args):
        self.submitted += 1
        return InProcessExecutor().submit(fn, *args)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self.shutdowns += 1


@pytest.fixture
def starts() -> np.ndarray:
    return initial_points(population_loss(SETTING), 12, np.random.default_rng(3))


def same_runs(results, reference) -> bool:
    return len(results) == len(reference) and all(
        str(a.status) == str(b.status) and np.array_equal(a.theta, b.theta) for a, b in zip(results, reference)
    )


def test_batches_give_the_runs_of_this_process_in_order(starts):
    reference = solve_from_starts(
        loss_system, (SETTING,), starts, options=OPTIONS, executor=InProcessExecutor(), progress=False
    )
    runner = BatchRunner(loss_system, (SETTING,))
    results = runner.solve(starts[:7], OPTIONS) + runner.solve(starts[7:], OPTIONS)
    assert same_runs(results, reference)
    assert runner.seconds_per_start is not None and runner.pool is None


def test_a_given_executor_runs_every_batch(starts):
    executor = RecordingExecutor()
    runner = BatchRunner(loss_system, (SETTING,), executor)
    runner.solve(starts[:4], OPTIONS)
    runner.solve(starts[4:], OPTIONS, upcoming=1000)
    assert executor.submitted >= 2 and runner.pool is None and runner.executor is executor
    runner.close()
    assert executor.shutdowns == 0  # not ours to shut down


def test_a_pool_starts_once_when_the_work_at_hand_outlasts_its_start_up(starts, monkeypatch):
    pools: list[RecordingExecutor] = []

    def fake_pool(workers: int) -> RecordingExecutor:
        pools.append(RecordingExecutor())
        return pools[-1]

    monkeypatch.setattr(batch_runner, "local_pool", fake_pool)
    runner = BatchRunner(loss_system, (SETTING,))
    runner.workers = 2
    runner.solve(starts[:4], OPTIONS)  # the probe: no cost known before it
    assert not pools and runner.seconds_per_start is not None
    threshold = POOL_PAYOFF * POOL_STARTUP_SECONDS * runner.workers
    runner.seconds_per_start = 0.9 * threshold / 6  # 2 starts + 4 announced: just below the threshold
    runner.solve(starts[4:6], OPTIONS, upcoming=4)
    assert not pools
    runner.seconds_per_start = 1.1 * threshold / 6  # just above
    runner.solve(starts[6:8], OPTIONS, upcoming=4)
    assert len(pools) == 1 and pools[0].submitted >= 1 and runner.pooled
    runner.solve(starts[8:], OPTIONS)  # the pool serves every later batch
    assert len(pools) == 1 and pools[0].submitted >= 2
    runner.close()
    assert pools[0].shutdowns == 1 and runner.pool is None


def test_one_cpu_never_starts_a_pool(starts, monkeypatch):
    monkeypatch.setattr(batch_runner, "local_pool", lambda workers: pytest.fail("a pool was started"))
    runner = BatchRunner(loss_system, (SETTING,))
    runner.workers = 1
    runner.solve(starts[:4], OPTIONS)
    runner.seconds_per_start = 1e6
    runner.solve(starts[4:], OPTIONS, upcoming=1000)
    assert runner.pool is None
