"""Worker processes that end when the process that started them ends, by any signal.

The local pool of critpoints.solver.restarts starts its workers from a fork server. When the
owner (the process that created the pool) dies without shutting the pool down — SIGKILL,
the out-of-memory killer, a scheduler's SIGTERM — nothing else would stop the fork server,
the workers or multiprocessing's resource tracker: they would stay, reparented to init,
holding their memory. Two mechanisms end them:

* **parent-death signals** (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, through ctypes):
  the fork server gets one when it is started with :data:`FORKSERVER_PRELOAD` (it dies with
  the owner), and each worker gets one in :func:`worker_initializer` (it dies with the fork
  server). The kernel delivers them, so they act even while a worker is inside a long
  compiled call that holds the interpreter lock;
* a **watchdog thread** in each worker (everywhere, and a fallback where prctl is missing)
  that polls every :data:`WATCH_INTERVAL` seconds whether its parent changed or the owner
  (its pid and start time, so a reused pid does not fool it) is gone, and then exits.

Once the workers are gone the fork server and the resource tracker exit by themselves.
Workers also ignore SIGINT: Ctrl-C in a terminal reaches the whole process group, and the
owner handles it by tearing the pool down.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import threading
import time
from typing import NamedTuple

#: prctl option number of PR_SET_PDEATHSIG (linux/prctl.h).
PR_SET_PDEATHSIG = 1

#: Seconds between two checks of the watchdog.
WATCH_INTERVAL = 0.25

#: Module the fork server imports at start-up: it gives the fork server a parent-death signal.
FORKSERVER_PRELOAD = "critpoints.solver._forkserver_lifeline"


class ProcessIdentity(NamedTuple):
    """A process: its pid, and its start time (clock ticks after boot; None where /proc is missing)."""

    pid: int
    start_time: int | None


def set_parent_death_signal(signum: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent dies (Linux only).

    Returns whether it was set. The parent is the thread that created this process: a
    process whose creating thread ends gets the signal too.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def identify(pid: int) -> ProcessIdentity:
    """The identity of process ``pid`` (start time from /proc where it exists)."""
    fields = _stat_fields(pid)
    return ProcessIdentity(pid, int(fields[19]) if fields and len(fields) > 19 else None)


def this_process() -> ProcessIdentity:
    """The identity of the calling process."""
    return identify(os.getpid())


def alive(process: ProcessIdentity) -> bool:
    """Whether ``process`` still runs: it exists, is not a zombie, and is the same process
    (same start time) when /proc tells."""
    if process.start_time is not None:
        fields = _stat_fields(process.pid)
        if fields is None:
            return False
        return fields[0] not in ("Z", "X", "x") and int(fields[19]) == process.start_time
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(parent: int, owner: ProcessIdentity) -> None:
    while True:
        time.sleep(WATCH_INTERVAL)
        if os.getppid() != parent or not alive(owner):
            os._exit(1)


def worker_initializer(owner: ProcessIdentity) -> None:
    """Run first in every worker of the local pool: end with the owner, leave Ctrl-C to it.

    Parameters
    ----------
    owner : ProcessIdentity
        The process that created the pool (:func:`this_process` there).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent or not alive(owner):  # the parent or the owner died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(parent, owner), name="critpoints-lifeline", daemon=True).start()


def _context(start_method: str) -> multiprocessing.context.BaseContext:
    """The context of ``start_method``; a fork server is set to preload :data:`FORKSERVER_PRELOAD`
    (added to the modules already configured, multiprocessing's default being the main module;
    it applies when the fork server starts)."""
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        server = getattr(multiprocessing.forkserver, "_forkserver", None)
        configured = list(getattr(server, "_preload_modules", ["__main__"]))
        if FORKSERVER_PRELOAD not in configured:
            context.set_forkserver_preload([*configured, FORKSERVER_PRELOAD])
    return context


def start_fork_server() -> None:
    """Start the fork server of :func:`process_pool` now, without waiting for it.

    It imports :data:`FORKSERVER_PRELOAD` (and with it the package) at its start, and a pool's
    first worker waits for that; started before work done here, the import overlaps with it.
    """
    _context("forkserver")
    multiprocessing.forkserver.ensure_running()


def process_pool(workers: int, start_method: str = "forkserver") -> concurrent.futures.ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` whose workers end when this process ends, by any signal, and
    ignore Ctrl-C (:func:`worker_initializer`).

    Parameters
    ----------
    workers : int
        Number of worker processes.
    start_method : {"forkserver", "spawn"}
        How workers start (never "fork": forking a process whose OpenMP or BLAS threads have
        started is unsafe). With "spawn" the workers are children of this process, so their
        parent-death signal acts directly; with "forkserver" it acts through the fork server.
    """
    if start_method not in ("forkserver", "spawn"):
        raise ValueError(f"unknown start_method {start_method!r}; known: 'forkserver', 'spawn'")
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_context(start_method),
        initializer=worker_initializer,
        initargs=(this_process(),),
    )
