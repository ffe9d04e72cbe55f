"""The packages import downwards only.

core (plumbing) < lifecycle (domain rows) < api, worker; pipeline (the ML steps) sits on core alone
and is used by the worker; api and worker never import each other; training sits on top of all
(``test_training_layer`` checks that nothing imports it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# package -> the top-level packages it may never import, at any depth (function bodies included)
FORBIDDEN = {
    "core": {"lifecycle", "api", "worker", "pipeline", "training"},
    "lifecycle": {"api", "worker", "pipeline", "training"},
    "pipeline": {"lifecycle", "api", "worker", "training"},
    "api": {"worker", "training"},
    "worker": {"api", "training"},
}


def _imported(path: Path) -> set[str]:
    """The top-level package of every absolute import in the module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_never_imports_a_higher_layer(package: str) -> None:
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"no modules under {package}/"
    found = {
        str(path.relative_to(ROOT)): sorted(_imported(path) & FORBIDDEN[package])
        for path in modules
        if _imported(path) & FORBIDDEN[package]
    }
    assert found == {}


def test_no_relative_imports_hide_a_layer() -> None:
    relative = [
        str(path.relative_to(ROOT))
        for package in FORBIDDEN
        for path in sorted((ROOT / package).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert relative == []
