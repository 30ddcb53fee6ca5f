"""``cicd doctor`` on a first day, for real: a project copied without git, a fresh HOME with no
key, the real engine and a real registry. Each to-do's command is run verbatim, and the doctor
then says it is done; a project whose flow can run has nothing left to do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.integration.conftest import IDENTITY, cicd, make_project, start_registry


def doctor(work: Path, env: dict[str, str]) -> tuple[int, dict[str, dict[str, Any]]]:
    done = cicd(work, "--json", "doctor", env=env, check=False)
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr[-2000:]
    return done.returncode, {c["name"]: c for c in json.loads(done.stdout)["result"]}


def follow(fix: str, work: Path, env: dict[str, str]) -> None:
    """Run a to-do's command as a user pastes it, in the project."""
    done = subprocess.run(["bash", "-c", fix], cwd=work, env={**os.environ, **env}, capture_output=True, text=True)
    assert done.returncode == 0, f"{fix}\n{done.stdout}{done.stderr}"


def test_the_first_day_from_a_copy_without_git_to_nothing_left_to_do(tmp_path: Path) -> None:
    work, _ = make_project(tmp_path / "project")
    fresh = tmp_path / "fresh"  # what `copier copy` leaves: the files, no repository
    shutil.copytree(work, fresh, ignore=shutil.ignore_patterns(".git"))
    (fresh / ".trainyard/allowed_signers").write_text("")  # nobody's key yet
    home = tmp_path / "home"
    home.mkdir()
    # a newcomer: no key anywhere, no global git config; the identity a first commit needs
    env = {"HOME": str(home), "TRAINYARD_SIGNING_KEY": "", "GIT_CONFIG_GLOBAL": "/dev/null", **IDENTITY}

    code, checks = doctor(fresh, env)
    assert code == 1 and checks["git repository"]["ok"] is False, checks
    assert checks["signing"]["ok"] is False and checks["docker engine"]["ok"] is True, checks
    assert checks["CI secrets"]["ok"] is None  # a note: never counted as done
    follow(checks["git repository"]["fix"], fresh, env)

    code, checks = doctor(fresh, env)
    assert checks["git repository"]["ok"] is True, checks
    assert "no key to sign records with" in checks["signing"]["seen"], checks["signing"]
    follow(checks["signing"]["fix"], fresh, env)
    assert not (home / ".ssh/trainyard").stat().st_mode & 0o077  # the new private key is the user's alone
    for name in ("origin", "branch develop"):
        assert checks[name]["ok"] is False, checks
    origin = tmp_path / "new-origin.git"  # the empty repository made on the git host
    subprocess.run(["git", "init", "--quiet", "--bare", str(origin)], check=True)
    follow(checks["origin"]["fix"].replace("<your repository's URL>", str(origin)), fresh, env)

    code, checks = doctor(fresh, env)
    assert checks["signing"]["ok"] is True and checks["origin"]["ok"] is True, checks
    follow(checks["branch develop"]["fix"], fresh, env)
    code, checks = doctor(fresh, env)
    assert code == 0 and all(c["ok"] is not False for c in checks.values()), checks


def test_the_registry_it_names_is_asked(tmp_path: Path) -> None:
    work, _origin = make_project(tmp_path / "project")
    inner = cicd(work, "--root", str(work / "model"), "--config", str(work / "cicd/pipeline.yaml"), "--json", "doctor",
                 check=False)  # fmt: skip
    [first] = json.loads(inner.stdout)["result"][:1]  # a folder inside someone else's repository
    assert first["ok"] is False and f"is inside the repository at {work}" in first["seen"], first
    registry = start_registry(tmp_path / "registry")
    env = {"TRAINYARD_REGISTRY": registry.address}
    try:
        code, checks = doctor(work, env)
        assert code == 0 and checks["registry"]["seen"] == f"{registry.address} answers", checks["registry"]
        code, checks = doctor(work, {**env, "TRAINYARD_REGISTRY_USERNAME": "ci"})
        assert code == 1 and "TRAINYARD_REGISTRY_PASSWORD is not" in checks["registry"]["seen"]
    finally:
        registry.process.terminate()
        registry.process.wait(timeout=10)
    code, checks = doctor(work, env)
    assert code == 1 and checks["registry"]["seen"] == f"{registry.address} does not answer", checks["registry"]
