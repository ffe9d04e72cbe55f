"""No source module grows past 450 lines: a longer one is split along a seam with a name of its own.
The benchmarks (``bench/``) and the scripts (``scripts/``) are held to the same limit.

``core/models.py`` is exempt: it declares the database tables, one after the other, and reads best
whole.
"""

from __future__ import annotations

from pathlib import Path

from tests.utils.platform import REPO_ROOT

PACKAGES = ("api", "core", "lifecycle", "pipeline", "training", "worker")
# Runnable modules beside the packages: the benchmarks and the scripts.
FOLDERS = ("bench", "scripts")
MAX_LINES = 450
EXEMPT = {"core/models.py"}


def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_is_over_the_limit() -> None:
    modules = [path for package in PACKAGES for path in sorted((REPO_ROOT / package).rglob("*.py"))]
    assert len(modules) > 100, "the check misses modules"
    beside = [path for folder in FOLDERS for path in sorted((REPO_ROOT / folder).rglob("*.py"))]
    assert len(beside) >= len(FOLDERS), "the check misses the benchmarks' or the scripts' modules"
    modules += beside
    too_long = {
        name: lines
        for path in modules
        if (name := path.relative_to(REPO_ROOT).as_posix()) not in EXEMPT
        and (lines := _line_count(path)) > MAX_LINES
    }
    assert too_long == {}, f"modules over {MAX_LINES} lines (split them): {too_long}"


def test_the_exemption_names_a_module_that_exists() -> None:
    assert all((REPO_ROOT / name).is_file() for name in EXEMPT)
