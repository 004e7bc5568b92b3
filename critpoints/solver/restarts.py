"""Many Newton runs from many starts, in-process, on local processes or on a Dask cluster.

:func:`solve_from_starts` runs :func:`critpoints.solver.newton.newton_stationary` from each row of
a start matrix. The system is not shipped to the workers: a picklable factory
``make_system(*system_args)`` builds it inside each worker process, once (a per-process
cache keyed by the pickled factory and arguments), so that expensive setup such as numba
compilation is paid once per worker and not once per start.

Each run is a deterministic function of its start, so without deflation the same starts
give the same results, bit for bit, whichever executor and chunking run them (given the
same BLAS library and thread settings in every process).
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import os
import pickle
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, cast

import numpy as np
from numpy.typing import ArrayLike
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from critpoints import _validation as check
from critpoints.solver.newton import (
    NewtonOptions,
    NewtonResult,
    StationarySystem,
    Status,
    newton_runs,
    per_start_options,
)

__all__ = ["DISTINCT_TOLERANCE", "Executor", "InProcessExecutor", "distinct_solutions", "solve_from_starts"]

#: Systems built in this process, most recently used last, keyed by the pickled
#: ``(make_system, system_args)``.
_SYSTEMS: OrderedDict[bytes, StationarySystem] = OrderedDict()
_SYSTEM_CACHE_SIZE = 4

#: Converged points closer than this (relative to ``max(1, ||theta||)``) are one solution
#: when the deflation set is built.
DISTINCT_TOLERANCE = 1e-6

#: Rough cost of starting one local worker process (imports and cached kernels), used to
#: decide whether the default executor is worth starting at all.
POOL_STARTUP_SECONDS = 1.5


class _Future(Protocol):
    def result(self) -> Any: ...


class Executor(Protocol):
    """Anything with ``submit(fn, *args) -> future`` whose futures have ``result()``.

    ``concurrent.futures`` executors and ``dask.distributed.Client`` qualify.
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> _Future: ...


# ---------------------------------------------------------------------------- worker side


def _cached_system(recipe: bytes) -> StationarySystem:
    """The system ``make_system(*system_args)`` for ``recipe = pickle((make_system, system_args))``.

    Built once per process and recipe; the recipe is both what a task ships and the key
    of the per-process cache.
    """
    system = _SYSTEMS.get(recipe)
    if system is None:
        make_system, system_args = pickle.loads(recipe)
        system = make_system(*system_args)
        _SYSTEMS[recipe] = system
        while len(_SYSTEMS) > _SYSTEM_CACHE_SIZE:
            _SYSTEMS.popitem(last=False)
    else:
        _SYSTEMS.move_to_end(recipe)
    return system


def _solve_chunk(
    recipe: bytes,
    starts: np.ndarray,
    options: Sequence[NewtonOptions],
    deflation: np.ndarray | None,
) -> list[NewtonResult]:
    """Task run by a worker: one Newton run per row of ``starts`` (with its options), in order
    (in one compiled call where the system allows, critpoints.solver.newton.newton_runs).

    BLAS runs single-threaded here: the matrices are small, where a second BLAS thread only
    adds synchronisation (and contends with the other workers).
    """
    system = _cached_system(recipe)
    with threadpool_limits(1):
        return newton_runs(system, starts, options, deflation)


# ---------------------------------------------------------------------------- executors


class _DoneFuture:
    """A future whose value was computed on submission (the in-process executor)."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def result(self) -> Any:
        return self._value


class InProcessExecutor:
    """Runs each submitted call immediately in the calling process."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> _DoneFuture:
        return _DoneFuture(fn(*args))


def _is_dask_client(executor: object) -> bool:
    """Duck-typed test for a ``dask.distributed.Client`` (without importing dask)."""
    return all(hasattr(executor, name) for name in ("submit", "gather", "scheduler_info"))


def _submit(executor: Executor, fn: Callable[..., Any], *args: Any) -> _Future:
    """``executor.submit(fn, *args)``; on Dask with ``pure=False``.

    Dask caches calls it deems pure by a hash of their arguments; the runs here are pure
    functions too, but ``pure=False`` keeps every chunk a task of its own.
    """
    if _is_dask_client(executor):
        return executor.submit(fn, *args, pure=False)
    return executor.submit(fn, *args)


def _as_completed(futures: Sequence[_Future]) -> Iterator[_Future]:
    """The futures in the order they finish where the executor allows it, else in order."""
    if futures and all(isinstance(f, concurrent.futures.Future) for f in futures):
        return concurrent.futures.as_completed(cast(Sequence[concurrent.futures.Future], futures))
    if futures and all(type(f).__module__.startswith("distributed.") for f in futures):
        from distributed import as_completed

        return iter(as_completed(list(futures)))
    return iter(futures)


def _collect(futures: Sequence[_Future], bar: tqdm) -> list[list[NewtonResult]]:
    """Results of the chunk futures, in submission order; the bar advances as each finishes."""
    position = {id(future): index for index, future in enumerate(futures)}
    results: list[list[NewtonResult] | None] = [None] * len(futures)
    for future in _as_completed(futures):
        chunk = future.result()
        results[position[id(future)]] = chunk
        bar.update(len(chunk))
    return results  # type: ignore[return-value]


# ---------------------------------------------------------------------------- planning


def _validated_starts(starts: ArrayLike) -> np.ndarray:
    array = np.asarray(starts, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"starts must be a 2-D array (R, n) of start points, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("starts must be finite (no NaN or inf)")
    return array


def _system_recipe(make_system: Callable[..., StationarySystem], system_args: tuple) -> bytes:
    """Pickle of ``(make_system, system_args)``: what tasks ship and the workers' cache key."""
    if not isinstance(system_args, tuple):
        raise TypeError(f"system_args must be a tuple, got {type(system_args).__name__}")
    try:
        return pickle.dumps((make_system, system_args), protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        raise TypeError(
            "make_system must be a module-level function and system_args picklable, so that "
            f"workers can build the system; pickling failed: {error}"
        ) from error


def _local_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of fresh single-threaded worker processes.

    Workers start from a fork server rather than by forking this process: forking a
    process whose OpenMP runtime (numba's parallel kernels, BLAS) has already started
    threads is unsafe and aborts the child.
    """
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("forkserver"),
    )


def _default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def _chunk_size(requested: int | None, count: int, workers: int, deflate: bool) -> int:
    """Starts per task (per batch with deflation); see :func:`solve_from_starts`."""
    if requested is not None:
        return check.integer("chunk_size", requested, minimum=1)
    if deflate:
        return workers
    return max(1, math.ceil(count / (4 * workers)))


def _too_small_for_a_pool(count: int, size: int, workers: int, deflate: bool) -> bool:
    """Whether the default executor runs in-process: one CPU, or fewer starts than two tasks."""
    starts_per_task = 1 if deflate else size
    return workers == 1 or count < 2 * starts_per_task


def _chunks(count: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def distinct_solutions(
    results: Sequence[NewtonResult],
    known: ArrayLike | None = None,
    tol: float = DISTINCT_TOLERANCE,
) -> np.ndarray:
    """The converged points of ``results`` that are not already in ``known``, deduplicated.

    Parameters
    ----------
    results : sequence of NewtonResult
        Only ``converged`` ones are used, in order.
    known : ndarray, shape (K, n), optional
        Points already known; returned first.
    tol : float
        ``theta`` is new when ``||theta - theta_k|| > tol * max(1, ||theta||)`` for every
        point ``theta_k`` kept so far.

    Returns
    -------
    ndarray, shape (K', n)
        ``known`` followed by the new distinct converged points.
    """
    points = [] if known is None else list(np.asarray(known, dtype=np.float64))
    for result in results:
        if result.status != Status.CONVERGED:
            continue
        radius = tol * max(1.0, float(np.linalg.norm(result.theta)))
        if all(np.linalg.norm(result.theta - point) > radius for point in points):
            points.append(result.theta)
    if not points:
        n = results[0].theta.size if results else 0
        return np.empty((0, n))
    return np.array(points)


# ---------------------------------------------------------------------------- driver


def _solve_independently(
    executor: Executor,
    recipe: bytes,
    starts: np.ndarray,
    size: int,
    options: list[NewtonOptions],
    bar: tqdm,
) -> list[NewtonResult]:
    """Chunks of ``size`` starts, all submitted at once, none deflated."""
    futures = [
        _submit(executor, _solve_chunk, recipe, starts[part], options[part], None)
        for part in _chunks(len(starts), size)
    ]
    return [result for chunk in _collect(futures, bar) for result in chunk]


def _solve_locally(
    recipe: bytes, starts: np.ndarray, size: int, options: list[NewtonOptions], workers: int, bar: tqdm
) -> list[NewtonResult]:
    """The default executor: a pool of ``workers`` local processes, or this process alone
    when the work is quicker than starting them.

    A probe of starts spread over the whole list (the options, and so the cost, may change
    along it) is timed here, after a first start, which pays for loading the kernels; the
    pool starts right after it.
    """
    count = len(starts)
    probe = np.unique(np.linspace(0, count - 1, min(count, max(2, size // 4))).round().astype(int))
    rest = np.setdiff1d(np.arange(count), probe)
    solved = _solve_chunk(recipe, starts[probe[:1]], [options[probe[0]]], None)
    began = time.perf_counter()
    solved += _solve_chunk(recipe, starts[probe[1:]], [options[i] for i in probe[1:]], None)
    remaining = (time.perf_counter() - began) / max(len(probe) - 1, 1) * len(rest)
    bar.update(len(probe))
    rest_options = [options[i] for i in rest]
    if remaining < POOL_STARTUP_SECONDS * workers:
        solved += _solve_independently(InProcessExecutor(), recipe, starts[rest], size, rest_options, bar)
    else:
        with _local_pool(workers) as pool:
            solved += _solve_independently(pool, recipe, starts[rest], size, rest_options, bar)
    results: list[NewtonResult | None] = [None] * count
    for index, result in zip(np.concatenate([probe, rest]), solved):
        results[index] = result
    return results  # type: ignore[return-value]


def _solve_with_deflation(
    executor: Executor,
    recipe: bytes,
    starts: np.ndarray,
    size: int,
    options: list[NewtonOptions],
    bar: tqdm,
) -> list[NewtonResult]:
    """Batches of ``size`` starts, one task per start, deflated by earlier batches' solutions."""
    results: list[NewtonResult] = []
    known = np.empty((0, starts.shape[1]))
    for batch in _chunks(len(starts), size):
        deflation = known if len(known) else None
        futures = [
            _submit(executor, _solve_chunk, recipe, starts[index : index + 1], options[index : index + 1], deflation)
            for index in range(batch.start, batch.stop)
        ]
        batch_results = [result for chunk in _collect(futures, bar) for result in chunk]
        known = distinct_solutions(batch_results, known)
        results.extend(batch_results)
    return results


def solve_from_starts(
    make_system: Callable[..., StationarySystem],
    system_args: tuple,
    starts: ArrayLike,
    *,
    options: NewtonOptions | Sequence[NewtonOptions] = NewtonOptions(),
    executor: Executor | None = None,
    progress: bool = True,
    chunk_size: int | None = None,
    deflate: bool = False,
) -> list[NewtonResult]:
    """Run :func:`~critpoints.solver.newton.newton_stationary` from every start.

    Parameters
    ----------
    make_system : callable
        A module-level (picklable) function; ``make_system(*system_args)`` builds the
        :class:`~critpoints.solver.newton.StationarySystem`. It is called at most once per worker
        process for the same ``(make_system, system_args)`` (a small per-process cache keyed
        by their pickle), so the systems' setup cost is paid once per worker.
    system_args : tuple
        Picklable arguments of ``make_system``.
    starts : array, shape (R, n)
        One start per row.
    options : NewtonOptions or sequence of NewtonOptions
        Passed to every run, or one per start.
    executor : optional
        Any object with ``submit(fn, *args)`` returning a future with ``result()``: a
        ``concurrent.futures`` executor, or a ``dask.distributed.Client`` (detected by
        duck typing; its tasks are submitted with ``pure=False`` so Dask does not merge
        identical calls). ``None``: a local
        ``ProcessPoolExecutor(max_workers=os.cpu_count())``, created and shut down here,
        or no pool at all when there are fewer than two chunks of work (or one CPU) or
        when a few starts timed here (spread over the list) predict that the rest takes
        less than starting the workers.
    progress : bool
        Show a tqdm bar over the starts, advanced as chunks finish; it disables itself
        when the output is not a terminal.
    chunk_size : int, optional
        Starts per task. Default ``ceil(R / (4 * os.cpu_count()))``: about four tasks per
        worker, to balance the load while amortising the per-task overhead. With
        ``deflate=True`` it is the *batch* size instead (default ``os.cpu_count()``).
    deflate : bool
        ``False``: the runs are independent. ``True``: the starts are solved in
        consecutive batches of ``chunk_size``; every run of a batch is deflated
        (see :func:`~critpoints.solver.newton.newton_stationary`) by the distinct converged points
        of all earlier batches (:func:`distinct_solutions`), so later starts are steered
        towards solutions not yet found. Runs within a batch are independent and run in
        parallel, one task per start. The results then depend on the batch size, but
        not on the executor.

    Returns
    -------
    list of NewtonResult
        One per start, in the order of ``starts``.

    Raises
    ------
    TypeError
        If ``make_system`` or ``system_args`` cannot be pickled.
    ValueError
        For a ``starts`` array that is not 2-D and finite, or a bad ``chunk_size``.

    Notes
    -----
    Several worker processes that each run a multithreaded BLAS oversubscribe the CPUs
    and can slow the linear algebra down many times; start Python with
    ``OMP_NUM_THREADS=1`` (or ``OPENBLAS_NUM_THREADS=1`` / ``MKL_NUM_THREADS=1``) when
    using process pools (Dask's workers set these themselves). Bitwise equality of the
    results across executors also assumes the same BLAS thread settings everywhere: a
    threaded BLAS may round differently than a sequential one for larger matrices.
    """
    starts = _validated_starts(starts)
    per_start = per_start_options(options, len(starts))
    recipe = _system_recipe(make_system, system_args)
    workers = _default_workers()
    size = _chunk_size(chunk_size, len(starts), workers, deflate)
    solve = _solve_with_deflation if deflate else _solve_independently
    with tqdm(total=len(starts), disable=not progress or None, unit="start", desc="Newton") as bar:
        if executor is not None:
            return solve(executor, recipe, starts, size, per_start, bar)
        if _too_small_for_a_pool(len(starts), size, workers, deflate):
            return solve(InProcessExecutor(), recipe, starts, size, per_start, bar)
        if deflate:  # batches depend on earlier ones: one executor for all of them
            with _local_pool(workers) as pool:
                return solve(pool, recipe, starts, size, per_start, bar)
        return _solve_locally(recipe, starts, size, per_start, workers, bar)
