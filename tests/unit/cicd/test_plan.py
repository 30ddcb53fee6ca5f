from __future__ import annotations

import pytest

from cicd.config import DEFAULT_PATH, load_config
from cicd.errors import ConfigError
from cicd.plan import parse_steps, plan

CFG = load_config(DEFAULT_PATH, env={})


@pytest.mark.parametrize(
    ("branch", "event", "row", "commands"),
    [
        ("feature/x", "push", "feature", ["nox -s build", "nox -s unit", "nox -s lint"]),
        ("feature/x", "pull_request", "feature", ["nox -s build", "nox -s unit", "nox -s lint"]),
        ("develop", "pull_request", "feature", ["nox -s build", "nox -s unit", "nox -s lint"]),
        ("bugfix/odd-name", "push", "feature", ["nox -s build", "nox -s unit", "nox -s lint"]),
        ("develop", "push", "develop", ["nox -s release", "nox -s integration"]),
        ("master", "push", "release", ["nox -s deploy -- staging", "nox -s acceptance -- staging"]),
        ("main", "push", "release", ["nox -s deploy -- staging", "nox -s acceptance -- staging"]),
        ("main", "manual", "promote", ["nox -s promote -- production"]),
        ("feature/x", "manual", "feature", ["nox -s build", "nox -s unit", "nox -s lint"]),
    ],
)
def test_rows(branch: str, event: str, row: str, commands: list[str]) -> None:
    got_row, steps = plan(CFG.flow, CFG.branches, branch, event)
    assert got_row == row
    assert [s.command() for s in steps] == commands


def test_an_unknown_branch_never_deploys() -> None:
    for event in ("push", "manual", "pull_request"):
        _, steps = plan(CFG.flow, CFG.branches, "anything-else", event)
        assert {s.session for s in steps}.isdisjoint({"deploy", "promote", "release"})


def test_unknown_event() -> None:
    with pytest.raises(ConfigError, match="unknown event 'tag'"):
        plan(CFG.flow, CFG.branches, "main", "tag")


@pytest.mark.parametrize("item", ["", "two words", " -- staging"])
def test_bad_steps(item: str) -> None:
    with pytest.raises(ConfigError, match="is not 'session' or 'session -- args'"):
        parse_steps("feature", [item])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["ci"], []),
        (["--dry-run", "ci"], ["--dry-run"]),
        (["--config", "/x/spec.yaml", "ci"], ["--config", "/x/spec.yaml"]),
        (["--config", "/x/spec.yaml", "--dry-run", "ci", "--plan"], ["--config", "/x/spec.yaml", "--dry-run"]),
        (["ci", "--dry-run", "--json"], ["--dry-run", "--json"]),  # after the name too (nox -s ci -- --dry-run)
        (["ci", "--config", "/x/spec.yaml"], ["--config", "/x/spec.yaml"]),
        (["--no-cache", "ci"], ["--no-cache"]),
    ],
)
def test_ci_passes_every_global_option_to_each_session(argv: list[str], expected: list[str]) -> None:
    from cicd.__main__ import build_parser, sub_command

    args = build_parser().parse_args(["--root", "/repo", *argv])
    cmd = sub_command(args, "develop", "deploy", ("staging",))
    assert cmd[1:3] == ["-m", "cicd"]
    assert cmd[3:7] == ["--root", "/repo", "--branch", "develop"]
    assert cmd[7:] == [*expected, "deploy", "staging"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--dry-run", "--json", "--config", "/x.yaml", "deploy", "staging"],
        [
            "deploy",
            "staging",
            "--dry-run",
            "--json",
            "--config",
            "/x.yaml",
        ],  # what `nox -s deploy -- staging --dry-run` runs
        ["--config", "/x.yaml", "deploy", "--json", "staging", "--dry-run"],
    ],
)
def test_global_options_may_come_before_or_after_the_command(argv: list[str]) -> None:
    from cicd.__main__ import build_parser

    args = build_parser().parse_args(argv)
    assert (args.dry_run, args.json, str(args.config), args.environment) == (True, True, "/x.yaml", "staging")


def test_an_option_given_before_the_command_is_kept_when_not_given_after() -> None:
    from cicd.__main__ import build_parser

    args = build_parser().parse_args(["--dry-run", "--branch", "develop", "--root", "/r", "unit", "--", "-k", "x"])
    assert (
        args.dry_run and args.branch == "develop" and str(args.root) == "/r" and args.pytest_args == ["--", "-k", "x"]
    )


def test_a_row_runs_only_the_toolkits_commands_each_a_nox_session() -> None:
    """``COMMANDS`` (what a row may name) are commands of ``python -m cicd`` and sessions of the noxfile."""
    import argparse
    import re
    from pathlib import Path

    from cicd.__main__ import build_parser
    from cicd.plan import COMMANDS

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(COMMANDS) <= set(subparsers.choices)
    noxfile = (Path(__file__).resolve().parents[3] / "noxfile.py").read_text()
    sessions = set(re.findall(r"@nox\.session\([^)]*\)\ndef (\w+)\(", noxfile))
    assert set(COMMANDS) <= sessions, set(COMMANDS) - sessions
    with pytest.raises(ConfigError, match=r"'unti' is no session a row can run; did you mean 'unit'\?"):
        parse_steps("feature", ["build", "unti"])
