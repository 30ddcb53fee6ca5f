"""Which sessions a CI run executes: the row of the flow for a branch and an event (pure).

Rules: a pull request always gets the feature checks (its source branch is not yet merged);
a push to develop gets the develop row, a push to master/main the release row; a manual run
on master/main is a promotion; a scheduled run retrains; a branch that matches no rule gets the
feature checks, never a deploy.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from cicd.errors import ConfigError

ROWS = ("feature", "develop", "release", "promote", "retrain")
# What a row can run: the toolkit's commands a CI job runs (``python -m cicd <command>``; each is
# also a nox session of the same name). tests/unit/cicd checks these against the command line.
COMMANDS = (
    "build", "unit", "lint", "release", "integration", "merge", "deploy", "promote", "rollback",
    "acceptance", "status", "retrain", "drift",
)  # fmt: skip
EVENTS = ("push", "pull_request", "manual", "schedule")


class BranchRules(Protocol):
    def kind(self, branch: str) -> str:
        """``release``, ``develop`` or ``feature``."""
        ...


@dataclass(frozen=True)
class Step:
    session: str
    args: tuple[str, ...] = ()

    def command(self) -> str:
        return f"nox -s {self.session}" + (f" -- {' '.join(self.args)}" if self.args else "")


def parse_steps(row: str, raw: Sequence[str]) -> list[Step]:
    steps = []
    for item in raw:
        name, _, rest = item.partition(" -- ")
        if not name.strip() or " " in name.strip():
            raise ConfigError(f"flow.{row}: {item!r} is not 'session' or 'session -- args'")
        name = name.strip()
        if name not in COMMANDS:
            near = difflib.get_close_matches(name, COMMANDS, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise ConfigError(f"flow.{row}: {name!r} is no session a row can run; {hint}one of {', '.join(COMMANDS)}")
        steps.append(Step(name, tuple(rest.split())))
    return steps


def row_for(branches: BranchRules, branch: str, event: str) -> str:
    if event not in EVENTS:
        raise ConfigError(f"unknown event {event!r}; one of {', '.join(EVENTS)}")
    kind = branches.kind(branch)
    if event == "schedule":
        return "retrain"
    if event == "pull_request" or kind == "feature":
        return "feature"
    if kind == "develop":
        return "develop"
    return "promote" if event == "manual" else "release"


def plan(flow: Mapping[str, Sequence[str]], branches: BranchRules, branch: str, event: str) -> tuple[str, list[Step]]:
    """The row and its steps for ``branch`` and ``event``."""
    row = row_for(branches, branch, event)
    return row, parse_steps(row, flow.get(row, ()))
