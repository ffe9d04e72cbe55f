"""A route handler's name says it is the HTTP operation (``post_job``, ``get_job_by_id``): none shares a
name with a function of the services or of ``lifecycle``, and the published operationIds stay."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.utils.platform import REPO_ROOT


def _public_functions(paths: list[Path]) -> dict[str, str]:
    return {
        node.name: str(path.relative_to(REPO_ROOT))
        for path in paths
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_")
    }


def test_route_handlers_share_no_name_with_a_service_or_lifecycle_function() -> None:
    handlers = _public_functions(sorted((REPO_ROOT / "api" / "routes").glob("*.py")))
    others = _public_functions(
        sorted((REPO_ROOT / "api" / "services").glob("*.py")) + sorted((REPO_ROOT / "lifecycle").glob("*.py"))
    )
    assert len(handlers) > 40
    shared = {name: (handlers[name], others[name]) for name in sorted(handlers.keys() & others.keys())}
    assert shared == {}


def test_renamed_handlers_keep_their_published_operation_ids() -> None:
    pinned = {
        node.name: keyword.value.value
        for path in sorted((REPO_ROOT / "api" / "routes").glob("*.py"))
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for decorator in node.decorator_list
        if isinstance(decorator, ast.Call)
        for keyword in decorator.keywords
        if keyword.arg == "operation_id" and isinstance(keyword.value, ast.Constant)
    }
    assert pinned["post_job"] == "create_job_v1_jobs_post"
    assert pinned["post_job_cancel"] == "cancel_job_v1_jobs__job_id__cancel_post"
    assert pinned["get_job_by_id"] == "get_job_v1_jobs__job_id__get"
    assert pinned["post_batch"] == "create_batch_v1_batches_post"
    assert len(set(pinned.values())) == len(pinned)
