"""Feature-branch row for real: build image, unit tests inside it, layer caching, failures shown."""

from __future__ import annotations

import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import SOURCE, SPEC, cicd, git, make_project, sign_passing_check

pytestmark = pytest.mark.slow(seconds=140)  # left out by --fast; the estimate orders the workers


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, engine: Any, base_image: str) -> dict[str, Any]:
    work, _origin = make_project(tmp_path_factory.mktemp("feature"))
    git(work, "checkout", "--quiet", "-b", "feature/demo")
    return {"work": work, "env": {"TRAINYARD_BASE_IMAGE": base_image}}


def build(project: dict[str, Any]) -> dict[str, Any]:
    """``build`` in the project; its JSON result."""
    result: dict[str, Any] = json.loads(cicd(project["work"], "--json", "build", env=project["env"]).stdout)["result"]
    return result


def test_build_then_unit_inside_the_image(project: dict[str, Any]) -> None:
    work, env = project["work"], project["env"]
    build(project)
    result = json.loads(cicd(work, "--json", "unit", env=env).stdout)
    assert result["result"]["passed"] is True and result["result"]["ran"] is True
    assert any(w.startswith("tag ") and " as checked/unit/" in w for w in result["writes"])  # a signed check
    checked = git(work, "tag", "-l", "checked/unit/*").split()
    signers = work / ".trainyard/allowed_signers"
    assert checked and git(work, "-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-tag", *checked) == ""
    assert (work / "artifacts/reports/unit/junit.xml").read_text().startswith("<?xml")
    assert "<coverage" in (work / "artifacts/reports/unit/coverage.xml").read_text()
    assert list((work / "artifacts/dist").glob(f"{SPEC.project.replace('-', '_')}-*.whl"))


def test_a_second_build_is_fully_cached(project: dict[str, Any]) -> None:
    build(project)
    again = build(project)
    assert again["cached_steps"] == again["steps"] > 5 and again["rebuilt"] == [], again
    assert again["dependencies"]["reused"] is True, again  # the wheelhouse is not even sent


def test_the_dependencies_image_is_built_again_only_when_its_inputs_change(
    project: dict[str, Any], engine: Any
) -> None:
    work = project["work"]
    before = build(project)["dependencies"]
    deps = work / "cicd/build/docker/deps.Dockerfile"
    original = deps.read_text()
    deps.write_text(original + f"# a change to the dependencies' Dockerfile {uuid.uuid4().hex}\n")
    try:
        changed = build(project)["dependencies"]
    finally:
        deps.write_text(original)
    assert changed["reused"] is False and changed["image"] != before["image"], (before, changed)
    # An image that merely carries the tag (retagged by hand, or left by another key) is not it.
    engine.client.images.get(changed["image_id"]).tag(*before["image"].rsplit(":", 1))
    try:
        again = build(project)["dependencies"]
    finally:
        engine.client.images.get(before["image_id"]).tag(*before["image"].rsplit(":", 1))
    assert again["image"] == before["image"] and again["reused"] is False, again
    assert build(project)["dependencies"] == {**again, "reused": True}


def test_a_source_change_rebuilds_only_the_layers_after_the_dependencies(project: dict[str, Any]) -> None:
    module = project["work"] / SOURCE / "schema.py"
    original = module.read_text()
    build(project)
    # Unique to this run: an engine kept between runs (as CI's is) may hold a fixed edit's layers.
    module.write_text(original + f"\n# a one-line change {uuid.uuid4().hex}\n")
    try:
        rebuilt = build(project)["rebuilt"]
    finally:
        module.write_text(original)
    assert rebuilt, "something must be rebuilt"
    assert all("pip install" not in r and "wheelhouse" not in r for r in rebuilt), rebuilt
    first = min(rebuilt, key=lambda r: int(r.split()[1].split("/")[0]))
    assert "COPY project/ /app/" in first, rebuilt  # every layer before the project's files stays cached


def test_a_tampered_cached_wheel_is_built_again(project: dict[str, Any]) -> None:
    """The project's wheel cache: a file planted in the cached copy of this commit's wheel is
    noticed, the copy dropped and the wheel built again from the sources."""
    import os
    import shutil

    first = Path(build(project)["wheel"])
    cache = Path(os.environ.get("TRAINYARD_CACHE", str(Path.home() / ".cache" / "trainyard")))  # as cicd() runs it
    cached = next(p for p in (cache / "wheels").glob(f"*/{first.name}") if p.read_bytes() == first.read_bytes())
    planted = cached.with_suffix(".tmp")
    shutil.copy2(cached, planted)
    with zipfile.ZipFile(planted, "a") as archive:
        archive.writestr(f"{SPEC.import_name}/planted.py", "import os\n")
    os.replace(planted, cached)
    result = cicd(project["work"], "--json", "build", env=project["env"])
    wheel = Path(json.loads(result.stdout)["result"]["wheel"])
    assert "is not what these sources build" in result.stderr and "planted.py" in result.stderr, result.stderr[-2000:]
    assert wheel.read_bytes() == first.read_bytes()  # the same reproducible build, nothing planted


def test_files_git_ignores_enter_neither_the_image_nor_the_wheel(project: dict[str, Any], engine: Any) -> None:
    work, canary = project["work"], f"canary-{uuid.uuid4().hex}"  # made here: no file holds it
    leftovers = [f"{SPEC.package}/build/lib/{SPEC.import_name}/leftover.py", f"{SOURCE}.egg-info/PKG-INFO", ".env"]
    for rel in leftovers:  # what an old `pip install .` or a developer leaves behind, all git-ignored
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(f"SECRET={canary}\n")
    try:
        built = build(project)
    finally:
        for rel in leftovers:
            (work / rel).unlink()
    look = f"grep -rl {canary} /app; echo ---; ls -a /app /app/src"
    _code, listing = engine.containers.capture(built["image_id"], ["sh", "-c", look])
    hits, _, entries = listing.partition("---")
    assert hits.strip() == "", hits
    assert SPEC.import_name in entries.split(), listing  # the listing ran
    assert not {"build", ".env", f"{SPEC.import_name}.egg-info"} & set(entries.split()), listing
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = wheel.namelist()
        assert not [n for n in names if "leftover" in n or "egg-info" in n], names
        assert all(canary.encode() not in wheel.read(n) for n in names)


def test_a_build_tag_moved_to_another_image_is_refused(project: dict[str, Any], engine: Any) -> None:
    built = build(project)
    repository, tag = built["image"].rsplit(":", 1)
    engine.client.images.get(project["env"]["TRAINYARD_BASE_IMAGE"]).tag(repository, tag)  # someone else's image
    try:
        result = cicd(project["work"], "unit", env=project["env"], check=False)
    finally:
        engine.client.images.get(built["image_id"]).tag(repository, tag)
    assert result.returncode == 2 and "names another image than the" in result.stderr, result.stderr[-2000:]
    assert "unit tests in" not in result.stderr  # nothing ran


def test_a_failing_unit_test_fails_the_stage_and_shows_why(project: dict[str, Any]) -> None:
    work, env = project["work"], project["env"]
    bad = work / "tests/unit/test_deliberate_failure.py"
    bad.write_text("def test_deliberate_failure():\n    assert 1 + 1 == 3, 'arithmetic is broken'\n")
    try:
        cicd(work, "build", env=env)
        # only the failing test (the others pass in test_build_then_unit_inside_the_image): the
        # stage's handling of a failure is the same for one test as for four hundred
        result = cicd(work, "unit", "--", "-k", "test_deliberate_failure", env=env, check=False)
    finally:
        bad.unlink()
    assert result.returncode == 1
    assert "arithmetic is broken" in result.stderr and "1 failed" in result.stderr  # shown as it happened
    assert "unit tests in" in result.stderr and "failed (exit code 1)" in result.stderr


def test_unit_without_a_build_image_says_to_build(project: dict[str, Any]) -> None:
    work = project["work"]
    (work / "NEWFILE").write_text("changes the dirty tag\n")
    git(work, "add", "NEWFILE")
    git(work, "commit", "--quiet", "-m", "chore: new commit, no image yet")
    result = cicd(work, "unit", env=project["env"], check=False)
    assert result.returncode == 2 and "run `nox -s build` first" in result.stderr


def test_merge_needs_passing_checks_then_merges_and_pushes(tmp_path: Path) -> None:
    work, origin = make_project(tmp_path)
    git(work, "checkout", "--quiet", "-b", "feature/merge-me")
    (work / SOURCE / "extra.py").write_text('"""A new module."""\n')
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "feat: extra module")
    refused = cicd(work, "merge", check=False)
    assert refused.returncode == 2 and "has no passing `unit` record" in refused.stderr
    sign_passing_check(work, "unit")
    result = json.loads(cicd(work, "--json", "merge").stdout)["result"]
    assert result["source"] == "feature/merge-me" and result["target"] == "develop" and result["merged"] is True
    assert git(origin, "log", "-1", "--format=%s", "develop") == "Merge branch 'feature/merge-me' into develop"
    assert git(work, "rev-parse", "--abbrev-ref", "HEAD") == "feature/merge-me"  # back where we were


def test_a_conflicting_merge_is_aborted_and_the_target_unchanged(tmp_path: Path) -> None:
    work, origin = make_project(tmp_path)
    (work / "README.md").write_text("develop's version\n")
    git(work, "commit", "--quiet", "-am", "docs: develop edit")
    git(work, "push", "--quiet", "origin", "develop")
    before = git(work, "rev-parse", "develop")
    git(work, "checkout", "--quiet", "-b", "feature/clash", "HEAD~1")
    (work / "README.md").write_text("feature's version\n")
    git(work, "commit", "--quiet", "-am", "docs: feature edit")
    sign_passing_check(work, "unit")
    result = cicd(work, "merge", check=False)
    assert result.returncode == 2
    assert "conflicts in README.md" in result.stderr and "develop is unchanged" in result.stderr
    assert git(work, "rev-parse", "develop") == before == git(origin, "rev-parse", "develop")
    assert git(work, "status", "--porcelain") == ""
    assert git(work, "rev-parse", "--abbrev-ref", "HEAD") == "feature/clash"
