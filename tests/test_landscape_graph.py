"""map_landscape on the claim-3 setting, the landscape database (resume, merge, schema version),
and the graph's exports.

Edges are checked independently of the saddle-free descent that found them: each side of every
saddle is followed again by plain Riemannian gradient descent with small steps, and must reach
the same symmetry orbit."""

from __future__ import annotations

import csv
import json
import sqlite3

import numpy as np
import pytest

from critpoints import Setting, claim_setting, population_loss
from critpoints.landscape.connections import unstable_mode
from critpoints.landscape.database import SCHEMA_VERSION, LandscapeDatabase
from critpoints.landscape.graph import LandscapeGraph, load_graph
from critpoints.landscape.mapping import map_landscape
from critpoints.landscape.merge import merge_databases
from critpoints.landscape.orbits import orbit_key, same_orbit
from critpoints.landscape.points import spectrum_at
from critpoints.landscape.system import LossSystem
from critpoints.solver.restarts import InProcessExecutor
from derivations import claims

IN_PROCESS = InProcessExecutor()


def claim3(d: int) -> Setting:
    return claim_setting("spectral", d)


def gradient_descent_end(loss, theta, steps=20000, rate=0.5):
    """Plain Riemannian gradient descent with a fixed small step (independent of the solver)."""
    for _ in range(steps):
        gradient = loss.gradient(theta)
        if np.linalg.norm(gradient) < 1e-11:
            break
        theta = loss.manifold.retract(theta, -rate * gradient)
    return theta


@pytest.fixture(scope="module")
def claim3_graph():
    return map_landscape(claim3(3), None, n_restarts=40, seed=0, executor=IN_PROCESS, progress=False)


def test_claim3_every_minimum_is_joined_to_the_good_one(claim3_graph):
    graph = claim3_graph
    assert graph.connected_to_good()
    lowest = graph.basins[0]
    assert lowest.label == "good" and lowest.loss == pytest.approx(claims.claim3_minimum(3, 0.3, 0.5), abs=1e-12)
    assert graph.good == (lowest.id,)
    # one-hot d = 3: the neurons sit on the atoms as 1+1+1, 2+1 or 3
    assert len(graph.minima) == 3 and not graph.manifolds
    expected = sorted(claims.signed_atom_loss(counts, 0.3, 0.5) for counts in ([1, 1, 1], [2, 1, 0], [3, 0, 0]))
    assert sorted(node.loss for node in graph.minima) == pytest.approx(expected, abs=1e-12)
    rows = graph.barriers()
    assert len(rows) == 2 and all(row.barrier > 0 and row.saddle is not None for row in rows)


def test_claim3_edges_are_index_one_saddles_whose_sides_descend_to_their_ends(claim3_graph):
    graph = claim3_graph
    setting = graph.setting
    loss = population_loss(setting)
    system = LossSystem(loss)
    assert graph.edges
    for edge in graph.edges:
        saddle = graph.node(edge.saddle)
        theta = loss.pack(**saddle.point.params)
        spectrum = spectrum_at(loss, theta)
        assert spectrum.kind == "saddle" and spectrum.index == 1
        ends = [graph.node(end) for end in edge.ends]
        assert edge.barriers == pytest.approx([saddle.loss - end.loss for end in ends], abs=1e-15)
        assert all(end.role == "minimum" and end.loss < saddle.loss for end in ends)
        mode = unstable_mode(system, theta)
        reached = sorted(
            (
                gradient_descent_end(loss, loss.manifold.retract(theta, sign * 1e-3 * mode.direction))
                for sign in (1, -1)
            ),
            key=loss.value,
        )
        expected = sorted(ends, key=lambda end: end.loss)
        for point, end in zip(reached, expected):
            key = orbit_key(loss.symmetries, point)
            assert same_orbit(key, orbit_key(loss.symmetries, loss.pack(**end.point.params)), 1e-5)


def explore_only(database, seed, n_restarts=30):
    """The random restarts alone (no minima-first search), connected but not searched."""
    return map_landscape(
        claim3(3),
        database,
        n_restarts=n_restarts,
        seed=seed,
        minima="restarts",
        search=False,
        executor=IN_PROCESS,
        progress=False,
    )


def orbit_signature(graph: LandscapeGraph):
    """The graph up to ids: nodes by orbit key (with role, label, count), edges by the orbits they join."""
    loss = population_loss(graph.setting)
    keys = {node.id: orbit_key(loss.symmetries, loss.pack(**node.point.params)) for node in graph.nodes}

    def canonical(node_id):
        return tuple(np.round(keys[node_id] / 1e-7).astype(np.int64))

    nodes = sorted((canonical(n.id), n.role, n.label, n.count, round(n.loss, 12)) for n in graph.nodes)
    edges = sorted(
        (canonical(e.saddle), tuple(sorted((canonical(e.ends[0]), canonical(e.ends[1])))), round(e.height, 12))
        for e in graph.edges
    )
    return nodes, edges


def test_two_half_runs_merged_equal_one_database_with_both_runs(tmp_path):
    first, second, both = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "both.sqlite"
    explore_only(first, seed=0)
    explore_only(second, seed=1)
    explore_only(both, seed=0)
    one = explore_only(both, seed=1)
    assert merge_databases(tmp_path / "merged.sqlite", first, second)["runs"] == 2
    with LandscapeDatabase(tmp_path / "merged.sqlite") as merged:
        graph = LandscapeGraph.from_database(merged, claim3(3))
    assert orbit_signature(graph) == orbit_signature(one)
    assert sum(node.count for node in graph.nodes) == 60 == sum(node.count for node in one.nodes)
    assert graph.edges and len(graph.edges) == len(one.edges)
    # merging the same files again adds nothing: runs are known by their uid
    assert merge_databases(tmp_path / "merged.sqlite", first, second) == {"runs": 0, "points": 0, "edges": 0}


def test_a_later_call_resumes_the_starts_not_yet_done_and_counts_add_up(tmp_path):
    path = tmp_path / "resume.sqlite"
    explore_only(path, seed=0, n_restarts=15)
    again = explore_only(path, seed=0, n_restarts=15)  # nothing left to do
    assert sum(node.count for node in again.nodes) == 15
    resumed = explore_only(path, seed=0, n_restarts=30)
    once = explore_only(tmp_path / "once.sqlite", seed=0, n_restarts=30)
    assert orbit_signature(resumed) == orbit_signature(once)
    assert [run.status for run in resumed.runs] == ["finished"] * 3
    assert sum(run.newton_statuses.get("converged", 0) for run in resumed.runs) == 30


def test_the_default_executor_gives_the_same_graph(tmp_path):
    """executor=None decides on its own whether to start a pool: the result must not depend on it."""
    default = map_landscape(claim3(3), None, n_restarts=12, seed=2, minima="restarts", search=False, progress=False)
    assert orbit_signature(default) == orbit_signature(explore_only(tmp_path / "x.sqlite", seed=2, n_restarts=12))


def test_the_setting_is_stored_and_rebuilt(tmp_path):
    path = tmp_path / "s.sqlite"
    explore_only(path, seed=0, n_restarts=4)
    with LandscapeDatabase(path) as database:
        (setting,) = database.settings().values()
        assert setting == claim3(3)
        assert database.integrity() == "ok"


def test_files_of_another_schema_version_or_kind_are_refused(tmp_path):
    path = tmp_path / "old.sqlite"
    LandscapeDatabase(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(
        ValueError, match=f"schema version 99; this version of critpoints reads schema version {SCHEMA_VERSION}"
    ):
        LandscapeDatabase(path)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE things (x)")
    with pytest.raises(ValueError, match="not a landscape database"):
        LandscapeDatabase(other)
    text = tmp_path / "notes.txt"
    text.write_text("hello " * 100)
    with pytest.raises(ValueError, match="not an SQLite file"):
        LandscapeDatabase(text)
    with pytest.raises(ValueError, match="cannot open the landscape database"):
        LandscapeDatabase(tmp_path)  # a folder
    LandscapeDatabase(tmp_path / "new" / "folder" / "graph.sqlite").close()  # folders are created


def test_the_predictor_field_has_no_landscape_to_map():
    setting = Setting(p=2, d=2, m=2, loss="ncl_predictor")
    with pytest.raises(ValueError, match="stop-gradient field"):
        map_landscape(setting, None, n_restarts=2, executor=IN_PROCESS, progress=False)


def test_exports_round_trip_and_networkx(claim3_graph, tmp_path):
    graph = claim3_graph
    graph.to_json(tmp_path / "graph.json")
    again = load_graph(tmp_path / "graph.json")
    assert again.to_dict() == json.loads(json.dumps(graph.to_dict()))
    assert again.barrier_table() == graph.barrier_table()
    pandas = pytest.importorskip("pandas")
    graph.to_csv(tmp_path / "graph.csv")
    table = pandas.read_csv(tmp_path / "graph.csv")  # the header is the first line
    assert (table.record == "node").sum() == len(graph.nodes) and (table.record == "edge").sum() == len(graph.edges)
    nodes = table[table.record == "node"].set_index("id")
    for node in graph.nodes:
        assert nodes.loc[node.id, "loss"] == node.loss and nodes.loc[node.id, "label"] == node.point.label
    with open(tmp_path / "graph.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(graph.nodes) + len(graph.edges)
    meta = json.loads((tmp_path / "graph.csv.meta.json").read_text())
    assert Setting.from_dict(meta["setting"]) == graph.setting and meta["table"]["rows"] == len(table)
    # no temporary files left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.csv", "graph.csv.meta.json", "graph.json"]
    stale = json.loads((tmp_path / "graph.json").read_text())
    stale["format_version"] = 99
    (tmp_path / "stale.json").write_text(json.dumps(stale))
    with pytest.raises(ValueError, match="format version 99"):
        load_graph(tmp_path / "stale.json")
    networkx = pytest.importorskip("networkx")
    nx_graph = graph.to_networkx()
    assert nx_graph.number_of_nodes() == len(graph.basins) and nx_graph.number_of_edges() == len(graph.edges)
    assert networkx.is_connected(nx_graph)
    edge = graph.edges[0]
    assert nx_graph.edges[edge.ends[0], edge.ends[1], edge.saddle]["height"] == edge.height


def test_catalogue_matches_symmetry_images_and_keeps_equal_loss_orbits_apart():
    """d = 6: neurons on atoms 2+2+2 and 3+1+1+1 have the same loss (it depends on sum n_j^2 only)
    but lie on different orbits; a scrambled copy of either matches only itself."""
    from critpoints.landscape.catalogue import Catalogue

    d = 6
    loss = population_loss(claim3(d))
    eye = np.eye(d)
    pairs, triple = loss.pack(W=eye[[0, 0, 1, 1, 2, 2]]), loss.pack(W=eye[[0, 0, 0, 1, 2, 3]])
    assert loss.value(pairs) == pytest.approx(loss.value(triple), abs=1e-15)
    catalogue = Catalogue(loss)
    catalogue.add(7, "minimum", pairs, loss.value(pairs))
    rng = np.random.default_rng(5)
    group = loss.symmetries

    def scrambled(theta):
        theta = group.flip(group.permute(theta, rng.permutation(d)), rng.choice([-1.0, 1.0], size=d))
        return group.act_on_inputs(theta, rng.permutation(d), rng.choice([-1.0, 1.0], size=d))

    assert catalogue.same_orbit_as(scrambled(pairs), loss.value(pairs)) == 7
    assert catalogue.same_orbit_as(scrambled(triple), loss.value(triple)) is None
    catalogue.add(8, "minimum", triple, loss.value(triple))
    assert catalogue.same_orbit_as(scrambled(triple), loss.value(triple)) == 8


def test_minima_from_another_search_are_added_and_joined(claim3_graph):
    """Points handed in (here the minima of an earlier graph) are stored without counts and searched."""
    loss = population_loss(claim3_graph.setting)
    minima = np.array([loss.pack(**node.point.params) for node in claim3_graph.minima])
    graph = map_landscape(claim3(3), None, n_restarts=0, points=minima, executor=IN_PROCESS, progress=False)
    assert len(graph.minima) == len(minima) and all(node.count == 0 for node in graph.minima)
    assert graph.connected_to_good()
    assert sorted(node.loss for node in graph.minima) == pytest.approx(
        sorted(node.loss for node in claim3_graph.minima)
    )


def test_the_minima_first_search_gives_every_minimum_joined_to_the_good_one(tmp_path):
    """d = 4 without random restarts: the minima come from explore_minima alone. All p(4) = 5
    signed-atom minima are in the graph at their derived values, each joined to the good one;
    a second call on the file does not repeat the search."""
    path = tmp_path / "explore.sqlite"
    graph = map_landscape(claim3(4), path, n_restarts=0, minima="explore", executor=IN_PROCESS, progress=False)
    partitions = ([1, 1, 1, 1], [2, 1, 1, 0], [2, 2, 0, 0], [3, 1, 0, 0], [4, 0, 0, 0])
    expected = sorted(claims.signed_atom_loss(counts, 0.3, 0.5) for counts in partitions)
    assert sorted(node.loss for node in graph.minima) == pytest.approx(expected, abs=1e-10)
    assert graph.connected_to_good() and all(node.count == 0 for node in graph.minima)
    assert any(note.startswith("minima-first search: 5 minima") for note in graph.notes)
    again = map_landscape(claim3(4), path, n_restarts=0, minima="explore", executor=IN_PROCESS, progress=False)
    assert any("not repeated" in note for note in again.notes)
    assert sorted(node.loss for node in again.minima) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"minima": "random"}, "unknown minima 'random'"),
        ({"minima": "restarts", "explore_options": {"patience": 2}}, "need minima='explore'"),
        ({"minima": "explore", "explore_options": {"rounds": 2}}, r"unknown explore_options \['rounds'\]"),
    ],
)
def test_minima_options_are_checked_by_name(options, message):
    with pytest.raises(ValueError, match=message):
        map_landscape(claim3(3), None, n_restarts=0, progress=False, **options)
