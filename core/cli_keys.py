"""`deepfakestream keys`: create, list and revoke API keys. A new key is printed once and stored
only hashed; ``ensure`` keeps a development key in a file of its owner's and reuses it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION")
    actions.required = True
    create = actions.add_parser("create", help="create a key (and the tenant when new); prints the key once")
    create.add_argument("--tenant", required=True, help="tenant name")
    create.add_argument("--admin", action="store_true", help="allow the internal admin endpoints")
    create.add_argument("--label", default=None, help="a note to tell keys apart")
    ensure = actions.add_parser(
        "ensure",
        help="print the key saved in FILE while it is live, else create one and save it there (0600)",
    )
    ensure.add_argument("--tenant", required=True, help="tenant name")
    ensure.add_argument("--file", required=True, type=Path, help="where the key is kept")
    ensure.add_argument("--label", default=None, help="a note to tell keys apart")
    listing = actions.add_parser("list", help="list keys (prefixes only)")
    listing.add_argument("--tenant", default=None)
    revoke = actions.add_parser("revoke", help="revoke a key by its prefix (dfs_xxxxxxxx)")
    revoke.add_argument("prefix")


def run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from core.config import get_settings
    from core.db import get_session_factory
    from core.errors import ConfigError
    from core.keys import create_api_key, ensure_saved_api_key, list_api_keys, revoke_api_key

    try:
        settings = get_settings()
    except ConfigError as exc:
        print(f"deepfakestream keys: {exc}", file=sys.stderr)
        return 2
    try:
        with get_session_factory(settings)() as session:
            if args.keys_action == "create":
                try:
                    created = create_api_key(
                        session, tenant_name=args.tenant, admin=args.admin, label=args.label
                    )
                except ValueError as exc:
                    print(f"deepfakestream keys: {exc}", file=sys.stderr)
                    return 2
                scope = "admin" if args.admin else "tenant"
                print(
                    f"created {scope} key {created.record.prefix} for tenant {created.tenant.name!r} "
                    "(shown once; store it now):",
                    file=sys.stderr,
                )
                print(created.key)
                return 0
            if args.keys_action == "ensure":
                try:
                    saved_key, created_now = ensure_saved_api_key(
                        session, tenant_name=args.tenant, path=args.file, label=args.label
                    )
                except (OSError, ValueError) as exc:
                    print(f"deepfakestream keys: {exc}", file=sys.stderr)
                    return 2
                if created_now:
                    print(f"created a key for tenant {args.tenant!r}, saved in {args.file}", file=sys.stderr)
                print(saved_key)
                return 0
            if args.keys_action == "list":
                for key, tenant in list_api_keys(session, tenant_name=args.tenant):
                    state = "revoked" if key.revoked_at else "active"
                    print(
                        f"{key.prefix}\t{tenant.name}\t{'admin' if key.is_admin else 'tenant'}\t{state}\t"
                        f"{key.created_at:%Y-%m-%d}\t{key.label or ''}"
                    )
                return 0
            if revoke_api_key(session, prefix=args.prefix):
                print(f"revoked {args.prefix}")
                return 0
            print(f"deepfakestream keys: no active key with prefix {args.prefix!r}", file=sys.stderr)
            return 1
    except OperationalError as exc:
        print(f"deepfakestream keys: database unreachable: {exc.orig}", file=sys.stderr)
        return 1
    except ProgrammingError as exc:
        print(
            f"deepfakestream keys: database not migrated (run `deepfakestream migrate`): {exc.orig}",
            file=sys.stderr,
        )
        return 1
