"""The package's layer contract, checked over its import graph.

Each subpackage of critpoints may import only the subpackages listed for it in
:data:`ALLOWED` (plus itself). The lists encode the architecture the README describes::

    cli
    plots
    dynamics              training runs, the paper's experiments
    landscape             starts, orbits, spectra, labels, enumeration, results
    certify               interval proofs for one point of a loss
    losses    solver      the population losses | Newton and restarts (independent)
    data                  moments and view laws of a setting
    model     manifolds   the setting and its loss families | products of spheres
    _validation, _version, _files   (argument checks, the version, result files)

so the solver knows nothing of sparse coding (no model, data or losses), the losses know
nothing of solvers, and nothing below the top imports the public facade ``critpoints``
itself. Every import counts: module level, inside functions and under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from pathlib import Path

FOUNDATION = frozenset({"_validation", "_version", "_files"})

ALLOWED: dict[str, frozenset[str]] = {
    "_validation": frozenset(),
    "_version": frozenset(),
    "_files": frozenset({"_version"}),
    "manifolds": FOUNDATION,
    "model": FOUNDATION,
    "data": FOUNDATION | {"model"},
    "losses": FOUNDATION | {"model", "data", "manifolds"},
    "solver": FOUNDATION | {"manifolds"},
    "certify": FOUNDATION | {"model", "data", "manifolds", "losses"},
    "landscape": FOUNDATION | {"model", "data", "manifolds", "losses", "solver", "certify"},
    "dynamics": FOUNDATION | {"model", "data", "manifolds", "losses", "solver", "certify", "landscape"},
    "plots": FOUNDATION | {"model", "data", "manifolds", "losses", "solver", "certify", "landscape", "dynamics"},
    "cli": FOUNDATION | {"model", "data", "manifolds", "losses", "solver", "certify", "landscape", "dynamics", "plots"},
}


def component(module: str) -> str | None:
    """The layer of a dotted module name inside critpoints ('' for the facade ``critpoints``)."""
    parts = module.split(".")
    if parts[0] != "critpoints":
        return None
    return parts[1] if len(parts) > 1 else ""


def _module_name(package_root: Path, path: Path) -> str:
    relative = path.relative_to(package_root.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(package_root: Path, dotted: str) -> bool:
    """Whether ``dotted`` (critpoints.a.b) names a module or package file under package_root."""
    relative = Path(*dotted.split(".")[1:])
    base = package_root / relative
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _imported_modules(package_root: Path, tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``tree``. ``from a import b`` counts as an
    import of a.b when b is a module, else as an import of a."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                inside = component(submodule) is not None
                found.append((node.lineno, submodule if inside and _is_module(package_root, submodule) else target))
    return found


def violations(package_root: Path) -> list[str]:
    """Every import in the package at ``package_root`` that breaks :data:`ALLOWED`.

    Each violation reads ``file:line: <layer> imports <module> (layer <other>)``; a module in
    a folder that no entry of ALLOWED names is a violation too, so new folders get a layer.
    """
    problems = []
    for path in sorted(package_root.rglob("*.py")):
        module = _module_name(package_root, path)
        own = component(module)
        if own == "":
            continue  # the facade may import every layer
        if own not in ALLOWED:
            problems.append(f"{path}: module of {own!r}, which has no layer in ALLOWED")
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target in _imported_modules(package_root, tree, module, path.name == "__init__.py"):
            other = component(target)
            if other is None or other == own:
                continue
            if other == "" or other not in ALLOWED[own]:
                shown = "the public facade" if other == "" else f"layer {other!r}"
                problems.append(f"{path}:{line}: {own} imports {target} ({shown})")
    return sorted(set(problems))
