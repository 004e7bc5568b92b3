"""The landscape database: settings, runs, minima, saddles, manifolds and edges in one SQLite file.

One file (stdlib :mod:`sqlite3`) holds the landscapes of any number of settings:

* ``settings``: each setting as the JSON of :meth:`Setting.to_dict` (rebuilt by
  :meth:`Setting.from_dict`);
* ``runs``: one row per call that wrote to the file (a unique id, start and end time, host,
  status ``running`` / ``finished`` / ``interrupted``, its parameters and how its Newton runs
  ended);
* ``points``: the stationary points, one per symmetry orbit, with the classification and labels
  of a :class:`~critpoints.landscape.result.CriticalPoint` and the point itself; the views
  ``minima``, ``saddles`` (every stationary point of index >= 1, with its index) and
  ``manifolds`` (flat sets of minima: index 0 with unexplained zero eigenvalues) select them
  by role;
* ``sightings``: how many starts of each run reached each point (a point's count, its basin
  count, is their sum, so counts add up across runs and merged files);
* ``edges``: one per connected index-1 saddle: its two ends and the barrier from each;
* ``explored`` and ``searches``: which seeded starts and which pairs of minima have been
  done, so that a later call resumes instead of repeating them.

Several processes may read a file while one writes; two writers at once serialise on SQLite's
lock but do not see each other's new orbits, so they may store one orbit twice: give
parallel jobs (machines, Dask workers) their own files and merge them
(critpoints.landscape.merge).

Every write happens in the calling (parent) process inside a transaction
(:meth:`LandscapeDatabase.transaction`), so a worker that dies, or a parent interrupted by
Ctrl-C or killed, leaves the file as of the last commit: the work in flight is lost, nothing
else. Points are matched to orbits by the caller (critpoints.landscape.catalogue); this
module only stores and reads rows.

The schema version is stored in the file; a file of another version is refused with an error
naming both versions.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from critpoints.landscape.result import CriticalPoint
from critpoints.model.setting import Setting

__all__ = ["ROLES", "SCHEMA_VERSION", "EdgeRecord", "LandscapeDatabase", "PointRecord", "RunRecord"]

#: Version of the tables below; files of another version are refused.
SCHEMA_VERSION = 1

#: What a stored stationary point is in the graph.
ROLES = ("minimum", "saddle", "manifold")

_APPLICATION = "critpoints landscape database"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE settings (
    id INTEGER PRIMARY KEY,
    record TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    setting_id INTEGER NOT NULL REFERENCES settings(id),
    started TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'interrupted')),
    host TEXT NOT NULL,
    parameters TEXT NOT NULL,
    newton_statuses TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE points (
    id INTEGER PRIMARY KEY,
    setting_id INTEGER NOT NULL REFERENCES settings(id),
    role TEXT NOT NULL CHECK (role IN ('minimum', 'saddle', 'manifold')),
    loss REAL NOT NULL,
    grad_norm REAL NOT NULL,
    kind TEXT NOT NULL,
    morse_index INTEGER NOT NULL,
    nullity INTEGER NOT NULL,
    smallest_eigenvalue REAL,
    largest_eigenvalue REAL,
    label TEXT NOT NULL,
    alignment BLOB NOT NULL,
    recovered INTEGER NOT NULL,
    dead INTEGER NOT NULL,
    duplicated INTEGER NOT NULL,
    nonsmooth INTEGER NOT NULL,
    theta BLOB NOT NULL,
    first_run INTEGER NOT NULL REFERENCES runs(id),
    connection TEXT
);
CREATE INDEX points_by_setting ON points (setting_id, role, loss);
CREATE TABLE sightings (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    point_id INTEGER NOT NULL REFERENCES points(id),
    count INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (run_id, point_id)
);
CREATE TABLE edges (
    id INTEGER PRIMARY KEY,
    setting_id INTEGER NOT NULL REFERENCES settings(id),
    saddle_id INTEGER NOT NULL UNIQUE REFERENCES points(id),
    end_a INTEGER NOT NULL REFERENCES points(id),
    end_b INTEGER NOT NULL REFERENCES points(id),
    barrier_a REAL NOT NULL,
    barrier_b REAL NOT NULL,
    eigenvalue REAL NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs(id)
);
CREATE TABLE explored (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    seed INTEGER NOT NULL,
    init TEXT NOT NULL,
    first INTEGER NOT NULL,
    stop INTEGER NOT NULL
);
CREATE TABLE searches (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    point_a INTEGER NOT NULL REFERENCES points(id),
    point_b INTEGER NOT NULL REFERENCES points(id),
    saddles INTEGER NOT NULL,
    PRIMARY KEY (point_a, point_b)
);
CREATE VIEW minima AS SELECT * FROM points WHERE role = 'minimum';
CREATE VIEW saddles AS SELECT * FROM points WHERE role = 'saddle';
CREATE VIEW manifolds AS SELECT * FROM points WHERE role = 'manifold';
"""

_POINT_COLUMNS = (
    "loss",
    "grad_norm",
    "kind",
    "morse_index",
    "nullity",
    "smallest_eigenvalue",
    "largest_eigenvalue",
    "label",
    "alignment",
    "recovered",
    "dead",
    "duplicated",
    "nonsmooth",
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _blob(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype="<f8").tobytes()


def _array(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f8").copy()


def _row_id(cursor: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just stored."""
    assert cursor.lastrowid is not None, "an INSERT stores a row"
    return int(cursor.lastrowid)


def _nan_to_none(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


@dataclass(frozen=True)
class PointRecord:
    """One stored stationary point (one symmetry orbit).

    Attributes
    ----------
    id : int
    setting_id : int
    role : str
        "minimum", "saddle" or "manifold" (:data:`ROLES`).
    theta : ndarray
        The stored representative of the orbit.
    point : CriticalPoint
        Its classification and labels; ``params`` is empty (rebuild it from theta with the
        setting's layout) and ``count`` is the sum of its sightings.
    first_run : int
        The run that stored it.
    connection : str or None
        Saddles: None until a connection was tried, then "connected" or "failed: <why>".
    """

    id: int
    setting_id: int
    role: str
    theta: np.ndarray
    point: CriticalPoint
    first_run: int
    connection: str | None


@dataclass(frozen=True)
class EdgeRecord:
    """A saddle joining two basins: ``L(saddle) - L(end)`` is the barrier seen from each end."""

    id: int
    setting_id: int
    saddle_id: int
    end_a: int
    end_b: int
    barrier_a: float
    barrier_b: float
    eigenvalue: float
    run_id: int


@dataclass(frozen=True)
class RunRecord:
    """One call that wrote to the database."""

    id: int
    uid: str
    setting_id: int
    started: str
    finished: str | None
    status: str
    host: str
    parameters: dict
    newton_statuses: dict


class LandscapeDatabase:
    """A landscape database file (see the module docstring), or one in memory.

    Parameters
    ----------
    path : str, Path or None
        The SQLite file, created with the schema (and its folder) if it does not exist or is
        empty; None for a database in memory.
    timeout : float
        Seconds to wait for another process's write lock.

    Raises
    ------
    ValueError
        If the file cannot be opened, is not SQLite, not a landscape database, or of another
        schema version.
    """

    def __init__(self, path: str | Path | None = None, *, timeout: float = 60.0) -> None:
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        target = ":memory:" if self.path is None else str(self.path)
        try:
            # isolation_level=None: no implicit transactions; every write goes through transaction()
            self.connection = sqlite3.connect(target, timeout=timeout, isolation_level=None)
        except sqlite3.Error as error:
            raise ValueError(f"cannot open the landscape database {self.path}: {error}") from None
        try:
            self._open()
        except BaseException:
            self.connection.close()
            raise

    def _open(self) -> None:
        connection = self.connection
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as error:
            raise ValueError(f"{self.path} is not a landscape database (not an SQLite file: {error})") from None
        connection.execute("PRAGMA foreign_keys = ON")
        if not tables:
            with self.transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("application", _APPLICATION), ("schema_version", str(SCHEMA_VERSION))],
                )
            return
        if "meta" not in tables:
            raise ValueError(f"{self.path} is not a landscape database (it has no meta table)")
        meta = dict(connection.execute("SELECT key, value FROM meta"))
        if meta.get("application") != _APPLICATION:
            raise ValueError(f"{self.path} is not a landscape database (application {meta.get('application')!r})")
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise ValueError(
                f"{self.path} has landscape schema version {meta.get('schema_version')}; this version of "
                f"critpoints reads schema version {SCHEMA_VERSION} only"
            )

    # -- life cycle -----------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (uncommitted work is rolled back)."""
        self.connection.close()

    def __enter__(self) -> LandscapeDatabase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on any exception (Ctrl-C too).

        ``BEGIN IMMEDIATE`` takes the write lock at the start, so two processes writing the same
        file serialise instead of failing half-way.
        """
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield self.connection
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    def integrity(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` ("ok" for a sound file)."""
        return str(self.connection.execute("PRAGMA integrity_check").fetchone()[0])

    # -- settings -------------------------------------------------------------------

    @staticmethod
    def _setting_record(setting: Setting) -> str:
        return json.dumps(setting.to_dict(), sort_keys=True)

    def find_setting(self, setting: Setting) -> int | None:
        """The id of ``setting`` in the file, or None."""
        row = self.connection.execute(
            "SELECT id FROM settings WHERE record = ?", (self._setting_record(setting),)
        ).fetchone()
        return None if row is None else int(row[0])

    def add_setting(self, setting: Setting) -> int:
        """The id of ``setting``, stored first if new (inside a transaction)."""
        found = self.find_setting(setting)
        if found is not None:
            return found
        cursor = self.connection.execute(
            "INSERT INTO settings (record, description) VALUES (?, ?)",
            (self._setting_record(setting), setting.describe()),
        )
        return _row_id(cursor)

    def settings(self) -> dict[int, Setting]:
        """Every setting in the file, by id."""
        rows = self.connection.execute("SELECT id, record FROM settings ORDER BY id")
        return {int(i): Setting.from_dict(json.loads(record)) for i, record in rows}

    # -- runs -----------------------------------------------------------------------

    def begin_run(self, setting_id: int, parameters: dict, uid: str | None = None) -> int:
        """Store a new run, status ``running`` (inside a transaction); returns its id."""
        cursor = self.connection.execute(
            "INSERT INTO runs (uid, setting_id, started, status, host, parameters) VALUES (?, ?, ?, 'running', ?, ?)",
            (
                uid or uuid.uuid4().hex,
                setting_id,
                _now(),
                f"{socket.gethostname()}:{os.getpid()}",
                json.dumps(parameters, sort_keys=True),
            ),
        )
        return _row_id(cursor)

    def import_run(self, setting_id: int, run: RunRecord) -> int:
        """Store a run of another database under its own uid (inside a transaction); returns its id here."""
        cursor = self.connection.execute(
            "INSERT INTO runs (uid, setting_id, started, finished, status, host, parameters, newton_statuses) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.uid,
                setting_id,
                run.started,
                run.finished,
                run.status,
                run.host,
                json.dumps(run.parameters, sort_keys=True),
                json.dumps(run.newton_statuses, sort_keys=True),
            ),
        )
        return _row_id(cursor)

    def run_id(self, uid: str) -> int | None:
        """The id of the run with this uid, or None."""
        row = self.connection.execute("SELECT id FROM runs WHERE uid = ?", (uid,)).fetchone()
        return None if row is None else int(row[0])

    def end_run(self, run_id: int, status: str) -> None:
        """Set a run's final status, ``finished`` or ``interrupted`` (inside a transaction)."""
        self.connection.execute("UPDATE runs SET status = ?, finished = ? WHERE id = ?", (status, _now(), run_id))

    def add_newton_statuses(self, run_id: int, statuses: dict[str, int]) -> None:
        """Add how more Newton runs ended to a run's tally (inside a transaction)."""
        (text,) = self.connection.execute("SELECT newton_statuses FROM runs WHERE id = ?", (run_id,)).fetchone()
        tally = json.loads(text)
        for status, count in statuses.items():
            tally[status] = tally.get(status, 0) + int(count)
        self.connection.execute(
            "UPDATE runs SET newton_statuses = ? WHERE id = ?", (json.dumps(tally, sort_keys=True), run_id)
        )

    def runs(self, setting_id: int | None = None) -> list[RunRecord]:
        """The runs (of one setting, or all), oldest first."""
        query = "SELECT id, uid, setting_id, started, finished, status, host, parameters, newton_statuses FROM runs"
        rows = self.connection.execute(
            query + (" WHERE setting_id = ? ORDER BY id" if setting_id is not None else " ORDER BY id"),
            (setting_id,) if setting_id is not None else (),
        )
        return [
            RunRecord(int(i), uid, int(s), started, finished, status, host, json.loads(params), json.loads(newton))
            for i, uid, s, started, finished, status, host, params, newton in rows
        ]

    # -- points ---------------------------------------------------------------------

    def add_point(
        self,
        setting_id: int,
        run_id: int,
        role: str,
        theta: np.ndarray,
        point: CriticalPoint,
        connection: str | None = None,
    ) -> int:
        """Store a new stationary point (inside a transaction); returns its id."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got role={role!r}")
        values = (
            float(point.loss),
            float(point.grad_norm),
            point.kind,
            int(point.index),
            int(point.nullity),
            _nan_to_none(point.smallest_eigenvalue),
            _nan_to_none(point.largest_eigenvalue),
            point.label,
            _blob(point.alignment),
            int(point.recovered),
            int(point.dead),
            int(point.duplicated),
            int(bool(point.nonsmooth)),
        )
        cursor = self.connection.execute(
            f"INSERT INTO points (setting_id, role, {', '.join(_POINT_COLUMNS)}, theta, first_run, connection) "
            f"VALUES (?, ?, {', '.join('?' * len(_POINT_COLUMNS))}, ?, ?, ?)",
            (setting_id, role, *values, _blob(theta), run_id, connection),
        )
        return _row_id(cursor)

    def add_sighting(self, run_id: int, point_id: int, count: int) -> None:
        """Add ``count`` starts of a run that reached a point (inside a transaction)."""
        self.connection.execute(
            "INSERT INTO sightings (run_id, point_id, count) VALUES (?, ?, ?) "
            "ON CONFLICT (run_id, point_id) DO UPDATE SET count = count + excluded.count",
            (run_id, point_id, int(count)),
        )

    def set_connection(self, point_id: int, connection: str) -> None:
        """Record the outcome of connecting a saddle (inside a transaction)."""
        self.connection.execute("UPDATE points SET connection = ? WHERE id = ?", (connection, point_id))

    def points(self, setting_id: int, role: str | None = None, *, unconnected: bool = False) -> list[PointRecord]:
        """The stored points of a setting, by id, with their counts.

        ``role`` selects one role; ``unconnected=True`` selects the index-1 saddles whose
        connection has not been tried yet.
        """
        conditions = ["p.setting_id = ?"] + (["p.role = ?"] if role else [])
        if unconnected:
            conditions.append("p.kind = 'saddle' AND p.morse_index = 1 AND p.connection IS NULL")
        query = (
            f"SELECT p.id, p.setting_id, p.role, {', '.join('p.' + c for c in _POINT_COLUMNS)}, p.theta, "
            "p.first_run, p.connection, COALESCE((SELECT SUM(s.count) FROM sightings s WHERE s.point_id = p.id), 0) "
            f"FROM points p WHERE {' AND '.join(conditions)} ORDER BY p.id"
        )
        rows = self.connection.execute(query, (setting_id, role) if role else (setting_id,))
        records = []
        for row in rows:
            point_id, setting, role_, *values, theta, first_run, connection, count = row
            fields = dict(zip(_POINT_COLUMNS, values))
            point = CriticalPoint(
                loss=fields["loss"],
                grad_norm=fields["grad_norm"],
                kind=fields["kind"],
                index=fields["morse_index"],
                nullity=fields["nullity"],
                smallest_eigenvalue=np.nan if fields["smallest_eigenvalue"] is None else fields["smallest_eigenvalue"],
                largest_eigenvalue=np.nan if fields["largest_eigenvalue"] is None else fields["largest_eigenvalue"],
                label=fields["label"],
                alignment=_array(fields["alignment"]),
                recovered=fields["recovered"],
                dead=fields["dead"],
                duplicated=fields["duplicated"],
                nonsmooth=bool(fields["nonsmooth"]),
                params={},
                count=int(count),
            )
            records.append(PointRecord(int(point_id), int(setting), role_, _array(theta), point, first_run, connection))
        return records

    def sightings(self, run_id: int) -> dict[int, int]:
        """Point id -> number of the run's starts that reached it."""
        rows = self.connection.execute("SELECT point_id, count FROM sightings WHERE run_id = ?", (run_id,))
        return {int(point): int(count) for point, count in rows}

    # -- edges ----------------------------------------------------------------------

    def add_edge(
        self,
        setting_id: int,
        run_id: int,
        saddle_id: int,
        ends: tuple[int, int],
        barriers: tuple[float, float],
        eigenvalue: float,
    ) -> int:
        """Store the edge of a connected saddle (inside a transaction); returns its id."""
        cursor = self.connection.execute(
            "INSERT INTO edges (setting_id, saddle_id, end_a, end_b, barrier_a, barrier_b, eigenvalue, run_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (setting_id, saddle_id, ends[0], ends[1], float(barriers[0]), float(barriers[1]), eigenvalue, run_id),
        )
        return _row_id(cursor)

    def edges(self, setting_id: int) -> list[EdgeRecord]:
        """The edges of a setting, by id."""
        rows = self.connection.execute(
            "SELECT id, setting_id, saddle_id, end_a, end_b, barrier_a, barrier_b, eigenvalue, run_id "
            "FROM edges WHERE setting_id = ? ORDER BY id",
            (setting_id,),
        )
        return [EdgeRecord(*row) for row in rows]

    # -- resumption -----------------------------------------------------------------

    def add_explored(self, run_id: int, seed: int, init: str, first: int, stop: int) -> None:
        """Record that the starts ``first <= k < stop`` of (seed, init) are done (inside a transaction)."""
        self.connection.execute(
            "INSERT INTO explored (run_id, seed, init, first, stop) VALUES (?, ?, ?, ?, ?)",
            (run_id, seed, init, first, stop),
        )

    def explored(self, setting_id: int, seed: int, init: str) -> set[int]:
        """Indices of the starts of (seed, init) that some run of the setting has done."""
        rows = self.connection.execute(
            "SELECT e.first, e.stop FROM explored e JOIN runs r ON r.id = e.run_id "
            "WHERE r.setting_id = ? AND e.seed = ? AND e.init = ?",
            (setting_id, seed, init),
        )
        return {k for first, stop in rows for k in range(first, stop)}

    def explored_ranges(self, run_id: int) -> list[tuple[int, str, int, int]]:
        """(seed, init, first, stop) of every range of starts a run has done."""
        rows = self.connection.execute("SELECT seed, init, first, stop FROM explored WHERE run_id = ?", (run_id,))
        return [(int(seed), init, int(first), int(stop)) for seed, init, first, stop in rows]

    def add_search(self, run_id: int, pair: tuple[int, int], saddles: int) -> None:
        """Record a saddle search between two basins and how many saddles (any index) it reached
        (inside a transaction)."""
        a, b = sorted(pair)
        self.connection.execute(
            "INSERT OR IGNORE INTO searches (run_id, point_a, point_b, saddles) VALUES (?, ?, ?, ?)",
            (run_id, a, b, int(saddles)),
        )

    def searches_of_run(self, run_id: int) -> list[tuple[int, int, int]]:
        """(point_a, point_b, saddles found) of the searches a run recorded."""
        rows = self.connection.execute("SELECT point_a, point_b, saddles FROM searches WHERE run_id = ?", (run_id,))
        return [(int(a), int(b), int(found)) for a, b, found in rows]

    def searches(self, setting_id: int) -> dict[tuple[int, int], tuple[int, int]]:
        """(point_a, point_b) with a < b -> (run id, saddles found), for the searches done."""
        rows = self.connection.execute(
            "SELECT s.point_a, s.point_b, s.run_id, s.saddles FROM searches s JOIN points p ON p.id = s.point_a "
            "WHERE p.setting_id = ?",
            (setting_id,),
        )
        return {(int(a), int(b)): (int(run), int(found)) for a, b, run, found in rows}
