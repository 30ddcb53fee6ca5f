"""The CI files and the spec agree; a file that disagrees is caught."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from cicd.ci_files import azure_condition, azure_rows, check_repository, github_rows, nox_steps
from cicd.config import load_config
from cicd.errors import ConfigError
from cicd.plan import Step, plan

ROOT = Path(__file__).resolve().parents[3]
GITHUB, AZURE = ".github/workflows/pipeline.yml", "azure-pipelines.yml"
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
        (GITHUB, "permissions: {}\n", "permissions:\n  contents: write\n", "top-level permissions must be {}"),
        (
            GITHUB,
            "permissions: {}\n",
            "permissions: {}\nenv:\n  LEAK: ${{ secrets.TRAINYARD_REGISTRY_PASSWORD }}\n",
            "secrets in the workflow-level env reach every job",
        ),
        (
            GITHUB,
            "      contents: read  # a read-only token",
            "      contents: write  # a read-only token",
            "job 'feature' is granted contents: write but runs only read-only sessions",
        ),
        (
            GITHUB,
            "      contents: write  # pushes its records (git tags)\n",
            "      contents: write  # pushes its records (git tags)\n      packages: write\n",
            "job 'develop' is granted packages: write but may only be granted contents: write",
        ),
        (
            GITHUB,
            "    permissions:\n      contents: read  # a read-only token, and no secrets: "
            "this job runs any branch's code\n",
            "",
            "job 'feature' declares no permissions mapping",
        ),
        (
            GITHUB,
            "      TRAINYARD_ROW: feature\n",
            "      TRAINYARD_ROW: feature\n      TOKEN: ${{ secrets.TRAINYARD_REGISTRY_PASSWORD }}\n",
            "job 'feature' runs any branch's code (read-only sessions) and must get no secrets",
        ),
        (GITHUB, "    environment: integration\n", "", "job 'develop' uses secrets without an environment"),
        (
            GITHUB,
            "          persist-credentials: false  # nothing is pushed from here\n",
            "",
            "job 'feature' pushes nothing, so its checkout must set persist-credentials: false",
        ),
        (
            GITHUB,
            "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065  # v5.6.0",
            "actions/setup-python@v5",
            "actions/setup-python@v5 must be pinned by full commit SHA",
        ),
        (
            GITHUB,
            "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065  # v5.6.0",
            "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065",
            "needs its version in a comment",
        ),
        (
            GITHUB,
            "python -m pip install --require-hashes -r cicd/requirements-ci.txt",
            "python -m pip install nox",
            "job 'feature' installs without --require-hashes: python -m pip install nox",
        ),
        (
            AZURE,
            "  - name: PIP_CACHE_DIR\n",
            "  - group: trainyard-registry\n  - name: PIP_CACHE_DIR\n",
            "a pipeline-wide variable group reaches every stage",
        ),
        (
            AZURE,
            "        variables:\n          TRAINYARD_ROW: feature\n",
            "        variables:\n          - group: trainyard-registry\n"
            "          - name: TRAINYARD_ROW\n            value: feature\n",
            "job 'feature' runs any branch's code (read-only sessions) and must get no variable group",
        ),
        (
            AZURE,
            '            persistCredentials: "false"  # nothing is pushed from here',
            '            persistCredentials: "true"',
            "job 'feature' pushes nothing, so its checkout must not set persistCredentials: true",
        ),
        (
            AZURE,
            "python -m pip install --require-hashes -r cicd/requirements-ci.txt",
            "python -m pip install 'nox[uv]'",
            "installs without --require-hashes",
        ),
        (  # the retrain job as it was: a manual run of any branch got the data's URL
            GITHUB,
            "      (github.ref == 'refs/heads/master' || github.ref == 'refs/heads/main')\n    runs-on: ubuntu-latest\n"
            "    environment: retrain",
            "      true\n    runs-on: ubuntu-latest\n    environment: retrain",
            "job 'retrain' gets secrets but its `if:` lets it run on any branch",
        ),
        (  # the same test or'ed with anything else guards nothing
            GITHUB,
            "    if: github.event_name == 'push' && github.ref == 'refs/heads/develop'",
            "    if: github.event_name == 'push' || github.ref == 'refs/heads/develop'",
            "job 'develop' gets secrets but its `if:` lets it run on any branch",
        ),
        (  # the retrain stage as it was: a manual run of any branch got the data's URL
            AZURE,
            "      and(or(eq(variables['Build.Reason'], 'Schedule'),",
            "      or(or(eq(variables['Build.Reason'], 'Schedule'),",
            "stage 'retrain' gets trainyard-retrain but also runs for refs/heads/feature/x (Manual)",
        ),
        (  # a branch's copy that links the signing key to a stage of its own
            AZURE,
            "  - stage: develop\n",
            "  - stage: leak\n    jobs:\n      - job: leak\n        variables:\n"
            "          - group: trainyard-signing\n        steps:\n          - script: echo leak\n"
            "  - stage: develop\n",
            "stage 'leak' gets trainyard-signing but also runs for refs/heads/feature/x (IndividualCI)",
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


@pytest.mark.parametrize("kept", [[GITHUB], [AZURE], []])
def test_a_project_with_one_ci_system_is_checked_on_that_one(tmp_path: Path, kept: list[str]) -> None:
    """A project made with one CI system (copier.yml's `ci`) has only its file; none at all is a problem."""
    for rel in [*kept, "noxfile.py"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    found = check_repository(tmp_path, CFG.flow)
    assert found == ([] if kept else [f"no CI file: neither {GITHUB} nor {AZURE}; the flow runs nowhere but by hand"])


def test_nox_is_installed_from_the_hashed_file_everywhere() -> None:
    """The README's commands, .ci/run and every CI job install nox from one hash-pinned file."""
    for name in ("README.md", ".ci/run", GITHUB, AZURE):
        text = (ROOT / name).read_text()
        installs = re.findall(r"pip install [^\n]*nox -s", text) if name == "README.md" else []
        installs += re.findall(r"pip install [^\n']*", text) if name == ".ci/run" else []
        installs += re.findall(r"pip install [^\n]*", text) if name in (GITHUB, AZURE) else []
        hashed = [i for i in installs if i.startswith("pip install --require-hashes -r cicd/requirements-ci.txt")]
        assert installs and hashed == installs, (name, installs)
    pinned = (ROOT / "cicd/requirements-ci.txt").read_text()
    requirements = re.findall(r"^([\w.-]+==[\w.]+)[^\n]*\\\n((?:\s+--hash=sha256:[0-9a-f]{64}[ \\]*\n)+)", pinned, re.M)
    names = {r[0].split("==")[0] for r in requirements}
    assert {"nox", "uv"} <= names and "copier" not in names, names  # the jobs install what they run, no more
    assert len(requirements) == len(re.findall(r"^[\w.-]+==", pinned, re.M)), "every pin carries its hashes"


@pytest.mark.parametrize(
    ("reason", "branch", "action", "stage"),
    [
        ("IndividualCI", "refs/heads/feature/x", "promote", "feature"),
        ("PullRequest", "refs/pull/7/merge", "promote", "feature"),
        ("IndividualCI", "refs/heads/develop", "promote", "develop"),
        ("IndividualCI", "refs/heads/main", "promote", "staging"),
        ("Manual", "refs/heads/main", "promote", "production"),
        ("Schedule", "refs/heads/main", "promote", "retrain"),
        ("Manual", "refs/heads/master", "retrain", "retrain"),
        ("Manual", "refs/heads/feature/x", "retrain", "feature"),  # never the retrain stage, with its secret
    ],
)
def test_each_kind_of_azure_run_starts_its_own_stage(reason: str, branch: str, action: str, stage: str) -> None:
    doc = yaml.safe_load((ROOT / AZURE).read_text())
    run = {"Build.Reason": reason, "Build.SourceBranch": branch}
    started = [s["stage"] for s in doc["stages"] if azure_condition(s.get("condition") or "", run, {"action": action})]
    assert started == [stage]


def test_an_azure_condition_is_read_or_refused() -> None:
    run = {"Build.Reason": "Manual", "Build.SourceBranch": "refs/heads/main"}
    assert azure_condition(
        "and(eq(variables.Build.Reason, 'manual'), startsWith(variables['Build.SourceBranch'], 'refs/heads/'))", run, {}
    )
    assert not azure_condition("in(variables['Build.Reason'], 'Schedule', 'PullRequest')", run, {})
    assert azure_condition("eq('${{ parameters.action }}', 'retrain')", run, {"action": "retrain"})
    assert azure_condition("eq('it''s', 'IT''S')", run, {})  # a quote doubled; eq ignores case, as Azure's does
    with pytest.raises(ConfigError, match="'coalesce' is no function it knows"):
        azure_condition("coalesce(variables['x'], 'y')", run, {})
    with pytest.raises(ConfigError, match="a \\( is never closed"):
        azure_condition("and(eq('a', 'a')", run, {})


def test_what_decides_trust_has_code_owners() -> None:
    """A change to the allowed signers, the toolkit, the sessions or a CI file needs its owners' review."""
    owned = {line.split()[0] for line in (ROOT / ".github/CODEOWNERS").read_text().splitlines() if line[:1] == "/"}
    assert {"/.trainyard/allowed_signers", "/cicd/", "/noxfile.py", "/.github/", "/azure-pipelines.yml"} <= owned
