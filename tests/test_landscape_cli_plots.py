"""The disconnectivity figures (format by file name, merges drawn at the tree's heights) and the
``critpoints landscape`` command."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import image
from matplotlib.figure import Figure

from critpoints import Setting, load_graph, map_landscape, plots
from critpoints.cli import main
from critpoints.landscape.database import LandscapeDatabase
from critpoints.solver.restarts import InProcessExecutor

SMALL = ["--p", "3", "--d", "3", "--m", "3", "--encoder", "symrelu", "--bias", "-0.3", "--constraint", "unit_rows"]


@pytest.fixture(scope="module")
def graph():
    setting = Setting(p=3, d=3, m=3, loss="spectral", encoder="symrelu", bias=-0.3, constraint="unit_rows")
    return map_landscape(setting, None, n_restarts=40, seed=0, executor=InProcessExecutor(), progress=False)


def test_figures_are_written_in_the_format_of_their_file_name(graph, tmp_path):
    png = plots.disconnectivity_graph(graph, tmp_path / "tree.png")
    assert image.imread(png).shape[:2] == (int(4.5 * plots.DPI), int(6.0 * plots.DPI))
    svg = plots.disconnectivity_graph(graph, tmp_path / "tree.svg")
    assert b"<svg" in svg.read_bytes()[:500]
    pdf = plots.disconnectivity_panels([graph, graph], tmp_path / "pair.PDF", titles=["a", "b"])
    assert pdf.read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ValueError, match=r"path must end in one of \.png, \.svg, \.pdf"):
        plots.disconnectivity_graph(graph, tmp_path / "tree.jpg")


def test_merges_are_drawn_at_the_heights_of_the_tree_and_leaves_at_the_minima(graph):
    axis = Figure().add_subplot(1, 1, 1)
    plots._draw_disconnectivity(axis, graph, None)
    horizontal = sorted(
        line.get_ydata()[0]
        for line in axis.lines
        if len(line.get_ydata()) == 2 and line.get_ydata()[0] == line.get_ydata()[1]
    )
    assert horizontal == pytest.approx(graph.disconnectivity().merge_heights(), abs=0)
    leaves = np.concatenate(
        [collection.get_offsets()[:, 1] for collection in axis.collections if len(collection.get_offsets())]
    )
    assert sorted(leaves) == pytest.approx(sorted(node.loss for node in graph.minima), abs=0)


def test_landscape_command_writes_the_graph_and_the_figure_and_resumes(tmp_path, capsys):
    db, out_json, out_csv = tmp_path / "claim3.sqlite", tmp_path / "graph.json", tmp_path / "graph.csv"
    arguments = ["landscape", *SMALL, "--loss", "spectral", "--restarts", "20", "--jobs", "1", "--db", str(db)]
    status = main([*arguments, "--json", str(out_json), "--csv", str(out_csv), "--plot", str(tmp_path / "fig")])
    assert status == 0
    printed = capsys.readouterr().out
    assert "landscape of: p=3 d=3 m=3 loss=spectral" in printed and "lowest barrier to a good minimum" in printed
    assert (tmp_path / "fig" / "disconnectivity.png").stat().st_size > 0
    written = load_graph(out_json)
    assert written.connected_to_good() and out_csv.read_text().startswith("record,id,role,")
    assert main(arguments) == 0
    with LandscapeDatabase(db) as database:
        runs = database.runs()
    assert [run.status for run in runs] == ["finished", "finished"]
    assert sum(run.newton_statuses.get("converged", 0) for run in runs) >= 20


def test_landscape_command_errors_are_one_line(tmp_path, capsys):
    assert main(["landscape", *SMALL, "--loss", "ncl_predictor", "--restarts", "2", "--jobs", "1"]) == 2
    assert "stop-gradient field" in capsys.readouterr().err
    text = tmp_path / "notes.txt"
    text.write_text("not a database " * 50)
    assert main(["landscape", *SMALL, "--loss", "spectral", "--restarts", "2", "--jobs", "1", "--db", str(text)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a landscape database" in err[0]
    assert main(["landscape", *SMALL, "--loss", "spectral", "--searches", "-1"]) == 2
    assert "--searches" in capsys.readouterr().err


def test_landscape_command_takes_its_minima_from_the_minima_first_search(capsys):
    arguments = ["landscape", *SMALL, "--loss", "spectral", "--restarts", "0", "--minima", "explore", "--jobs", "1"]
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    assert "minima-first search: 3 minima" in printed and "groups joined by saddles: 1" in printed
