"""The API's routes as the application declares them, so security sweeps cover routes added later
without anyone listing them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fastapi.routing
from fastapi.routing import APIRoute
from starlette.routing import Mount

from api.app import create_app
from core.config import Settings

__all__ = ["PUBLIC_ROUTES", "TOKEN_ROUTES", "Route", "api_routes", "fill_path", "mounted_paths"]

# Served to anyone: liveness and readiness probes, the Prometheus scrape (aggregates without
# tenant labels; protect it at the network), the API's own description and the web page's shell
# and icon.
PUBLIC_ROUTES = frozenset(
    {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/"),
        ("GET", "/favicon.ico"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/redoc"),
        ("HEAD", "/openapi.json"),
        ("HEAD", "/docs"),
        ("HEAD", "/docs/oauth2-redirect"),
        ("HEAD", "/redoc"),
    }
)
# Opened by the signed token in their path (a share link), not by an API key: anyone holding the
# link may open it, and a key opens nothing there. Checked by their own tests.
TOKEN_ROUTES = frozenset({("GET", "/v1/shared/{token}"), ("GET", "/v1/shared/{token}/report")})
_PARAM = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?\}")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    params: tuple[str, ...]
    admin: bool  # depends on the admin-key dependency

    @property
    def public(self) -> bool:
        return (self.method, self.path) in PUBLIC_ROUTES

    @property
    def token_opened(self) -> bool:
        return (self.method, self.path) in TOKEN_ROUTES

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _dependency_names(dependant: Any) -> set[str]:
    names = set()
    for sub in dependant.dependencies:
        call = getattr(sub, "call", None)
        if call is not None:
            names.add(getattr(call, "__name__", ""))
        names |= _dependency_names(sub)
    return names


def _flat_routes(app: Any) -> Iterator[tuple[Any, str]]:
    """(declared route, the path it answers on), through included routers."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    if iterate is None:  # FastAPI before nested routers: app.routes is already flat
        yield from ((route, route.path) for route in app.routes)
        return
    for context in iterate(app.routes):
        yield context.original_route, context.path


def api_routes(settings: Settings) -> list[Route]:
    """Every (method, path) the application answers, with what it depends on."""
    routes: list[Route] = []
    for route, path in _flat_routes(create_app(settings)):
        if isinstance(route, Mount):
            continue
        admin = isinstance(route, APIRoute) and "_admin_key" in _dependency_names(route.dependant)
        params = tuple(_PARAM.findall(path))
        methods = sorted(getattr(route, "methods", None) or ())
        routes.extend(Route(method, path, params, admin) for method in methods)
    return routes


def mounted_paths(settings: Settings) -> list[str]:
    """Mounted sub-applications (static files)."""
    return [path for route, path in _flat_routes(create_app(settings)) if isinstance(route, Mount)]


def fill_path(path: str, values: dict[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise AssertionError(f"no value for path parameter {name!r} of {path}: add one to the test")
        return str(values[name])

    return _PARAM.sub(value, path)
