"""The project's modules import each other without a cycle, counting every import in a module.

Imports inside functions and under ``if TYPE_CHECKING:`` count too: a cycle hidden in a function
body is still a cycle in the design. ``from package import name`` depends on ``package.name`` when
that is a module, otherwise on the package's ``__init__``; ``import a.b`` depends on ``a.b`` only
(its parents run first but do not depend on it).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.utils.platform import REPO_ROOT

PACKAGES = ("api", "core", "lifecycle", "pipeline", "training", "worker")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``, by dotted name."""
    return {
        _module_name(path, root): path
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
    }


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules that the module ``name`` at ``path`` imports, at any depth."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in modules else source)
    return {module for module in found if module in modules and module != name}


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Each project module and the project modules it imports."""
    modules = project_modules(root, packages)
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, …, a]``, or ``None`` when the graph has none."""
    finished: set[str] = set()
    for start in sorted(graph):
        if start in finished:
            continue
        # depth-first, without recursion: the path being walked and, per step, what is left to visit
        path = [start]
        pending = [iter(sorted(graph[start]))]
        while path:
            following = next(pending[-1], None)
            if following is None:
                finished.add(path.pop())
                pending.pop()
            elif following in path:
                return [*path[path.index(following) :], following]
            elif following not in finished:
                path.append(following)
                pending.append(iter(sorted(graph[following])))
    return None


def test_the_project_has_no_import_cycle() -> None:
    graph = import_graph(REPO_ROOT)
    assert len(graph) > 100, "the graph misses modules"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg.sub import helpers\n", encoding="utf-8")
    (package / "sub" / "__init__.py").write_text("", encoding="utf-8")
    (package / "sub" / "helpers.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.other import Thing\n"
        "def later():\n"
        "    import pkg.third\n",
        encoding="utf-8",
    )
    (package / "other.py").write_text("from pkg import VALUE\n", encoding="utf-8")
    (package / "third.py").write_text("import os\n", encoding="utf-8")
    graph = import_graph(tmp_path, ("pkg",))
    assert graph == {
        "pkg": {"pkg.sub.helpers"},
        "pkg.sub": set(),
        "pkg.sub.helpers": {"pkg.other", "pkg.third"},
        "pkg.other": {"pkg"},
        "pkg.third": set(),
    }
    assert find_cycle(graph) == ["pkg", "pkg.sub.helpers", "pkg.other", "pkg"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
