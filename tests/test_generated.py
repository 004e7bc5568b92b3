"""Generated evaluator modules are exactly what their derivations write today, and pass their checks.

Every derivation that defines ``generate() -> {path: text}`` is run and each file it would
write is compared with the committed one: editing a generated file by hand, or changing a
derivation without regenerating, fails here. The emitted text is also imported from a
scratch directory and checked against sympy (``check_emitted``), as ``python -m derivations``
does before writing.
"""

from __future__ import annotations

import pytest
from conftest import ROOT

import derivations
from derivations import codegen

GENERATORS = [module.__name__.rpartition(".")[2] for module in derivations.generators()]


def test_generators_exist():
    assert set(GENERATORS) == {"closed_form_losses", "pointwise_losses", "interval_kernels"}


@pytest.mark.parametrize("name", GENERATORS)
def test_regenerating_changes_nothing(name):
    files = derivations.load(name).generate()
    assert files, f"derivations/{name}.py generated no file"
    for relative_path, text in files.items():
        committed = ROOT / relative_path
        assert committed.exists(), f"{relative_path} (from derivations/{name}.py) is not in the tree"
        assert committed.read_text() == text, (
            f"{relative_path} differs from what derivations/{name}.py generates; "
            f"run `{codegen.COMMAND}` and commit the result"
        )
        assert text.startswith(codegen.header(name)), f"{relative_path} lacks its header"


@pytest.mark.parametrize("name", GENERATORS)
def test_emitted_modules_pass_their_checks(name):
    if name == "interval_kernels":
        pytest.importorskip("flint")
    module = derivations.load(name)
    module.check_emitted(module.generate())


def test_write_files_rewrites_only_changed_text(tmp_path):
    """``python -m derivations`` writes a generated module only when its text changed."""
    text = derivations.load("pointwise_losses").generate()["critpoints/losses/_generated/pointwise_kernels.py"]
    copy = tmp_path / "copy.py"
    copy.write_text(text.replace("2.0*C", "2.0*C + 0.0", 1))
    assert codegen.write_files({"copy.py": text}, root=tmp_path) == ["copy.py"]
    assert copy.read_text() == text
    assert codegen.write_files({"copy.py": text}, root=tmp_path) == []
