"""No traceback for a user's mistake, from any entry point of the toolkit (``cicd``) and the
benchmarks (the machinery and the rule: ``tests/integration/entry_points.py``; each package's own
table is beside its tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT
from tests.integration.entry_points import (
    BAD_ARG,
    NO_ENGINE,
    Case,
    case,
    case_id,
    check_mistake,
    check_table,
    entry_points,
)

CASES = [
    # the toolkit
    case("cicd", "bad argument", "--no-such-flag", "status", says=BAD_ARG),
    case(
        "cicd",
        "missing file",
        "--config",
        "/nonexistent/pipeline.yaml",
        "status",
        says=r"/nonexistent/pipeline.yaml does not exist.*--config",
    ),
    case(
        "cicd",
        "missing component",
        "--root",
        "{tmp}",
        "--config",
        "{root}/cicd/pipeline.yaml",
        "status",
        says=r"not inside a git repository.*clone",
    ),
    case(
        "cicd", "missing component", "build", says=r"no Docker engine answers.*start dockerd", cwd="root", env=NO_ENGINE
    ),
    case(
        "cicd", "missing component", "status", says=r"could not ask the host of .*incomplete", cwd="root", env=NO_ENGINE
    ),
    case(
        "cicd", "missing file", "merge", "no-such-branch", says=r"no branch.*no-such-branch.*check the name", cwd="root"
    ),
    case("cicd.lint_tools", "bad argument", "--no-such-flag", says=BAD_ARG),
    case("cicd.lint_tools", "missing component", "--reports", "{tmp}/lint", says=r"did not run.*(install|nox -s lint)"),
    case("cicd.locks", "bad argument", "--no-such-flag", says=BAD_ARG),
    case("cicd.locks", "missing file", "--root", "{tmp}", says=r"no cicd/pipeline.yaml under.*--root"),
    case(
        "cicd.locks",
        "missing component",
        "--write",
        "--root",
        "{root}",
        says=r"uv is not installed.*nox -s lock",
        env={"PATH": "/nonexistent"},
    ),
    case("cicd.audit", "bad argument", "--no-such-flag", says=BAD_ARG),
    case("cicd.conflicts", "bad argument", "--no-such-flag", says=BAD_ARG),
    case("cicd.conflicts", "missing component", "--root", "{tmp}", says=r"git diff failed in .*not a git repository"),
    case(
        "cicd.audit",
        "missing component",
        "--reports",
        "{tmp}/a",
        says=r"pip-audit is not installed.*nox -s lint",
        env={"PATH": "/nonexistent"},
    ),
    case("cicd.audit", "missing file", "--reports", "/proc/none/a", says=r"cannot create.*/proc/none"),
    case("cicd.ci_files", "bad argument", "--no-such-flag", says=BAD_ARG),
    case("cicd.ci_files", "missing file", "--root", "{tmp}", says=r"no cicd/pipeline.yaml under.*--root"),
    case("cicd.contract", "bad argument", "--no-such-flag", says=BAD_ARG),
    case("cicd.contract", "missing file", "--root", "{tmp}", says=r"no cicd/pipeline.yaml under.*--root"),
    case("cicd.release.docker.healthcheck", "bad argument", "--no-such-flag", says=BAD_ARG),
    case(
        "cicd.release.docker.healthcheck",
        "missing component",
        "--port",
        "{free_port}",
        says=r"nothing healthy answers.*start the service",
        exit_code=1,
    ),
    # the benchmarks
    case("benchmarks.run", "bad argument", "--requests", "lots", says=r"invalid int"),
    case("benchmarks.run", "missing component", "--output", "{tmp}/b", says=r"no Docker engine", env=NO_ENGINE),
    case("benchmarks.run", "missing file", "--output", "/proc/none/b", says=r"cannot (create|write).*/proc/none"),
    case("benchmarks.load", "bad argument", "--image", "x", "--seconds", "lots", says=r"invalid int"),
    case("benchmarks.load", "missing component", "--image", "x", "--output", "{tmp}/l", says="Docker", env=NO_ENGINE),
    case("benchmarks.load", "missing file", "--image", "x", "--output", "/proc/none/l", says=r"cannot create.*/proc"),
    case("benchmarks.hosts", "bad argument", "--image", "x", "--requests", "lots", says=r"invalid int"),
    case("benchmarks.hosts", "missing component", "--image", "x", "--output", "{tmp}/h", says="Docker", env=NO_ENGINE),
    case("benchmarks.hosts", "missing file", "--image", "x", "--output", "/proc/none/h", says=r"cannot create.*/proc"),
    case("benchmarks.drills", "bad argument", "--variants", "some", says=r"invalid int"),
    case("benchmarks.drills", "missing component", "--output", "{tmp}/d", says=r"no Docker engine", env=NO_ENGINE),
    case("benchmarks.drills", "missing file", "--output", "/proc/none/d", says=r"cannot (create|write).*/proc/none"),
]


def test_the_table_covers_every_entry_point() -> None:
    check_table(CASES, entry_points(("cicd", ROOT), ("benchmarks", ROOT)))


@pytest.mark.parametrize("c", CASES, ids=[case_id(c) for c in CASES])
def test_a_mistake_gets_one_line_and_its_exit_code(c: Case, tmp_path: Path) -> None:
    check_mistake(c, tmp_path)


def test_the_local_demo_runs_the_packages_own_commands_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cicd", "--json", "demo", "--local", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["ok"] and [s["name"] for s in report["stages"] if s["ok"]] == ["train", "evaluate", "serve"]
    assert json.loads((tmp_path / "report.json").read_text()) == report  # the same, kept beside the outputs
    assert (tmp_path / "evaluation" / "evaluation.png").is_file()


@pytest.mark.parametrize("command", [["cicd", "config"], ["cicd.contract"], ["cicd.locks"]], ids=" ".join)
def test_a_python_without_the_toolkits_requirements_is_told_how_to_get_them(command: list[str]) -> None:
    """The README's venv holds nox, not the toolkit's requirements: ``python -m cicd`` (and the
    other entry points through ``run_cli``) from such a Python says so in one line (here a Python
    started without its site-packages: no PyYAML, no GitPython), never with a traceback."""
    argv = [sys.executable, "-S", "-m", *command]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "lacks the toolkit's requirements" in done.stderr and "-r cicd/requirements.txt" in done.stderr, done.stderr
