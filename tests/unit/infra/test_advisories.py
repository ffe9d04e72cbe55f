"""scripts/advisories.py and its advisories_check.py and advisories_build.py: OSV range semantics,
the check's exit codes, the ignore file and the build."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "advisories.py"


def _load(name: str) -> ModuleType:
    """A module beside the script, under the name the script imports it by."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


adv = _load("advisories_check")
adv_build = _load("advisories_build")


def advisory(ident: str, *ranges: list[dict[str, str]], versions: list[str] | None = None,
             aliases: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": ident,
        "aliases": aliases or [],
        "summary": f"summary of {ident}",
        "affected": [{"ranges": list(ranges), "versions": versions or []}],
        "published": "2024-01-01T00:00:00Z",
        "modified": "2024-01-02T00:00:00Z",
    }


def snapshot(advisories: dict[str, list[dict[str, Any]]], checked: list[str]) -> dict[str, Any]:
    return {
        "schema": 1,
        "built_at": "2026-01-01",
        "source": {"name": "test data", "repository": "https://example.invalid", "revision": "t",
                   "license": "CC-BY-4.0"},
        "packages_checked": sorted(checked),
        "advisories": advisories,
    }


def affected(events: list[dict[str, str]], version: str) -> bool:
    return bool(adv.evaluate_range(events, Version(version)).affected)


# ------------------------------------------------------------------------------------------ range semantics


def test_introduced_fixed_is_half_open() -> None:
    events = [{"introduced": "1.2"}, {"fixed": "1.4"}]
    assert not affected(events, "1.1.9")
    assert affected(events, "1.2")
    assert affected(events, "1.3.7")
    assert not affected(events, "1.4")
    assert not affected(events, "2.0")


def test_introduced_zero_means_from_the_first_release() -> None:
    events = [{"introduced": "0"}, {"fixed": "2.0"}]
    assert affected(events, "0.0.1")
    assert affected(events, "0.1.dev0")
    assert not affected(events, "2.0")


def test_last_affected_includes_the_bound_and_nothing_after() -> None:
    events = [{"introduced": "0"}, {"last_affected": "3.1"}]
    assert affected(events, "3.1")
    assert not affected(events, "3.1.1")
    assert adv.evaluate_range(events, Version("3.0")).fixes == ()


def test_open_range_without_fix_covers_every_later_version() -> None:
    events = [{"introduced": "1.0"}]
    assert affected(events, "99.0")
    assert not affected(events, "0.9")


def test_several_introduced_fixed_pairs_in_one_range_even_when_unsorted() -> None:
    # As written in the database for urllib3: the 2.x pair comes first.
    events = [{"introduced": "2.0.0"}, {"fixed": "2.0.7"}, {"introduced": "0"}, {"fixed": "1.26.18"}]
    assert affected(events, "1.26.17")
    assert not affected(events, "1.26.18")
    assert not affected(events, "1.99")
    assert affected(events, "2.0.6")
    assert not affected(events, "2.0.7")


def test_pre_and_post_releases_are_ordered_per_pep_440() -> None:
    events = [{"introduced": "1.0"}, {"fixed": "2.0"}]
    assert affected(events, "2.0rc1")  # a pre-release of the fix is still before it
    assert affected(events, "2.0.dev3")
    assert not affected(events, "1.0rc1")  # before the first affected release
    assert affected(events, "1.5.post1")
    assert not affected(events, "2.0.post1")
    fixed_post = [{"introduced": "0"}, {"fixed": "2.9.0.post0"}]
    assert affected(fixed_post, "2.9.0")
    assert not affected(fixed_post, "2.9.0.post0")


def test_explicit_versions_list_matches_even_outside_ranges() -> None:
    item = advisory("PYSEC-1", [{"introduced": "1.0"}, {"fixed": "1.1"}], versions=["0.5", "2015.04.28"])
    finding, _ = adv.match_advisory("pkg", "0.5", item)
    assert finding is not None and finding.fixed_in == "1.1"
    finding, _ = adv.match_advisory("pkg", "2015.4.28", item)  # equal as PEP 440 versions
    assert finding is not None
    assert adv.match_advisory("pkg", "0.6", item)[0] is None


def test_multiple_ranges_and_smallest_fix_above_the_installed_version() -> None:
    item = advisory(
        "PYSEC-2", [{"introduced": "0"}, {"fixed": "2.2.5"}, {"introduced": "2.3.0"}, {"fixed": "2.3.2"}],
        [{"introduced": "3.0"}, {"fixed": "3.0.4"}],
    )
    assert adv.match_advisory("flask", "2.2.1", item)[0].fixed_in == "2.2.5"
    assert adv.match_advisory("flask", "2.3.1", item)[0].fixed_in == "2.3.2"
    assert adv.match_advisory("flask", "3.0.3", item)[0].fixed_in == "3.0.4"
    assert adv.match_advisory("flask", "2.2.5", item)[0] is None
    assert adv.match_advisory("flask", "3.0.4", item)[0] is None


def test_unfixed_advisory_is_reported_without_fix_and_describes_itself() -> None:
    item = advisory("PYSEC-3", [{"introduced": "0"}], aliases=["CVE-1", "GHSA-x"])
    finding, _ = adv.match_advisory("mpmath", "1.3.0", item)
    assert finding.fixed_in is None
    assert finding.describe() == "warning: mpmath 1.3.0: PYSEC-3 (CVE-1, GHSA-x) no fix released"
    item = advisory("PYSEC-4", [{"introduced": "0"}, {"fixed": "1.1"}])
    fixable = adv.match_advisory("pkg", "1.0", item)[0]
    assert fixable.describe() == "VULNERABLE pkg 1.0: PYSEC-4 fixed in 1.1"


# ------------------------------------------------------------------------------------- check (in process)


def test_audit_splits_fixable_unfixed_and_counts() -> None:
    snap = snapshot({
        "alpha": [advisory("PYSEC-10", [{"introduced": "0"}, {"fixed": "1.5"}])],
        "beta": [advisory("PYSEC-11", [{"introduced": "0"}]), advisory("PYSEC-12", [{"introduced": "9"}])],
    }, ["alpha", "beta", "gamma"])
    report = adv.audit(snap, [("alpha", "1.0"), ("beta", "2.0"), ("gamma", "1.0")], [])
    assert [f.advisory_id for f in report.fixable] == ["PYSEC-10"]
    assert [f.advisory_id for f in report.unfixed] == ["PYSEC-11"]
    assert (report.checked, report.consulted) == (3, 3)
    assert "3 distributions checked, 3 advisories consulted" in adv.format_report(report, snap)[-1]


def test_project_itself_is_skipped_and_not_required_in_the_snapshot() -> None:
    snap = snapshot({}, ["alpha"])
    report = adv.audit(snap, [("alpha", "1.0"), ("deepfakestream", "0.1.0")], [])
    assert report.checked == 1


def test_uncovered_installed_distribution_is_an_error_naming_it() -> None:
    snap = snapshot({}, ["alpha"])
    with pytest.raises(adv.AuditError, match=r"not covered by the snapshot.*newpkg.*refresh the snapshot"):
        adv.audit(snap, [("alpha", "1.0"), ("newpkg", "0.1")], [])


def test_ignore_file_requires_a_reason_and_reports_stale_entries(tmp_path: Path) -> None:
    good = tmp_path / "ignore.txt"
    good.write_text("# header\n\nCVE-9  # dev tool only, fix not installable\nPYSEC-99  # gone since\n")
    entries = adv.load_ignore_file(good)
    assert [(e.advisory_id, e.line) for e in entries] == [("CVE-9", 3), ("PYSEC-99", 4)]
    item = advisory("PYSEC-20", [{"introduced": "0"}, {"fixed": "2"}], aliases=["CVE-9"])
    snap = snapshot({"alpha": [item]}, ["alpha"])
    report = adv.audit(snap, [("alpha", "1")], entries)
    assert report.fixable == [] and [f.advisory_id for f, _ in report.ignored] == ["PYSEC-20"]
    assert [e.advisory_id for e in report.stale] == ["PYSEC-99"]
    lines = adv.format_report(report, snap)
    assert any("PYSEC-99" in line and "stale" in line for line in lines)

    bad = tmp_path / "bad.txt"
    bad.write_text("PYSEC-20\n")
    with pytest.raises(adv.AuditError, match=r"bad.txt:1: PYSEC-20 has no reason"):
        adv.load_ignore_file(bad)
    missing = adv.load_ignore_file(tmp_path / "absent.txt")
    assert missing == []


@pytest.mark.parametrize("document, message", [
    ("{not json", "not valid JSON"),
    ('{"schema": 7}', "schema is 7"),
    ('{"schema": 1, "built_at": "x", "source": {}, "packages_checked": ["a"], "advisories": []}',
     "'advisories' is missing or not a dict"),
    ('{"schema": 1, "built_at": "x", "source": {}, "packages_checked": ["a"], '
     '"advisories": {"b": []}}', "not in 'packages_checked'"),
    ('{"schema": 1, "built_at": "x", "source": {}, "packages_checked": ["a"], "advisories": {"a": '
     '[{"id": "P-1", "affected": [{"ranges": [[{"fixed": 1}]]}]}]}}', "bad range event"),
])
def test_malformed_snapshot_is_rejected(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "snap.json"
    path.write_text(document)
    with pytest.raises(adv.AuditError, match=message):
        adv.load_snapshot(path)


# ------------------------------------------------------------------------------------- check (subprocess)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          check=False, cwd=ROOT)


@pytest.fixture
def snap_file(tmp_path: Path) -> Path:
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(snapshot({
        "alpha": [advisory("PYSEC-30", [{"introduced": "0"}, {"fixed": "1.5"}], aliases=["CVE-30"])],
        "beta": [advisory("PYSEC-31", [{"introduced": "0"}])],
    }, ["alpha", "beta", "gamma"])))
    return path


def test_cli_exit_1_on_fixable_with_the_documented_line(snap_file: Path, tmp_path: Path) -> None:
    result = run("check", "--snapshot", str(snap_file), "--ignore-file", str(tmp_path / "none"),
                 "--installed", "Alpha==1.0,beta==2,gamma==3")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "VULNERABLE alpha 1.0: PYSEC-30 (CVE-30) fixed in 1.5" in result.stdout
    assert "warning: beta 2: PYSEC-31 no fix released" in result.stdout
    assert "snapshot of 2026-01-01" in result.stdout and "3 distributions checked" in result.stdout


def test_cli_exit_0_when_only_unfixed_or_ignored(snap_file: Path, tmp_path: Path) -> None:
    ignore = tmp_path / "ignore.txt"
    ignore.write_text("CVE-30  # accepted for the test\n")
    result = run("check", "--snapshot", str(snap_file), "--ignore-file", str(ignore),
                 "--installed", "alpha==1.0,beta==2")
    assert result.returncode == 0, result.stdout + result.stderr
    expected = "ignored: VULNERABLE alpha 1.0: PYSEC-30 (CVE-30) fixed in 1.5 -- accepted for the test"
    assert expected in result.stdout
    assert "0 vulnerable with a fix, 1 without a fix, 1 ignored" in result.stdout


def test_cli_exit_2_for_uncovered_distribution(snap_file: Path, tmp_path: Path) -> None:
    installed = tmp_path / "installed.txt"
    installed.write_text("alpha==2.0\nbrand-new==0.1\n")
    result = run("check", "--snapshot", str(snap_file), "--installed-file", str(installed))
    assert result.returncode == 2
    assert "brand-new" in result.stderr and "scripts/advisories.py build" in result.stderr


def test_cli_exit_2_with_one_line_for_malformed_or_missing_snapshot(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": 1, "advisories": ')
    for path in (broken, tmp_path / "missing.json"):
        result = run("check", "--snapshot", str(path), "--installed", "alpha==1")
        assert result.returncode == 2
        assert result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1
        assert result.stderr.startswith("audit: ERROR: snapshot")


def test_cli_exit_2_for_ignore_entry_without_reason(snap_file: Path, tmp_path: Path) -> None:
    ignore = tmp_path / "ignore.txt"
    ignore.write_text("PYSEC-30\n")
    result = run("check", "--snapshot", str(snap_file), "--ignore-file", str(ignore),
                 "--installed", "alpha==1")
    assert result.returncode == 2
    assert "has no reason" in result.stderr


def test_committed_snapshot_is_well_formed_and_dated() -> None:
    document = adv.load_snapshot(adv.DEFAULT_SNAPSHOT)
    assert document["source"]["license"] == "CC-BY-4.0"
    assert document["packages_checked"] == sorted(set(document["packages_checked"]))
    assert document["stats"]["advisories"] == sum(len(v) for v in document["advisories"].values())
    # The stable form:
    assert adv_build.dump_snapshot(document) == adv.DEFAULT_SNAPSHOT.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ build


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    root = tmp_path / "advisory-database"
    write(root / "vulns" / "alpha" / "PYSEC-2024-1.yaml", """\
id: PYSEC-2024-1
details: Alpha before 1.5 lets anyone in. A second sentence that is not kept.
aliases:
- CVE-2024-0001
- GHSA-aaaa-bbbb-cccc
affected:
- package:
    name: Alpha
    ecosystem: PyPI
  ranges:
  - type: GIT
    repo: https://example.invalid/alpha
    events:
    - introduced: "0"
    - fixed: 0123456789abcdef
  - type: ECOSYSTEM
    events:
    - introduced: "0"
    - fixed: "1.5"
  versions:
  - "1.0"
  - "1.10"
modified: 2024-02-01T00:00:00Z
published: 2024-01-01T00:00:00Z
""")
    # The database's early layout, describing the same CVE: merged into the entry above.
    write(root / "vulns" / "alpha" / "PYSEC-0000-CVE-2024-0001.yaml", """\
id: PYSEC-0000-CVE-2024-0001
package:
  name: alpha
  ecosystem: PyPI
details: draft
affects:
  ranges:
  - type: ECOSYSTEM
    fixed: "1.5"
aliases:
- CVE-2024-0001
modified: "2024-03-01T00:00:00Z"
""")
    write(root / "vulns" / "alpha" / "PYSEC-2024-2.yaml", """\
id: PYSEC-2024-2
summary: Old layout with introduced
package:
  name: alpha
  ecosystem: PyPI
details: Alpha 2.x is slow.
affects:
  ranges:
  - type: ECOSYSTEM
    introduced: "2.0"
    fixed: "2.1"
aliases:
- CVE-2024-0002
modified: "2024-01-05T00:00:00Z"
published: "2024-01-04T00:00:00Z"
""")
    write(root / "vulns" / "alpha" / "PYSEC-2024-3.yaml", """\
id: PYSEC-2024-3
withdrawn: "2024-05-01T00:00:00Z"
details: withdrawn
affected:
- package: {name: alpha, ecosystem: PyPI}
  ranges:
  - type: ECOSYSTEM
    events: [{introduced: "0"}]
""")
    write(root / "vulns" / "alpha" / "PYSEC-2024-4.yaml", """\
id: PYSEC-2024-4
details: names another package
affected:
- package: {name: imagecodecs, ecosystem: PyPI}
  ranges:
  - type: ECOSYSTEM
    events: [{introduced: "0"}]
""")
    write(root / "vulns" / "Beta_Pkg" / "PYSEC-2024-5.yaml", """\
id: PYSEC-2024-5
details: Beta has no fix.
affected:
- package: {name: beta-pkg, ecosystem: PyPI}
  ranges:
  - type: ECOSYSTEM
    events: [{introduced: "0"}, {last_affected: "3.0"}]
modified: "2024-06-01T00:00:00Z"
""")
    return root


def test_build_reduces_merges_and_round_trips_into_check(database: Path, tmp_path: Path) -> None:
    out = tmp_path / "snap.json"
    result = run("build", "--source", str(database), "--out", str(out), "--packages", "alpha,beta.pkg,gamma",
                 "--built-at", "2026-02-03", "--revision", "abc123", "--note", "test tree")
    assert result.returncode == 0, result.stderr
    assert "3 packages looked up, 2 with advisories, 3 advisories" in result.stdout
    document = json.loads(out.read_text())
    assert document["packages_checked"] == ["alpha", "beta-pkg", "gamma"]
    assert document["built_at"] == "2026-02-03"
    assert document["source"]["revision"] == "abc123" and document["source"]["note"] == "test tree"
    assert "CC BY 4.0" in document["source"]["attribution"]
    alpha = {a["id"]: a for a in document["advisories"]["alpha"]}
    assert sorted(alpha) == ["PYSEC-2024-1", "PYSEC-2024-2"]  # draft merged, withdrawn and foreign left out
    first = alpha["PYSEC-2024-1"]
    assert first["aliases"] == ["CVE-2024-0001", "GHSA-aaaa-bbbb-cccc", "PYSEC-0000-CVE-2024-0001"]
    assert first["summary"] == "Alpha before 1.5 lets anyone in."
    assert first["affected"] == [{"ranges": [[{"introduced": "0"}, {"fixed": "1.5"}]],
                                  "versions": ["1.0", "1.10"]}]  # GIT range dropped, "1.10" kept a string
    assert first["modified"] == "2024-02-01T00:00:00Z"
    assert alpha["PYSEC-2024-2"]["affected"][0]["ranges"] == [[{"introduced": "2.0"}, {"fixed": "2.1"}]]
    assert document["stats"]["withdrawn"] == 1 and document["stats"]["merged_duplicates"] == 1

    again = tmp_path / "again.json"
    run("build", "--source", str(database), "--out", str(again), "--packages", "gamma,beta-pkg,alpha",
        "--built-at", "2026-02-03", "--revision", "abc123", "--note", "test tree")
    assert again.read_text() == out.read_text()  # stable output: rebuilds diff cleanly

    check = run("check", "--snapshot", str(out), "--ignore-file", str(tmp_path / "none"),
                "--installed", "alpha==2.0.1,beta_pkg==2.5,gamma==1")
    assert check.returncode == 1, check.stdout + check.stderr
    assert "VULNERABLE alpha 2.0.1: PYSEC-2024-2 (CVE-2024-0002) fixed in 2.1" in check.stdout
    assert "warning: beta-pkg 2.5: PYSEC-2024-5 no fix released" in check.stdout
    clean = run("check", "--snapshot", str(out), "--ignore-file", str(tmp_path / "none"),
                "--installed", "alpha==2.1,beta_pkg==3.0.1,gamma==1")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 vulnerable with a fix, 0 without a fix" in clean.stdout


def test_build_rejects_a_folder_that_is_not_the_database(tmp_path: Path) -> None:
    result = run("build", "--source", str(tmp_path / "nothing"), "--out", str(tmp_path / "o.json"),
                 "--packages", "alpha")
    assert result.returncode == 2
    assert "no vulns/ folder" in result.stderr
