"""Faults: the parent killed (SIGKILL, SIGTERM), a worker killed, Ctrl-C in this process and with
a pool, a failed write under a file-size limit, scripts from standard input or without the
main guard. Each case runs a script in a fresh process and watches its descendants in /proc."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")

needs_two_cpus = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the local pool needs two CPUs")

PRELUDE = f"""
import sys, os, time, json
sys.path.insert(0, {str(TESTS)!r})
import numpy as np
from toy_systems import make_sleepy, make_quartic, KILL_MARKER
from critpoints.solver import restarts
from critpoints.solver.restarts import solve_from_starts
TILTS = (0.3, -0.2, 0.1)
"""


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return int(fields[1]), fields[0], int(fields[19])


def _descendants(pid: int) -> dict[int, int]:
    """Every live descendant of ``pid``: pid -> start time."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            table[int(entry)] = stat
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, state, start) in table.items():
            if ppid == parent and child not in found and state not in ("Z", "X"):
                found[child] = start
                frontier.append(child)
    return found


def _alive(processes: dict[int, int]) -> list[int]:
    """The processes of ``processes`` still running (same start time, not a zombie)."""
    alive = []
    for pid, start in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[1] not in ("Z", "X") and stat[2] == start:
            alive.append(pid)
    return alive


def _script(tmp_path: Path, body: str, name: str = "job.py") -> Path:
    path = tmp_path / name
    path.write_text(PRELUDE + textwrap.dedent(body))
    return path


def _start(path: Path) -> subprocess.Popen:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    return subprocess.Popen(
        [sys.executable, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=path.parent,
        env=environment,
        start_new_session=True,  # its own process group, as a job started from a shell
    )


def _wait_for_pool(process: subprocess.Popen, count: int = 4, timeout: float = 30.0) -> dict[int, int]:
    """Wait until the process has ``count`` descendants (fork server, workers, resource tracker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _descendants(process.pid)
        if len(found) >= count:
            time.sleep(0.3)  # let the workers finish starting
            return _descendants(process.pid)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"no pool appeared: {process.communicate()}")


def _gone_within(processes: dict[int, int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while _alive(processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = _alive(processes)
    for pid in survivors:  # do not leak them into the rest of the suite
        os.kill(pid, signal.SIGKILL)
    return survivors


SLOW_POOL = """
if __name__ == "__main__":
    starts = np.random.default_rng(0).uniform(-1.5, 1.5, size=(60, 3))
    try:
        solve_from_starts(make_sleepy, (TILTS, 0.05), starts, progress=False)
    except KeyboardInterrupt as error:
        finished = sum(r is not None for r in error.results)
        print(json.dumps(dict(kind=type(error).__name__, finished=finished, at=time.time())), flush=True)
"""


@needs_two_cpus
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_no_descendant_survives_the_parent(tmp_path, signum):
    process = _start(_script(tmp_path, SLOW_POOL))
    descendants = _wait_for_pool(process)
    assert len(descendants) >= 4
    os.kill(process.pid, signum)
    assert process.wait(timeout=10) == -signum
    assert _gone_within(descendants, 4.0) == []


@needs_two_cpus
def test_ctrl_c_with_a_pool_returns_promptly_with_the_finished_runs(tmp_path):
    process = _start(_script(tmp_path, SLOW_POOL))
    descendants = _wait_for_pool(process)
    sent = time.time()
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole group
    out, err = process.communicate(timeout=20)
    report = json.loads(out.splitlines()[-1])
    assert report["kind"] == "Interrupted" and report["finished"] >= 1
    assert report["at"] - sent < 3.0, err
    assert "Traceback" not in err, err  # the workers ignore SIGINT: no tracebacks from them
    assert _gone_within(descendants, 3.0) == []


@needs_two_cpus
def test_a_killed_worker_stops_the_run_with_a_clear_error(tmp_path):
    body = """
    if __name__ == "__main__":
        starts = np.random.default_rng(0).uniform(-1.5, 1.5, size=(60, 3))
        starts[30, 0] = KILL_MARKER
        began = time.time()
        try:
            solve_from_starts(make_sleepy, (TILTS, 0.05, os.getpid()), starts, progress=False)
        except restarts.WorkerDied as error:
            finished = sum(r is not None for r in error.results)
            print(json.dumps(dict(message=str(error), finished=finished, seconds=time.time() - began)))
    """
    process = _start(_script(tmp_path, body))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    report = json.loads(out.splitlines()[-1])
    assert "killed by SIGKILL" in report["message"] and "out-of-memory" in report["message"]
    assert report["finished"] < 60
    assert _descendants(process.pid) == {}


def test_ctrl_c_in_process_lands_between_compiled_calls(tmp_path):
    """The compiled Newton driver in this process: Ctrl-C gives a KeyboardInterrupt within a
    fraction of a second (not a SystemError after the batch), holding the finished runs."""
    body = """
    import signal, threading, critpoints
    from critpoints.solver.restarts import InProcessExecutor
    if __name__ == "__main__":
        setting = critpoints.Setting(p=4, d=4, m=4, loss="spectral")
        critpoints.enumerate_critical_points(setting, n_restarts=2, executor=InProcessExecutor(), progress=False)
        sent = []
        def interrupt():  # Ctrl-C, about 1 s into the solving
            sent.append(time.time())
            os.kill(os.getpid(), signal.SIGINT)
        threading.Timer(1.5, interrupt).start()
        try:
            critpoints.enumerate_critical_points(
                setting, n_restarts=100000, descent_fraction=0.0, executor=InProcessExecutor(), progress=False
            )
        except KeyboardInterrupt as error:
            delay = time.time() - sent[0]
            finished = sum(run is not None for run in error.results)
            print(json.dumps(dict(kind=type(error).__name__, delay=delay, message=str(error), finished=finished)))
    """
    process = _start(_script(tmp_path, body))
    out, err = process.communicate(timeout=60)
    assert out.strip(), err
    report = json.loads(out.splitlines()[-1])
    assert report["kind"] == "Interrupted" and "SystemError" not in err
    assert report["delay"] < 1.0, report
    assert 0 < report["finished"] < 100000
    assert report["message"] == f"interrupted after {report['finished']} of 100000 runs"


def test_a_write_past_the_file_size_limit_keeps_the_previous_file(tmp_path):
    body = """
    import errno, resource, signal
    from critpoints import Setting, enumerate_critical_points, load_result
    from critpoints.solver.restarts import InProcessExecutor
    if __name__ == "__main__":
        setting = Setting(p=3, d=3, m=3, loss="spectral", encoder="symrelu", bias=-0.3, constraint="unit_rows")
        result = enumerate_critical_points(setting, n_restarts=6, executor=InProcessExecutor(), progress=False)
        path = result.to_json("points.json")
        size = path.stat().st_size
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, resource.RLIM_INFINITY))
        failures = []
        for write, name in ((result.to_json, "points.json"), (result.to_csv, "points.csv")):
            try:
                write(name)
            except OSError as error:
                failures.append(error.errno == errno.EFBIG)
        loaded = load_result("points.json")
        print(json.dumps(dict(failures=failures, same=loaded.setting == setting and len(loaded) == len(result),
                              files=sorted(os.listdir(".")))))
    """
    script = _script(tmp_path, body)
    process = _start(script)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    report = json.loads(out.splitlines()[-1])
    assert report["failures"] == [True, True] and report["same"]
    assert report["files"] == ["job.py", "points.json"]  # no temporary, no half-written CSV


GUARDLESS = """
restarts.POOL_STARTUP_SECONDS = 0.0  # the work always wants the local pool
starts = np.random.default_rng(0).uniform(-1.5, 1.5, size=(24, 3))
results = solve_from_starts(make_quartic, (TILTS,), starts, progress=False)
print(json.dumps(dict(converged=sum(r.status == "converged" for r in results))))
"""


@needs_two_cpus
@pytest.mark.parametrize("how", ["standard input", "no main guard"])
def test_scripts_the_workers_cannot_import_run_in_this_process_with_one_warning(tmp_path, how):
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    if how == "standard input":
        source = PRELUDE + 'if __name__ == "__main__":\n' + textwrap.indent(GUARDLESS, "    ")
        command = dict(args=[sys.executable, "-"], input=source)
        expected = "the main script '<stdin>' is not a file"
    else:
        script = _script(tmp_path, GUARDLESS)
        command = dict(args=[sys.executable, str(script)])
        expected = "job.py line 12 runs critpoints outside an if __name__ == '__main__': block"
    done = subprocess.run(**command, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=environment)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["converged"] > 0
    warning_lines = [line for line in done.stderr.splitlines() if "RuntimeWarning" in line]
    assert len(warning_lines) == 1 and expected in warning_lines[0], done.stderr
    assert "put the call under if __name__ == '__main__':" in warning_lines[0]
