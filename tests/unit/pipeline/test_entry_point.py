"""The package's entry point: ``pipeline.analyze`` is the function whichever name is touched first."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.utils.platform import REPO_ROOT


def _fresh_python(code: str) -> str:
    """Runs ``code`` in a new interpreter (nothing of the package loaded yet); returns its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_importing_the_package_loads_no_networks() -> None:
    out = _fresh_python(
        """
        import sys
        import pipeline
        print("torch" in sys.modules, "pipeline.analyzer" in sys.modules)
        """
    )
    assert out.split() == ["False", "False"]


def test_analyzer_is_reachable_before_its_module_loads() -> None:
    out = _fresh_python(
        """
        import pipeline
        print(pipeline.Analyzer.__module__, pipeline.Analyzer.__name__)
        """
    )
    assert out.split() == ["pipeline.analyzer", "Analyzer"]


def test_analyze_stays_the_function_once_its_module_is_loaded() -> None:
    out = _fresh_python(
        """
        import pipeline.analyzer
        import pipeline
        from pipeline import analyze
        print(callable(analyze), analyze is pipeline.analyzer.analyze, analyze is pipeline.analyze)
        """
    )
    assert out.split() == ["True", "True", "True"]


def test_analyze_refuses_a_missing_file_before_loading_a_model(tmp_path: Path) -> None:
    out = _fresh_python(
        f"""
        import pipeline
        try:
            pipeline.analyze({str(tmp_path / "missing.mp4")!r}, model_path={str(tmp_path / "none")!r})
        except pipeline.PipelineError as exc:
            print(exc.code)
        """
    )
    assert out.split() == ["file_not_found"]
