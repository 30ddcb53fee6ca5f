"""Stage results keyed by content (issue 17), for real: one throwaway project with a bare origin,
the real engine, signed records, the real result store. Each step is a command a user runs.

Short test selections (``-k``) keep the stages quick: what is checked here is what runs again and
what is reused, not the suites themselves (the flow tests run those whole).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cicd.config import load_config
from cicd.deploy.docker_target import DockerTarget
from cicd.images import Engine
from tests.integration.conftest import cicd, git, make_project, use_free_ports

pytestmark = pytest.mark.slow(seconds=220)  # left out by --fast; the estimate orders the workers

UNIT = ["--", "-k", "cicd and test_config"]  # a few quick unit tests (the toolkit's), always the same
DATA = "notebooks/dummy_data/diabetes.csv"


def _store() -> Path:
    """Where ``cicd`` (run by :func:`cicd`) keeps stored results: ``$TRAINYARD_CACHE/results``."""
    if os.environ.get("TRAINYARD_RESULTS"):
        return Path(os.environ["TRAINYARD_RESULTS"])
    return Path(os.environ.get("TRAINYARD_CACHE", str(Path.home() / ".cache" / "trainyard"))) / "results"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, engine: Engine, base_image: str) -> Iterator[dict[str, Any]]:
    work, origin = make_project(tmp_path_factory.mktemp("results"))
    spec = work / "cicd/pipeline.yaml"
    use_free_ports(work)
    yield {"work": work, "origin": origin, "env": {"TRAINYARD_BASE_IMAGE": base_image}}
    config = load_config(spec, env={})
    for environment in config.environments.values():
        DockerTarget(config, environment, engine).discard()


def step(project: dict[str, Any], *args: str, check: bool = True) -> tuple[Any, subprocess.CompletedProcess[str]]:
    """Run ``python -m cicd --json ARGS``: its JSON result (None when it failed) and the process."""
    done = cicd(project["work"], "--json", *args, env=project["env"], check=check)
    return (json.loads(done.stdout)["result"] if done.returncode == 0 else None), done


def commit(project: dict[str, Any], path: str, line: str, message: str) -> None:
    target = project["work"] / path
    target.write_text(target.read_text() + line)
    git(project["work"], "commit", "--quiet", "-am", message)


@pytest.fixture(scope="module")
def seen(project: dict[str, Any]) -> dict[str, Any]:
    """Every step, in the order a team meets them; what each returned and said."""
    work, out = project["work"], {}
    out["build"], _ = step(project, "build")
    out["unit"], _ = step(project, "unit", *UNIT)
    out["unit_again"], out["unit_again_log"] = step(project, "unit", *UNIT)
    out["unit_no_cache"], _ = step(project, "--no-cache", "unit", *UNIT)
    out["release"], _ = step(project, "release")
    out["release_again"], out["release_again_log"] = step(project, "release")
    # the build image is stamped with the next version now: only a label changed, so unit is reused
    out["build_after_release"], _ = step(project, "build")
    out["unit_after_release"], _ = step(project, "unit", *UNIT)
    out["integration"], _ = step(project, "integration", "--", "-k", "health")
    out["integration_again"], _ = step(project, "integration", "--", "-k", "health")
    # a selection is no pass of the stage: the merge gate refuses it; a person merges instead
    out["merge_partial"] = step(project, "merge", check=False)[1]
    git(work, "checkout", "--quiet", "main")
    git(work, "merge", "--quiet", "--no-ff", "-m", "Merge develop into main", "develop")
    git(work, "push", "--quiet", "origin", "main")
    out["deploy"], _ = step(project, "deploy", "staging")
    out["acceptance"], _ = step(project, "acceptance", "staging")
    out["acceptance_again"], out["acceptance_again_log"] = step(project, "acceptance", "staging")
    out["redeploy"], _ = step(project, "deploy", "staging")
    out["acceptance_redeployed"], _ = step(project, "acceptance", "staging")
    out["acceptance_no_cache"], _ = step(project, "--no-cache", "acceptance", "staging")
    # a recorded failure (no test selected: pytest exits 5), then the same command again
    out["failing"] = [step(project, "acceptance", "staging", "--", "-k", "no_such_test", check=False)[1] for _ in "12"]

    git(work, "checkout", "--quiet", "develop")
    commit(project, "tests/unit/cicd/test_config.py", "# a changed test file\n", "test: a changed test file")
    step(project, "build")
    out["unit_test_changed"], _ = step(project, "unit", *UNIT)
    out["release_test_changed"], _ = step(project, "release")

    commit(project, DATA, (work / DATA).read_text().splitlines()[-1] + "\n", "data: one more row")
    out["release_data_changed"], _ = step(project, "release")

    # Tamper with the bundle that last release stored, then release a new commit of the same inputs.
    trained = out["release_data_changed"]["training"]
    stored = _store() / "train" / trained["key"].removeprefix("sha256:") / trained["bundle"].removeprefix("sha256:")
    joblib = next(stored.rglob("*.joblib"))
    joblib.write_bytes(joblib.read_bytes() + b"\0")
    git(work, "commit", "--quiet", "--allow-empty", "-m", "docs: nothing the model sees")
    out["release_tampered"], out["release_tampered_log"] = step(project, "release")
    return out


def test_an_unchanged_tree_reuses_every_stage(seen: dict[str, Any]) -> None:
    assert seen["build"]["built"] and seen["unit"]["ran"] and seen["unit"]["key"].startswith("sha256:")
    assert seen["unit_again"]["ran"] is False and seen["unit_again"]["key"] == seen["unit"]["key"]
    assert f"unit: passed for {seen['unit']['key'][:19]}… at " in seen["unit_again_log"].stderr
    assert seen["release"]["released"] and seen["release"]["training"]["ran"]
    again = seen["release_again"]
    assert again["reused"] == seen["release"]["tag"] and again["digest"] == seen["release"]["digest"]
    assert "release: 0.1.0-rc.1 was released from this commit" in seen["release_again_log"].stderr
    assert seen["build_after_release"]["image_id"] != seen["build"]["image_id"]  # another version label
    assert seen["unit_after_release"]["reused"] and seen["unit_after_release"]["key"] == seen["unit"]["key"]
    assert seen["integration"]["ran"] and seen["integration_again"]["reused"]
    assert seen["acceptance"]["passed"] and not seen["acceptance"]["summary"].startswith("reused")
    assert seen["acceptance_again"]["tag"] == seen["acceptance"]["tag"]  # the same deployment's own verdict
    assert "acceptance: passed for " in seen["acceptance_again_log"].stderr


def test_a_partial_pass_is_recorded_as_partial_and_cannot_merge(seen: dict[str, Any]) -> None:
    assert seen["unit"]["complete"] is False and seen["integration"]["complete"] is False
    assert seen["integration_again"]["complete"] is False  # a reused partial pass stays partial
    refused = seen["merge_partial"]
    assert refused.returncode == 2 and "has only a partial `integration` pass (-k health)" in refused.stderr


def test_a_redeployment_of_the_same_digest_gets_its_own_record_without_rerunning(seen: dict[str, Any]) -> None:
    verdict, first = seen["acceptance_redeployed"], seen["acceptance"]
    assert seen["redeploy"]["digest"] == seen["deploy"]["digest"] and seen["redeploy"]["tag"] != seen["deploy"]["tag"]
    assert verdict["deploy_tag"] == seen["redeploy"]["tag"] and verdict["summary"].startswith(f"reused {first['tag']}")
    assert verdict["complete"] and verdict["tests"] == first["tests"] and verdict["key"] == first["key"]


def test_no_cache_reruns(seen: dict[str, Any]) -> None:
    assert seen["unit_no_cache"]["ran"] and seen["unit_no_cache"]["key"] == seen["unit"]["key"]
    assert not seen["acceptance_no_cache"]["summary"].startswith("reused")


def test_a_recorded_failure_is_run_again(seen: dict[str, Any]) -> None:
    for failed in seen["failing"]:
        assert failed.returncode != 0 and "passed for" not in failed.stderr
        assert "acceptance tests against staging" in failed.stderr


def test_a_changed_test_file_reruns_unit_and_reuses_the_training(seen: dict[str, Any]) -> None:
    assert seen["unit_test_changed"]["ran"] and seen["unit_test_changed"]["key"] != seen["unit"]["key"]
    release = seen["release_test_changed"]
    assert release["released"] and release["version"] == "0.1.0-rc.2"
    training = release["training"]
    assert training["ran"] is False and training["key"] == seen["release"]["training"]["key"]
    assert training["bundle"] == seen["release"]["training"]["bundle"]  # the very bundle, verified


def test_a_new_release_shares_the_dependency_layer_and_adds_under_a_megabyte(
    seen: dict[str, Any], engine: Engine
) -> None:
    """rc.1 and rc.2 differ in the commit and the version. The dependencies (hundreds of MB) are one
    layer both images share, so a release costs the engine, and the registry, only its own files."""
    first, second = (
        {entry["Id"]: entry["Size"] for entry in engine.client.api.history(seen[key]["image"])}
        for key in ("release", "release_test_changed")
    )
    assert seen["release"]["image"] != seen["release_test_changed"]["image"]
    assert max(size for layer, size in second.items() if layer in first) > 100e6, second  # shared
    assert sum(size for layer, size in second.items() if layer not in first) < 1e6, second  # its own


def test_a_changed_data_file_retrains(seen: dict[str, Any]) -> None:
    training = seen["release_data_changed"]["training"]
    assert training["ran"] and training["key"] != seen["release"]["training"]["key"]


def test_a_tampered_stored_result_is_refused(seen: dict[str, Any]) -> None:
    training = seen["release_tampered"]["training"]
    assert training["ran"] and training["key"] == seen["release_data_changed"]["training"]["key"]
    assert "REFUSED the stored result" in seen["release_tampered_log"].stderr
