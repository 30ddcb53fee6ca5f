from __future__ import annotations

import pytest
import semver

from cicd.errors import VersionError
from cicd.versioning import (
    Bump,
    bump_for_message,
    latest_final,
    next_prerelease,
    next_version,
    scan_tags,
    to_pep440,
)


@pytest.mark.parametrize(
    ("message", "bump"),
    [
        ("feat: add a model", Bump.MINOR),
        ("feat(features): add ratios", Bump.MINOR),
        ("fix: clip NaNs", Bump.PATCH),
        ("perf: faster predict", Bump.PATCH),
        ("feat!: drop the old API", Bump.MAJOR),
        ("refactor(api)!: rename", Bump.MAJOR),
        ("chore: bump deps\n\nBREAKING CHANGE: needs Python 3.12", Bump.MAJOR),
        ("docs: typo", Bump.NONE),
        ("Merge branch 'feature/x' into develop", Bump.NONE),
        ("featuring nothing", Bump.NONE),
    ],
)
def test_conventional_commits(message: str, bump: Bump) -> None:
    assert bump_for_message(message) == bump


@pytest.mark.parametrize(
    ("latest", "messages", "expected"),
    [
        (None, ["feat: x"], "0.1.0"),
        ("1.2.3", ["fix: a", "docs: b"], "1.2.4"),
        ("1.2.3", ["fix: a", "feat: b"], "1.3.0"),
        ("1.2.3", ["feat!: a"], "2.0.0"),
        ("1.2.3", ["chore: only"], "1.2.4"),
    ],
)
def test_next_version(latest: str | None, messages: list[str], expected: str) -> None:
    parsed = semver.Version.parse(latest) if latest else None
    assert str(next_version(parsed, messages)) == expected


def test_bad_initial_version() -> None:
    with pytest.raises(VersionError, match="not a semantic version"):
        next_version(None, [], initial="one")


def test_scan_reports_malformed_tags_and_ignores_others() -> None:
    scan = scan_tags(["v1.0.0", "v1.1.0-rc.1", "v1.2", "v01.0.0", "Staging", "vNext", "release-3"], "v{version}")
    assert sorted(scan.versions) == ["v1.0.0", "v1.1.0-rc.1"]
    assert scan.malformed == ["v01.0.0", "v1.2"]
    assert str(latest_final(scan)) == "1.0.0"


@pytest.mark.parametrize(
    ("existing", "expected"),
    [([], "1.1.0-rc.1"), (["1.1.0-rc.1", "1.1.0-rc.2"], "1.1.0-rc.3"), (["1.0.0-rc.7", "1.1.0-beta.4"], "1.1.0-rc.1")],
)
def test_next_prerelease(existing: list[str], expected: str) -> None:
    versions = [semver.Version.parse(v) for v in existing]
    assert str(next_prerelease(semver.Version.parse("1.1.0"), versions, "rc")) == expected


@pytest.mark.parametrize(
    ("version", "pep440"),
    [("1.2.3", "1.2.3"), ("1.2.3-rc.4", "1.2.3rc4"), ("1.2.3-alpha.1", "1.2.3a1"), ("1.2.3-dev.0+abc", "1.2.3.dev0")],
)
def test_pep440(version: str, pep440: str) -> None:
    assert to_pep440(semver.Version.parse(version)) == pep440
