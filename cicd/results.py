"""Stage results keyed by the content of their inputs: a stage whose inputs were all checked before
reuses that pass instead of running again (unit, lint, training, integration and acceptance).

A key is ``sha256:`` of one canonical JSON document: the stage's name, a format number and every
input that can change the outcome (for the unit tests: the build image's content, which holds the
source, the tests and the pinned dependencies, and the command with its arguments). Passes are
stored where the merge gate already reads them: signed check records (``checked/<stage>/...``)
that carry the key. So a stored result is exactly as trustworthy as any record: it is read only
after ``git verify-tag``, a tampered one does not verify, and a failure is never recorded, so it
can never be reused as a pass.

Deliberately left out of every key: wall-clock time and the network. A stage whose outcome could
depend on them (a flaky test, a package index) is not made deterministic by running it again;
``--no-cache`` (or ``TRAINYARD_NO_RESULT_CACHE=1``) reruns everything when that is wanted anyway.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from cicd.cache import CACHE
from cicd.context import Context
from cicd.errors import NothingTestedError
from cicd.records import CheckRecord, Tagged, scan

log = logging.getLogger(__name__)
FORMAT = 1  # bump when what goes into a key changes: older records then match nothing
NO_CACHE = "TRAINYARD_NO_RESULT_CACHE"
# Stored outputs (a trained bundle), by stage and key; a CI cache carries this folder between runs.
STORE = Path(os.environ.get("TRAINYARD_RESULTS") or CACHE / "results")


def key(stage: str, inputs: Mapping[str, object]) -> str:
    """The content key of ``stage`` run on ``inputs`` (JSON-able values; order does not matter)."""
    doc = json.dumps(
        {"format": FORMAT, "stage": stage, "inputs": inputs}, sort_keys=True, separators=(",", ":"), default=str
    )
    return "sha256:" + hashlib.sha256(doc.encode()).hexdigest()


def files_digest(root: Path, paths: Iterable[str]) -> str:
    """One digest of the named files' paths and contents (sorted): the tests a stage runs, say."""
    h = hashlib.sha256()
    for rel in sorted(set(paths)):
        h.update(rel.encode() + b"\0" + hashlib.sha256((root / rel).read_bytes()).digest())
    return "sha256:" + h.hexdigest()


# What the integration suite's outcome depends on besides the image: the tests and every conftest
# pytest loads on the way to them, the toolkit they import (cicd.http, cicd.images), the pinned
# test dependencies, pytest's configuration, and the data the tests read. Broad on purpose: a
# file too many only costs a rerun; a file too few would reuse a pass that no longer holds.
INTEGRATION_INPUTS = (
    "tests/integration/release_image/", "tests/conftest.py", "tests/__init__.py", "tests/integration/conftest.py",
    "tests/integration/__init__.py", "cicd/", "src/requirements/", "pyproject.toml", "notebooks/dummy_data/",
)  # fmt: skip


def tracked_digest(ctx: Context, prefixes: Iterable[str]) -> str:
    """:func:`files_digest` of the repository's listed files under ``prefixes`` (folders end in /)."""
    wanted = tuple(prefixes)
    return files_digest(ctx.root, [p for p in ctx.repo.listed_files() if p.startswith(wanted)])


def turned_off(ctx: Context) -> bool:
    """``--no-cache`` or ``TRAINYARD_NO_RESULT_CACHE=1``: every stage runs again."""
    return ctx.env.get(NO_CACHE, "") not in ("", "0")


def reusable(ctx: Context, stage: str, content_key: str, tags: Iterable[Tagged] | None = None) -> CheckRecord | None:
    """The newest verified pass of ``stage`` with ``content_key``, unless reuse is turned off.
    ``tags``: the stage's one read of :meth:`Context.trusted_tags`, when it has one already."""
    if turned_off(ctx):
        return None
    read = ctx.trusted_tags() if tags is None else tags
    found = [c for c in scan(read, CheckRecord) if c.stage == stage and c.key == content_key]
    return found[0] if found else None


def folder_digest(folder: Path) -> str:
    """:func:`files_digest` of every file under ``folder``: what a record says a stored output is."""
    return files_digest(folder, [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()])


def _stored(stage: str, content_key: str, digest: str, store: Path) -> Path:
    # By key and by the digest of the files: two projects (or two clones, or two CI jobs) sharing
    # one store can train the same inputs into bundles that differ (the bundle names its commit);
    # each keeps its own copy, so neither overwrites the one the other's record points at.
    return store / stage / content_key.removeprefix("sha256:") / digest.removeprefix("sha256:")


def keep(stage: str, content_key: str, output: Path, store: Path | None = None) -> str:
    """Store a copy of ``output`` (a folder) under ``content_key`` and its :func:`folder_digest`,
    which the stage's signed record carries; that digest. A store that cannot be written only
    costs the next run."""
    digest = folder_digest(output)
    target = _stored(stage, content_key, digest, store or STORE)
    part = target.with_name(f".{target.name}.{os.getpid()}")
    try:
        if target.is_dir() and folder_digest(target) == digest:
            return digest  # the same files are stored already
        shutil.rmtree(part, ignore_errors=True)
        shutil.copytree(output, part)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(part, target)
    except OSError as err:
        log.warning("could not store the %s result in %s (%s): the next run does it again", stage, target, err)
        shutil.rmtree(part, ignore_errors=True)
    return digest


def restore(stage: str, content_key: str, digest: str, dest: Path, store: Path | None = None) -> bool:
    """Copy the stored output of ``content_key`` whose files hash to ``digest`` (the verified
    record's) into ``dest``. A missing copy or one that does not verify (tampered, half-written)
    is never used: False, and ``dest`` is left empty."""
    source = _stored(stage, content_key, digest, store or STORE)
    if not source.is_dir():
        log.info(
            "%s: a pass is recorded for %s…, but no stored copy is here (%s): running it",
            stage,
            content_key[:19],
            source,
        )
        return False
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source, dest)
    found = folder_digest(dest)  # the copy that will be used, not the store it came from
    if found != digest:
        log.warning(
            "%s: REFUSED the stored result for %s…: its files hash to %s…, but the signed record says %s…; running it",
            stage, content_key[:19], found[:19], digest[:19],
        )  # fmt: skip
        shutil.rmtree(dest, ignore_errors=True)
        return False
    return True


@dataclass(frozen=True)
class Tested:
    """What a test stage's JUnit report says ran, and whether that is the whole stage: no
    selection of tests (``-k``, a path) and at least one test that ran rather than skipped."""

    tests: int = 0
    failures: int = 0  # errors included
    skipped: int = 0
    selection: str = ""

    @property
    def ran(self) -> int:
        return self.tests - self.skipped

    @property
    def complete(self) -> bool:
        return not self.selection and self.ran > 0

    def require_some(self, what: str, reports: str = "") -> None:
        """Refuse a run in which no test ran: every one skipped, or none collected."""
        if self.ran <= 0:
            raise NothingTestedError(what, self.tests, reports)


def junit_counts(path: Path, pytest_args: Sequence[str] | None = None) -> Tested:
    """Tests, failures (errors included) and skipped from a JUnit report; zeros when there is none.
    ``pytest_args``: the arguments the stage was given, a selection when there are any."""
    counts = {"tests": 0, "failures": 0, "skipped": 0}
    try:
        root = ElementTree.parse(path).getroot()  # noqa: S314  # nosec B314 - pytest's own report
    except (OSError, ElementTree.ParseError):
        root = None
    for suite in root.iter("testsuite") if root is not None else ():
        counts["tests"] += int(suite.get("tests", 0))
        counts["failures"] += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        counts["skipped"] += int(suite.get("skipped", 0))
    return Tested(**counts, selection=" ".join(pytest_args or []))
