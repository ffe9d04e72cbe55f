"""Training sits on top: it imports ``pipeline``, and nothing the service runs (``pipeline``, ``core``,
``lifecycle``, ``api``, ``worker``) imports ``training``, not even inside a function or by a module
name in a string."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from tests.utils.platform import REPO_ROOT

LOWER_LAYERS = ("pipeline", "core", "lifecycle", "api", "worker")
# A module path in a string (importlib, entry points); a bare "training" may be a metadata key.
_MODULE_PATH = re.compile(r"training(\.\w+)+")


def _names_of_training(path: Path) -> list[str]:
    """Every import of ``training`` in a source file, and every string that names one of its modules."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value] if _MODULE_PATH.fullmatch(node.value) else []
        else:
            continue
        found += [name for name in names if name.split(".")[0] == "training"]
    return found


@pytest.mark.parametrize("layer", LOWER_LAYERS)
def test_lower_layers_never_import_training(layer: str) -> None:
    offenders = {
        str(path.relative_to(REPO_ROOT)): names
        for path in sorted((REPO_ROOT / layer).rglob("*.py"))
        if (names := _names_of_training(path))
    }
    assert offenders == {}


def test_the_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "import training\n"
        "from training.scores import roc_auc\n"
        "def later():\n"
        "    import training.train\n"
        "    return importlib.import_module('training.cli_train')\n"
        "from . import training_like\n"
        "import trainingwheels\n"
        "meta = {'training': 'training data'}\n",
        encoding="utf-8",
    )
    assert sorted(_names_of_training(source)) == [
        "training",
        "training.cli_train",
        "training.scores",
        "training.train",
    ]


def test_training_commands_are_modules_of_the_training_package() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    commands = project["project"]["entry-points"]["deepfakestream.commands"]
    assert commands["train"] == "training.cli_train"
    assert commands["evaluate"] == "training.cli_evaluate"
    for module in (commands["train"], commands["evaluate"]):
        assert (REPO_ROOT / (module.replace(".", "/") + ".py")).is_file()
    assert "training*" in project["tool"]["setuptools"]["packages"]["find"]["include"]
