"""A run of map_landscape killed mid-way leaves a database that opens, is consistent and resumes.

The run goes in a subprocess; once it has committed a few batches it is stopped by Ctrl-C
(SIGINT to the parent), by SIGKILL of one of its pool's worker processes, or by SIGKILL of the
parent itself. Every committed batch must be whole: as many Newton runs tallied as starts
recorded done, as many sightings as converged runs."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from critpoints import Setting
from critpoints.landscape.database import LandscapeDatabase
from critpoints.landscape.mapping import map_landscape
from critpoints.solver.restarts import InProcessExecutor

psutil = pytest.importorskip("psutil")

SCRIPT = """
import concurrent.futures, multiprocessing, sys
from critpoints import Setting
from critpoints.landscape.mapping import map_landscape
from critpoints.solver.restarts import InProcessExecutor

if __name__ == "__main__":
    path, mode = sys.argv[1], sys.argv[2]
    setting = Setting(p=4, d=4, m=4, loss="spectral", encoder="symrelu", bias=-0.3, constraint="unit_rows")
    executor = InProcessExecutor()
    if mode == "pool":
        executor = concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver"))
    map_landscape(
        setting, path, n_restarts=5000, seed=0, minima="restarts", batch_size=4, search=False, executor=executor,
        progress=False,
    )
"""

SETTING = Setting(p=4, d=4, m=4, loss="spectral", encoder="symrelu", bias=-0.3, constraint="unit_rows")


def starts_done(path) -> int:
    """Starts recorded done in the file (0 while it does not exist yet or is locked)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.1) as connection:
            return int(connection.execute("SELECT COALESCE(SUM(stop - first), 0) FROM explored").fetchone()[0])
    except sqlite3.Error:
        return 0


def run_and_stop(path, mode: str, stop) -> int:
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(path), mode], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while starts_done(path) < 12:
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the run committed nothing in 120 s"
            time.sleep(0.05)
        stop(process)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode


def check_consistent_and_resume(path, expected_status: str) -> None:
    with LandscapeDatabase(path) as database:
        assert database.integrity() == "ok"
        (run,) = database.runs()
        assert run.status == expected_status
        done = starts_done(path)
        assert sum(run.newton_statuses.values()) == done  # whole batches only
        assert sum(database.sightings(run.id).values()) == run.newton_statuses.get("converged", 0)
    total = done + 6
    graph = map_landscape(
        SETTING,
        path,
        n_restarts=total,
        seed=0,
        minima="restarts",  # the restarts alone: their sightings are the node counts
        search=False,
        executor=InProcessExecutor(),
        progress=False,
    )
    assert [r.status for r in graph.runs] == [expected_status, "finished"]
    assert starts_done(path) == total  # the rest, each start once
    assert sum(node.count for node in graph.nodes) == sum(r.newton_statuses.get("converged", 0) for r in graph.runs)


def test_ctrl_c_of_the_parent_marks_the_run_interrupted_and_the_file_resumes(tmp_path):
    path = tmp_path / "sigint.sqlite"
    code = run_and_stop(path, "in_process", lambda process: process.send_signal(signal.SIGINT))
    assert code != 0
    check_consistent_and_resume(path, "interrupted")


def test_a_killed_worker_process_marks_the_run_interrupted_and_the_file_resumes(tmp_path):
    path = tmp_path / "worker.sqlite"

    def kill_a_worker(process):
        family = psutil.Process(process.pid).children(recursive=True)
        pids = {child.pid for child in family}
        workers = [child for child in family if child.ppid() in pids]  # forked by the fork server
        assert workers
        workers[0].send_signal(signal.SIGKILL)

    code = run_and_stop(path, "pool", kill_a_worker)
    assert code != 0
    check_consistent_and_resume(path, "interrupted")


def test_a_killed_parent_leaves_the_run_running_and_the_file_resumes(tmp_path):
    path = tmp_path / "parent.sqlite"
    code = run_and_stop(path, "in_process", lambda process: process.send_signal(signal.SIGKILL))
    assert code == -signal.SIGKILL
    check_consistent_and_resume(path, "running")
