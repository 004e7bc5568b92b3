"""The landscape of one setting as a graph: basins (minima, flat sets of minima) joined by saddles.

A :class:`LandscapeGraph` holds the stationary points stored for a setting
(critpoints.landscape.database), each a :class:`~critpoints.landscape.result.CriticalPoint`
with its id and role, and the edges: one per connected index-1 saddle, joining the two
basins its descents reach, with the barrier L(saddle) - L(end) seen from each end
(critpoints.landscape.connections). From these it builds

* the disconnectivity tree (critpoints.landscape.disconnectivity): basins merged at the heights
  of their lowest connecting paths;
* the barrier table: for every basin that is not good, the lowest barrier on a path of known
  saddles to a good minimum;
* exports: JSON (read back by :func:`load_graph`), one CSV of nodes and edges, and a
  ``networkx.MultiGraph`` (with the optional ``networkx`` package).

Barriers are those of the saddles found: a missed saddle can only make a true barrier lower.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from critpoints import _files
from critpoints.landscape.database import EdgeRecord, LandscapeDatabase, PointRecord, RunRecord
from critpoints.landscape.disconnectivity import DisconnectivityTree, disconnectivity_tree, lowest_barriers
from critpoints.landscape.result import CriticalPoint
from critpoints.losses.parameters import ParameterLayout
from critpoints.losses.population_loss import population_loss
from critpoints.model.setting import Setting

__all__ = ["BarrierRow", "Edge", "LandscapeGraph", "Node", "load_graph"]

#: The record type and version of the graph files this module writes.
FORMAT = "LandscapeGraph"
FORMAT_VERSION = 1

#: Roles of the nodes that are basins of the graph (the others are saddles).
BASIN_ROLES = ("minimum", "manifold")


@dataclass(frozen=True)
class Node:
    """A stored stationary point: its id in the database, its role and its description.

    Attributes
    ----------
    id : int
    role : str
        "minimum", "manifold" (a flat set of minima) or "saddle" (index >= 1).
    point : CriticalPoint
        Loss, spectrum, labels, params and ``count``, the number of random starts of the
        database's runs that reached it (its basin count; 0 for points found only by
        connections and saddle searches).
    connection : str or None
        Saddles: "connected", "failed: <why>", or None if no connection was tried.
    """

    id: int
    role: str
    point: CriticalPoint
    connection: str | None = None

    @property
    def loss(self) -> float:
        """L at the point."""
        return self.point.loss

    @property
    def label(self) -> str:
        """ "good", "bad" or "collapsed"."""
        return self.point.label

    @property
    def count(self) -> int:
        """Random starts that reached the point."""
        return self.point.count


@dataclass(frozen=True)
class Edge:
    """An index-1 saddle joining two basins.

    Attributes
    ----------
    saddle : int
        The saddle's node id.
    ends : tuple of two int
        The basins its two descents reach (equal when both reach the same orbit).
    height : float
        L at the saddle.
    barriers : tuple of two float
        ``height - L(end)`` for each end.
    eigenvalue : float
        The saddle's negative Hessian eigenvalue.
    """

    saddle: int
    ends: tuple[int, int]
    height: float
    barriers: tuple[float, float]
    eigenvalue: float


@dataclass(frozen=True)
class BarrierRow:
    """The lowest barrier from one basin to a good minimum (nan when no known path joins them)."""

    basin: int
    role: str
    label: str
    loss: float
    recovered: int
    duplicated: int
    height: float
    barrier: float
    saddle: int | None


@dataclass(frozen=True)
class LandscapeGraph:
    """Basins and saddles of one setting's loss, and the edges that join them.

    Attributes
    ----------
    setting : Setting
    nodes : tuple of Node
        Every stored point, by id.
    edges : tuple of Edge
    runs : tuple of RunRecord
        The runs that wrote them.
    notes : tuple of str
        Remarks of the run that built the graph (e.g. why some work was skipped).
    """

    setting: Setting
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    runs: tuple[RunRecord, ...] = ()
    notes: tuple[str, ...] = field(default=())

    # -- access ---------------------------------------------------------------------

    @classmethod
    def from_database(
        cls,
        database: LandscapeDatabase,
        setting: Setting,
        notes: tuple[str, ...] = (),
        layout: ParameterLayout | None = None,
    ) -> LandscapeGraph:
        """The graph of ``setting`` as stored in ``database`` (empty if the setting is not there).

        ``layout`` is the setting's parameter layout (``population_loss(setting).layout``, built
        here when not given), which turns the stored points back into their blocks.
        """
        setting_id = database.find_setting(setting)
        if setting_id is None:
            return cls(setting, (), (), (), notes)
        layout = population_loss(setting).layout if layout is None else layout
        nodes = tuple(_node(record, layout) for record in database.points(setting_id))
        edges = tuple(_edge(record, nodes) for record in database.edges(setting_id))
        return cls(setting, nodes, edges, tuple(database.runs(setting_id)), notes)

    def _role(self, role: str) -> tuple[Node, ...]:
        return tuple(node for node in self.nodes if node.role == role)

    @property
    def minima(self) -> tuple[Node, ...]:
        """The isolated minima."""
        return self._role("minimum")

    @property
    def saddles(self) -> tuple[Node, ...]:
        """Stationary points of index >= 1 (connected or not)."""
        return self._role("saddle")

    @property
    def manifolds(self) -> tuple[Node, ...]:
        """Flat sets of minima (one representative each)."""
        return self._role("manifold")

    @property
    def basins(self) -> tuple[Node, ...]:
        """Minima and manifolds, lowest loss first."""
        return tuple(sorted((n for n in self.nodes if n.role in BASIN_ROLES), key=lambda n: (n.loss, n.id)))

    def node(self, node_id: int) -> Node:
        """The node with this id."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(f"no node with id {node_id} in the graph")

    @property
    def good(self) -> tuple[int, ...]:
        """Ids of the good basins (the targets of the barrier table)."""
        return tuple(node.id for node in self.basins if node.label == "good")

    # -- analysis -------------------------------------------------------------------

    def _edge_list(self) -> list[tuple[int, int, float, int]]:
        return [(edge.ends[0], edge.ends[1], edge.height, edge.saddle) for edge in self.edges]

    def disconnectivity(self) -> DisconnectivityTree:
        """The basins merged at the heights of their lowest known connecting paths."""
        return disconnectivity_tree({node.id: node.loss for node in self.basins}, self._edge_list())

    def components(self) -> list[list[int]]:
        """Basin ids of each group joined by known saddles, the lowest group first."""
        tree = self.disconnectivity()
        return [tree.component(root) for root in tree.roots]

    def connected_to_good(self) -> bool:
        """Whether every basin is joined to a good minimum by known saddles."""
        if not self.good:
            return False
        return all(row.saddle is not None for row in self.barriers())

    def barriers(self) -> tuple[BarrierRow, ...]:
        """For every basin that is not good, the lowest barrier to a good basin, lowest loss first.

        ``height`` is the lowest minimax height of a path of known saddles to a good basin and
        ``barrier = height - loss``; both are nan (and ``saddle`` None) without such a path.
        """
        energies = {node.id: node.loss for node in self.basins}
        found = lowest_barriers(energies, self._edge_list(), self.good)
        rows = []
        for node in self.basins:
            if node.label == "good":
                continue
            height, saddle = found.get(node.id, (np.nan, None))
            point = node.point
            rows.append(
                BarrierRow(
                    node.id,
                    node.role,
                    node.label,
                    node.loss,
                    point.recovered,
                    point.duplicated,
                    height,
                    height - node.loss,
                    saddle,
                )
            )
        return tuple(rows)

    # -- text -----------------------------------------------------------------------

    def barrier_table(self) -> str:
        """The barrier table as fixed-width text."""
        good = ", ".join(f"#{i} (L={self.node(i).loss:.8g})" for i in self.good) or "none found"
        lines = [f"lowest barrier to a good minimum ({good}):"]
        header = f"{'basin':>6}  {'role':>8}  {'label':>9}  {'loss':>13}  {'rec':>3}  {'dup':>3}  "
        header += f"{'height':>13}  {'barrier':>11}  {'via saddle':>10}"
        lines += [header, "-" * len(header)]
        for row in self.barriers():
            via = "not joined" if row.saddle is None else f"#{row.saddle}"
            lines.append(
                f"{'#' + str(row.basin):>6}  {row.role:>8}  {row.label:>9}  {row.loss:>13.8g}  {row.recovered:>3}  "
                f"{row.duplicated:>3}  {row.height:>13.8g}  {row.barrier:>11.4g}  {via:>10}"
            )
        return "\n".join(lines)

    def table(self) -> str:
        """Summary, the basins, the edges and the barrier table, as text."""
        statuses: dict[str, int] = {}
        for run in self.runs:
            for status, count in run.newton_statuses.items():
                statuses[status] = statuses.get(status, 0) + count
        connected = sum(node.connection == "connected" for node in self.saddles)
        index_one = sum(node.point.kind == "saddle" and node.point.index == 1 for node in self.saddles)
        lines = [
            f"landscape of: {self.setting.describe()}",
            f"runs: {len(self.runs)} ({', '.join(sorted({run.status for run in self.runs})) or 'none'}); "
            f"Newton runs: {sum(statuses.values())} ({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))})",
            f"minima: {len(self.minima)}, manifolds: {len(self.manifolds)}, saddles: {len(self.saddles)} "
            f"({index_one} of index 1, {connected} connected), edges: {len(self.edges)}, "
            f"groups joined by saddles: {len(self.components())}",
            *self.notes,
            "",
            f"{'basin':>6}  {'role':>8}  {'loss':>13}  {'label':>9}  {'null':>4}  {'a min':>5}  {'rec':>3}  "
            f"{'dup':>3}  {'count':>5}",
        ]
        lines.append("-" * len(lines[-1]))
        for node in self.basins:
            point = node.point
            lines.append(
                f"{'#' + str(node.id):>6}  {node.role:>8}  {node.loss:>13.8g}  {node.label:>9}  {point.nullity:>4}  "
                f"{point.alignment.min():>5.3f}  {point.recovered:>3}  {point.duplicated:>3}  {point.count:>5}"
            )
        lines += ["", f"{'saddle':>6}  {'index':>5}  {'height':>13}  {'ends':>13}  {'barriers':>21}"]
        lines.append("-" * len(lines[-1]))
        for edge in sorted(self.edges, key=lambda e: (e.height, e.saddle)):
            ends = f"#{edge.ends[0]} #{edge.ends[1]}"
            barriers = f"{edge.barriers[0]:.4g} {edge.barriers[1]:.4g}"
            lines.append(f"{'#' + str(edge.saddle):>6}  {1:>5}  {edge.height:>13.8g}  {ends:>13}  {barriers:>21}")
        lines += ["", self.barrier_table()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    # -- exports --------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The whole graph as plain data, with its format and version (:func:`load_graph` reads
        its JSON back)."""
        return {
            **_files.record_header(FORMAT, FORMAT_VERSION),
            "setting": self.setting.to_dict(),
            "notes": list(self.notes),
            "runs": [asdict(run) for run in self.runs],
            "nodes": [
                {"id": n.id, "role": n.role, "connection": n.connection, **n.point.to_dict()} for n in self.nodes
            ],
            "edges": [
                {
                    "saddle": e.saddle,
                    "ends": list(e.ends),
                    "height": e.height,
                    "barriers": list(e.barriers),
                    "eigenvalue": e.eigenvalue,
                }
                for e in self.edges
            ],
        }

    @classmethod
    def from_dict(cls, record: dict, source: str | Path = "<record>") -> LandscapeGraph:
        """Inverse of :meth:`to_dict`; a ResultFileError for another format or version, or
        missing or unknown fields."""
        _files.check_record(
            record, FORMAT, FORMAT_VERSION, ("setting", "notes", "runs", "nodes", "edges"), source=source
        )
        nodes = []
        for entry in record["nodes"]:
            entry = dict(entry)
            node_id, role, connection = entry.pop("id"), entry.pop("role"), entry.pop("connection")
            nodes.append(Node(node_id, role, CriticalPoint.from_dict(entry), connection))
        edges = [
            Edge(e["saddle"], tuple(e["ends"]), e["height"], tuple(e["barriers"]), e["eigenvalue"])
            for e in record["edges"]
        ]
        return cls(
            Setting.from_dict(record["setting"], source),
            tuple(nodes),
            tuple(edges),
            tuple(RunRecord(**run) for run in record["runs"]),
            tuple(record["notes"]),
        )

    def to_json(self, path: str | Path) -> Path:
        """Write the graph as strict JSON, atomically (a reader sees the old file or the new one)."""
        return _files.write_text(path, _files.dumps_record(self.to_dict()))

    def to_csv(self, path: str | Path) -> Path:
        """Write one CSV row per node and per edge (column ``record``), and the rest next to it.

        The first line is the header, so ``pandas.read_csv(path)`` and ``csv.DictReader`` read
        the table as it is. Node rows fill the point columns (alignment and params as JSON
        text), edge rows the columns ``saddle``, ``end_a``, ``end_b``, ``height``,
        ``barrier_a``, ``barrier_b`` and ``eigenvalue``. The setting, notes and runs go to
        ``<path>.meta.json`` with the row count and a checksum of the table (critpoints._files);
        both files are written atomically.
        """
        point_columns = [name for name in CriticalPoint.__dataclass_fields__ if not name.startswith("certif")]
        edge_columns = ["saddle", "end_a", "end_b", "height", "barrier_a", "barrier_b", "eigenvalue"]
        columns = ["record", "id", "role", "connection", *point_columns, *edge_columns]
        rows = []
        for node in self.nodes:
            values = _files.to_plain(node.point.to_dict())
            values["alignment"] = json.dumps(values["alignment"])
            values["params"] = json.dumps(values["params"])
            cells = {"record": "node", "id": node.id, "role": node.role, "connection": node.connection, **values}
            rows.append([cells.get(name) for name in columns])
        for edge in self.edges:
            cells = {
                "record": "edge",
                "saddle": edge.saddle,
                "end_a": edge.ends[0],
                "end_b": edge.ends[1],
                "height": edge.height,
                "barrier_a": edge.barriers[0],
                "barrier_b": edge.barriers[1],
                "eigenvalue": edge.eigenvalue,
            }
            rows.append([cells.get(name) for name in columns])
        record = {key: value for key, value in self.to_dict().items() if key not in ("nodes", "edges")}
        return _files.write_table(path, columns, rows, record)

    def to_networkx(self) -> Any:
        """The graph as a ``networkx.MultiGraph``: basins as nodes, one edge per connecting saddle.

        Node attributes: role, loss, label, kind, index, nullity, count, recovered, dead,
        duplicated; edge attributes (key: the saddle id): height, barriers (as seen from the
        edge's ``u`` and ``v``), eigenvalue.

        Raises
        ------
        ImportError
            Without the optional ``networkx`` package.
        """
        try:
            import networkx
        except ImportError as error:
            raise ImportError("to_networkx needs the optional package networkx (pip install networkx)") from error
        graph = networkx.MultiGraph(setting=self.setting.describe())
        for node in self.basins:
            point = node.point
            graph.add_node(
                node.id,
                role=node.role,
                loss=point.loss,
                label=point.label,
                kind=point.kind,
                index=point.index,
                nullity=point.nullity,
                count=point.count,
                recovered=point.recovered,
                dead=point.dead,
                duplicated=point.duplicated,
            )
        for edge in self.edges:
            graph.add_edge(
                edge.ends[0],
                edge.ends[1],
                key=edge.saddle,
                height=edge.height,
                barriers=edge.barriers,
                eigenvalue=edge.eigenvalue,
            )
        return graph


def load_graph(path: str | Path) -> LandscapeGraph:
    """Read a graph written by :meth:`LandscapeGraph.to_json` (a ResultFileError, a ValueError,
    for a file of another format or version)."""
    path = Path(path)
    return LandscapeGraph.from_dict(_files.loads_record(path.read_text(encoding="utf-8"), path), path)


def _node(record: PointRecord, layout: ParameterLayout) -> Node:
    params = {name: np.array(block) for name, block in layout.unpack(record.theta).items()}
    point = CriticalPoint(**{**record.point.__dict__, "params": params})
    return Node(record.id, record.role, point, record.connection)


def _edge(record: EdgeRecord, nodes: tuple[Node, ...]) -> Edge:
    height = next(node.loss for node in nodes if node.id == record.saddle_id)
    return Edge(
        record.saddle_id, (record.end_a, record.end_b), height, (record.barrier_a, record.barrier_b), record.eigenvalue
    )
