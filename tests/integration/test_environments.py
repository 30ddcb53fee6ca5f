"""The whole flow in a throwaway project, as a user would run it: develop → master → Staging → Production.

Real engine, real registry, real git with a bare origin, real HTTP to the deployed services.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from cicd.config import load_config
from cicd.deploy.docker_target import DockerTarget
from cicd.http import request_json
from cicd.images import Engine
from tests.integration.conftest import cicd, free_port, git, make_project, start_registry


def _pipeline_with_ports(work: Path) -> dict[str, int]:
    """Give this project's environments free ports, committed, so parallel runs never collide."""
    spec = work / "cicd/pipeline.yaml"
    ports = {"integration": free_port(), "staging": free_port(), "production": free_port()}
    text = spec.read_text()
    for default, name in ((18080, "integration"), (18081, "staging"), (18082, "production")):
        text = text.replace(f"port: {default}", f"port: {ports[name]}")
    spec.write_text(text)
    git(work, "commit", "--quiet", "-am", "chore: ports for this test")
    return ports


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory, engine: Engine, base_image: str) -> Any:
    registry = start_registry(tmp_path_factory.mktemp("envs-registry"))  # its own: a test stops it
    work, origin = make_project(tmp_path_factory.mktemp("envs"))
    ports = _pipeline_with_ports(work)
    git(work, "push", "--quiet", "origin", "develop")
    env = {"TRAINYARD_BASE_IMAGE": base_image, "TRAINYARD_REGISTRY": registry.address}
    state: dict[str, Any] = {
        "work": work,
        "origin": origin,
        "env": env,
        "ports": ports,
        "engine": engine,
        "registry": registry,
    }
    yield state
    if registry.process.poll() is None:
        registry.process.terminate()
        registry.process.wait(timeout=10)
    config = load_config(work / "cicd/pipeline.yaml", env={})
    for env_config in config.environments.values():  # leave no service running behind the test
        DockerTarget(config, env_config, engine).stop()


def _metadata(port: int) -> dict[str, Any]:
    status, body = request_json(f"http://127.0.0.1:{port}/metadata")
    assert status == 200
    return dict(body)


def test_the_whole_flow(flow: dict[str, Any]) -> None:
    work, origin, env, ports = flow["work"], flow["origin"], flow["env"], flow["ports"]
    released = cicd(work, "release", env=env)
    assert "released 0.1.0-rc.1" in released.stdout
    cicd(work, "integration", env=env)
    record = __import__("json").loads((work / "artifacts/release.json").read_text())
    tested_digest = record["digest"]
    # a deploy from develop is refused: staging deploys from master/main
    refused = cicd(work, "deploy", "staging", env=env, check=False)
    assert refused.returncode == 2 and "staging deploys from master or main" in refused.stderr
    # merge develop into main (a merge commit with the released tree), then deploy that image
    cicd(work, "merge", env=env)
    git(work, "checkout", "--quiet", "main")
    git(work, "pull", "--quiet", "origin", "main")
    no_staging = cicd(work, "promote", "production", env=env, check=False)
    assert no_staging.returncode == 2 and "there is no Staging tag" in no_staging.stderr
    deployed = cicd(work, "deploy", "staging", env=env)
    assert "staging now runs 0.1.0-rc.1" in deployed.stdout
    assert "Step 1/" not in deployed.stdout  # nothing was built
    assert _metadata(ports["staging"])["image_digest"] == tested_digest
    not_accepted = cicd(work, "promote", "production", env=env, check=False)
    assert not_accepted.returncode == 2 and "has not run" in not_accepted.stderr
    failed = cicd(work, "acceptance", "staging", "--", "-k", "no_such_test", env=env, check=False)
    assert failed.returncode == 1  # pytest collected nothing: that is not a pass, and it is recorded
    refused = cicd(work, "promote", "production", env=env, check=False)
    assert refused.returncode == 2 and "acceptance of 0.1.0-rc.1 on staging failed" in refused.stderr
    cicd(work, "acceptance", "staging", env=env)
    promoted = cicd(work, "promote", "production", env=env)
    assert "Step 1/" not in promoted.stdout and "production now runs 0.1.0-rc.1" in promoted.stdout
    assert _metadata(ports["production"])["image_digest"] == tested_digest
    staging_commit = git(origin, "rev-list", "-n1", "Staging")
    assert staging_commit == git(origin, "rev-list", "-n1", "Production") == git(work, "rev-parse", "HEAD")
    again = cicd(work, "promote", "production", env=env)
    assert "nothing to do" in again.stdout
    tags = git(origin, "tag", "-l").split()
    assert sum(t.startswith("deploy/staging/") for t in tags) == 1
    assert sum(t.startswith("deploy/production/") for t in tags) == 1
    assert any(t.startswith("accepted/staging/") for t in tags)
    status = cicd(work, "status", env=env)
    assert "production" in status.stdout and "healthy" in status.stdout
    flow["tested_digest"] = tested_digest


def test_bad_input_is_refused(flow: dict[str, Any]) -> None:
    work, env = flow["work"], flow["env"]
    unknown = cicd(work, "deploy", "qa", env=env, check=False)
    assert unknown.returncode == 2 and "unknown environment 'qa'" in unknown.stderr
    (work / "dirty.txt").write_text("x")
    dirty = cicd(work, "deploy", "staging", env=env, check=False)
    (work / "dirty.txt").unlink()
    assert dirty.returncode == 2 and "uncommitted changes" in dirty.stderr
    (work / "NOTES.md").write_text("a change that was never released\n")
    git(work, "add", "NOTES.md")
    git(work, "commit", "--quiet", "-m", "docs: not released")
    unreleased = cicd(work, "deploy", "staging", env=env, check=False)
    git(work, "reset", "--quiet", "--hard", "HEAD~1")
    assert unreleased.returncode == 2 and "no release record for commit" in unreleased.stderr
    no_engine = cicd(work, "deploy", "staging", env={**env, "DOCKER_HOST": "tcp://127.0.0.1:9"}, check=False)
    assert no_engine.returncode == 2 and "no Docker engine answers" in no_engine.stderr
    assert _metadata(flow["ports"]["staging"])["image_digest"] == flow["tested_digest"]  # still serving


def test_a_release_that_never_gets_healthy_leaves_the_old_one_serving(flow: dict[str, Any], tmp_path: Path) -> None:
    work, env, ports = flow["work"], flow["env"], flow["ports"]
    git(work, "checkout", "--quiet", "develop")
    git(work, "merge", "--quiet", "main")
    git(work, "commit", "--quiet", "--allow-empty", "-m", "fix: the second release")
    cicd(work, "release", env=env)
    cicd(work, "integration", env=env)
    cicd(work, "merge", env=env)
    git(work, "checkout", "--quiet", "main")
    git(work, "pull", "--quiet", "origin", "main")
    flow["second_digest"] = __import__("json").loads((work / "artifacts/release.json").read_text())["digest"]
    # the same release with a staging setting that stops the service from starting
    broken = tmp_path / "broken-pipeline.yaml"
    broken.write_text(
        (work / "cicd/pipeline.yaml")
        .read_text()
        .replace("  staging:\n", "  staging:\n    settings: {env: {MODEL_DIR: /nope}}\n")
        .replace("health_timeout: 60", "health_timeout: 20")
    )
    failed = cicd(work, "--config", str(broken), "deploy", "staging", env=env, check=False)
    assert failed.returncode == 2, failed.stdout[-2000:]
    assert "never answered" in failed.stderr and "no model bundle at '/nope'" in failed.stderr
    assert _metadata(ports["staging"])["image_digest"] == flow["tested_digest"]  # the old one still serves
    assert sum(t.startswith("deploy/staging/") for t in git(flow["origin"], "tag", "-l").split()) == 1
    cicd(work, "deploy", "staging", env=env)
    assert _metadata(ports["staging"])["image_digest"] == flow["second_digest"]
    cicd(work, "acceptance", "staging", env=env)


def test_two_promotions_at_once_have_one_winner(flow: dict[str, Any]) -> None:
    work, env = flow["work"], flow["env"]
    results: list[Any] = []

    def promote() -> None:
        results.append(cicd(work, "promote", "production", env=env, check=False))

    threads = [threading.Thread(target=promote) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if "production now runs 0.1.0-rc.2" in r.stdout]
    losers = [r for r in results if r not in winners]
    assert len(winners) == 1, [(r.returncode, r.stdout[-500:], r.stderr) for r in results]
    assert "in progress" in losers[0].stderr or "nothing to do" in losers[0].stdout
    tags = git(flow["origin"], "tag", "-l").split()
    assert sum(t.startswith("deploy/production/") for t in tags) == 2
    assert git(flow["origin"], "rev-list", "-n1", "Production") == git(flow["origin"], "rev-list", "-n1", "Staging")
    assert _metadata(flow["ports"]["production"])["image_digest"] == flow["second_digest"]


def test_rollback_redeploys_the_previous_digest(flow: dict[str, Any]) -> None:
    work, env = flow["work"], flow["env"]
    result = cicd(work, "rollback", "production", env=env)
    assert "production now runs 0.1.0-rc.1" in result.stdout
    assert _metadata(flow["ports"]["production"])["image_digest"] == flow["tested_digest"]
    engine: Engine = flow["engine"]
    labels = {"io.trainyard.environment": "production", "io.trainyard.port": str(flow["ports"]["production"])}
    assert len(engine.containers.find(labels)) == 1  # the retired ones are gone: no strays


def test_a_port_taken_by_another_program_is_refused(flow: dict[str, Any]) -> None:
    work, env, port = flow["work"], flow["env"], flow["ports"]["integration"]
    git(work, "checkout", "--quiet", "develop")
    try:
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            result = cicd(work, "deploy", "integration", env=env, check=False)
    finally:
        git(work, "checkout", "--quiet", "main")
    assert result.returncode == 2
    assert f"port {port} of environment integration is taken by another program" in result.stderr


def test_a_registry_that_is_down_leaves_the_environment_serving(flow: dict[str, Any]) -> None:
    work, env = flow["work"], flow["env"]
    flow["registry"].process.terminate()
    flow["registry"].process.wait(timeout=10)
    result = cicd(work, "deploy", "staging", env=env, check=False)
    assert result.returncode == 2 and "cannot pull" in result.stderr, result.stderr
    assert _metadata(flow["ports"]["staging"])["image_digest"] == flow["second_digest"]
