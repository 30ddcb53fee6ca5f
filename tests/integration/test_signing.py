"""Signed records at the git boundary, for real: git's SSH signing, ``git verify-tag``, and the
refusals a user meets (no key, no ssh-keygen, no allowed-signers file, a key given as text)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cicd.errors import ConfigError, SigningError
from cicd.gitops import Repo
from cicd.signing import Signing, new_key
from tests.integration.conftest import git

MESSAGE = 'trainyard-deploy staging 1.0.0\n\n{"environment": "staging"}\n'


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "--quiet", "--initial-branch", "main")
    git(work, "commit", "--quiet", "--allow-empty", "-m", "first")
    return work


def signing(work: Path, key: str | None, allowed: list[str]) -> Signing:
    signers = work / ".trainyard" / "allowed_signers"
    signers.parent.mkdir(exist_ok=True)
    signers.write_text("# comment lines are allowed\n" + "".join(line + "\n" for line in allowed))
    env = {"TRAINYARD_SIGNING_KEY": key} if key else {}
    return Signing.from_spec(work, ".trainyard/allowed_signers", "TRAINYARD_SIGNING_KEY", env)


def test_a_signed_record_verifies_and_forged_ones_do_not(repo: Path, tmp_path: Path) -> None:
    key, line = new_key(tmp_path / "ours", "ci@example.com")
    other, _ = new_key(tmp_path / "theirs", "attacker@example.com")
    with Repo(repo, signing=signing(repo, str(key), [line])) as ours:
        ours.create_tag("deploy/staging/1", MESSAGE)
        tag = ours.tag("deploy/staging/1")
        assert tag is not None and tag.message == MESSAGE  # the signature is not part of the record
        git(repo, "tag", "-a", "-m", MESSAGE, "deploy/staging/2")  # unsigned
        git(
            repo,
            "-c",
            "gpg.format=ssh",
            "-c",
            f"user.signingkey={other}",
            "tag",
            "-s",
            "-m",
            MESSAGE,
            "deploy/staging/3",
        )
        git(
            repo, "update-ref", "refs/tags/deploy/qa/4", git(repo, "rev-parse", "refs/tags/deploy/staging/1")
        )  # renamed
        names = ["deploy/staging/1", "deploy/staging/2", "deploy/staging/3", "deploy/qa/4"]
        assert ours.verified(names) == {"deploy/staging/1"}


def test_a_key_given_as_text_signs_and_leaves_no_file(repo: Path, tmp_path: Path) -> None:
    key, line = new_key(tmp_path / "ours", "ci@example.com")
    before = set(os.listdir(os.environ.get("TMPDIR", "/tmp")))
    with Repo(repo, signing=signing(repo, key.read_text(), [line])) as ours:
        ours.create_tag("v1.0.0", MESSAGE)
        assert ours.verified(["v1.0.0"]) == {"v1.0.0"}
    leftover = {n for n in set(os.listdir(os.environ.get("TMPDIR", "/tmp"))) - before if n.startswith("trainyard-key")}
    assert not leftover, leftover


def test_no_key_is_refused_with_advice(repo: Path, tmp_path: Path) -> None:
    _, line = new_key(tmp_path / "ours", "ci@example.com")
    with Repo(repo, signing=signing(repo, None, [line])) as ours, pytest.raises(SigningError) as err:
        ours.create_tag("v1.0.0", MESSAGE)
    assert "set TRAINYARD_SIGNING_KEY" in str(err.value) and "signing.required: false" in str(err.value)
    assert "v1.0.0" not in git(repo, "tag", "-l")


def test_a_key_the_allowed_signers_do_not_list_signs_nothing(repo: Path, tmp_path: Path) -> None:
    key, _ = new_key(tmp_path / "ours", "ci@example.com")
    _, other = new_key(tmp_path / "listed", "someone@example.com")
    with Repo(repo, signing=signing(repo, str(key), [other])) as ours, pytest.raises(SigningError) as err:
        ours.create_tag("v1.0.0", MESSAGE)
    assert "does not list" in str(err.value) and "v1.0.0" not in git(repo, "tag", "-l")


def test_a_key_path_that_is_not_a_file_is_refused(repo: Path) -> None:
    with Repo(repo, signing=signing(repo, "/nonexistent/key", [])) as ours, pytest.raises(SigningError) as err:
        ours.create_tag("v1.0.0", MESSAGE)
    assert "names /nonexistent/key, which is not a key file" in str(err.value)


def test_a_key_pasted_without_its_first_line_is_refused_and_not_shown(repo: Path, tmp_path: Path) -> None:
    """A secret missing its -----BEGIN line is neither a key's text nor a path: the error says how
    long it is, never what it says (a CI log keeps it)."""
    key, _ = new_key(tmp_path / "ours", "ci@example.com")
    # the key's base64 on one line, no header, its slashes gone: one word longer than a file name
    # may be, which once raised OSError (File name too long) with the whole key in its message
    body = "".join(key.read_text().splitlines()[1:-1]).replace("/", "")
    assert len(body) > 255
    with Repo(repo, signing=signing(repo, body, [])) as ours, pytest.raises(SigningError) as err:
        ours.create_tag("v1.0.0", MESSAGE)
    assert f"a value of {len(body)} characters (not shown" in str(err.value)
    assert body[:12] not in str(err.value) and "v1.0.0" not in git(repo, "tag", "-l")


def test_no_ssh_keygen_is_refused_with_advice(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, line = new_key(tmp_path / "ours", "ci@example.com")
    only_git = tmp_path / "bin"  # a machine with git but without openssh-client
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    monkeypatch.setenv("PATH", str(only_git))
    with Repo(repo, signing=signing(repo, str(key), [line])) as ours, pytest.raises(SigningError) as err:
        ours.create_tag("v1.0.0", MESSAGE)
    assert "apt install openssh-client" in str(err.value)
    with Repo(repo, signing=signing(repo, str(key), [line])) as ours, pytest.raises(SigningError) as err:
        ours.verified(["v1.0.0"])  # verifying needs it too: said, not "every record is forged"
    assert "verified with ssh-keygen" in str(err.value)


def test_a_missing_allowed_signers_file_is_refused_before_reading(repo: Path) -> None:
    missing = Signing.from_spec(repo, ".trainyard/allowed_signers", "TRAINYARD_SIGNING_KEY", {})
    with Repo(repo, signing=missing) as ours, pytest.raises(ConfigError) as err:
        ours.verified(["v1.0.0"])
    assert "no allowed-signers file" in str(err.value) and "signing.required: false" in str(err.value)


@pytest.mark.parametrize("case", ["no key", "an unlisted key"])
def test_release_refuses_a_key_it_cannot_sign_with_before_it_builds(tmp_path: Path, case: str) -> None:
    """Found in the first second, not after the build, the training and the release image; a dry
    run says the same as a warning and goes on saying what it would do."""
    from tests.integration.conftest import cicd, make_project

    work, _ = make_project(tmp_path)
    key = "" if case == "no key" else str(new_key(tmp_path / "stranger", "stranger@example.com")[0])
    env = {"TRAINYARD_SIGNING_KEY": key, "DOCKER_HOST": "tcp://127.0.0.1:9"}  # no engine is even asked
    refused = cicd(work, "release", env=env, check=False)
    says = "no key to sign records with" if case == "no key" else "is not listed in"
    assert refused.returncode == 2 and says in refused.stderr, refused.stderr[-2000:]
    assert "build image" not in refused.stderr and "no Docker engine" not in refused.stderr
    dry = cicd(work, "--dry-run", "release", env=env, check=False)
    assert "warning: a real release would stop here" in dry.stderr and says in dry.stderr, dry.stderr[-2000:]
