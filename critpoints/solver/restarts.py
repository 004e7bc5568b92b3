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

import ast
import concurrent.futures
import contextlib
import math
import os
import pickle
import signal
import sys
import threading
import time
import types
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, cast

import numpy as np
from numpy.typing import ArrayLike
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from critpoints import _validation as check
from critpoints.solver import lifeline
from critpoints.solver.newton import (
    NewtonOptions,
    NewtonResult,
    StationarySystem,
    Status,
    newton_runs,
    per_start_options,
)

__all__ = [
    "DISTINCT_TOLERANCE",
    "Executor",
    "InProcessExecutor",
    "Interrupted",
    "WorkerDied",
    "check_executor",
    "distinct_solutions",
    "solve_from_starts",
]

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

#: The options of a run when none are given.
DEFAULT_OPTIONS = NewtonOptions()

#: Seconds one in-process call aims at: runs in this process go in batches about this long,
#: so that Ctrl-C lands between two compiled calls and interrupts promptly.
IN_PROCESS_BATCH_SECONDS = 0.1


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during :func:`solve_from_starts`, raised promptly, workers torn down.

    Attributes
    ----------
    results : list of NewtonResult or None
        One entry per start, None for the runs that had not finished.
    partial : object
        What a caller builds from the finished runs (the engine: the CriticalPointSet of the
        finished runs), built when first read, so that the interrupt itself returns at once;
        None when no caller registered a builder (:meth:`build_partial_with`).
    """

    def __init__(self, results: Sequence[NewtonResult | None]) -> None:
        finished = sum(result is not None for result in results)
        super().__init__(f"interrupted after {finished} of {len(results)} runs")
        self.results = list(results)
        self._build: Callable[[], Any] | None = None
        self._partial: Any = None

    def build_partial_with(self, build: Callable[[], Any]) -> None:
        """Register how :attr:`partial` is built (called once, when it is first read)."""
        self._build, self._partial = build, None

    @property
    def partial(self) -> Any:
        if self._partial is None and self._build is not None:
            self._partial = self._build()
        return self._partial


class WorkerDied(RuntimeError):
    """A worker process of the local pool ended without finishing its task (killed by a
    signal, e.g. by the out-of-memory killer, or crashed). ``results`` as in :class:`Interrupted`."""

    def __init__(self, message: str, results: Sequence[NewtonResult | None]) -> None:
        super().__init__(message)
        self.results = list(results)


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


def check_executor(executor: object) -> None:
    """Raise TypeError unless ``executor`` is None or has a callable ``submit``."""
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(
            "executor must be None (local processes), a concurrent.futures executor, a dask.distributed "
            f"Client or any object with submit(fn, *args), got executor={executor!r}"
        )


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


def _collect(futures: Sequence[_Future], parts: Sequence[np.ndarray], results: list, bar: tqdm) -> None:
    """Store the results of each chunk future at the start indices ``parts[k]`` of ``results``
    as the chunks finish; the bar advances with them."""
    position = {id(future): index for index, future in enumerate(futures)}
    for future in _as_completed(futures):
        indices = parts[position[id(future)]]
        for index, result in zip(indices, future.result()):
            results[index] = result
        bar.update(len(indices))


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


def local_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of fresh single-threaded worker processes started from a fork server, that end
    when this process ends and ignore Ctrl-C (critpoints.solver.lifeline.process_pool).

    Workers start from a fork server rather than by forking this process: forking a
    process whose OpenMP runtime (numba's parallel kernels, BLAS) has already started
    threads is unsafe and aborts the child.
    """
    return lifeline.process_pool(workers, "forkserver")


class _Terminated(BaseException):
    """SIGTERM arrived while the local pool was running."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _tear_down(pool: concurrent.futures.ProcessPoolExecutor) -> list[str]:
    """Stop the pool now: cancel what has not started, end the workers. Returns how each worker ended."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    exits = [_describe_exit(process.exitcode) for process in processes]
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=2.0)
        if process.is_alive():
            process.kill()
            process.join(timeout=2.0)
    pool.shutdown(wait=True)
    return exits


@contextlib.contextmanager
def _pool_session(workers: int) -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """The local pool for the duration of the block, torn down at once on any error, on
    Ctrl-C or on SIGTERM (after which this process ends by SIGTERM, as it would have)."""
    pool = local_pool(workers)
    catch_sigterm = (
        threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    )
    if catch_sigterm:
        signal.signal(signal.SIGTERM, _raise_terminated)
    terminated = False
    try:
        yield pool
    except _Terminated:
        terminated = True
        _tear_down(pool)
    except concurrent.futures.BrokenExecutor as error:
        exits = _tear_down(pool)
        raise concurrent.futures.BrokenExecutor(f"{error} (workers: {', '.join(exits) or 'unknown'})") from error
    except BaseException:
        _tear_down(pool)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        if catch_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if terminated:
            os.kill(os.getpid(), signal.SIGTERM)


def _is_main_test(test: ast.expr) -> bool:
    """Whether ``test`` is ``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = (test.left, test.comparators[0])
    names = [side.id for side in sides if isinstance(side, ast.Name)]
    constants = [side.value for side in sides if isinstance(side, ast.Constant)]
    return names == ["__name__"] and constants == ["__main__"]


def _under_main_guard(path: str, line: int) -> bool:
    """Whether line ``line`` of the script ``path`` lies in an ``if __name__ == "__main__":`` block."""
    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return True  # cannot tell: let multiprocessing report what happens
    return any(
        isinstance(node, ast.If) and _is_main_test(node.test) and node.lineno <= line <= (node.end_lineno or line)
        for node in ast.walk(tree)
    )


def _main_module_problem() -> str | None:
    """Why worker processes could not start here, or None.

    Workers re-import the main script (multiprocessing's spawn and fork-server start
    methods): that fails for a script read from standard input, and re-runs the work in
    every worker for a script whose call is not under ``if __name__ == "__main__":``.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None:
        return None  # an interactive session or python -c: workers do not import it
    if not os.path.isfile(path):
        return (
            f"the main script {path!r} is not a file (read from standard input?), so worker processes cannot import it"
        )
    frame: types.FrameType | None = sys._getframe()
    line = None
    while frame is not None:
        if frame.f_globals is vars(main) and frame.f_code.co_name == "<module>":
            line = frame.f_lineno
        frame = frame.f_back
    if line is not None and not _under_main_guard(path, line):
        return f"{os.path.basename(path)} line {line} runs critpoints outside an if __name__ == '__main__': block"
    return None


def _pool_unavailable(workers: int) -> bool:
    """Whether the local pool cannot be used here; warns in one line why, and what to do."""
    problem = _main_module_problem()
    if problem is None:
        return False
    warnings.warn(
        f"critpoints runs in this process only (one CPU): {problem}; to use {workers} processes, put the call "
        "under if __name__ == '__main__': in a script file (executor=InProcessExecutor() silences this)",
        RuntimeWarning,
        stacklevel=2,
    )
    return True


def default_workers() -> int:
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


def _interrupted_by(error: BaseException) -> bool:
    """Whether a KeyboardInterrupt is in the chain of ``error``.

    Ctrl-C that lands while a compiled (numba) call is calling back into Python surfaces,
    when the call returns, as a SystemError whose context holds the KeyboardInterrupt.
    """
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__context__
    return False


def _solve_in_process(
    recipe: bytes,
    starts: np.ndarray,
    options: list[NewtonOptions],
    deflation: np.ndarray | None,
    results: list,
    indices: np.ndarray,
    bar: tqdm,
) -> None:
    """The runs of the rows ``indices`` in this process, in batches of about
    :data:`IN_PROCESS_BATCH_SECONDS` (one start at first, then doubling or halving), so that
    Ctrl-C is raised promptly as a KeyboardInterrupt between two compiled calls."""
    size, done = 1, 0
    while done < len(indices):
        part = indices[done : done + size]
        began = time.perf_counter()
        try:
            chunk = _solve_chunk(recipe, starts[part], [options[i] for i in part], deflation)
        except SystemError as error:
            if _interrupted_by(error):
                raise KeyboardInterrupt from None
            raise
        elapsed = time.perf_counter() - began
        for index, result in zip(part, chunk):
            results[index] = result
        bar.update(len(part))
        done += len(part)
        if elapsed < IN_PROCESS_BATCH_SECONDS / 2:
            size *= 2
        elif elapsed > 2 * IN_PROCESS_BATCH_SECONDS:
            size = max(1, size // 2)


def _solve_independently(
    executor: Executor,
    recipe: bytes,
    starts: np.ndarray,
    size: int,
    options: list[NewtonOptions],
    results: list,
    indices: np.ndarray,
    bar: tqdm,
) -> None:
    """The rows ``indices`` in chunks of ``size``, all submitted at once, none deflated."""
    if isinstance(executor, InProcessExecutor):
        _solve_in_process(recipe, starts, options, None, results, indices, bar)
        return
    parts = [indices[part] for part in _chunks(len(indices), size)]
    futures = [
        _submit(executor, _solve_chunk, recipe, starts[part], [options[i] for i in part], None) for part in parts
    ]
    _collect(futures, parts, results, bar)


def _solve_locally(
    recipe: bytes, starts: np.ndarray, size: int, options: list[NewtonOptions], workers: int, results: list, bar: tqdm
) -> None:
    """The default executor: a pool of ``workers`` local processes, or this process alone
    when the work is quicker than starting them (or the pool cannot start here).

    A probe of starts spread over the whole list (the options, and so the cost, may change
    along it) is timed here, after a first start, which pays for loading the kernels; the
    pool starts right after it.
    """
    if _main_module_problem() is None:
        lifeline.start_fork_server()  # its start-up overlaps with the probe below
    count = len(starts)
    probe = np.unique(np.linspace(0, count - 1, min(count, max(2, size // 4))).round().astype(int))
    rest = np.setdiff1d(np.arange(count), probe)
    _solve_in_process(recipe, starts, options, None, results, probe[:1], bar)
    began = time.perf_counter()
    _solve_in_process(recipe, starts, options, None, results, probe[1:], bar)
    remaining = (time.perf_counter() - began) / max(len(probe) - 1, 1) * len(rest)
    if remaining < POOL_STARTUP_SECONDS * workers or _pool_unavailable(workers):
        _solve_in_process(recipe, starts, options, None, results, rest, bar)
        return
    with _pool_session(workers) as pool:
        _solve_independently(pool, recipe, starts, size, options, results, rest, bar)


def _solve_with_deflation(
    executor: Executor,
    recipe: bytes,
    starts: np.ndarray,
    size: int,
    options: list[NewtonOptions],
    results: list,
    bar: tqdm,
) -> None:
    """Batches of ``size`` starts, one task per start, deflated by earlier batches' solutions."""
    known = np.empty((0, starts.shape[1]))
    for batch in _chunks(len(starts), size):
        deflation = known if len(known) else None
        indices = np.arange(batch.start, batch.stop)
        if isinstance(executor, InProcessExecutor):
            _solve_in_process(recipe, starts, options, deflation, results, indices, bar)
        else:
            parts = [indices[k : k + 1] for k in range(len(indices))]
            futures = [_submit(executor, _solve_chunk, recipe, starts[p], [options[p[0]]], deflation) for p in parts]
            _collect(futures, parts, results, bar)
        known = distinct_solutions([results[index] for index in indices], known)


def _run(
    executor: Executor | None,
    recipe: bytes,
    starts: np.ndarray,
    size: int,
    options: list[NewtonOptions],
    workers: int,
    deflate: bool,
    results: list,
    bar: tqdm,
) -> None:
    """Fill ``results`` by the executor, this process or the local pool (see solve_from_starts)."""
    everything = np.arange(len(starts))
    if executor is None and _too_small_for_a_pool(len(starts), size, workers, deflate):
        executor = InProcessExecutor()
    if executor is not None:
        if deflate:
            _solve_with_deflation(executor, recipe, starts, size, options, results, bar)
        else:
            _solve_independently(executor, recipe, starts, size, options, results, everything, bar)
    elif not deflate:
        _solve_locally(recipe, starts, size, options, workers, results, bar)
    elif _pool_unavailable(workers):
        _solve_with_deflation(InProcessExecutor(), recipe, starts, size, options, results, bar)
    else:  # batches depend on earlier ones: one pool for all of them
        with _pool_session(workers) as pool:
            _solve_with_deflation(pool, recipe, starts, size, options, results, bar)


def solve_from_starts(
    make_system: Callable[..., StationarySystem],
    system_args: tuple,
    starts: ArrayLike,
    *,
    options: NewtonOptions | Sequence[NewtonOptions] = DEFAULT_OPTIONS,
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
        less than starting the workers. The local workers end when this process ends, by
        any signal (critpoints.solver.lifeline); on SIGTERM the pool is torn down before
        this process ends. A script read from standard input, or one that calls this
        outside ``if __name__ == "__main__":``, runs in this process with a one-line
        warning (workers would have to re-import it).
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
        If ``make_system`` or ``system_args`` cannot be pickled, or ``executor`` has no
        ``submit``.
    ValueError
        For a ``starts`` array that is not 2-D and finite, or a bad ``chunk_size``.
    Interrupted
        On Ctrl-C (a KeyboardInterrupt, raised promptly: runs in this process go in short
        batches, a local pool is torn down at once); ``results`` holds the finished runs.
    WorkerDied
        When a worker process of the pool ended without finishing its task (killed, e.g. by
        the out-of-memory killer); the other workers are stopped.

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
    check_executor(executor)
    progress = check.flag("progress", progress)
    deflate = check.flag("deflate", deflate)
    workers = default_workers()
    size = _chunk_size(chunk_size, len(starts), workers, deflate)
    results: list[NewtonResult | None] = [None] * len(starts)
    with tqdm(total=len(starts), disable=not progress or None, unit="start", desc="Newton") as bar:
        try:
            _run(executor, recipe, starts, size, per_start, workers, deflate, results, bar)
        except Interrupted:
            raise
        except KeyboardInterrupt:
            raise Interrupted(results) from None
        except concurrent.futures.BrokenExecutor as error:
            finished = sum(result is not None for result in results)
            raise WorkerDied(
                f"a worker process ended without finishing its task ({error}); {finished} of {len(starts)} runs "
                "had finished. A worker killed by SIGKILL was most likely stopped by the out-of-memory killer: "
                "use fewer workers or a smaller setting",
                results,
            ) from error
    return results  # type: ignore[return-value]
