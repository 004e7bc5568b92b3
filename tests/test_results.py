"""Results as records and files: the setting as data, strict JSON, CSV for pandas and the csv
module, truncation and version errors, atomic writes, DataFrames, HTML, slicing and filters."""

from __future__ import annotations

import csv
import dataclasses
import errno
import json
import math
import sys

import numpy as np
import pytest

import critpoints
from critpoints import _files, load_result
from critpoints.dynamics.descent import load_dynamics, run_dynamics
from critpoints.landscape.result import LEGEND, TABLE_COLUMNS, CriticalPointSet
from critpoints.solver.restarts import InProcessExecutor

pandas = pytest.importorskip("pandas")


def claim3_setting() -> critpoints.Setting:
    return critpoints.claim_setting("spectral", 3)


@pytest.fixture(scope="module")
def result() -> CriticalPointSet:
    return critpoints.enumerate_critical_points(
        claim3_setting(), n_restarts=24, seed=np.int64(7), executor=InProcessExecutor(), progress=False
    )


def _same_points(a: CriticalPointSet, b: CriticalPointSet) -> None:
    assert len(a) == len(b)
    for p, q in zip(a, b):
        for name in ("loss", "grad_norm", "kind", "index", "nullity", "label", "recovered", "count", "certified"):
            assert getattr(p, name) == getattr(q, name), name
        for name in ("smallest_eigenvalue", "largest_eigenvalue"):
            assert getattr(p, name) == getattr(q, name) or (
                math.isnan(getattr(p, name)) and math.isnan(getattr(q, name))
            )
        np.testing.assert_array_equal(p.alignment, q.alignment)
        assert p.params.keys() == q.params.keys()
        for block in p.params:
            np.testing.assert_array_equal(p.params[block], q.params[block])


def test_a_result_records_its_setting_seed_and_version(result):
    assert isinstance(result.setting, critpoints.Setting) and result.setting == claim3_setting()
    assert result.description == claim3_setting().describe()
    assert result.metadata["seed"] == 7 and type(result.metadata["seed"]) is int
    assert result.metadata["critpoints_version"] == critpoints.__version__
    again = critpoints.enumerate_critical_points(
        result.setting, n_restarts=24, seed=result.metadata["seed"], executor=InProcessExecutor(), progress=False
    )
    _same_points(again, result)


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_round_trip_rebuilds_the_setting_and_every_point(result, tmp_path, suffix):
    path = tmp_path / f"points{suffix}"
    (result.to_json if suffix == ".json" else result.to_csv)(path)
    loaded = load_result(path)
    assert loaded.setting == result.setting and isinstance(loaded.setting, critpoints.Setting)
    assert loaded.description == result.description
    assert loaded.metadata == result.metadata and loaded.status_counts == result.status_counts
    assert loaded.completeness == result.completeness
    _same_points(loaded, result)
    assert str(loaded) == str(result)


def test_json_is_strict_and_non_finite_values_round_trip(result, tmp_path):
    """NaN / inf are stored as null with a flag, so any JSON reader parses the file."""
    odd = dataclasses.replace(result[0], smallest_eigenvalue=float("nan"), largest_eigenvalue=float("inf"))
    record = dataclasses.replace(result, points=(odd, *result.points[1:]))
    path = record.to_json(tmp_path / "odd.json")
    text = path.read_text()

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    data = json.loads(text, parse_constant=refuse)
    assert data["points"][0]["smallest_eigenvalue"] is None
    assert data["nonfinite"] == {"/points/0/smallest_eigenvalue": "nan", "/points/0/largest_eigenvalue": "inf"}
    assert data["format"] == "CriticalPointSet" and data["format_version"] == 2
    loaded = load_result(path)
    assert math.isnan(loaded[0].smallest_eigenvalue) and loaded[0].largest_eigenvalue == math.inf


def test_numpy_scalars_in_metadata_are_stored(result, tmp_path):
    record = dataclasses.replace(result, metadata={**result.metadata, "n": np.int64(3), "x": np.float32(0.5)})
    loaded = load_result(record.to_json(tmp_path / "numpy.json"))
    assert loaded.metadata["n"] == 3 and loaded.metadata["x"] == 0.5


def test_csv_header_is_read_by_pandas_and_csv_with_their_defaults(result, tmp_path):
    path = result.to_csv(tmp_path / "points.csv")
    frame = pandas.read_csv(path)
    assert list(frame.columns) == list(TABLE_COLUMNS)
    assert len(frame) == len(result)
    np.testing.assert_array_equal(frame["loss"].to_numpy(), [p.loss for p in result])
    assert list(frame["kind"]) == [p.kind for p in result]
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(TABLE_COLUMNS) and len(rows) == len(result)
    assert [float(row["a_min"]) for row in rows] == [p.alignment.min() for p in result]


def test_csv_round_trips_parameters_of_any_size(result, tmp_path):
    """Arrays live in the metadata file, so no CSV field grows with p and m (the csv module's
    field limit is 131072 characters)."""
    big = {"W": np.random.default_rng(0).standard_normal((120, 120))}
    record = dataclasses.replace(result, points=tuple(dataclasses.replace(p, params=big) for p in result))
    path = record.to_csv(tmp_path / "big.csv")
    assert max(len(line) for line in path.read_text().splitlines()) < 1000
    with open(path, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(result)
    np.testing.assert_array_equal(load_result(path)[0].params["W"], big["W"])


def test_truncated_or_altered_csv_is_refused(result, tmp_path):
    path = result.to_csv(tmp_path / "points.csv")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) // 2]))  # cut at a row boundary
    with pytest.raises(_files.ResultFileError, match=rf"has {len(lines) // 2 - 1} rows where its metadata records"):
        load_result(path)
    result.to_csv(path)
    path.write_text(path.read_text().replace("minimum", "maximum", 1))
    with pytest.raises(_files.ResultFileError, match="SHA-256 differs"):
        load_result(path)
    _files.metadata_path(path).unlink()
    with pytest.raises(_files.ResultFileError, match=r"metadata file points\.csv\.meta\.json is missing"):
        load_result(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.update(format_version=3), "format version 3 .* reads format version 2"),
        (lambda r: r.pop("format_version"), "format version None"),
        (lambda r: r.pop("format"), "has no 'format' field"),
        (lambda r: r.update(format="DynamicsResult"), "holds a 'DynamicsResult' record"),
        (lambda r: r.pop("status_counts"), r"missing field\(s\) \['status_counts'\]"),
        (lambda r: r.update(colour="red"), r"unknown field\(s\) \['colour'\]"),
        (lambda r: r["points"][0].pop("kind"), r"a point with missing \['kind'\]"),
        (lambda r: r["points"][0].update(hue=1), r"a point with unknown \['hue'\]"),
        (lambda r: r["setting"].update(p=-3), "the stored setting is not valid"),
    ],
)
def test_bad_json_records_are_refused_by_name(result, tmp_path, change, message):
    record = json.loads(result.to_json(tmp_path / "good.json").read_text())
    change(record)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(record))
    with pytest.raises(_files.ResultFileError, match=message):
        load_result(path)


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(result, tmp_path, monkeypatch):
    path = result.to_json(tmp_path / "points.json")
    before = path.read_bytes()

    def disk_full(handle):
        handle.write(b'{"format": "Crit')
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        _files.atomic_write(path, disk_full)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["points.json"]
    unstorable = dataclasses.replace(result, metadata={"what": object()})
    with pytest.raises(TypeError, match="cannot store object"):
        unstorable.to_json(path)
    with pytest.raises(TypeError, match="cannot store object"):
        unstorable.to_csv(tmp_path / "points.csv")
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["points.json"]
    assert load_result(path).setting == result.setting


def test_to_dataframe_round_trips_the_table(result):
    frame = result.to_dataframe()
    assert list(frame.columns) == [*TABLE_COLUMNS, "alignment", "params"]
    assert list(frame.index) == list(range(1, len(result) + 1))
    assert frame["loss"].tolist() == [p.loss for p in result]
    assert frame["certified"].isna().all()
    assert frame.attrs["setting"] == result.setting.to_dict()
    back = CriticalPointSet.from_dataframe(frame)
    _same_points(back, result)
    assert back.setting == result.setting and back.metadata == result.metadata
    minima = CriticalPointSet.from_dataframe(frame[frame["kind"] == "minimum"])
    assert len(minima) == len(result.minima())


def test_to_dataframe_without_pandas_names_the_extra(result, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"critpoints\[pandas\]"):
        result.to_dataframe()


def test_html_shows_the_table(result):
    text = result._repr_html_()
    assert text.count("<tr>") == len(result) + 1
    assert f"<caption>critical points of: {result.description}</caption>" in text
    for name in ("loss", "|grad|", "kind", "null", "rec", "dead", "dup", "count"):
        assert f"<th>{name}</th>" in text
    for point in result:
        assert f"<td>{point.loss:.8g}</td>" in text
    assert "Chao1" in text and "a_j = max_i |cos(w_i, M_j)|" in text
    odd = dataclasses.replace(result, description="<b>")
    assert "&lt;b&gt;" in odd._repr_html_()


def test_slicing_filtering_and_minima_return_result_sets(result):
    head = result[:3]
    assert isinstance(head, CriticalPointSet) and len(head) == 3 and head.points == result.points[:3]
    assert head.setting == result.setting and "critical points of" in str(head)
    assert result[-1] is result.points[-1]
    minima = result.minima()
    assert isinstance(minima, CriticalPointSet) and minima.points
    assert all(p.kind == "minimum" and p.index == 0 for p in minima)
    assert len(minima) == sum(p.kind == "minimum" for p in result)
    bad = result.filter(kind="minimum", label="bad")
    assert bad.points == tuple(p for p in result if p.kind == "minimum" and p.label == "bad")
    assert len(result.filter(label=("good", "bad"))) == sum(p.label in ("good", "bad") for p in result)
    assert result.filter(loss=lambda value: value < 0).points == tuple(p for p in result if p.loss < 0)
    with pytest.raises(ValueError, match="unknown kind 'minima'; known: 'minimum'"):
        result.filter(kind="minima")
    with pytest.raises(ValueError, match=r"unknown point field\(s\) \['colour'\]"):
        result.filter(colour="red")
    with pytest.raises(TypeError, match="indexed by an integer or a slice"):
        result["loss"]


def test_the_table_explains_its_columns(result):
    text = str(result)
    assert text.endswith("\n".join(LEGEND))
    for word in ("null = zero eigenvalues", "rec = atoms", "dead = neurons", "dup = neurons", "count = starts"):
        assert word in text
    assert LEGEND[0] not in result.table(legend=False)


def test_dynamics_result_round_trips(tmp_path):
    setting = claim3_setting()
    table = critpoints.enumerate_critical_points(
        setting, n_restarts=12, seed=0, executor=InProcessExecutor(), progress=False
    )
    runs = run_dynamics(setting, n_starts=6, seed=None, lr=0.05, max_steps=300, critical_points=table)
    assert isinstance(runs.metadata["seed"], int)
    assert any(math.isnan(t.match_distance) for t in runs) or all(t.converged for t in runs)
    for name in ("runs.json", "runs.csv"):
        path = tmp_path / name
        (runs.to_json if name.endswith("json") else runs.to_csv)(path)
        loaded = load_dynamics(path)
        assert loaded.setting == setting and loaded.metadata == runs.metadata
        assert loaded.matched_points == runs.matched_points and str(loaded) == str(runs)
        for a, b in zip(loaded, runs):
            assert (a.status, a.label, a.matched, a.steps) == (b.status, b.label, b.matched, b.steps)
            assert a.match_distance == b.match_distance or (
                math.isnan(a.match_distance) and math.isnan(b.match_distance)
            )
            np.testing.assert_array_equal(a.params["W"], b.params["W"])
    with pytest.raises(_files.ResultFileError, match="holds a 'DynamicsResult' record, not a 'CriticalPointSet'"):
        load_result(tmp_path / "runs.json")
