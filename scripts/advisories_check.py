"""The dependency audit's check: OSV range semantics, the committed snapshot, the installed
distributions, the ignore file, and the findings of one environment against the snapshot."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

__all__ = [
    "DEFAULT_IGNORE",
    "DEFAULT_SKIP",
    "DEFAULT_SNAPSHOT",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "EXIT_VULNERABLE",
    "SCHEMA_VERSION",
    "AuditError",
    "Finding",
    "IgnoreEntry",
    "RangeResult",
    "Report",
    "audit",
    "evaluate_range",
    "format_report",
    "installed_distributions",
    "load_ignore_file",
    "load_snapshot",
    "match_advisory",
    "normalize",
    "parse_installed",
    "parse_version",
    "version_listed",
]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SNAPSHOT = ROOT / "infra" / "security" / "pypa-advisories.json"
DEFAULT_IGNORE = ROOT / "infra" / "security" / "audit-ignore.txt"
DEFAULT_SKIP = ("deepfakestream",)  # the project itself, installed editable; not on PyPI
SCHEMA_VERSION = 1
REFRESH_HINT = (
    "refresh the snapshot: clone https://github.com/pypa/advisory-database (or download its zip), then run "
    "'.venv/bin/python scripts/advisories.py build --source <checkout> "
    "--out infra/security/pypa-advisories.json --packages-from-env' (see infra/security/README.md)"
)

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
