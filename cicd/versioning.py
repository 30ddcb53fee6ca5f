"""Versions are values: parse release tags, bump by conventional commits, render pre-releases.

Everything here is pure: the caller reads tags and commit messages from git and passes them in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

import semver

from cicd.errors import VersionError


class Bump(IntEnum):
    NONE = 0
    PATCH = 1
    MINOR = 2
    MAJOR = 3


_HEADER = re.compile(r"^(?P<type>[a-zA-Z]+)(?:\([^)]*\))?(?P<bang>!)?:\s")
_BREAKING = re.compile(r"^BREAKING[ -]CHANGE:", re.MULTILINE)


def bump_for_message(message: str) -> Bump:
    """The bump one conventional-commit message asks for (merge commits and others: none)."""
    if _BREAKING.search(message):
        return Bump.MAJOR
    match = _HEADER.match(message.lstrip())
    if not match:
        return Bump.NONE
    if match.group("bang"):
        return Bump.MAJOR
    kind = match.group("type").lower()
    if kind == "feat":
        return Bump.MINOR
    if kind in {"fix", "perf"}:
        return Bump.PATCH
    return Bump.NONE


def bump_for_messages(messages: Iterable[str]) -> Bump:
    return max((bump_for_message(m) for m in messages), default=Bump.NONE)


@dataclass(frozen=True)
class TagScan:
    """Release tags split into parsed versions and the ones that are malformed."""

    versions: dict[str, semver.Version]
    malformed: list[str]


def scan_tags(tags: Iterable[str], template: str) -> TagScan:
    """Parse tags made from ``template`` (e.g. ``v{version}``); others are ignored, bad ones reported."""
    prefix, _, suffix = template.partition("{version}")
    versions: dict[str, semver.Version] = {}
    malformed: list[str] = []
    for tag in tags:
        if not (tag.startswith(prefix) and tag.endswith(suffix)) or len(tag) <= len(prefix) + len(suffix):
            continue
        body = tag[len(prefix) : len(tag) - len(suffix) if suffix else None]
        if not body[:1].isdigit():
            continue  # e.g. "vNext": not meant as a version tag
        try:
            versions[tag] = semver.Version.parse(body)
        except ValueError:
            malformed.append(tag)
    return TagScan(versions, sorted(malformed))


def latest_final(scan: TagScan) -> semver.Version | None:
    finals = [v for v in scan.versions.values() if not v.prerelease and not v.build]
    return max(finals, default=None)


def next_version(
    latest: semver.Version | None,
    messages: Sequence[str],
    initial: str = "0.1.0",
) -> semver.Version:
    """The next final version: ``latest`` bumped by ``messages`` (at least a patch when there are commits)."""
    if latest is None:
        try:
            return semver.Version.parse(initial)
        except ValueError as err:
            raise VersionError(f"release.initial_version {initial!r} is not a semantic version") from err
    bump = bump_for_messages(messages)
    if bump == Bump.MAJOR:
        return latest.bump_major()
    if bump == Bump.MINOR:
        return latest.bump_minor()
    return latest.bump_patch()


def next_prerelease(target: semver.Version, existing: Iterable[semver.Version], label: str = "rc") -> semver.Version:
    """``target-label.N`` with N one past the highest existing pre-release of the same target."""
    numbers = [
        int(v.prerelease.split(".")[1])
        for v in existing
        if v.finalize_version() == target and v.prerelease and re.fullmatch(rf"{re.escape(label)}\.\d+", v.prerelease)
    ]
    return target.replace(prerelease=f"{label}.{max(numbers, default=0) + 1}")


def to_pep440(version: semver.Version) -> str:
    """The wheel's form: ``1.2.3-rc.4`` → ``1.2.3rc4``; ``alpha``/``beta`` → ``a``/``b``; others → ``.devN``."""
    base = f"{version.major}.{version.minor}.{version.patch}"
    if not version.prerelease:
        return base
    label, _, number = version.prerelease.partition(".")
    n = number if number.isdigit() else "0"
    short = {"rc": "rc", "alpha": "a", "a": "a", "beta": "b", "b": "b"}.get(label.lower())
    return f"{base}{short}{n}" if short else f"{base}.dev{n}"
