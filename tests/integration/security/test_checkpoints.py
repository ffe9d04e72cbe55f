"""Only safetensors checkpoints are loaded: a pickled checkpoint (as .pt, or renamed .safetensors)
whose unpickling would create a file is refused by a real worker, which stops instead of serving,
and the file is never created. No code of the service unpickles anything."""

from __future__ import annotations

import ast
import builtins
import pickle
import sys
from pathlib import Path

import pytest

from tests.utils.platform import REPO_ROOT, ServiceProcess
from tests.utils.stack import PrivateStack
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.integration

SOURCE_PACKAGES = ("api", "core", "pipeline", "worker")
_PICKLERS = ("pickle", "cPickle", "dill", "joblib", "marshal", "shelve")


class _Payload:
    """Unpickling this opens (creates) ``marker`` for writing: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return builtins.open, (str(self.marker), "w")


@pytest.mark.parametrize("name", ["model.pt", "model.safetensors"])
def test_worker_refuses_a_pickled_checkpoint(security_stack: PrivateStack, tmp_path: Path, name: str) -> None:
    marker = tmp_path / "unpickled-code-ran"
    checkpoint = tmp_path / name
    checkpoint.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    argv = [sys.executable, "-m", "core.cli", "worker", "--queues", "probe,analyze",
            "--concurrency", "1", "--hostname", f"pickled-{tmp_path.name}@%h"]  # fmt: skip
    worker = ServiceProcess(
        "pickled",
        argv,
        env={**security_stack.env, "MODEL_PATH": str(checkpoint)},
        log_path=tmp_path / "worker.log",
    ).start()
    try:
        wait_for(lambda: not worker.alive(), timeout_s=180, what="the worker to refuse the checkpoint")
    finally:
        worker.stop()

    log = worker.log_text()
    assert worker.process is not None and worker.process.returncode != 0, log[-2000:]
    assert "worker.process.ready" not in log and "worker.ready" not in log
    assert "not a safetensors file" in log or "only safetensors" in log, log[-2000:]
    assert not marker.exists(), "the checkpoint was unpickled"


def _unpickling_calls(path: Path) -> list[str]:
    """Calls that can unpickle: pickle/dill/joblib/marshal loads, torch.load without
    weights_only=True, numpy.load with allow_pickle=True."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
        name = f"{owner}.{node.func.attr}"
        keywords = {kw.arg: kw.value for kw in node.keywords}

        def flag(keyword: str, wanted: bool, keywords: dict[str | None, ast.expr] = keywords) -> bool:
            value = keywords.get(keyword)
            return isinstance(value, ast.Constant) and value.value is wanted

        if (
            (owner in _PICKLERS and node.func.attr.startswith("load"))
            or (name == "torch.load" and not flag("weights_only", True))
            or (name in ("np.load", "numpy.load") and flag("allow_pickle", True))
        ):
            found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {name}")
    return found


def test_no_code_unpickles() -> None:
    files = [path for package in SOURCE_PACKAGES for path in (REPO_ROOT / package).rglob("*.py")]
    assert len(files) > 50
    found = [call for path in files for call in _unpickling_calls(path)]
    assert not found, found
