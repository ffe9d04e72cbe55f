#!/usr/bin/env python3
"""Offline dependency audit against a committed snapshot of the PyPA advisory database.

Two subcommands:

``check``
    Lists every installed distribution of an environment and looks each one up in the snapshot
    (``infra/security/pypa-advisories.json``). Prints one line per finding and a summary.
    Exit 0: nothing with a fix available; 1: at least one installed version is affected by an
    advisory that has a fixed release; 2: the audit could not be completed (snapshot missing or
    malformed, bad ignore file, or an installed distribution that the snapshot never looked up).

``build``
    Builds the snapshot from a local checkout of https://github.com/pypa/advisory-database
    (``vulns/<package>/<ID>.yaml``, OSV schema written as YAML), keeping for every requested
    package all its advisories reduced to the fields the check needs.

Version semantics follow the OSV schema for ``ECOSYSTEM`` ranges: the events of a range are
sorted by version (``introduced: "0"`` first) and a version is affected when the last
``introduced`` at or below it is not followed by a ``fixed`` at or below it (or a
``last_affected`` below it). A version is also affected when it is listed in ``versions``.
Versions are compared with :class:`packaging.version.Version` (PEP 440).

Only the standard library, ``packaging`` and (for ``build``) PyYAML are used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

# The check and the build live beside this script; it runs as a file, not as a package module.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from advisories_build import build_snapshot, dump_snapshot, git_revision
from advisories_check import (
    DEFAULT_IGNORE,
    DEFAULT_SKIP,
    DEFAULT_SNAPSHOT,
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_VULNERABLE,
    AuditError,
    audit,
    format_report,
    installed_distributions,
    load_ignore_file,
    load_snapshot,
    normalize,
    parse_installed,
)

__all__ = ["main", "parser"]


# --------------------------------------------------------------------------------------------- check


def command_check(args: argparse.Namespace) -> int:
    snapshot = load_snapshot(Path(args.snapshot))
    if args.installed is not None:
        installed = parse_installed(args.installed)
    elif args.installed_file is not None:
        try:
            installed = parse_installed(Path(args.installed_file).read_text(encoding="utf-8"))
        except OSError as exc:
            raise AuditError(f"cannot read {args.installed_file}: {exc}") from None
    else:
        installed = installed_distributions(args.python)
    if not installed:
        raise AuditError("no installed distribution found; nothing was audited")
    ignores = load_ignore_file(Path(args.ignore_file) if args.ignore_file else None)
    report = audit(snapshot, installed, ignores, skip=args.skip or DEFAULT_SKIP)
    for line in format_report(report, snapshot):
        print(line)
    if report.fixable:
        print("audit: FAILED: upgrade the distributions marked VULNERABLE (or, for a reviewed exception, add "
              "the advisory to infra/security/audit-ignore.txt with a reason)")
        return EXIT_VULNERABLE
    return EXIT_OK


# --------------------------------------------------------------------------------------------- build


def command_build(args: argparse.Namespace) -> int:
    source = Path(args.source)
    if args.packages_from_env:
        packages = [n for n, _ in installed_distributions(args.python)]
    elif args.packages:
        packages = [p.strip() for p in args.packages.split(",") if p.strip()]
    else:
        raise AuditError("say which packages to look up: --packages-from-env or --packages a,b,c")
    skipped = {normalize(s) for s in args.skip or DEFAULT_SKIP}
    packages = [p for p in packages if normalize(p) not in skipped]
    revision = args.revision or git_revision(source) or "unknown"
    built_at = args.built_at or dt.datetime.now(dt.UTC).date().isoformat()
    document, log = build_snapshot(source, packages, built_at=built_at, revision=revision, note=args.note)
    Path(args.out).write_text(dump_snapshot(document), encoding="utf-8")
    for line in log if args.verbose else []:
        print(line)
    stats = document["stats"]
    print(f"build: wrote {args.out}: {stats['packages_checked']} packages looked up, "
          f"{stats['packages_with_advisories']} with advisories, {stats['advisories']} advisories "
          f"({stats['files_read']} files read, {stats['withdrawn']} withdrawn, {stats['other_package']} for "
          f"another package, {stats['merged_duplicates']} duplicates merged)")
    return EXIT_OK


# --------------------------------------------------------------------------------------------- CLI


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="advisories.py", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="audit installed distributions against the snapshot")
    check.add_argument("--snapshot", default=str(DEFAULT_SNAPSHOT))
    check.add_argument("--ignore-file", default=str(DEFAULT_IGNORE),
                       help="'ID  # reason' per line (default: infra/security/audit-ignore.txt)")
    source = check.add_mutually_exclusive_group()
    source.add_argument("--python", help="interpreter whose environment is audited (default: this one)")
    source.add_argument("--installed", help="name==version,... instead of reading an environment")
    source.add_argument("--installed-file", help="file with one name==version per line")
    check.add_argument("--skip", action="append", help="distribution left out (default: deepfakestream)")
    check.set_defaults(handler=command_check)

    build = sub.add_parser("build", help="build the snapshot from an advisory-database checkout")
    build.add_argument("--source", required=True, help="checkout of github.com/pypa/advisory-database")
    build.add_argument("--out", required=True)
    which = build.add_mutually_exclusive_group()
    which.add_argument("--packages-from-env", action="store_true",
                       help="every distribution installed for --python (default: this interpreter)")
    which.add_argument("--packages", help="comma-separated package names")
    build.add_argument("--python")
    build.add_argument("--skip", action="append", help="distribution left out (default: deepfakestream)")
    build.add_argument("--revision", help="database revision (default: git rev-parse HEAD of --source)")
    build.add_argument("--built-at", help="date recorded as built_at (default: today, UTC)")
    build.add_argument("--note", default="", help="free text stored with the source metadata")
    build.add_argument("--verbose", action="store_true", help="list skipped and merged entries")
    build.set_defaults(handler=command_build)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except AuditError as exc:
        print(f"audit: ERROR: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE


if __name__ == "__main__":
    sys.exit(main())
