"""The `deepfakestream` command: one entry point; each subcommand lives in the package that owns it.

Subcommands are the ``deepfakestream.commands`` entry points of the installed distribution (see
pyproject.toml): each names a module with ``add_arguments(parser)`` and ``run(args) -> int``, whose
docstring's first line (after ``\\`deepfakestream NAME\\`:``) is the command's help. This module
never names them, so the lowest layer does not wire the highest. A command whose module cannot be
imported stays listed and says why when it is run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

__all__ = ["COMMAND_GROUP", "build_parser", "main"]

COMMAND_GROUP = "deepfakestream.commands"
_EXIT_UNAVAILABLE = 2


def _help(module: ModuleType) -> str:
    """The docstring's first line without its ``\\`deepfakestream NAME\\`:`` label."""
    first_line = (module.__doc__ or "").strip().split("\n", 1)[0]
    return first_line.split("`: ", 1)[-1].rstrip(".")


def _add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser], entry: EntryPoint) -> None:
    try:
        module = entry.load()
    except ImportError as exc:
        reason = f"{type(exc).__name__}: {exc}"
        command = sub.add_parser(entry.name, help=f"(unavailable: {reason})")
        command.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        command.set_defaults(_run=lambda _: _unavailable(entry.name, reason))
        return
    help_text = _help(module)
    command = sub.add_parser(entry.name, help=help_text, description=help_text)
    module.add_arguments(command)
    command.set_defaults(_run=module.run)


def _unavailable(name: str, reason: str) -> int:
    print(f"deepfakestream {name}: not available in this installation ({reason})", file=sys.stderr)
    return _EXIT_UNAVAILABLE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepfakestream", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda entry: entry.name):
        _add_command(sub, entry)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
