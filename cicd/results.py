"""Stage results keyed by the content of their inputs: a stage whose inputs were all checked before
reuses that pass instead of running again (issue 17; in progress: unit and integration use it).

A key is ``sha256:`` of one canonical JSON document: the stage's name, a format number and every
input that can change the outcome (for the unit tests: the build image's id, which holds the
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
from collections.abc import Iterable, Mapping
from pathlib import Path

from cicd.context import Context
from cicd.records import CheckRecord, scan

log = logging.getLogger(__name__)
FORMAT = 1  # bump when what goes into a key changes: older records then match nothing
NO_CACHE = "TRAINYARD_NO_RESULT_CACHE"


def key(stage: str, inputs: Mapping[str, object]) -> str:
    """The content key of ``stage`` run on ``inputs`` (JSON-able values; order does not matter)."""
    doc = json.dumps({"format": FORMAT, "stage": stage, "inputs": inputs}, sort_keys=True, separators=(",", ":"))
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


def reusable(ctx: Context, stage: str, content_key: str) -> CheckRecord | None:
    """The newest verified pass of ``stage`` with ``content_key``, unless reuse is turned off."""
    if ctx.env.get(NO_CACHE, "") not in ("", "0"):
        return None
    found = [c for c in scan(ctx.trusted_tags(), CheckRecord) if c.stage == stage and c.key == content_key]
    return found[0] if found else None
