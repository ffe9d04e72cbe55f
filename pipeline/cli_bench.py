"""`deepfakestream bench pipeline [options]`: run a benchmark script from bench/ (a source checkout)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"
BENCHMARKS = {"pipeline": "pipeline.py"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("benchmark", choices=sorted(BENCHMARKS), help="which benchmark to run")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="options of the benchmark (see its --help)")


def run(args: argparse.Namespace) -> int:
    script = BENCH_DIR / BENCHMARKS[args.benchmark]
    if not script.exists():
        print(f"error [bench_missing]: {script} not found; benchmarks run from a source checkout",
              file=sys.stderr)
        return 1
    # bench/ is not an installed package: load the script by path.
    spec = importlib.util.spec_from_file_location(f"deepfakestream_bench_{args.benchmark}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(module.main(list(args.options)))
