"""The git and Docker boundaries translate every failure into a ``CICDError`` that says what to do.

Each public method of :class:`cicd.gitops.Repo` is called on a revision, branch or remote that does
not exist in a real repository, and each of :class:`cicd.images.Engine` on an image that does not
exist and on an engine that does not answer: a third-party exception (GitPython's ``BadName``,
docker's ``ImageNotFound``, a refused socket) must never reach the user.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cicd.errors import CICDError, GitError
from cicd.gitops import Repo
from cicd.images import Engine
from tests.integration.conftest import git

MISSING = "no-such-revision"
# method call → what it must do: raise a GitError, or answer "nothing" (None, [], False)
GIT_CASES: list[tuple[str, Callable[[Repo], Any], str]] = [
    ("tree", lambda r: r.tree(MISSING), "raises"),
    ("commit_time", lambda r: r.commit_time(MISSING), "raises"),
    ("rev", lambda r: r.rev(MISSING), "raises"),
    ("tags_at", lambda r: r.tags_at(MISSING), "raises"),
    ("messages_since", lambda r: r.messages_since(MISSING), "raises"),
    ("messages_since-rev", lambda r: r.messages_since(None, MISSING), "raises"),
    ("create_tag", lambda r: r.create_tag("t1", "m", rev=MISSING), "raises"),
    ("add_note", lambda r: r.add_note({"a": 1}, MISSING), "raises"),
    ("switch", lambda r: r.switch(MISSING), "raises"),
    ("merge", lambda r: r.merge(MISSING, "main", remote=None), "raises"),
    ("push", lambda r: r.push([f"refs/heads/{MISSING}"]), "raises"),
    ("push-no-remote", lambda r: r.push(["refs/heads/main"], remote="nowhere"), "raises"),
    ("commit_to_new_branch", lambda r: r.commit_to_new_branch("b", {}, "m", base=MISSING), "raises"),
    ("commit_all-nothing", lambda r: r.commit_all("nothing changed"), "raises"),
    ("tag", lambda r: r.tag(MISSING), "nothing"),
    ("tag_object", lambda r: r.tag_object(MISSING), "nothing"),
    ("notes", lambda r: r.notes("HEAD"), "nothing"),
    ("is_ancestor", lambda r: r.is_ancestor(MISSING), "nothing"),
    ("delete_tag", lambda r: r.delete_tag(MISSING), "nothing"),
    ("branch_exists", lambda r: r.branch_exists(MISSING), "nothing"),
]


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(origin))
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(work))
    (work / "a.txt").write_text("a\n")
    git(work, "add", "a.txt")
    git(work, "commit", "--quiet", "-m", "feat: first")
    git(work, "remote", "add", "origin", str(origin))
    git(work, "push", "--quiet", "origin", "main")
    with Repo(work) as opened:
        yield opened


@pytest.mark.parametrize(("name", "call", "outcome"), GIT_CASES, ids=[c[0] for c in GIT_CASES])
def test_git_boundary_on_what_does_not_exist(repo: Repo, name: str, call: Callable[[Repo], Any], outcome: str) -> None:
    if outcome == "raises":
        with pytest.raises(GitError) as caught:
            call(repo)
        assert str(caught.value).strip(), name
    else:
        assert call(repo) in (None, [], False)


def test_git_boundary_outside_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="not inside a git repository"):
        Repo(tmp_path)


ENGINE_CASES: list[tuple[str, Callable[[Engine], Any]]] = [
    ("image_id", lambda e: e.image_id("trainyard/no-such-image:0")),
    ("image_attrs", lambda e: e.image_attrs("trainyard/no-such-image:0")),
    ("platform", lambda e: e.platform("trainyard/no-such-image:0")),
    ("tag", lambda e: e.tag("trainyard/no-such-image:0", "trainyard/other", "1")),
    ("pull", lambda e: e.pull("127.0.0.1:9/no-such@sha256:" + "0" * 64, None)),
    ("push", lambda e: e.push("127.0.0.1:9/no-such-image", "0", None)),
    ("run", lambda e: e.run("trainyard/no-such-image:0", ["true"], timeout=10)),
    ("ensure_base_image", lambda e: e.ensure_base_image("127.0.0.1:9/no-such-base:0")),
]


@pytest.mark.parametrize(("name", "call"), ENGINE_CASES, ids=[c[0] for c in ENGINE_CASES])
def test_docker_boundary_on_a_missing_image(engine: Engine, name: str, call: Callable[[Engine], Any]) -> None:
    with pytest.raises(CICDError) as caught:
        call(engine)
    assert str(caught.value).strip(), name


def test_docker_boundary_on_an_engine_that_does_not_answer() -> None:
    with pytest.raises(CICDError, match=r"no Docker engine answers.*start dockerd"):
        Engine(host="unix:///nonexistent/docker.sock")
    with pytest.raises(CICDError, match="no Docker engine answers"):
        Engine(host="tcp://127.0.0.1:9")
