"""The dependency audit's build: the snapshot made from a checkout of the PyPA advisory database,
each advisory reduced to the fields the check needs."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from advisories_check import SCHEMA_VERSION, AuditError, normalize

__all__ = ["build_snapshot", "dump_snapshot", "git_revision", "merge_duplicates", "reduce_advisory"]

DATABASE_URL = "https://github.com/pypa/advisory-database"
LICENCE = "CC-BY-4.0"
SUMMARY_CHARS = 160
DRAFT_PREFIX = "PYSEC-0000-"  # IDs of entries not yet assigned a number in the database's triage flow


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


def git_revision(source: Path) -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None
