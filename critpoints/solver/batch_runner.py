"""Batches of Newton runs of one system: in this process until a pool of local processes pays off.

Searches that solve many small batches of starts, one after another, each depending on the
ones before (the landscape layer's ``map_landscape`` and ``explore_minima``) cannot plan the
pool from one list of starts as :func:`~critpoints.solver.restarts.solve_from_starts` does. A pool of local
processes costs about ``POOL_STARTUP_SECONDS`` per worker to start (imports and cached
kernels) and is worth it only when the work left outlasts that; started once, it serves every
later batch. :class:`BatchRunner` makes that decision from the time the runs take in this
process:

* with an executor given (a ``concurrent.futures`` executor, a Dask client) every batch runs
  there;
* otherwise the first batch starts with one untimed run (it loads the kernels) and a few timed
  ones; while no pool runs, each batch is timed, and a pool of ``os.cpu_count()`` processes is
  started, once, as soon as the seconds per start measured here times the starts at hand (this
  batch and those the caller announces) exceed ``POOL_PAYOFF`` times the start-up of the pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from critpoints.solver.newton import NewtonOptions, NewtonResult
from critpoints.solver.restarts import (
    POOL_STARTUP_SECONDS,
    InProcessExecutor,
    default_workers,
    local_pool,
    solve_from_starts,
)

__all__ = ["POOL_PAYOFF", "BatchRunner"]

#: A pool starts when the work at hand, at the speed of this process, exceeds this many times
#: the pool's start-up.
POOL_PAYOFF = 2.0

#: Timed runs of the first batch (after one untimed run), at least.
PROBE_RUNS = 2


class BatchRunner:
    """Solves batches of starts of one system on the best executor known so far.

    Parameters
    ----------
    make_system, system_args
        The system, built in each process as ``make_system(*system_args)``
        (:func:`~critpoints.solver.restarts.solve_from_starts`).
    executor : optional
        Every batch runs there; None: this process, then a pool of local processes when it
        pays off (see the module docstring).

    Attributes
    ----------
    seconds_per_start : float or None
        The cost of one run in this process, from the last batch timed here.
    """

    def __init__(self, make_system: Callable[..., Any], system_args: tuple, executor: Any = None) -> None:
        self.make_system = make_system
        self.system_args = system_args
        self.requested = executor
        self.pool: Any = None
        self.seconds_per_start: float | None = None
        self.workers = default_workers()

    @property
    def executor(self) -> Any:
        """Where the next batch runs: the executor given, the pool once started, else this process."""
        if self.requested is not None:
            return self.requested
        return self.pool if self.pool is not None else InProcessExecutor()

    @property
    def pooled(self) -> bool:
        """Whether the batches run on more than this process."""
        return self.requested is not None or self.pool is not None

    def _run(self, starts: np.ndarray, options: list[NewtonOptions], executor: Any) -> list[NewtonResult]:
        return solve_from_starts(
            self.make_system, self.system_args, starts, options=options, executor=executor, progress=False
        )

    def _timed(self, starts: np.ndarray, options: list[NewtonOptions]) -> list[NewtonResult]:
        began = time.perf_counter()
        results = self._run(starts, options, InProcessExecutor())
        self.seconds_per_start = (time.perf_counter() - began) / len(starts)
        return results

    def _pool_pays_off(self, count: int) -> bool:
        if self.workers == 1 or self.seconds_per_start is None:
            return False
        return self.seconds_per_start * count > POOL_PAYOFF * POOL_STARTUP_SECONDS * self.workers

    def solve(
        self, starts: np.ndarray, options: NewtonOptions | list[NewtonOptions], *, upcoming: int = 0
    ) -> list[NewtonResult]:
        """Newton from every start (results in order); ``upcoming``: starts the caller will
        submit after these, counted in the decision to start a pool."""
        starts = np.asarray(starts, dtype=np.float64)
        per_start = list(options) if isinstance(options, (list, tuple)) else [options] * len(starts)
        if not len(starts):
            return []
        if self.pooled:
            return self._run(starts, per_start, self.executor)
        results: list[NewtonResult] = []
        if self.seconds_per_start is None:  # the first batch: one run loads the kernels, a few are timed
            probe = min(len(starts), 1 + max(PROBE_RUNS, self.workers))
            results += self._run(starts[:1], per_start[:1], InProcessExecutor())
            if probe > 1:
                results += self._timed(starts[1:probe], per_start[1:probe])
            starts, per_start = starts[probe:], per_start[probe:]
            if not len(starts):
                return results
        if self._pool_pays_off(len(starts) + upcoming):
            self.pool = local_pool(self.workers)
            return results + self._run(starts, per_start, self.pool)
        return results + self._timed(starts, per_start)

    def close(self, failed: bool = False) -> None:
        """Shut the pool down (pending work cancelled after a failure)."""
        if self.pool is not None:
            self.pool.shutdown(wait=not failed, cancel_futures=failed)
            self.pool = None
