"""The copier template (copier.yml), for real: copier renders this repository as users get it.

- With the sample's answers it is this repository, file for file: no second copy of the tree.
- A minimal project of another name (``churn_model``, a classifier of its own) meets the contract,
  and passes its own tests, ruff and mypy.
- ``copier update`` to a newer commit keeps the project's edits, takes the toolkit's changes, and
  shows a clash as conflict markers.
- The Python version asked for is the one every part of the project reads.
- That minimal project runs its README's two commands, verbatim, right after the copy (no git yet): the main job
  carries it through the whole flow for real (build, unit, release with its own gate, integration,
  merge, a staging deploy that its acceptance tests pass, promotion, status), and its tests pass.
- Added to an existing repository, it leaves the package and tests there untouched, and the
  feature row (build, unit tests in the build image, lint) passes on the real engine.

The template is a throwaway clone of this repository as it is now (tracked and new files).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cicd.config import load_config
from cicd.demo import FLOW
from cicd.images import Engine
from tests.integration.conftest import IDENTITY, cicd, git, make_project
from tests.integration.newcomer import readme_commands, readme_venv

pytestmark = pytest.mark.slow(seconds=630)  # left out by --fast; the estimate orders the workers

CHURN = {"example": "minimal", "project_name": "churn-model", "ci": "github"}


def _run(*cmd: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(cmd), cwd=cwd, env={**os.environ, **IDENTITY, **(env or {})}, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, (
        f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done


def copier(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return _run(sys.executable, "-m", "copier", *args, "--defaults", cwd=cwd)


def render(template: Path, dest: Path, ref: str = "HEAD", **answers: str) -> Path:
    data = [arg for key, value in answers.items() for arg in ("--data", f"{key}={value}")]
    copier("copy", "--vcs-ref", ref, *data, str(template), str(dest), cwd=dest.parent)
    return dest


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}


@pytest.fixture
def template(tmp_path: Path) -> Path:
    work, _ = make_project(tmp_path / "template")
    return work


def test_the_samples_answers_render_this_repository_file_for_file(template: Path, tmp_path: Path) -> None:
    rendered = render(template, tmp_path / "sample")
    tracked = set(git(template, "ls-files").splitlines())
    template_only = {f for f in tracked if f == "copier.yml" or f.endswith(".jinja") or "{%" in f or "{{" in f}
    assert files(rendered) == (tracked - template_only) | {".copier-answers.yml"}
    differ = [f for f in tracked - template_only if (rendered / f).read_bytes() != (template / f).read_bytes()]
    assert not differ, differ


def test_a_minimal_project_meets_the_contract_and_passes_its_own_checks(template: Path, tmp_path: Path) -> None:
    project = render(template, tmp_path / "churn", **CHURN)
    assert (project / "src/churn_model/run.py").is_file() and not (project / "src/sample_ml").exists()
    assert not (project / "azure-pipelines.yml").exists() and (project / ".github/workflows/pipeline.yml").is_file()
    readme = (project / "README.md").read_text()  # the project's own: its name, its package, no sample
    assert readme.startswith("# churn-model\n") and "src/churn_model" in readme and "sample" not in readme.lower()
    said = _run(sys.executable, "-m", "cicd.contract", cwd=project).stdout
    assert "churn_model meets the contract" in said, said
    _run(sys.executable, "-m", "cicd.ci_files", "--root", str(project), cwd=project)
    env = {"PYTHONPATH": f"{project / 'src'}{os.pathsep}{project}"}
    tests = _run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit", cwd=project, env=env)
    assert re.search(r"^\d+ passed in", tests.stdout, re.MULTILINE), tests.stdout[-2000:]  # and nothing else
    _run(sys.executable, "-m", "ruff", "check", "--no-cache", ".", cwd=project)
    _run(sys.executable, "-m", "ruff", "format", "--no-cache", "--check", ".", cwd=project)
    _run(sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir=/dev/null", cwd=project)


def test_the_python_version_is_one_answer_and_an_unpinned_base_is_named(template: Path, tmp_path: Path) -> None:
    """The Python asked for is in `.python-version`, which nox, the CI setup steps and the locks
    read, and in the two pyproject files; a version whose base image has no pinned digest yet is
    refused by lint's supply check, with the command that finds the digest."""
    import tomllib

    project = render(template, tmp_path / "py312", **CHURN, python_version="3.12")
    assert (project / ".python-version").read_text() == "3.12\n"
    assert "on a machine with Python 3.12" in (project / "README.md").read_text()  # what its two commands need
    assert "python-version-file: .python-version" in (project / ".github/workflows/pipeline.yml").read_text()
    tools = tomllib.loads((project / "pyproject.toml").read_text())["tool"]
    assert (tools["ruff"]["target-version"], tools["mypy"]["python_version"]) == ("py312", "3.12")
    package = tomllib.loads((project / "src/pyproject.toml").read_text())["project"]
    assert package["requires-python"] == ">=3.12,<3.13"
    assert load_config(project / "cicd/pipeline.yaml", env={}).images.base == "python:3.12-slim-bookworm"
    locks = subprocess.run(
        [sys.executable, "-m", "cicd.locks", "--root", str(project)], capture_output=True, text=True, check=False
    )
    said = [line for line in (locks.stdout + locks.stderr).splitlines() if "images.base" in line]
    assert locks.returncode != 0 and len(said) == 1, locks.stdout + locks.stderr
    assert "docker buildx imagetools inspect python:3.12-slim-bookworm" in said[0]


def test_copier_update_keeps_the_projects_edits_and_takes_the_toolkits_changes(template: Path, tmp_path: Path) -> None:
    older = git(template, "rev-parse", "HEAD")
    project = render(template, tmp_path / "churn", older, **CHURN)
    git(project.parent, "init", "--quiet", "--initial-branch=main", str(project))
    spec, model = project / "cicd/pipeline.yaml", project / "src/churn_model/model.py"
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", "the generated project")
    # The team's edits: its own spec setting, its own code.
    spec.write_text(spec.read_text().replace("  initial_version: 0.1.0 ", "  initial_version: 1.0.0 "))
    model.write_text(model.read_text() + '\n\nTEAM_NOTE = "ours"\n')
    git(project, "commit", "--quiet", "-am", "our settings and our model")
    # Trainyard moves on: a toolkit change, and a change to a spec line the team left alone.
    readme, spec_template = template / "cicd/README.md", template / "cicd/pipeline.yaml.jinja"
    readme.write_text(readme.read_text() + "\nA newer Trainyard.\n")
    spec_template.write_text(spec_template.read_text().replace("timeout: 1800 ", "timeout: 2400 "))
    git(template, "commit", "--quiet", "-am", "a newer toolkit")

    copier("update", "--vcs-ref", "HEAD", cwd=project)
    assert "initial_version: 1.0.0" in spec.read_text() and 'TEAM_NOTE = "ours"' in model.read_text()
    assert "timeout: 2400" in spec.read_text() and (project / "cicd/README.md").read_text().endswith(
        "A newer Trainyard.\n"
    )
    assert "<<<<<<<" not in spec.read_text()
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", "take the newer Trainyard")

    # Both change the same line: the update shows it as an ordinary conflict.
    spec.write_text(spec.read_text().replace("  initial_version: 1.0.0 ", "  initial_version: 2.0.0 "))
    git(project, "commit", "--quiet", "-am", "ours again")
    spec_template.write_text(spec_template.read_text().replace("initial_version: 0.1.0 ", "initial_version: 0.2.0 "))
    git(template, "commit", "--quiet", "-am", "the toolkit's own initial version")
    copier("update", "--vcs-ref", "HEAD", "--conflict", "inline", cwd=project)
    text = spec.read_text()
    assert "<<<<<<<" in text and "initial_version: 2.0.0" in text and "initial_version: 0.2.0" in text, text


def test_trainyard_joins_an_existing_repository_and_its_feature_row_passes(
    template: Path, tmp_path: Path, engine: Engine, base_image: str
) -> None:
    # An existing repository: a package that meets the contract, its tests, its data; no CI, no toolkit.
    churn = render(template, tmp_path / "churn", **CHURN)
    existing = tmp_path / "existing"
    for part in ("src", "tests/unit", "model", "data"):
        shutil.copytree(churn / part, existing / part)
    (existing / "README.md").write_text("# churn\n\nOur model.\n")
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(existing))
    git(existing, "add", "-A")
    git(existing, "commit", "--quiet", "-m", "our model")
    theirs = {f: (existing / f).read_bytes() for f in files(existing)}

    render(template, existing, **CHURN, existing="true")
    assert {f: (existing / f).read_bytes() for f in theirs} == theirs  # not one byte of theirs changed
    assert {"noxfile.py", "cicd/pipeline.yaml", ".github/workflows/pipeline.yml"} <= files(existing)
    git(existing, "add", "-A")
    git(existing, "commit", "--quiet", "-m", "add Trainyard")

    # The feature row, as its CI job runs it: no signing key, the real engine.
    env = {"TRAINYARD_BASE_IMAGE": base_image, "TRAINYARD_SIGNING_KEY": ""}
    for stage in ("build", "unit", "lint"):
        done = cicd(existing, stage, env=env, check=False)
        assert done.returncode == 0, f"{stage}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "churn_model meets the contract" in done.stdout + done.stderr


def test_a_generated_classifier_runs_the_readmes_two_commands(tmp_path: Path, template: Path, base_image: str) -> None:
    """The generated project's README starts with the same two commands, and both work there, run
    verbatim right after `copier copy`, before any `git init`: the main job carries the
    classifier through build, unit tests, release (trained, evaluated and gated), integration,
    merge, a staging deploy with its acceptance tests, promotion and status; the tests pass.
    (From a clone, the newcomer test runs the same command.)"""
    project = render(template, tmp_path / "churn", **CHURN)
    assert not (project / ".git").exists()
    main_job, tests = readme_commands(project)
    env = {"TRAINYARD_BASE_IMAGE": base_image, "CI": "true"}

    done = _run("bash", "-c", main_job, cwd=project, env=env)
    out = done.stdout + done.stderr
    found = re.search(r"^report: (\S+)$", out, re.MULTILINE)
    assert found, out[-3000:]
    report = Path(found.group(1))
    try:
        stages = json.loads(report.read_text())["stages"]
        released = json.loads((report.parent / "work/artifacts/release.json").read_text())  # the demo's copy
    finally:
        shutil.rmtree(report.parent, ignore_errors=True)  # the demo keeps its throwaway copy for the user
    assert all(s["ok"] for s in stages), stages
    assert [s["name"] for s in stages][1:] == [name for name, _, _ in FLOW], stages
    assert "trainyard/churn-model-build:" in stages[1]["detail"], stages
    metrics = released["metrics"]  # the classifier's own: accuracy against its baseline, no RMSE
    assert metrics["model_name"] == "logistic_regression" and "rmse" not in metrics["model"], metrics
    assert metrics["model"]["accuracy"] > metrics["baseline"]["accuracy"], metrics

    said = _run("bash", "-c", tests, cwd=project, env=env).stdout
    assert re.search(r"^=+ \d+ passed in [^,]*=+$", said, re.MULTILINE), said[-3000:]  # nothing failed or skipped


def _bash_blocks(readme: Path) -> list[list[str]]:
    """Every fenced bash block of a README: its command lines, comments dropped."""
    blocks = readme.read_text().split("```bash\n")[1:]
    return [
        [line.split("  #", 1)[0].strip() for line in block.split("```", 1)[0].splitlines() if line.strip()]
        for block in blocks
    ]


def test_the_readmes_copy_and_the_projects_update_commands_work_verbatim(template: Path, tmp_path: Path) -> None:
    """The README's copy command (answers added: no one is there to type them) makes a project that
    the generated README's update command updates later, verbatim; an update that leaves conflicts
    names the files and fails, where copier alone exits 0. A relative source is warned about."""
    block = next(block for block in _bash_blocks(template / "README.md") if any("copier copy" in c for c in block))
    install, copy = block[0], block[1]
    assert install == ".venv/bin/pip install --require-hashes -r cicd/requirements-copier.txt", install
    assert copy == '.venv/bin/copier copy --vcs-ref HEAD "$PWD" ../my-model', copy
    _run("bash", "-c", readme_venv(template), cwd=template)  # the README's venv, verbatim
    _run("bash", "-c", install, cwd=template)  # copier into it, verbatim
    answers = " --defaults --data example=minimal --data project_name=churn-model --data ci=github"
    copied = _run("bash", "-c", copy + answers, cwd=template)
    assert ".venv/bin/nox -s doctor" in copied.stdout + copied.stderr  # the first day's next step
    project = template.parent / "my-model"
    assert f"_src_path: {template}\n" in (project / ".copier-answers.yml").read_text()
    relative = _run("bash", "-c", copy.replace('"$PWD"', ".").replace("my-model", "rel") + answers, cwd=template)
    assert 'warning: this project records its Trainyard source as "."' in relative.stderr, relative.stderr[-2000:]

    git(project.parent, "init", "--quiet", "--initial-branch=main", str(project))
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", "churn-model, from Trainyard")
    _run("bash", "-c", readme_venv(project), cwd=project)  # the generated README's venv with nox
    sessions = _run(".venv/bin/nox", "-l", cwd=project).stdout
    assert "- doctor ->" in sessions and "- bench ->" not in sessions and "- drills ->" not in sessions, sessions
    # The contract runs where a file it asks for is missing, and names it (it once stopped at
    # installing that very file: "File not found: ./src/requirements/test.txt").
    pins = project / "src/requirements/test.txt"
    kept = pins.read_bytes()
    pins.unlink()
    try:
        gaps = subprocess.run([".venv/bin/nox", "-s", "contract"], cwd=project, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
    finally:
        pins.write_bytes(kept)
    said = gaps.stdout + gaps.stderr
    assert gaps.returncode != 0 and "contract: src/requirements/test.txt: missing" in said, said[-3000:]
    assert "File not found" not in said, said[-3000:]
    [update] = [line for block in _bash_blocks(project / "README.md") for line in block if "-s update" in line]
    assert update == ".venv/bin/nox -s update", update

    readme = template / "cicd/README.md"
    readme.write_text(readme.read_text() + "\nA newer Trainyard.\n")
    git(template, "commit", "--quiet", "-am", "a newer toolkit")
    done = _run("bash", "-c", update, cwd=project)
    assert (project / "cicd/README.md").read_text().endswith("A newer Trainyard.\n")
    assert "no conflicts" in done.stdout + done.stderr, (done.stdout + done.stderr)[-2000:]
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", "the newer Trainyard")

    spec, spec_template = project / "cicd/pipeline.yaml", template / "cicd/pipeline.yaml.jinja"
    spec.write_text(spec.read_text().replace("  initial_version: 0.1.0 ", "  initial_version: 2.0.0 "))
    git(project, "commit", "--quiet", "-am", "ours")
    spec_template.write_text(spec_template.read_text().replace("initial_version: 0.1.0 ", "initial_version: 0.2.0 "))
    git(template, "commit", "--quiet", "-am", "the toolkit's own initial version")
    clash = subprocess.run(["bash", "-c", update], cwd=project, capture_output=True, text=True, timeout=600)
    said = clash.stdout + clash.stderr
    assert clash.returncode != 0 and "error: conflicts in cicd/pipeline.yaml" in said, said[-3000:]
    refused = cicd(project, "config", check=False)  # and the toolkit says what it sees
    assert refused.returncode == 2 and "merge conflict markers at lines" in refused.stderr, refused.stderr[-2000:]
