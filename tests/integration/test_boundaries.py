"""The git and Docker boundaries translate every failure into a ``CICDError`` that says what to do.

Each public method of :class:`cicd.gitops.Repo` is called on a revision, branch or remote that does
not exist in a real repository, and each of :class:`cicd.images.Engine`'s parts (images,
containers, registry) on an image or container that does not exist and on an engine that
answered once and then stopped: a third-party exception (GitPython's ``BadName``,
docker's ``ImageNotFound``, a refused socket) must never reach the user.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cicd.errors import CICDError, EngineUnavailableError, GitError
from cicd.gitops import Repo, throwaway_clone
from cicd.images import ContextFile, Engine
from cicd.images.builds import Images
from cicd.images.containers import Containers
from cicd.images.registry import RegistryClient
from tests.integration.conftest import git, missing
from tests.integration.engines import extra_engine, stop_engine

MISSING = "no-such-revision"
# method call → what it must do: raise a GitError, or answer "nothing" (None, [], False)
GIT_CASES: list[tuple[str, Callable[[Repo], Any], str]] = [
    ("tree", lambda r: r.tree(MISSING), "raises"),
    ("commit_time", lambda r: r.commit_time(MISSING), "raises"),
    ("rev", lambda r: r.rev(MISSING), "raises"),
    ("messages_since", lambda r: r.messages_since(MISSING), "raises"),
    ("messages_since-rev", lambda r: r.messages_since(None, MISSING), "raises"),
    ("create_tag", lambda r: r.create_tag("t1", "m", rev=MISSING), "raises"),
    ("switch", lambda r: r.switch(MISSING), "raises"),
    ("merge", lambda r: r.merge(MISSING, "main", remote=None), "raises"),
    ("push", lambda r: r.push([f"refs/heads/{MISSING}"]), "raises"),
    ("push-no-remote", lambda r: r.push(["refs/heads/main"], remote="nowhere"), "raises"),
    ("commit_to_new_branch", lambda r: r.commit_to_new_branch("b", {}, "m", base=MISSING), "raises"),
    ("commit_all-nothing", lambda r: r.commit_all("nothing changed"), "raises"),
    ("tag", lambda r: r.tag(MISSING), "nothing"),
    ("tag_object", lambda r: r.tag_object(MISSING), "nothing"),
    ("is_ancestor", lambda r: r.is_ancestor(MISSING), "nothing"),
    ("delete_tag", lambda r: r.delete_tag(MISSING), "nothing"),
    ("branch_exists", lambda r: r.branch_exists(MISSING), "nothing"),
    ("tag_infos", lambda r: r.tag_infos(), "nothing"),
    ("remote_url", lambda r: r.remote_url(MISSING), "nothing"),
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


def test_a_throwaway_clone_of_a_folder_that_is_no_repository_yet(tmp_path: Path) -> None:
    """A project right after ``copier copy`` (the README's first command runs the demo there): its
    files as git would take them, its .gitignore applied, the folder left without a repository."""
    fresh = tmp_path / "fresh"
    (fresh / "src").mkdir(parents=True)
    (fresh / "src/model.py").write_text("x = 1\n")
    (fresh / ".gitignore").write_text("artifacts/\n*.pyc\n")
    (fresh / "artifacts").mkdir()
    (fresh / "artifacts/big.bin").write_bytes(b"0" * 10)
    (fresh / "src/model.pyc").write_bytes(b"0")
    work, origin = throwaway_clone(fresh, tmp_path / "copy")
    assert sorted(git(work, "ls-files").splitlines()) == [".gitignore", "src/model.py"]
    assert git(origin, "branch", "--format=%(refname:short)").split() == ["develop", "main"]
    assert not (fresh / ".git").exists()


MISSING_IMAGE = "trainyard/no-such-image:0"
MISSING_CONTAINER = "trainyard-no-such-container"
# method call → what it must do on a missing image or container: raise, or answer "nothing"
ENGINE_CASES: list[tuple[str, Callable[[Engine], Any], str]] = [
    ("images.exists", lambda e: e.images.exists(MISSING_IMAGE), "nothing"),
    ("images.id", lambda e: e.images.id(MISSING_IMAGE), "raises"),
    ("images.attrs", lambda e: e.images.attrs(MISSING_IMAGE), "raises"),
    ("images.content_id", lambda e: e.images.content_id(MISSING_IMAGE), "raises"),
    ("images.runs_digest", lambda e: e.images.runs_digest(MISSING_IMAGE, "sha256:" + "0" * 64), "nothing"),
    ("images.history", lambda e: e.images.history(MISSING_IMAGE), "raises"),
    ("images.platform", lambda e: e.images.platform(MISSING_IMAGE), "raises"),
    ("images.ensure_base", lambda e: e.images.ensure_base("127.0.0.1:9/no-such-base:0"), "raises"),
    (
        "images.build",
        lambda e: e.images.build(
            [ContextFile("Dockerfile", data=f"FROM {MISSING_IMAGE}\n".encode())], "Dockerfile", "x:1"
        ),
        "raises",
    ),
    ("images.tag", lambda e: e.images.tag(MISSING_IMAGE, "trainyard/other", "1"), "raises"),
    ("images.remove", lambda e: e.images.remove(MISSING_IMAGE), "nothing"),
    ("containers.capture", lambda e: e.containers.capture(MISSING_IMAGE, ["true"]), "raises"),
    ("containers.run", lambda e: e.containers.run(MISSING_IMAGE, ["true"], timeout=10), "raises"),
    ("containers.start_service", lambda e: e.containers.start_service(MISSING_IMAGE, "trainyard-x", {}), "raises"),
    ("containers.find", lambda e: e.containers.find({"io.trainyard.no-such": "x"}), "nothing"),
    ("containers.start", lambda e: e.containers.start(MISSING_CONTAINER), "raises"),
    ("containers.stop", lambda e: e.containers.stop(MISSING_CONTAINER), "nothing"),
    ("containers.remove", lambda e: e.containers.remove(MISSING_CONTAINER), "nothing"),
    ("containers.remove_volume", lambda e: e.containers.remove_volume("trainyard-no-such-volume"), "nothing"),
    ("containers.state", lambda e: e.containers.state(MISSING_CONTAINER), "nothing"),
    ("containers.running", lambda e: e.containers.running(MISSING_CONTAINER), "nothing"),
    ("containers.logs_tail", lambda e: e.containers.logs_tail(MISSING_CONTAINER), "nothing"),
    ("containers.copy_out", lambda e: e.containers.copy_out(MISSING_CONTAINER, "/x", Path("/nonexistent")), "raises"),
    ("containers.start_proxy", lambda e: e.containers.start_proxy(MISSING_IMAGE, "x", ["true"], {}, {}), "raises"),
    ("containers.execute", lambda e: e.containers.execute(MISSING_CONTAINER, ["true"]), "raises"),
    ("containers.claim", lambda e: e.containers.claim(MISSING_IMAGE, "trainyard-x-lock", {}), "raises"),
    ("containers.put_file", lambda e: e.containers.put_file(MISSING_CONTAINER, "/x", b""), "raises"),
    ("containers.read_file", lambda e: e.containers.read_file(MISSING_CONTAINER, "/x"), "nothing"),
    ("containers.keep_running", lambda e: e.containers.keep_running(MISSING_CONTAINER), "raises"),
    ("registry.pull", lambda e: e.registry.pull("127.0.0.1:9/no-such@sha256:" + "0" * 64, None), "raises"),
    ("registry.push", lambda e: e.registry.push("127.0.0.1:9/no-such-image", "0", None), "raises"),
]


def test_every_public_engine_method_is_in_the_table() -> None:
    public = {
        f"{part}.{name}"
        for part, cls in (("images", Images), ("containers", Containers), ("registry", RegistryClient))
        for name in vars(cls)
        if not name.startswith("_") and callable(getattr(cls, name))
    }
    assert public == {name for name, _, _ in ENGINE_CASES}


@pytest.mark.parametrize(("name", "call", "outcome"), ENGINE_CASES, ids=[c[0] for c in ENGINE_CASES])
def test_docker_boundary_on_what_does_not_exist(
    engine: Engine, name: str, call: Callable[[Engine], Any], outcome: str
) -> None:
    if outcome == "raises":
        with pytest.raises(CICDError) as caught:
            call(engine)
        assert str(caught.value).strip(), name
    else:
        assert call(engine) in (None, [], {}, False), name


def test_an_engine_that_refuses_a_call_is_not_an_engine_that_is_gone(engine: Engine, base_image: str) -> None:
    """docker's APIError is also a requests error: it must say what the engine refused, never
    that no engine answers."""
    from cicd.errors import ContainerError

    with pytest.raises(ContainerError, match="no-such-program") as caught:
        engine.containers.run(base_image, ["no-such-program"], timeout=30)
    assert not isinstance(caught.value, EngineUnavailableError)


@pytest.fixture(scope="module")
def stopped_engine(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A connection to an engine that answered once and then stopped (dockerd gone)."""
    try:
        started = extra_engine("stopped", tmp_path_factory.mktemp("stopped"))
        extra = started.__enter__()
    except EngineUnavailableError as err:
        missing(f"a second engine cannot start here: {err}")
        raise
    connection = Engine(host=extra.host)
    stop_engine(extra)
    try:
        yield connection
    finally:
        with library_leaks_ignored():
            connection.close()
            started.__exit__(None, None, None)


@contextmanager
def library_leaks_ignored() -> Iterator[None]:
    """docker-py's UnixHTTPConnection.connect does not close its socket when the connect fails (the
    engine is gone). That leak is the library's: collect it here, ignored, not in a later test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            yield
        finally:
            gc.collect()


@pytest.mark.parametrize(("name", "call", "outcome"), ENGINE_CASES, ids=[c[0] for c in ENGINE_CASES])
def test_docker_boundary_on_a_stopped_engine(
    stopped_engine: Engine, name: str, call: Callable[[Engine], Any], outcome: str
) -> None:
    with library_leaks_ignored():
        with pytest.raises(CICDError) as caught:
            call(stopped_engine)
        message = str(caught.value)
        del caught  # its traceback holds the leaked socket: let it go before the collection
    assert message.strip(), name


def test_docker_boundary_on_an_engine_that_does_not_answer() -> None:
    with pytest.raises(CICDError, match=r"no Docker engine answers.*start dockerd"):
        Engine(host="unix:///nonexistent/docker.sock")
    with pytest.raises(CICDError, match="no Docker engine answers"):
        Engine(host="tcp://127.0.0.1:9")
