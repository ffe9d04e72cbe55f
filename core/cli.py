"""The `deepfakestream` command: one entry point, each subcommand defined next to the code it runs.

Subcommand modules are imported only when their command runs, so `deepfakestream serve` never
loads torch and `deepfakestream analyze` never needs the database drivers.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

__all__ = ["main"]

# command → (module, help). Each module exposes `add_arguments(parser)` and `run(args) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "analyze": ("pipeline.cli_analyze", "analyse one video with no services"),
    "train": ("pipeline.cli_train", "train the face classifier"),
    "evaluate": ("pipeline.cli_evaluate", "evaluate a checkpoint on labelled crops or videos"),
    "serve": ("api.cli", "run the HTTP API"),
    "worker": ("worker.cli", "run a Celery worker"),
    "migrate": ("core.cli_migrate", "apply database migrations"),
    "keys": ("core.cli_keys", "manage API keys"),
    "batch": ("api.cli_batch", "submit batches and fetch their results through the API"),
    "bench": ("pipeline.cli_bench", "run a benchmark"),
}


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepfakestream", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        if not _available(module):
            continue
        command = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(command)
        command.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
