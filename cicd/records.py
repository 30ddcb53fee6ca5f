"""Records: what was released, deployed and accepted, kept in git as annotated tags (pure).

A record's tag message is a one-line title and a JSON body, so ``git show v1.2.0-rc.1`` is
readable by people and later stages parse it back. :class:`Record` is the base type (encode,
decode, validate); :class:`ReleaseRecord` (``v<version>``), :class:`DeployRecord`
(``deploy/<env>/<time>``) and :class:`AcceptanceRecord` (``accepted/<env>/<time>``) are its
kinds (the last two share :class:`EnvironmentRecord`), and :class:`CheckRecord`
(``checked/<stage>/<commit>/<time>``) says a check passed on a commit. :func:`scan` is the one reader of tags:
it keeps the valid records of a kind, newest first by the record's own time. :mod:`cicd.gitops`
reads and writes the tags.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, Self, TypeVar

from cicd.errors import ReleaseNotFoundError

log = logging.getLogger(__name__)


class Tagged(Protocol):
    """A tag as :mod:`cicd.gitops` reads it."""

    @property
    def name(self) -> str: ...
    @property
    def commit(self) -> str: ...
    @property
    def message(self) -> str: ...


def now() -> datetime:
    return datetime.now(UTC)


def timestamp(when: datetime) -> str:
    """A record's ``time``: ISO 8601 to the microsecond, so two records of one second still order."""
    return when.isoformat(timespec="microseconds")


def stamp(when: datetime) -> str:
    """The time part of a record's tag name."""
    return when.strftime("%Y%m%dT%H%M%S%fZ")


@dataclass(frozen=True)
class Record:
    MARKER: ClassVar[str] = ""
    TIME: ClassVar[str] = "time"  # the field that says when the record was made

    tag: str = field(default="", kw_only=True)  # the tag that stores it; not part of the body

    def title(self) -> str:
        raise NotImplementedError

    def to_message(self) -> str:
        body = {k: v for k, v in asdict(self).items() if k != "tag"}
        return f"{self.MARKER} {self.title()}\n\n{json.dumps(body, indent=2, sort_keys=True)}\n"

    @classmethod
    def from_message(cls, tag: str, message: str) -> Self | None:
        """The record a tag message holds, or None when it is not one of this kind or not valid."""
        if not message.startswith(f"{cls.MARKER} "):
            return None
        try:
            data = json.loads(message[message.index("{") :])
            names = {f.name for f in fields(cls) if f.name != "tag"}
            if not isinstance(data, dict) or not set(data) <= names:
                return None
            record = cls(**data, tag=tag)
        except (ValueError, TypeError):
            return None
        problem = record.problem()
        if problem:
            log.warning("ignoring the record in tag %s: %s", tag, problem)
            return None
        return record

    def problem(self) -> str | None:
        """Why this record cannot be trusted as what it says it is, or None."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("str", str) and not isinstance(value, str):
                return f"{f.name} is not a string"
            if f.type in ("bool", bool) and not isinstance(value, bool):
                return f"{f.name} is not true or false"
        try:
            self.when()
        except ValueError:
            return f"{self.TIME} is not an ISO 8601 time: {getattr(self, self.TIME)!r}"
        return None

    def when(self) -> datetime:
        parsed = datetime.fromisoformat(str(getattr(self, self.TIME)))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


R = TypeVar("R", bound=Record)


def is_record(message: str) -> bool:
    """The tag message is meant as a record of some kind (valid or not): it must be verified."""
    kinds = (ReleaseRecord, DeployRecord, AcceptanceRecord, CheckRecord)
    return any(message.startswith(f"{kind.MARKER} ") for kind in kinds)


def scan(tags: Iterable[Tagged], kind: type[R]) -> list[R]:
    """Every valid record of ``kind`` among ``tags``, newest first by its own time (then tag name)."""
    found = [r for t in tags if (r := kind.from_message(t.name, t.message)) is not None]
    return sorted(found, key=lambda r: (r.when(), r.tag), reverse=True)


@dataclass(frozen=True)
class ReleaseRecord(Record):
    MARKER: ClassVar[str] = "trainyard-release"
    TIME: ClassVar[str] = "created"

    version: str
    pep440: str
    commit: str
    tree: str
    branch: str
    image: str  # local image id (sha256:...)
    reference: str  # what to deploy: repository@sha256:... when pushed, else the image id
    digest: str  # the registry manifest digest when pushed, else the image id
    created: str
    metrics: dict[str, Any] = field(default_factory=dict)
    sbom: str = ""  # sha256 of the image's CycloneDX SBOM (also its io.trainyard.sbom.sha256 label)

    def title(self) -> str:
        return self.version

    def problem(self) -> str | None:
        if self.tag and self.version not in self.tag:
            return f"the tag does not name version {self.version}"
        return _reference_problem(self.reference, self.digest) or super().problem()


@dataclass(frozen=True)
class EnvironmentRecord(Record):
    """A record about one environment, stored as ``<PREFIX>/<environment>/<time>``."""

    PREFIX: ClassVar[str] = ""

    environment: str

    @classmethod
    def tag_name(cls, environment: str, when: datetime) -> str:
        return f"{cls.PREFIX}/{environment}/{stamp(when)}"

    def problem(self) -> str | None:
        if self.tag and not self.tag.startswith(f"{self.PREFIX}/{self.environment}/"):
            return f"it says environment {self.environment!r}, but its tag is {self.tag}"
        return super().problem()


@dataclass(frozen=True)
class DeployRecord(EnvironmentRecord):
    MARKER: ClassVar[str] = "trainyard-deploy"
    PREFIX: ClassVar[str] = "deploy"

    version: str
    digest: str
    reference: str
    image: str
    commit: str
    time: str
    who: str
    kind: str = "deploy"  # deploy | promote | rollback
    previous_digest: str = ""

    def title(self) -> str:
        return f"{self.environment} {self.version}"

    def problem(self) -> str | None:
        return _reference_problem(self.reference, self.digest) or super().problem()


def _reference_problem(reference: str, digest: str) -> str | None:
    """A pushed image's reference must end in the digest the record states."""
    if "@" in str(reference) and not str(reference).endswith(f"@{digest}"):
        return f"its reference {reference} is not its digest {digest}"
    return None


@dataclass(frozen=True)
class AcceptanceRecord(EnvironmentRecord):
    MARKER: ClassVar[str] = "trainyard-acceptance"
    PREFIX: ClassVar[str] = "accepted"

    deploy_tag: str
    digest: str
    commit: str
    passed: bool
    time: str
    summary: str = ""
    tests: int = 0  # what ran, from the JUnit report: tests, failures (with errors), skipped
    failures: int = 0
    skipped: int = 0
    selection: str = ""  # extra pytest arguments (``-k health``): a selection is a partial run
    complete: bool = False  # the whole suite ran, nothing deselected; only this makes a release promotable
    key: str = ""  # the content key of its inputs (cicd.results): a pass with it may be reused

    def title(self) -> str:
        return f"{self.environment} {'passed' if self.passed else 'failed'}"

    def promotable(self) -> bool:
        return self.passed and self.complete and self.tests > 0


@dataclass(frozen=True)
class CheckRecord(Record):
    """A passing check of one commit (``unit``, ``integration``): what the merge gate reads.
    Stored as ``checked/<stage>/<commit[:12]>/<time>``."""

    MARKER: ClassVar[str] = "trainyard-check"

    stage: str
    commit: str
    subject: str  # what was tested: the build image id (unit), the release digest (integration)
    time: str
    version: str = ""
    key: str = ""  # the content key of the stage's inputs (cicd.results); a pass with it may be reused
    # A pass of the whole stage, or only a part (a `-k` selection) or none of it (every test
    # skipped)? Only a complete pass lets a branch merge; a record without the field was written
    # before it existed and counts as partial (run the stage again).
    selection: str = ""  # the arguments given to pytest, if any
    tests: int = 0  # from the stage's JUnit report: tests collected, of which skipped
    skipped: int = 0
    complete: bool = False

    @classmethod
    def tag_name(cls, stage: str, commit: str, when: datetime) -> str:
        return f"checked/{stage}/{commit[:12]}/{stamp(when)}"

    def title(self) -> str:
        return f"{self.stage} passed on {self.commit[:12]}"

    def problem(self) -> str | None:
        if self.tag and not self.tag.startswith(f"checked/{self.stage}/{self.commit[:12]}/"):
            return f"it says {self.stage} on {self.commit[:12]}, but its tag is {self.tag}"
        if not isinstance(self.tests, int) or not isinstance(self.skipped, int):
            return "tests and skipped are not numbers"
        return super().problem()


def history(records: Iterable[DeployRecord], environment: str) -> list[DeployRecord]:
    """An environment's deployments, newest first (``records`` as :func:`scan` orders them)."""
    return [r for r in records if r.environment == environment]


def previous_distinct(records: list[DeployRecord]) -> DeployRecord | None:
    """The newest deployment whose digest differs from the current (first) one: the rollback target."""
    if not records:
        return None
    current = records[0].digest
    return next((r for r in records[1:] if r.digest != current), None)


def find_release(
    records: Iterable[ReleaseRecord], commit: str, tree: str, merged: Callable[[str], bool] | None = None
) -> ReleaseRecord:
    """The newest record for ``commit``; else, among records whose tree equals ``tree`` (a merge of
    the same code), the newest whose commit was merged into this one (``merged``), else the newest."""
    items = sorted(records, key=lambda r: (r.when(), r.tag), reverse=True)
    same_tree = [r for r in items if r.tree == tree]
    in_history = [r for r in same_tree if merged is not None and merged(r.commit)]
    for found in ([r for r in items if r.commit == commit], in_history, same_tree):
        if found:
            return found[0]
    raise ReleaseNotFoundError(
        f"no release record for commit {commit[:12]} (tree {tree[:12]}); "
        "run `nox -s release` on develop first, then merge that exact commit"
    )
