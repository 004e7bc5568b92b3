"""Result files: atomic writes, JSON without NaN, format versions, CSV with a metadata file.

Every result file of the package goes through this module:

* :func:`atomic_write` writes a temporary file in the destination folder and renames it over
  the destination (``os.replace``, atomic on POSIX and Windows), so a failed write (a full
  disk, a size limit, an exception while serialising, a killed process) leaves the previous
  file untouched and no partial file behind;
* :func:`dumps_record` / :func:`loads_record` write strict JSON: a non-finite float is stored
  as ``null`` and listed under the top-level key ``"nonfinite"`` (JSON pointer -> ``"nan"``,
  ``"inf"`` or ``"-inf"``), so every JSON reader parses the file and the values round-trip;
* every record starts with :func:`record_header` (``format``, ``format_version``,
  ``written_by``) and :func:`check_record` refuses a file of another format, an unknown
  version, or missing or extra fields, naming them;
* :func:`write_table` / :func:`read_table` write a CSV whose first line is the header row, so
  ``pandas.read_csv(path)`` and ``csv.DictReader`` read it with their defaults; the rest of
  the record lives in a JSON file next to it (:func:`metadata_path`), which also holds the
  number of rows and a SHA-256 of the CSV, so a truncated or altered table is detected.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import IO, Any

import numpy as np

from critpoints._version import __version__

#: Suffix added to a CSV file's name for the JSON file holding the rest of its record.
METADATA_SUFFIX = ".meta.json"

#: Keys every record starts with.
HEADER_FIELDS = ("format", "format_version", "written_by")


class ResultFileError(ValueError):
    """A result file that cannot be read: wrong format, unknown version, missing or extra
    fields, or a table that does not match its metadata (truncated or altered)."""


# ---------------------------------------------------------------------------- writing


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_path(name: str, path: str | Path) -> Path:
    """``path`` as a Path, or a ValueError (naming the option ``name``) if it cannot be written.

    The folder must exist and be writable, and ``path`` must not be a folder. Checked
    before a computation, so that a bad output path fails at once, not after the work.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ValueError(f"{name} must be a file path, got {name}={str(path)!r}, which is a folder")
    if not folder.is_dir():
        raise ValueError(
            f"{name}: the folder {str(folder)!r} does not exist; create it first (got {name}={str(path)!r})"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: the folder {str(folder)!r} is not writable (got {name}={str(path)!r})")
    return path


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Write a file through ``write(handle)`` (a binary handle) so that it appears whole or not at all.

    The data go to a temporary file in the destination folder, which is flushed to disk and
    renamed over ``path``. On any error (including KeyboardInterrupt) the temporary file is
    removed and ``path`` keeps its previous content. The new file gets the permissions a
    plain ``open(path, "w")`` would give it.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write` of ``text`` encoded as UTF-8."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda handle: handle.write(data))


# ---------------------------------------------------------------------------- JSON


def _pointer(parts: Sequence[str | int]) -> str:
    """The JSON pointer (RFC 6901) of a path of keys and indices."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _plain(value: Any, path: list, nonfinite: dict[str, str]) -> Any:
    """``value`` as JSON data: numpy scalars and arrays as Python numbers and lists, tuples
    as lists, non-finite floats as None (recorded in ``nonfinite``)."""
    if isinstance(value, Enum):
        value = value.value
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isfinite(value):
            return value
        nonfinite[_pointer(path)] = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"record keys must be strings, got {key!r} at {_pointer(path) or '/'}")
            out[key] = _plain(item, [*path, key], nonfinite)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(item, [*path, index], nonfinite) for index, item in enumerate(value)]
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} {value!r} in a result file (at {_pointer(path) or '/'})")


def to_plain(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` as strict JSON data, with the non-finite floats listed under ``"nonfinite"``."""
    nonfinite: dict[str, str] = {}
    plain = _plain(record, [], nonfinite)
    if nonfinite:
        plain["nonfinite"] = nonfinite
    return plain


def dumps_record(record: Mapping[str, Any]) -> str:
    """Strict JSON text of ``record`` (see :func:`to_plain`); never ``NaN`` or ``Infinity``."""
    return json.dumps(to_plain(record), indent=1, allow_nan=False) + "\n"


_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _restore(record: dict, pointer: str, text: str) -> None:
    if text not in _NONFINITE:
        raise ResultFileError(f"nonfinite entry {pointer!r} has value {text!r}; expected 'nan', 'inf' or '-inf'")
    parts = [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]]
    if not parts:
        raise ResultFileError("nonfinite entry with an empty pointer")
    container: Any = record
    try:
        for part in parts[:-1]:
            container = container[int(part)] if isinstance(container, list) else container[part]
        last = int(parts[-1]) if isinstance(container, list) else parts[-1]
        if container[last] is not None:
            raise ResultFileError(f"nonfinite entry {pointer!r} points at {container[last]!r}, not at null")
        container[last] = _NONFINITE[text]
    except (KeyError, IndexError, ValueError, TypeError) as error:
        raise ResultFileError(f"nonfinite entry {pointer!r} does not point into the record") from error


def from_plain(record: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`to_plain`: the flagged nulls back to NaN / inf (the key removed)."""
    nonfinite = record.pop("nonfinite", {})
    if not isinstance(nonfinite, dict):
        raise ResultFileError(f"'nonfinite' must map JSON pointers to 'nan', 'inf' or '-inf', got {nonfinite!r}")
    for pointer, text in nonfinite.items():
        _restore(record, pointer, text)
    return record


def loads_record(text: str, source: str | Path = "<text>") -> dict[str, Any]:
    """The record of JSON ``text`` written by :func:`dumps_record`."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise ResultFileError(f"{source} is not a JSON result file: {error}") from error
    if not isinstance(record, dict):
        raise ResultFileError(f"{source} holds a JSON {type(record).__name__}, not a result record")
    return from_plain(record)


# ---------------------------------------------------------------------------- formats


def record_header(kind: str, version: int) -> dict[str, Any]:
    """The first keys of every record: what it is, its format version, which package wrote it."""
    return {"format": kind, "format_version": version, "written_by": f"critpoints {__version__}"}


def check_record(
    record: Mapping[str, Any],
    kind: str,
    version: int,
    required: Iterable[str],
    optional: Iterable[str] = (),
    source: str | Path = "<record>",
) -> None:
    """Raise :class:`ResultFileError` unless ``record`` is a ``kind`` record of format ``version``
    with every ``required`` field and no field outside ``required``, ``optional`` and the header."""
    found = record.get("format")
    if found is None:
        raise ResultFileError(
            f"{source} has no 'format' field: it is not a critpoints {kind} file, or was written by a "
            f"critpoints older than format version {version} (re-run the computation to write it again)"
        )
    if found != kind:
        raise ResultFileError(f"{source} holds a {found!r} record, not a {kind!r} record")
    found_version = record.get("format_version")
    if found_version != version:
        raise ResultFileError(
            f"{source} has {kind} format version {found_version!r} (written by {record.get('written_by', '?')}); "
            f"this critpoints {__version__} reads format version {version}"
        )
    required = set(required)
    allowed = required | set(optional) | set(HEADER_FIELDS)
    missing = sorted(required - set(record))
    extra = sorted(set(record) - allowed)
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"missing field(s) {missing}")
        if extra:
            problems.append(f"unknown field(s) {extra}")
        raise ResultFileError(f"{source}: {kind} format version {version} record with {' and '.join(problems)}")


def check_fields(record: Mapping[str, Any], expected: Iterable[str], what: str, source: str | Path) -> None:
    """Raise :class:`ResultFileError` unless ``record`` has exactly the ``expected`` keys."""
    expected = set(expected)
    missing, extra = sorted(expected - set(record)), sorted(set(record) - expected)
    if missing or extra:
        detail = ", ".join(text for text in (missing and f"missing {missing}", extra and f"unknown {extra}") if text)
        raise ResultFileError(f"{source}: {what} with {detail}")


# ---------------------------------------------------------------------------- CSV tables


def metadata_path(path: str | Path) -> Path:
    """The JSON file holding the record of the CSV table ``path`` (``points.csv.meta.json``)."""
    path = Path(path)
    return path.with_name(path.name + METADATA_SUFFIX)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (float, np.floating)):
        return repr(float(value))  # the shortest text that reads back to the same float
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_table(path: str | Path, columns: Sequence[str], rows: Sequence[Sequence[Any]], record: Mapping) -> Path:
    """Write ``rows`` as a CSV (header row first) and ``record`` in the metadata JSON next to it.

    The metadata gets a ``"table"`` entry with the file name, the columns, the number of rows
    and the SHA-256 of the CSV bytes. Both files are written atomically, the metadata first:
    a failure between the two leaves a pair that :func:`read_table` refuses.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"a row has {len(row)} cells for {len(columns)} columns")
        writer.writerow([_csv_cell(value) for value in row])
    data = buffer.getvalue().encode("utf-8")
    table = {
        "file": Path(path).name,
        "columns": list(columns),
        "rows": len(rows),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    write_text(metadata_path(path), dumps_record({**record, "table": table}))
    return atomic_write(path, lambda handle: handle.write(data))


def read_table(path: str | Path) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The metadata record and the rows (dicts of strings) of a table written by :func:`write_table`.

    Raises :class:`ResultFileError` when the metadata file is missing or the CSV does not
    match it (fewer or more rows, other columns, other bytes).
    """
    path = Path(path)
    meta = metadata_path(path)
    if not meta.exists():
        raise ResultFileError(
            f"{path}: the metadata file {meta.name} is missing; a critpoints CSV is read together with it"
        )
    record = loads_record(meta.read_text(encoding="utf-8"), meta)
    table = record.pop("table", None)
    if not isinstance(table, dict) or not {"columns", "rows", "sha256"} <= set(table):
        raise ResultFileError(f"{meta}: no valid 'table' entry (columns, rows, sha256)")
    data = path.read_bytes()
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    if len(rows) != table["rows"]:
        raise ResultFileError(
            f"{path} has {len(rows)} rows where its metadata records {table['rows']}: the table was truncated "
            "or edited; write it again"
        )
    columns = list(rows[0]) if rows else next(csv.reader(io.StringIO(data.decode("utf-8"))), [])
    if columns != table["columns"] or any(None in row or None in row.values() for row in rows):
        raise ResultFileError(f"{path}: its columns or cells do not match the {len(table['columns'])} columns recorded")
    if hashlib.sha256(data).hexdigest() != table["sha256"]:
        raise ResultFileError(f"{path} does not match its metadata (SHA-256 differs): it was altered or partly written")
    return record, rows
