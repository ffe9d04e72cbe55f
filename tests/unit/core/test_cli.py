"""The `deepfakestream` command: subcommands come from entry points, and core names no higher layer."""

from __future__ import annotations

import ast
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from core import cli

COMMANDS = {"analyze", "batch", "calibrate", "evaluate", "keys", "migrate", "serve", "train", "worker"}


def _subcommands(parser: object) -> dict[str, object]:
    for action in parser._actions:  # type: ignore[attr-defined]
        if getattr(action, "dest", None) == "command":
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_every_command_of_the_distribution_is_registered() -> None:
    commands = _subcommands(cli.build_parser())
    assert set(commands) == COMMANDS
    help_of = {name: parser.description for name, parser in commands.items()}  # type: ignore[attr-defined]
    assert help_of["analyze"] == "the whole pipeline on one local file, no services needed"
    assert help_of["serve"] == "the HTTP API under uvicorn"


def test_core_cli_never_names_a_higher_layer() -> None:
    tree = ast.parse(Path(cli.__file__).read_text())
    named = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    strings = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)]
    for layer in ("api", "worker", "pipeline"):
        assert not any((name or "").split(".")[0] == layer for name in named)
        assert not any(str(text).startswith(f"{layer}.") for text in strings)


def test_a_command_that_cannot_load_stays_listed_and_says_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = EntryPoint(name="broken", value="deepfakestream_missing_module", group=cli.COMMAND_GROUP)
    monkeypatch.setattr(cli, "entry_points", lambda group: [broken])

    assert cli.main(["broken"]) == 2
    assert "deepfakestream broken: not available in this installation" in capsys.readouterr().err
