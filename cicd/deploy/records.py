"""Deployment and acceptance records, kept in git as immutable annotated tags.

``deploy/<env>/<time>`` says which commit, version and digest an environment got, when and
from whom; ``accepted/<env>/<time>`` says a deployment passed its acceptance tests. A later
deploy adds new tags and never rewrites these. Pure functions; :mod:`cicd.gitops` stores them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

DEPLOY_MARKER = "trainyard-deploy"
ACCEPT_MARKER = "trainyard-acceptance"


def stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%S%fZ")


@dataclass(frozen=True)
class DeployRecord:
    environment: str
    version: str
    digest: str
    reference: str
    image: str
    commit: str
    time: str
    who: str
    kind: str = "deploy"  # deploy | promote | rollback
    previous_digest: str = ""
    tag: str = ""

    @staticmethod
    def tag_name(environment: str, when: datetime) -> str:
        return f"deploy/{environment}/{stamp(when)}"

    def to_message(self) -> str:
        body = {k: v for k, v in asdict(self).items() if k != "tag"}
        return f"{DEPLOY_MARKER} {self.environment} {self.version}\n\n{json.dumps(body, indent=2, sort_keys=True)}\n"

    @classmethod
    def from_message(cls, tag: str, message: str) -> DeployRecord | None:
        parsed: DeployRecord | None = _parse(cls, DEPLOY_MARKER, tag, message)
        return parsed


@dataclass(frozen=True)
class AcceptanceRecord:
    environment: str
    deploy_tag: str
    digest: str
    commit: str
    passed: bool
    time: str
    summary: str = ""
    tag: str = ""

    @staticmethod
    def tag_name(environment: str, when: datetime) -> str:
        return f"accepted/{environment}/{stamp(when)}"

    def to_message(self) -> str:
        body = {k: v for k, v in asdict(self).items() if k != "tag"}
        verdict = "passed" if self.passed else "failed"
        return f"{ACCEPT_MARKER} {self.environment} {verdict}\n\n{json.dumps(body, indent=2, sort_keys=True)}\n"

    @classmethod
    def from_message(cls, tag: str, message: str) -> AcceptanceRecord | None:
        parsed: AcceptanceRecord | None = _parse(cls, ACCEPT_MARKER, tag, message)
        return parsed


def _parse(cls: Any, marker: str, tag: str, message: str) -> Any:
    if not message.startswith(marker):
        return None
    try:
        return cls(**json.loads(message[message.index("{") :]), tag=tag)
    except (ValueError, TypeError):
        return None


def history(records: Iterable[DeployRecord], environment: str) -> list[DeployRecord]:
    """An environment's deployments, newest first."""
    return sorted((r for r in records if r.environment == environment), key=lambda r: r.tag, reverse=True)


def previous_distinct(records: list[DeployRecord]) -> DeployRecord | None:
    """The newest deployment whose digest differs from the current (first) one: the rollback target."""
    if not records:
        return None
    current = records[0].digest
    return next((r for r in records[1:] if r.digest != current), None)
