"""The CI files and the spec agree; a file that disagrees is caught."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from cicd.ci_files import azure_rows, check_repository, github_rows, nox_steps
from cicd.config import load_config
from cicd.plan import Step, plan

ROOT = Path(__file__).resolve().parents[3]
CFG = load_config(ROOT / "cicd/pipeline.yaml", env={})


@pytest.mark.parametrize(
    ("command", "steps"),
    [
        ("python -m nox -s build unit lint", [Step("build"), Step("unit"), Step("lint")]),
        ("nox -s deploy -- staging", [Step("deploy", ("staging",))]),
        ("python -m pip install nox", []),
    ],
)
def test_nox_commands_are_parsed(command: str, steps: list[Step]) -> None:
    assert nox_steps(command) == steps


def test_the_ci_files_call_exactly_the_planned_sessions() -> None:
    assert check_repository(ROOT, CFG.flow) == []


@pytest.mark.parametrize(
    ("branch", "event"),
    [("feature/x", "push"), ("develop", "push"), ("main", "push"), ("master", "manual"), ("main", "schedule")],
)
def test_every_branch_kind_has_a_matching_job(branch: str, event: str) -> None:
    row, steps = plan(CFG.flow, CFG.branches, branch, event)
    assert steps, row
    github = github_rows(yaml.safe_load((ROOT / ".github/workflows/pipeline.yml").read_text()))
    azure = azure_rows(yaml.safe_load((ROOT / "azure-pipelines.yml").read_text()))
    assert github[row] == azure[row] == steps


@pytest.mark.parametrize(
    ("path", "old", "new", "message"),
    [
        (
            ".github/workflows/pipeline.yml",
            "python -m nox -s release integration",
            "python -m nox -s release",
            "the 'develop' job runs [nox -s release]",
        ),
        (
            "azure-pipelines.yml",
            "python -m nox -s deploy -- staging",
            "python -m nox -s deploy -- production",
            "the 'release' job runs [nox -s deploy -- production",
        ),
        (
            ".github/workflows/pipeline.yml",
            "python -m nox -s build unit lint",
            "python -m nox -s build unit lint typo",
            "session 'typo' does not exist",
        ),
    ],
)
def test_a_mutated_copy_is_caught(tmp_path: Path, path: str, old: str, new: str, message: str) -> None:
    for rel in (".github/workflows/pipeline.yml", "azure-pipelines.yml", "noxfile.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    target = tmp_path / path
    assert old in target.read_text()
    target.write_text(target.read_text().replace(old, new, 1))
    found = check_repository(tmp_path, CFG.flow)
    assert any(message in p for p in found), found


def test_nox_is_installed_at_one_pinned_version_everywhere() -> None:
    """The README's commands and every CI job install the same nox, pinned (what the tests ran)."""
    texts = {
        name: (ROOT / name).read_text()
        for name in ("README.md", ".github/workflows/pipeline.yml", "azure-pipelines.yml")
    }
    pins = {name: set(re.findall(r"pip install '?(nox[^\s']*)", text)) for name, text in texts.items()}
    assert all(pins.values()), pins
    assert len(set().union(*pins.values())) == 1, pins
    assert next(iter(pins["README.md"])).startswith("nox[uv]==")
