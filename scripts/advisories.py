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
import dataclasses
import datetime as dt
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SNAPSHOT = ROOT / "infra" / "security" / "pypa-advisories.json"
DEFAULT_IGNORE = ROOT / "infra" / "security" / "audit-ignore.txt"
DEFAULT_SKIP = ("deepfakestream",)  # the project itself, installed editable; not on PyPI
SCHEMA_VERSION = 1
DATABASE_URL = "https://github.com/pypa/advisory-database"
LICENCE = "CC-BY-4.0"
REFRESH_HINT = (
    "refresh the snapshot: clone https://github.com/pypa/advisory-database (or download its zip), then run "
    "'.venv/bin/python scripts/advisories.py build --source <checkout> "
    "--out infra/security/pypa-advisories.json --packages-from-env' (see infra/security/README.md)"
)
SUMMARY_CHARS = 160
DRAFT_PREFIX = "PYSEC-0000-"  # IDs of entries not yet assigned a number in the database's triage flow

EXIT_OK, EXIT_VULNERABLE, EXIT_INCOMPLETE = 0, 1, 2


class AuditError(Exception):
    """The audit cannot be completed; the message is one line meant for a person."""


# --------------------------------------------------------------------------------------------- names


def normalize(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


# --------------------------------------------------------------------------------------------- matching


@dataclasses.dataclass(frozen=True)
class RangeResult:
    affected: bool
    fixes: tuple[str, ...]  # fixed versions above the installed one, in this range
    unparsable: tuple[str, ...] = ()


def _event_sort_key(event: tuple[str, str]) -> tuple[int, Version]:
    kind, value = event
    if kind == "introduced" and value == "0":
        return (0, Version("0"))
    version = parse_version(value)
    if version is None:  # pragma: no cover - filtered out by the caller
        raise InvalidVersion(value)
    return (1, version)


def evaluate_range(events: Sequence[dict[str, str]], version: Version) -> RangeResult:
    """Whether ``version`` lies in one OSV ECOSYSTEM range given as its list of events."""
    flat: list[tuple[str, str]] = []
    unparsable: list[str] = []
    for event in events:
        for kind in ("introduced", "fixed", "last_affected", "limit"):
            if kind in event:
                value = str(event[kind])
                if not (kind == "introduced" and value == "0") and parse_version(value) is None:
                    unparsable.append(value)
                    continue
                flat.append((kind, value))
    flat.sort(key=_event_sort_key)
    affected = False
    for kind, value in flat:
        bound = Version("0") if value == "0" else Version(value)
        if kind == "introduced":
            affected = affected or value == "0" or version >= bound
        else:  # fixed/limit end the range at the bound itself, last_affected just after it
            ended = version > bound if kind == "last_affected" else version >= bound
            affected = affected and not ended
    fixes = tuple(value for kind, value in flat if kind == "fixed" and Version(value) > version)
    return RangeResult(affected, fixes, tuple(unparsable))


def version_listed(listed: Iterable[str], installed: str) -> bool:
    parsed = parse_version(installed)
    for candidate in listed:
        if candidate == installed:
            return True
        other = parse_version(candidate)
        if parsed is not None and other is not None and other == parsed:
            return True
    return False


@dataclasses.dataclass(frozen=True)
class Finding:
    name: str
    version: str
    advisory_id: str
    aliases: tuple[str, ...]
    summary: str
    fixed_in: str | None  # smallest fixed release above the installed version; None: no fix released

    @property
    def ids(self) -> set[str]:
        return {self.advisory_id, *self.aliases}

    def describe(self) -> str:
        aliases = f" ({', '.join(self.aliases)})" if self.aliases else ""
        head = f"{self.name} {self.version}: {self.advisory_id}{aliases}"
        if self.fixed_in is not None:
            return f"VULNERABLE {head} fixed in {self.fixed_in}"
        return f"warning: {head} no fix released"


def match_advisory(name: str, installed: str, advisory: dict[str, Any]) -> tuple[Finding | None, list[str]]:
    """The finding for one installed distribution and one snapshot advisory, plus any warnings."""
    warnings: list[str] = []
    version = parse_version(installed)
    affected = False
    range_fixes: list[Version] = []  # fixed releases above the installed version, in ranges that match
    other_fixes: list[Version] = []  # the same in ranges that do not (used when only a versions list matches)
    for entry in advisory.get("affected", []):
        if version_listed(entry.get("versions", []), installed):
            affected = True
        for events in entry.get("ranges", []):
            if version is None:
                warnings.append(
                    f"warning: {name} {installed}: not a PEP 440 version, only explicit version lists of "
                    f"{advisory['id']} were compared"
                )
                continue
            result = evaluate_range(events, version)
            for bad in result.unparsable:
                warnings.append(f"warning: {advisory['id']}: range event {bad!r} is not a PEP 440 version, "
                                "ignored")
            fixes = [Version(fix) for fix in result.fixes]
            if result.affected:
                affected = True
                range_fixes.extend(fixes)
            else:
                other_fixes.extend(fixes)
    if not affected:
        return None, warnings
    candidates = range_fixes or other_fixes
    fixed_in = str(min(candidates)) if candidates else None
    aliases = tuple(advisory.get("aliases", [])) or tuple(advisory.get("related", []))
    return Finding(name, installed, advisory["id"], aliases, advisory.get("summary", ""), fixed_in), warnings


# --------------------------------------------------------------------------------------------- snapshot


def load_snapshot(path: Path) -> dict[str, Any]:
    """Read and validate a snapshot; any problem is an :class:`AuditError` with a one-line message."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AuditError(f"snapshot {path} does not exist; {REFRESH_HINT}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"snapshot {path} is unreadable: {exc}") from None
    except json.JSONDecodeError as exc:
        raise AuditError(f"snapshot {path} is not valid JSON: {exc}") from None
    problem = _snapshot_problem(document)
    if problem:
        raise AuditError(f"snapshot {path} is malformed: {problem}")
    return document  # type: ignore[no-any-return]


def _snapshot_problem(document: object) -> str | None:
    if not isinstance(document, dict):
        return "the top level is not an object"
    if document.get("schema") != SCHEMA_VERSION:
        return f"schema is {document.get('schema')!r}, expected {SCHEMA_VERSION}"
    for key, kind in (("built_at", str), ("packages_checked", list), ("advisories", dict), ("source", dict)):
        if not isinstance(document.get(key), kind):
            return f"'{key}' is missing or not a {kind.__name__}"
    checked = document["packages_checked"]
    if not all(isinstance(n, str) and n == normalize(n) for n in checked):
        return "'packages_checked' must hold normalised package names"
    for package, advisories in document["advisories"].items():
        if package not in checked:
            return f"advisories for '{package}', which is not in 'packages_checked'"
        if not isinstance(advisories, list):
            return f"advisories of '{package}' are not a list"
        for advisory in advisories:
            if not isinstance(advisory, dict) or not isinstance(advisory.get("id"), str):
                return f"an advisory of '{package}' has no 'id'"
            if not isinstance(advisory.get("affected"), list) or not advisory["affected"]:
                return f"{advisory['id']} has no 'affected' entries"
            for entry in advisory["affected"]:
                if not isinstance(entry, dict):
                    return f"{advisory['id']}: an 'affected' entry is not an object"
                ranges, versions = entry.get("ranges", []), entry.get("versions", [])
                if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
                    return f"{advisory['id']}: 'versions' must be a list of strings"
                if not isinstance(ranges, list) or not all(isinstance(r, list) for r in ranges):
                    return f"{advisory['id']}: 'ranges' must be a list of event lists"
                for events in ranges:
                    for event in events:
                        if not isinstance(event, dict) or len(event) != 1 or not set(event) <= {
                            "introduced", "fixed", "last_affected", "limit"
                        } or not all(isinstance(v, str) for v in event.values()):
                            return f"{advisory['id']}: bad range event {event!r}"
    return None


# --------------------------------------------------------------------------------------------- environment


_LIST_SCRIPT = (
    "import importlib.metadata as m, json\n"
    "print(json.dumps(sorted({(d.metadata['Name'] or '', d.version) for d in m.distributions()})))\n"
)


def installed_distributions(python: str | None = None) -> list[tuple[str, str]]:
    """(normalised name, version) of every distribution installed for ``python`` (default: this one)."""
    if python is None:
        import importlib.metadata as metadata

        pairs = {(d.metadata["Name"] or "", d.version) for d in metadata.distributions()}
    else:
        try:
            result = subprocess.run([python, "-c", _LIST_SCRIPT], capture_output=True, text=True,
                                    timeout=120, check=True)
            pairs = {(str(n), str(v)) for n, v in json.loads(result.stdout)}
        except (OSError, subprocess.SubprocessError, json.JSONDecodeError, ValueError) as exc:
            raise AuditError(f"cannot list the distributions of {python}: {exc}") from None
    return sorted({(normalize(n), v) for n, v in pairs if n})


def parse_installed(spec: str) -> list[tuple[str, str]]:
    """``name==version`` items separated by commas or newlines (``--installed`` / ``--installed-file``)."""
    pairs = []
    for item in re.split(r"[,\n]", spec):
        item = item.strip()
        if not item or item.startswith("#"):
            continue
        name, sep, version = item.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise AuditError(f"installed distribution {item!r} is not of the form name==version")
        pairs.append((normalize(name.strip()), version.strip()))
    return sorted(set(pairs))


# --------------------------------------------------------------------------------------------- ignore file


@dataclasses.dataclass(frozen=True)
class IgnoreEntry:
    advisory_id: str
    reason: str
    line: int


def load_ignore_file(path: Path | None) -> list[IgnoreEntry]:
    """``ID  # reason`` per line; blank and comment-only lines are skipped; a reason is required."""
    if path is None or not path.exists():
        return []
    entries = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        identifier, _, reason = line.partition("#")
        identifier, reason = identifier.strip(), reason.strip()
        if not identifier or len(identifier.split()) != 1:
            raise AuditError(f"{path}:{number}: expected 'ADVISORY-ID  # reason', got {raw.strip()!r}")
        if not reason:
            raise AuditError(f"{path}:{number}: {identifier} has no reason; write '{identifier}  # why it is "
                             "acceptable' so reviewers can judge it")
        entries.append(IgnoreEntry(identifier, reason, number))
    return entries


# --------------------------------------------------------------------------------------------- check


@dataclasses.dataclass
class Report:
    fixable: list[Finding]
    unfixed: list[Finding]
    ignored: list[tuple[Finding, IgnoreEntry]]
    stale: list[IgnoreEntry]
    warnings: list[str]
    checked: int
    consulted: int


def audit(snapshot: dict[str, Any], installed: Sequence[tuple[str, str]], ignores: Sequence[IgnoreEntry],
          skip: Iterable[str] = DEFAULT_SKIP) -> Report:
    """Look every installed distribution up in the snapshot. Raises AuditError for uncovered ones."""
    skipped = {normalize(s) for s in skip}
    targets = [(n, v) for n, v in installed if n not in skipped]
    covered = set(snapshot["packages_checked"])
    missing = sorted({n for n, _ in targets if n not in covered})
    if missing:
        raise AuditError(
            f"{len(missing)} installed distribution(s) not covered by the snapshot (added without refreshing "
            f"it?): {', '.join(missing)}; {REFRESH_HINT}"
        )
    report = Report([], [], [], [], [], checked=len(targets), consulted=0)
    by_id = {entry.advisory_id: entry for entry in ignores}
    used: set[str] = set()
    for name, version in targets:
        advisories = snapshot["advisories"].get(name, [])
        report.consulted += len(advisories)
        for advisory in advisories:
            finding, warnings = match_advisory(name, version, advisory)
            report.warnings.extend(warnings)
            if finding is None:
                continue
            hits = sorted(finding.ids & by_id.keys())
            if hits:
                used.update(hits)
                report.ignored.append((finding, by_id[hits[0]]))
            elif finding.fixed_in is not None:
                report.fixable.append(finding)
            else:
                report.unfixed.append(finding)
    report.stale = [entry for entry in ignores if entry.advisory_id not in used]
    return report


def format_report(report: Report, snapshot: dict[str, Any]) -> list[str]:
    lines = [finding.describe() for finding in report.fixable]
    lines += [finding.describe() for finding in report.unfixed]
    lines += [f"ignored: {finding.describe()} -- {entry.reason}" for finding, entry in report.ignored]
    lines += [f"warning: ignore entry {entry.advisory_id} (line {entry.line}) matches no finding any more; "
              "it is stale, remove it" for entry in report.stale]
    lines += sorted(set(report.warnings))
    lines.append(
        f"audit: snapshot of {snapshot['built_at']} ({snapshot['source'].get('name', 'advisory database')}); "
        f"{report.checked} distributions checked, {report.consulted} advisories consulted; "
        f"{len(report.fixable)} vulnerable with a fix, {len(report.unfixed)} without a fix, "
        f"{len(report.ignored)} ignored"
    )
    return lines


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


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml  # only the build needs PyYAML

    # BaseLoader keeps every scalar a string: versions such as 2.10 must not become floats.
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    if not isinstance(document, dict) or "id" not in document:
        raise ValueError("not an OSV document (no 'id')")
    return document


def _affected_entries(document: dict[str, Any]) -> list[dict[str, Any]]:
    """``affected`` entries, converting the database's early layout (top-level ``package``/``affects``)."""
    if isinstance(document.get("affected"), list):
        return [entry for entry in document["affected"] if isinstance(entry, dict)]
    affects, package = document.get("affects"), document.get("package")
    if not isinstance(affects, dict) or not isinstance(package, dict):
        return []
    ranges = []
    for old in affects.get("ranges") or []:
        if not isinstance(old, dict):
            continue
        events = [{"introduced": old.get("introduced", "0")}]
        for kind in ("fixed", "last_affected", "limit"):
            if kind in old:
                events.append({kind: old[kind]})
        ranges.append({"type": old.get("type", ""), "events": events})
    return [{"package": package, "ranges": ranges, "versions": affects.get("versions") or []}]


def _short_summary(document: dict[str, Any]) -> str:
    text = str(document.get("summary") or "").strip()
    if not text or re.fullmatch(r"Vulnerability in \S+", text):  # the database's early placeholder
        details = " ".join(str(document.get("details") or "").split())
        text = re.split(r"(?<=[.!?])\s", details, maxsplit=1)[0]
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1].rstrip() + "…"


def reduce_advisory(document: dict[str, Any], package: str) -> dict[str, Any] | None:
    """The snapshot form of one OSV document for ``package``; None when no PyPI entry names it."""
    affected = []
    for entry in _affected_entries(document):
        pkg = entry.get("package") or {}
        if str(pkg.get("ecosystem", "")).lower() != "pypi" or normalize(str(pkg.get("name", ""))) != package:
            continue
        ranges = [
            [{k: str(v) for k, v in event.items()} for event in rng.get("events") or []
             if isinstance(event, dict)]
            for rng in entry.get("ranges") or []
            if isinstance(rng, dict) and rng.get("type") == "ECOSYSTEM"
        ]
        versions = [str(v) for v in entry.get("versions") or []]
        if ranges or versions:
            affected.append({"ranges": ranges, "versions": versions})
    if not affected:
        return None
    reduced: dict[str, Any] = {
        "id": str(document["id"]),
        "aliases": sorted(str(a) for a in document.get("aliases") or []),
        "summary": _short_summary(document),
        "affected": affected,
        "published": str(document.get("published") or ""),
        "modified": str(document.get("modified") or ""),
    }
    related = sorted(str(r) for r in document.get("related") or [])
    if related:
        reduced["related"] = related
    return reduced


def _preference(advisory: dict[str, Any]) -> tuple[bool, str, int, tuple[int, ...]]:
    """Sort key, best first: published before draft, newest ``modified``, most versions listed, lowest ID."""
    listed = sum(len(entry["versions"]) for entry in advisory["affected"])
    number = tuple(int(part) for part in re.findall(r"\d+", advisory["id"]))
    modified = "".join(chr(0x10FFFF - ord(c)) for c in advisory["modified"])  # descending
    return (advisory["id"].startswith(DRAFT_PREFIX), modified, -listed, number)


def merge_duplicates(advisories: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Collapse advisories of one package that describe the same vulnerability (a shared alias/related ID).

    Unnumbered drafts (``PYSEC-0000-...``) give way to published entries; otherwise the most recently
    modified entry is kept (then the one listing most versions, then the lowest ID) and the others' IDs
    become aliases of it. Returns (kept, dropped IDs).
    """
    def keys(advisory: dict[str, Any]) -> set[str]:
        return {advisory["id"], *advisory["aliases"], *advisory.get("related", [])}

    groups: list[list[dict[str, Any]]] = []
    for advisory in sorted(advisories, key=lambda a: a["id"]):
        joined = [g for g in groups if any(keys(advisory) & keys(other) for other in g)]
        for group in joined:
            groups.remove(group)
        groups.append([advisory, *(a for g in joined for a in g)])
    kept: list[dict[str, Any]] = []
    dropped: list[str] = []
    for group in groups:
        group.sort(key=_preference)
        winner = dict(group[0])
        others = group[1:]
        if others:
            winner["aliases"] = sorted(set(winner["aliases"]) | {
                i for a in others for i in (a["id"], *a["aliases"]) if i != winner["id"]
            })
            dropped.extend(a["id"] for a in others)
        kept.append(winner)
    return sorted(kept, key=lambda a: a["id"]), sorted(dropped)


def build_snapshot(source: Path, packages: Iterable[str], *, built_at: str, revision: str,
                   note: str = "") -> tuple[dict[str, Any], list[str]]:
    """Snapshot document for ``packages`` from an advisory-database checkout; returns (document, log)."""
    vulns = source / "vulns" if (source / "vulns").is_dir() else source
    if not vulns.is_dir():
        raise AuditError(f"{source} is not a checkout of the advisory database (no vulns/ folder)")
    folders: dict[str, list[Path]] = {}
    for folder in sorted(p for p in vulns.iterdir() if p.is_dir()):
        folders.setdefault(normalize(folder.name), []).append(folder)
    names = sorted({normalize(p) for p in packages})
    advisories: dict[str, list[dict[str, Any]]] = {}
    log: list[str] = []
    stats = {"files_read": 0, "withdrawn": 0, "other_package": 0, "merged_duplicates": 0}
    for name in names:
        reduced: list[dict[str, Any]] = []
        for folder in folders.get(name, []):
            for path in sorted(folder.glob("*.yaml")):
                try:
                    document = _load_yaml(path)
                except Exception as exc:  # a broken file must not silently shrink the snapshot
                    raise AuditError(f"cannot parse {path}: {exc}") from None
                stats["files_read"] += 1
                if document.get("withdrawn"):
                    stats["withdrawn"] += 1
                    log.append(f"skipped {document['id']} ({name}): withdrawn {document['withdrawn']}")
                    continue
                entry = reduce_advisory(document, name)
                if entry is None:
                    stats["other_package"] += 1
                    log.append(f"skipped {document['id']} ({path.relative_to(vulns)}): "
                               f"no PyPI entry for {name}")
                    continue
                reduced.append(entry)
        kept, dropped = merge_duplicates(reduced)
        stats["merged_duplicates"] += len(dropped)
        for identifier in dropped:
            log.append(f"merged {identifier} ({name}) into the entry that shares its aliases")
        if kept:
            advisories[name] = kept
    modified = [a["modified"] for items in advisories.values() for a in items if a["modified"]]
    document = {
        "schema": SCHEMA_VERSION,
        "built_at": built_at,
        "source": {
            "name": "PyPA Advisory Database",
            "repository": DATABASE_URL,
            "revision": revision,
            "note": note,
            "license": LICENCE,
            "attribution": (
                "Advisory data from the PyPA Advisory Database (https://github.com/pypa/advisory-database), "
                "licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). Reduced by "
                "scripts/advisories.py build: only the PyPI version ranges, version lists, IDs, aliases, a "
                "short summary and dates are kept; withdrawn entries are left out and duplicate entries "
                "merged."
            ),
        },
        "packages_checked": names,
        "advisories": advisories,
        "stats": {
            **stats,
            "packages_checked": len(names),
            "packages_with_advisories": len(advisories),
            "advisories": sum(len(items) for items in advisories.values()),
            "newest_modified": max(modified) if modified else "",
        },
    }
    return document, log


def dump_snapshot(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _git_revision(source: Path) -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


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
    revision = args.revision or _git_revision(source) or "unknown"
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
