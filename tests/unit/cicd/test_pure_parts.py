"""Pure helpers at the boundaries: CI variables, release records, build contexts, masking."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from cicd.errors import ReleaseNotFoundError
from cicd.gitops import branch_from_env, event_from_env
from cicd.images import ContextFile, Platform, write_context
from cicd.records import ReleaseRecord, find_release
from cicd.writes import mask


@pytest.mark.parametrize(
    ("env", "branch"),
    [
        ({"GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/heads/develop"}, "develop"),
        ({"GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/pull/7/merge", "GITHUB_HEAD_REF": "feature/a"}, "pull/7"),
        # a fork's pull request from its own `main` is not our main
        ({"GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/pull/8/merge", "GITHUB_HEAD_REF": "main"}, "pull/8"),
        ({"GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/tags/v1", "GITHUB_REF_TYPE": "tag"}, None),
        ({"TF_BUILD": "True", "BUILD_SOURCEBRANCH": "refs/heads/main"}, "main"),
        (
            {
                "TF_BUILD": "True",
                "BUILD_SOURCEBRANCH": "refs/pull/3/merge",
                "SYSTEM_PULLREQUEST_SOURCEBRANCH": "refs/heads/main",
                "SYSTEM_PULLREQUEST_PULLREQUESTNUMBER": "3",
            },
            "pull/3",
        ),
        (
            {"TF_BUILD": "True", "BUILD_SOURCEBRANCH": "refs/pull/4/merge", "SYSTEM_PULLREQUEST_SOURCEBRANCH": "main"},
            "pull/4",
        ),
        ({}, None),
    ],
)
def test_branch_from_ci_variables(env: dict[str, str], branch: str | None) -> None:
    assert branch_from_env(env) == branch


@pytest.mark.parametrize(
    ("env", "event"),
    [
        ({"GITHUB_EVENT_NAME": "push"}, "push"),
        ({"GITHUB_EVENT_NAME": "workflow_dispatch"}, "manual"),
        ({"GITHUB_EVENT_NAME": "schedule"}, "schedule"),
        ({"BUILD_REASON": "PullRequest"}, "pull_request"),
        ({"BUILD_REASON": "IndividualCI"}, "push"),
        ({"BUILD_REASON": "Schedule"}, "schedule"),
        ({}, None),
    ],
)
def test_event_from_ci_variables(env: dict[str, str], event: str | None) -> None:
    assert event_from_env(env) == event


def _record(commit: str, tree: str, created: str) -> ReleaseRecord:
    return ReleaseRecord(
        version="1.0.0-rc.1",
        pep440="1.0.0rc1",
        commit=commit,
        tree=tree,
        branch="develop",
        image="sha256:i",
        reference="r@sha256:d",
        digest="sha256:d",
        created=created,
    )


def test_release_records_round_trip_through_a_tag_message() -> None:
    record = _record("c1", "t1", "2026-01-01T00:00:00+00:00")
    parsed = ReleaseRecord.from_message("v1.0.0-rc.1", record.to_message())
    assert parsed is not None and parsed.digest == "sha256:d" and parsed.tag == "v1.0.0-rc.1"
    assert ReleaseRecord.from_message("v1", "a plain tag message") is None


def test_find_release_by_commit_then_by_tree() -> None:
    records = [_record("c1", "t1", "2026-01-01"), _record("c2", "t2", "2026-01-02"), _record("c3", "t2", "2026-01-03")]
    assert find_release(records, "c2", "t9").commit == "c2"
    assert find_release(records, "merge", "t2").commit == "c3"  # a merge of the same tree reuses the newest
    # ... but prefers the one actually merged: c3 is a later release of the same tree, still on develop
    assert find_release(records, "merge", "t2", merged=lambda c: c == "c2").commit == "c2"
    with pytest.raises(ReleaseNotFoundError, match="run `nox -s release` on develop first"):
        find_release(records, "c9", "t9")


def test_platform_tags_for_pip() -> None:
    tags = Platform("3.11", "x86_64", "2.36").pip_platforms()
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in tags and "manylinux2014_x86_64" in tags


def test_build_context_is_deterministic(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("same")
    first, second = io.BytesIO(), io.BytesIO()
    write_context([ContextFile("a.txt", path=f), ContextFile("b", data=b"x")], first)
    f.touch()  # a new mtime must not change the context
    write_context([ContextFile("b", data=b"x"), ContextFile("a.txt", path=f)], second)
    assert first.getvalue() == second.getvalue()
    with tarfile.open(fileobj=io.BytesIO(first.getvalue())) as tar:
        assert tar.getnames() == ["a.txt", "b"]


def test_mask_hides_every_secret() -> None:
    assert mask("login u:canary failed for canary", ["canary", None]) == "login u:*** failed for ***"


def test_a_model_card_must_describe_the_trained_data(tmp_path: Path) -> None:
    import json

    from cicd.errors import GateError
    from cicd.flow import _check_model_card

    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"data": {"fingerprint": "sha256:" + "a" * 64}}))
    _check_model_card(tmp_path / "no-card.json", meta)  # no card yet: nothing to check
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"data": {"fingerprint": "sha256:" + "a" * 64}}))
    _check_model_card(card, meta)
    card.write_text(json.dumps({"data": {"fingerprint": "sha256:" + "b" * 64}}))
    with pytest.raises(GateError, match="must change together"):
        _check_model_card(card, meta)
    card.write_text("{}")
    with pytest.raises(GateError, match="cannot compare"):
        _check_model_card(card, meta)


def test_the_retrain_step_never_prints_a_database_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import sys

    from cicd.retrain import _run

    caplog.set_level(logging.INFO)
    echo = "import sys; print('child got', sys.argv[1])"
    _run([sys.executable, "-c", echo, "--source=postgresql://bob:canary-pw@db:5432/x"], tmp_path, 30, "a step")
    shown = capsys.readouterr()
    everything = shown.out + shown.err + caplog.text
    assert "canary-pw" not in everything
    assert "$ " in caplog.text and "postgresql://***" in caplog.text  # the command, masked
    assert "child got --source=postgresql://***" in shown.err  # its output, masked


def _archive(*members: tuple[str, bytes | None, str | None]) -> tarfile.TarFile:
    """A tar of (name, file content or None, symlink target or None) entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))
    buf.seek(0)
    return tarfile.open(fileobj=buf)


@pytest.mark.parametrize("python_has_filter", [True, False], ids=["3.11.4+", "3.11.2"])
@pytest.mark.parametrize(
    ("members", "safe"),
    [
        ([("out/report.xml", b"<x/>", None)], True),
        ([("out/link", None, "report.xml"), ("out/report.xml", b"", None)], True),
        ([("../escape.txt", b"x", None)], False),
        ([("/etc/evil", b"x", None)], False),
        ([("out/link", None, "../../etc/passwd")], False),
        # chains: each link stays inside by its text, the path through them does not
        ([("sub/up", None, ".."), ("out", None, "sub/up/.."), ("out/escape.txt", b"x", None)], False),
        ([("l1", None, "."), ("l1/l2", None, ".."), ("l1/l2/escape.txt", b"x", None)], False),
    ],
    ids=["file", "inner-link", "dotdot", "absolute", "outer-link", "link-through-link", "member-under-link"],
)
def test_archives_from_containers_cannot_write_outside(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    members: list[tuple[str, bytes | None, str | None]],
    safe: bool,
    python_has_filter: bool,
) -> None:
    from cicd.errors import ContainerError
    from cicd.images import extract_safely

    if not python_has_filter:  # Debian 12's Python 3.11.2 has no tarfile.data_filter
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile.data_filter")
    dest = tmp_path / "dest"
    dest.mkdir()
    with _archive(*members) as tar:
        if safe:
            extract_safely(tar, dest)
            assert (dest / members[-1][0]).exists()
        elif members[0][0].startswith("/") and python_has_filter:
            extract_safely(tar, dest)  # the data filter strips the leading slash: it lands inside
            assert (dest / "etc" / "evil").is_file()
        else:
            refused = (ContainerError, getattr(tarfile, "FilterError", ContainerError))  # 3.11.2 has no FilterError
            with pytest.raises(refused):
                extract_safely(tar, dest)
            assert not (tmp_path / "escape.txt").exists()


def test_the_host_lock_refuses_a_live_holder_and_recovers_a_dead_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock whose heartbeat moves is refused (naming its holder); one whose heartbeat stopped is
    taken over with a warning; a released lock is free again. Fake containers, fast heartbeats."""
    import threading

    from cicd.deploy import lock
    from cicd.errors import DeployLockedError
    from cicd.writes import Writes
    from tests.unit.cicd.fakes import FakeEngine

    monkeypatch.setattr(lock, "BEAT", 0.05)
    monkeypatch.setattr(lock, "STALE", 0.3)
    engine = FakeEngine(Writes())
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock.host_lock(engine, "env-lock", "img", {}, "staging", wait=0):  # type: ignore[arg-type]
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    with (
        pytest.raises(DeployLockedError, match=r"in progress: .* on .*pid \d+"),
        lock.host_lock(engine, "env-lock", "img", {}, "staging", wait=0),  # type: ignore[arg-type]
    ):
        pass
    release.set()
    thread.join()
    assert not engine.containers.items  # released
    # a holder that died: its lock stays and its heartbeat never moves
    engine.containers.claim("img", "env-lock", {"io.trainyard.role": "lock", "io.trainyard.lock.who": "ghost"})
    with lock.host_lock(engine, "env-lock", "img", {}, "staging", wait=0):  # type: ignore[arg-type]
        (mine,) = engine.containers.items.values()
        assert mine.labels.get("io.trainyard.lock.who") != "ghost"
    assert not engine.containers.items


def test_the_http_boundary_returns_answers_and_translates_failures() -> None:
    """An error status is an answer; no answer, or one that is not JSON, is a ServiceError with the URL."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cicd.errors import ServiceError
    from cicd.http import free_port, request_json

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"detail": "no"}' if self.path == "/json404" else b"<html>not json</html>"
            self.send_response(404 if self.path == "/json404" else 200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            assert request_json(f"{base}/json404") == (404, {"detail": "no"})
            with pytest.raises(ServiceError, match=f"{base}/html"):
                request_json(f"{base}/html")
        finally:
            server.shutdown()
            thread.join()
    closed = f"http://127.0.0.1:{free_port()}/health"
    with pytest.raises(ServiceError, match="no usable answer from " + closed):
        request_json(closed, timeout=2)


def test_the_demo_says_what_each_stage_reused() -> None:
    from cicd.demo import _reused

    assert _reused("unit", {"ran": False, "reused": "checked/unit/abc/1"}) == "reused"
    assert _reused("acceptance", {"summary": "reused accepted/staging/1: pytest exit 0"}) == "reused"
    assert _reused("release", {"released": True, "training": {"reused": "checked/train/abc/1"}}) == "training reused"
    assert _reused("unit", {"ran": True}) == "" and _reused("status", [{"environment": "staging"}]) == ""


def test_the_benchmark_shows_per_stage_what_each_pass_reused() -> None:
    from benchmarks.run import stage_rows

    nothing_new = {"seconds": 9.0, "stages": [{"name": "unit", "seconds": 0.5, "reused": "reused"}]}
    changed = {"seconds": 60.0, "stages": [{"name": "unit", "seconds": 20.0, "reused": ""}]}
    (row,) = stage_rows(nothing_new, changed)
    assert (row.ours, row.baseline, row.target, row.ok) == (0.5, 20.0, "reused / ran", None)


def test_the_probe_run_inside_a_container_waits_for_200_and_never_runs_its_url(tmp_path: Path) -> None:
    """The deploy's in-container probe (one exec, polling inside): exit 0 once the URL answers 200
    (after a 503 while the model loads), 1 when the time is up; a URL with quotes in it (the spec's
    ``health_path``) is an argument, never code."""
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cicd.deploy.docker_target import INSIDE_PROBE
    from cicd.http import free_port

    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200 if len(asked) >= 3 else 503)  # loading, loading, ready
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    def probe(url: str, seconds: float) -> int:
        return subprocess.run([sys.executable, "-c", INSIDE_PROBE, url, str(seconds)], timeout=60).returncode

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            assert probe(f"http://127.0.0.1:{server.server_address[1]}/health", 20) == 0
        finally:
            server.shutdown()
            thread.join()
    assert asked == ["/health"] * 3
    planted = tmp_path / "ran"
    injected = f"http://127.0.0.1:{free_port()}/h'+open('{planted}','w').write('x')+'"
    assert probe(injected, 0.5) == 1  # nothing answers: not healthy when the time is up
    assert not planted.exists()


def test_a_value_that_may_be_a_secret_is_never_shown_or_raised(tmp_path: Path) -> None:
    """Variables that hold a path or a secret's text: a value that cannot be a path (one word longer
    than a file name may be, a NUL) is no file, never an OSError carrying it; an error names a path
    only when it looks like one, else the value's length."""
    from cicd.writes import names_a_file, shown_path

    (tmp_path / "key").write_text("x")
    assert names_a_file(str(tmp_path / "key")) and names_a_file(str(tmp_path), or_folder=True)
    assert not names_a_file(str(tmp_path)) and not names_a_file("A" * 300) and not names_a_file("a\0b")
    assert not names_a_file("postgresql://u:" + "p" * 300 + "@db/x", or_folder=True)
    assert shown_path("/nope/key") == "/nope/key" and shown_path("./k") == "./k"
    assert shown_path("b3Blbn/Nza C1rZXk") == "a value of 17 characters (not shown: it may be the secret itself)"


def test_a_cached_wheel_is_used_only_if_it_is_a_build_of_the_sources(tmp_path: Path) -> None:
    """The project's wheel cache (``~/.cache/trainyard/wheels``) shipped a tampered wheel: now every
    file in it must be a source file byte for byte, bar the metadata a build writes."""
    import zipfile

    from cicd.flow import wheel_problem

    staged = tmp_path / "src"
    (staged / "pkg").mkdir(parents=True)
    (staged / "pkg/__init__.py").write_text("VALUE = 1\n")

    def wheel(name: str, files: dict[str, str]) -> Path:
        path = tmp_path / f"{name}.whl"
        with zipfile.ZipFile(path, "w") as archive:
            for member, text in {"pkg-1.0.dist-info/METADATA": "Name: pkg\n", **files}.items():
                archive.writestr(member, text)
        return path

    assert wheel_problem(wheel("good", {"pkg/__init__.py": "VALUE = 1\n"}), staged) is None
    licensed = {
        "pkg/__init__.py": "VALUE = 1\n",
        "pkg-1.0.dist-info/LICENSE.txt": "MIT",
        "pkg-1.0.dist-info/licenses/A": "",
    }
    assert wheel_problem(wheel("licensed", licensed), staged) is None
    assert "pkg/__init__.py differs" in str(wheel_problem(wheel("changed", {"pkg/__init__.py": "VALUE = 2\n"}), staged))
    assert "evil.pth differs" in str(
        wheel_problem(wheel("pth", {"pkg/__init__.py": "VALUE = 1\n", "evil.pth": "import os"}), staged)
    )
    planted = wheel("planted", {"pkg/__init__.py": "VALUE = 1\n", "pkg-1.0.dist-info/evil.py": ""})
    assert "pkg-1.0.dist-info/evil.py is no file a build writes" in str(wheel_problem(planted, staged))
    (tmp_path / "junk.whl").write_text("not a zip")
    assert "unreadable" in str(wheel_problem(tmp_path / "junk.whl", staged))
