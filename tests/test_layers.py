"""The layer contract of the package (tests/import_graph.py) holds, and the check bites."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from import_graph import ALLOWED, violations

PACKAGE = Path(__file__).resolve().parents[1] / "critpoints"


def test_no_module_imports_upwards():
    assert violations(PACKAGE) == []


def test_every_subpackage_has_a_layer():
    folders = {path.name for path in PACKAGE.iterdir() if path.is_dir() and (path / "__init__.py").exists()}
    modules = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    assert folders | modules <= set(ALLOWED)


@pytest.mark.parametrize(
    ("module", "line", "reported"),
    [
        # the solver must not know the losses, even inside a function
        (
            "solver/newton.py",
            "def _probe():\n    from critpoints.losses.population_loss import population_loss\n",
            "solver imports critpoints.losses.population_loss (layer 'losses')",
        ),
        # the losses must not know the landscape above them
        (
            "losses/symmetries.py",
            "from critpoints.landscape import orbits\n",
            "losses imports critpoints.landscape.orbits (layer 'landscape')",
        ),
        # the facade is the top: no layer imports it, relative imports included
        ("model/setting.py", "from .. import Setting\n", "model imports critpoints (the public facade)"),
        (
            "data/moments.py",
            "if False:\n    import critpoints.dynamics.descent\n",
            "data imports critpoints.dynamics.descent (layer 'dynamics')",
        ),
    ],
)
def test_an_injected_upward_import_is_reported(tmp_path, module, line, reported):
    copy = tmp_path / "critpoints"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + "\n\n" + line)
    found = violations(copy)
    assert len(found) == 1 and found[0].startswith(str(target)) and found[0].endswith(reported), found


def test_a_folder_without_a_layer_is_reported(tmp_path):
    copy = tmp_path / "critpoints"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "extras").mkdir()
    (copy / "extras" / "__init__.py").write_text("")
    assert any("'extras', which has no layer" in problem for problem in violations(copy))
