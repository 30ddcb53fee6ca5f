"""Release records: what was released from which commit, stored in git as annotated tag messages.

A record is JSON after a one-line title, so ``git show v1.2.0-rc.1`` is readable by people and
later stages parse it back. Pure functions; :mod:`cicd.gitops` reads and writes the tags.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from cicd.errors import ReleaseNotFoundError

MARKER = "trainyard-release"


@dataclass(frozen=True)
class ReleaseRecord:
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
    tag: str = ""

    def to_message(self) -> str:
        body = {k: v for k, v in asdict(self).items() if k != "tag"}
        return f"{MARKER} {self.version}\n\n{json.dumps(body, indent=2, sort_keys=True)}\n"

    @classmethod
    def from_message(cls, tag: str, message: str) -> ReleaseRecord | None:
        if not message.startswith(MARKER):
            return None
        try:
            data = json.loads(message[message.index("{") :])
            record: ReleaseRecord = cls(**data, tag=tag)
            return record
        except (ValueError, TypeError):
            return None


def find_release(
    records: Iterable[ReleaseRecord], commit: str, tree: str, merged: Callable[[str], bool] | None = None
) -> ReleaseRecord:
    """The newest record for ``commit``; else, among records whose tree equals ``tree`` (a merge of
    the same code), the newest whose commit was merged into this one (``merged``), else the newest."""
    items = sorted(records, key=lambda r: r.created, reverse=True)
    same_tree = [r for r in items if r.tree == tree]
    in_history = [r for r in same_tree if merged is not None and merged(r.commit)]
    for found in ([r for r in items if r.commit == commit], in_history, same_tree):
        if found:
            return found[0]
    raise ReleaseNotFoundError(
        f"no release record for commit {commit[:12]} (tree {tree[:12]}); "
        "run `nox -s release` on develop first, then merge that exact commit"
    )
