"""Merging landscape databases, e.g. from different machines or from Dask workers.

:func:`merge_databases` adds every setting, run, point, edge and record of work done of the
source files to the target file, in one transaction per source and setting:

* a setting is the same when its record (``Setting.to_dict``) is;
* a run is the same when its uid is: a run already in the target is not added again, so
  merging a file twice changes nothing and counts are never doubled;
* a point is the same as a target point on its symmetry orbit, or, for a flat set of minima,
  joined to it by a flat segment (critpoints.landscape.catalogue); otherwise it is added;
* a point's count is the sum of its sightings, which come with their runs, so counts add up;
* an edge is added for a saddle that has none in the target; the target keeps its own.

The result is the database that one process running all the merged runs would have written,
up to the ids of its rows (and up to which representative of an orbit is stored).
"""

from __future__ import annotations

from pathlib import Path

from threadpoolctl import threadpool_limits

from critpoints.landscape.catalogue import Catalogue, may_lie_on_manifold
from critpoints.landscape.database import LandscapeDatabase
from critpoints.losses.population_loss import population_loss

__all__ = ["merge_databases"]


def _open(database: str | Path | LandscapeDatabase) -> tuple[LandscapeDatabase, bool]:
    if isinstance(database, LandscapeDatabase):
        return database, False
    if not Path(database).exists():
        raise ValueError(f"database {database} does not exist")
    return LandscapeDatabase(database), True


def merge_databases(
    target: str | Path | LandscapeDatabase,
    *sources: str | Path | LandscapeDatabase,
    orbit_tolerance: float = 1e-6,
) -> dict[str, int]:
    """Add the contents of the ``sources`` to ``target`` (see the module docstring).

    Parameters
    ----------
    target : str, Path or LandscapeDatabase
        The file to merge into (created if absent).
    *sources : str, Path or LandscapeDatabase
        Existing landscape database files.
    orbit_tolerance : float
        Relative tolerance of the orbit keys, as for ``map_landscape``.

    Returns
    -------
    dict
        How many runs, points and edges were added: ``{"runs": ..., "points": ..., "edges": ...}``.
    """
    into, close_target = (target, False) if isinstance(target, LandscapeDatabase) else (LandscapeDatabase(target), True)
    added = {"runs": 0, "points": 0, "edges": 0}
    try:
        for source in sources:
            source_db, close_source = _open(source)
            try:
                for source_setting_id, setting in source_db.settings().items():
                    with into.transaction(), threadpool_limits(1):
                        _merge_setting(into, source_db, source_setting_id, setting, orbit_tolerance, added)
            finally:
                if close_source:
                    source_db.close()
    finally:
        if close_target:
            into.close()
    return added


def _merge_setting(into, source, source_setting_id, setting, orbit_tolerance, added) -> None:
    """Merge one setting's rows (inside a transaction of ``into``)."""
    setting_id = into.add_setting(setting)
    catalogue = Catalogue(population_loss(setting), orbit_tolerance)
    for record in into.points(setting_id):
        catalogue.add(record.id, record.role, record.theta, record.point.loss)

    runs, new_runs = {}, []
    for run in source.runs(source_setting_id):
        known = into.run_id(run.uid)
        if known is None:
            known = into.import_run(setting_id, run)
            new_runs.append(run.id)
            added["runs"] += 1
        runs[run.id] = known

    points = {}
    for record in source.points(source_setting_id):
        point_id = catalogue.same_orbit_as(record.theta, record.point.loss)
        if point_id is None and may_lie_on_manifold(record.role, record.point):
            point_id = catalogue.same_manifold_as(record.theta, record.point.loss)
        if point_id is None:
            point_id = into.add_point(
                setting_id, runs[record.first_run], record.role, record.theta, record.point, record.connection
            )
            catalogue.add(point_id, record.role, record.theta, record.point.loss)
            added["points"] += 1
        points[record.id] = point_id

    for run in new_runs:
        for point, count in source.sightings(run).items():
            into.add_sighting(runs[run], points[point], count)
        for seed, init, first, stop in source.explored_ranges(run):
            into.add_explored(runs[run], seed, init, first, stop)
        for a, b, found in source.searches_of_run(run):
            into.add_search(runs[run], (points[a], points[b]), found)

    connections = {record.id: record.connection for record in into.points(setting_id, "saddle")}
    with_edges = {edge.saddle_id for edge in into.edges(setting_id)}
    for edge in source.edges(source_setting_id):
        saddle = points[edge.saddle_id]
        if saddle in with_edges or catalogue.roles[saddle] != "saddle":
            continue  # known, or a degenerate saddle found here to lie on a set of minima
        into.add_edge(
            setting_id,
            runs[edge.run_id],
            saddle,
            (points[edge.end_a], points[edge.end_b]),
            (edge.barrier_a, edge.barrier_b),
            edge.eigenvalue,
        )
        into.set_connection(saddle, "connected")
        with_edges.add(saddle)
        added["edges"] += 1
    for record in source.points(source_setting_id, "saddle"):
        saddle = points[record.id]
        if catalogue.roles[saddle] != "saddle" or saddle in with_edges:
            continue
        if record.connection is not None and connections.get(saddle) is None:
            into.set_connection(saddle, record.connection)
