"""`deepfakestream serve`: the HTTP API under uvicorn."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default: 1)")
    parser.add_argument("--migrate", action="store_true", help="apply database migrations before serving")
    parser.add_argument("--reload", action="store_true", help="restart on code changes (development)")
    parser.add_argument(
        "--http",
        choices=("httptools", "h11"),
        default="httptools",
        help="HTTP/1.1 parser (default: httptools; h11 is pure Python)",
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from core.config import get_settings
    from core.errors import ConfigError
    from core.logs import configure_logging

    try:
        settings = get_settings()
    except ConfigError as exc:
        print(f"deepfakestream serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(level=settings.log_level, json_lines=settings.log_format == "json")
    if args.migrate:
        from core.migrate import upgrade, wait_for_database

        wait_for_database(settings.database_url)
        upgrade(settings.database_url)
    from api.server import GuardedH11Protocol, GuardedHttpToolsProtocol

    uvicorn.run(
        "api.app:create_app",
        factory=True,
        # uvicorn's parser with a deadline for request headers and a cap per client address
        # (HEADER_TIMEOUT_S, MAX_CONNECTIONS_PER_ADDRESS): api.server.
        http=GuardedH11Protocol if args.http == "h11" else GuardedHttpToolsProtocol,
        # No route speaks WebSocket: an Upgrade header is served as plain HTTP, never handed to
        # a protocol outside those limits.
        ws="none",
        host=args.host,
        port=args.port,
        workers=args.workers,
        reload=args.reload,
        log_config=None,  # keep our JSON handler
        access_log=False,  # api.app logs each request with its route and duration
        proxy_headers=True,
        timeout_graceful_shutdown=30,
    )
    return 0
