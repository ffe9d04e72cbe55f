"""`deepfakestream migrate`: wait for the database, then apply every pending migration."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--revision", default="head", help="target revision (default: head)")
    parser.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the database to accept connections (default: 60)",
    )
    parser.add_argument("--database-url", default=None, help="overrides DATABASE_URL")


def run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import OperationalError

    from core.config import load_settings
    from core.errors import ConfigError
    from core.migrate import current_revision, upgrade, wait_for_database

    try:
        overrides = {"database_url": args.database_url} if args.database_url else {}
        settings = load_settings(**overrides)
    except ConfigError as exc:
        print(f"deepfakestream migrate: {exc}", file=sys.stderr)
        return 2
    try:
        wait_for_database(settings.database_url, timeout_s=args.wait)
        upgrade(settings.database_url, revision=args.revision)
        revision = current_revision(settings.database_url)
    except OperationalError as exc:
        print(f"deepfakestream migrate: database unreachable: {exc.orig}", file=sys.stderr)
        return 1
    print(f"database at revision {revision}")
    return 0
