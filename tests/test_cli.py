"""The critpoints command: exit codes, one-line errors, files written."""

from __future__ import annotations

import csv
import json

import pytest

from critpoints import load_result
from critpoints.cli import main, short_form
from critpoints.dynamics.descent import load_dynamics

SMALL = ["--p", "3", "--d", "3", "--m", "3", "--encoder", "symrelu", "--bias", "-0.3", "--constraint", "unit_rows"]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_enumerate_writes_json_csv_and_plots(tmp_path, capsys):
    out_json, out_csv = tmp_path / "points.json", tmp_path / "points.csv"
    status = main(
        [
            "enumerate",
            *SMALL,
            "--loss",
            "spectral",
            "--restarts",
            "8",
            "--jobs",
            "1",
            "--json",
            str(out_json),
            "--csv",
            str(out_csv),
            "--plot",
            str(tmp_path / "fig"),
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert printed.startswith("estimate: 9 parameters, Hessian 648 B, support 24 points; peak memory")
    assert "critical points of: p=3 d=3 m=3 loss=spectral" in printed
    from_json, from_csv = load_result(out_json), load_result(out_csv)
    assert len(from_json) == len(from_csv) > 0
    assert [p.loss for p in from_json] == pytest.approx([p.loss for p in from_csv])
    for name in ("minima.png", "spectra.png", "index_vs_loss.png"):
        assert (tmp_path / "fig" / name).stat().st_size > 0


def test_dynamics_writes_json_and_csv(tmp_path, capsys):
    out_json, out_csv = tmp_path / "runs.json", tmp_path / "runs.csv"
    status = main(
        [
            "dynamics",
            *SMALL,
            "--loss",
            "ncl_cosine",
            "--starts",
            "5",
            "--init",
            "warm_start:3",
            "--lr",
            "0.05",
            "--max-steps",
            "500",
            "--json",
            str(out_json),
            "--csv",
            str(out_csv),
        ]
    )
    assert status == 0
    assert "95% CI (Wilson)" in capsys.readouterr().out
    record = json.loads(out_json.read_text())
    assert len(record["trajectories"]) == 5 and record["metadata"]["schedule"] == "alternating"
    with open(out_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and {row["label"] for row in rows} <= {"good", "bad", "collapsed"}
    assert {row["status"] for row in rows} <= {"converged", "max_iterations", "diverged"}
    loaded = load_dynamics(out_csv)
    assert (
        [t.status for t in loaded] == [row["status"] for row in rows] == [t["status"] for t in record["trajectories"]]
    )


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["enumerate", *SMALL, "--loss", "spectral", "--frobnicate"], "unrecognized arguments"),
        (["enumerate", *SMALL, "--loss", "hinge"], "invalid choice"),
        (["enumerate", "--p", "3", "--loss", "spectral"], "required"),
        (["enumerate", *SMALL, "--loss", "spectral", "--restarts", "many"], "invalid int value"),
        (["launch"], "invalid choice"),
    ],
)
def test_bad_flags_one_line_exit_2(argv, fragment, capsys):
    assert main(argv) == 2
    line = _error_line(capsys)
    assert line.startswith("critpoints") and fragment in line


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["enumerate", "--p", "2", "--d", "3", "--m", "3", "--loss", "spectral"], "p must be >= d"),
        (
            ["enumerate", "--p", "3", "--d", "3", "--m", "3", "--loss", "spectral", "--bias", "-0.3"],
            "bias applies only",
        ),
        (["enumerate", *SMALL, "--loss", "spectral", "--augmentation", "independent_mask:1.5"], "q must lie in"),
        (["enumerate", *SMALL, "--loss", "spectral", "--latent", "fixed_count:5:1"], "k <= d"),
        (["enumerate", *SMALL, "--loss", "spectral", "--dictionary", "random"], "needs a seed"),
        (["enumerate", *SMALL, "--loss", "spectral", "--temperature", "0.5"], "temperature= applies only"),
        (["dynamics", *SMALL, "--loss", "spectral", "--lr", "-1"], "--lr must lie in"),
        (["dynamics", *SMALL, "--loss", "spectral", "--init", "warm:2"], "--init warm:2: unknown init 'warm'"),
        (["enumerate", *SMALL, "--loss", "spectral", "--restarts", "0"], "--restarts must be"),
        (["enumerate", *SMALL, "--loss", "spectral", "--seed", "-1"], "--seed must be an integer >= 0, got --seed=-1"),
        (["dynamics", *SMALL, "--loss", "spectral", "--seed", "-1"], "--seed must be an integer >= 0"),
        (["dynamics", *SMALL, "--loss", "spectral", "--init", "gaussian:-1"], "init scale must lie in (0.0, inf]"),
        (["dynamics", *SMALL, "--loss", "spectral", "--init", "warm_start:nan"], "exponent c must be a finite number"),
        (["dynamics", *SMALL, "--loss", "spectral", "--init", "uniform:3"], "'uniform' takes no parameters"),
        (["dynamics", *SMALL, "--loss", "spectral", "--init", "gaussian:1:2"], "init must be 'gaussian' or"),
        (["enumerate", *SMALL, "--loss", "infonce", "--temperature", "1e-7"], "temperature must be >= 1e-05"),
        (
            ["enumerate", "--p", "90", "--d", "90", "--m", "90", "--loss", "spectral", "--max-memory-gib", "1"],
            "more than max_memory_gib=1",
        ),
    ],
)
def test_setting_errors_one_line_exit_2(argv, fragment, capsys):
    assert main(argv) == 2
    line = _error_line(capsys)
    assert line.startswith("critpoints ") and ": error: " in line and fragment in line


def test_output_paths_are_checked_before_the_computation(tmp_path, capsys, monkeypatch):
    """A --json into a missing folder, or --plot onto a file, fails at once (exit 2), not after the work."""
    import critpoints.landscape.engine as engine

    def no_work(*args, **kwargs):
        raise AssertionError("the computation started")

    monkeypatch.setattr(engine, "enumerate_critical_points", no_work)
    occupied = tmp_path / "taken"
    occupied.write_text("x")
    cases = [
        (["--json", str(tmp_path / "missing" / "points.json")], "does not exist"),
        (["--csv", str(tmp_path)], "must be a file path"),
        (["--plot", str(occupied)], "--plot must be a folder"),
    ]
    for extra, fragment in cases:
        assert main(["enumerate", *SMALL, "--loss", "spectral", "--restarts", "4", *extra]) == 2
        line = _error_line(capsys)
        assert fragment in line, line


def test_plot_format_svg(tmp_path):
    status = main(
        ["enumerate", *SMALL, "--loss", "spectral", "--restarts", "6", "--jobs", "1"]
        + ["--plot", str(tmp_path / "fig"), "--plot-format", "svg"]
    )
    assert status == 0
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == ["index_vs_loss.svg", "minima.svg", "spectra.svg"]


def test_short_forms():
    assert short_form("identity") == "identity"
    assert short_form("random:3") == ("random", 3)
    assert short_form("independent_mask:0.25") == ("independent_mask", 0.25)
    assert short_form("one_hot:positive") == ("one_hot", "positive")


def test_sparsity_latent_and_sample_average(tmp_path, capsys):
    status = main(
        [
            "enumerate",
            "--p",
            "4",
            "--d",
            "4",
            "--m",
            "2",
            "--loss",
            "spectral",
            "--latent",
            "sparsity:0.3",
            "--restarts",
            "3",
            "--jobs",
            "1",
        ]
    )
    assert status == 0
    assert "FixedCount(k=2, k_neg=1)" in capsys.readouterr().out
