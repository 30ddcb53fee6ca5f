"""Develop row for real: release → registry → integration, and the errors a user can hit."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from cicd.images import Engine
from cicd.signing import strip_signature
from tests.integration.conftest import (
    RELEASE_NAME,
    RELEASE_TESTS,
    SOURCE,
    SPEC,
    cicd,
    git,
    make_project,
    missing,
    start_registry,
)

pytestmark = pytest.mark.slow(seconds=115)  # left out by --fast; the estimate orders the workers


def test_release_is_recorded_in_git_and_pushed_by_digest(
    released_flow: dict[str, Any], engine: Engine, registry: Any
) -> None:
    record, work, origin = released_flow["record"], released_flow["work"], released_flow["origin"]
    assert record["version"] == "0.1.0-rc.1" and record["pep440"] == "0.1.0rc1"
    assert record["reference"] == f"{registry.address}/{RELEASE_NAME}@{record['digest']}"
    assert record["digest"].startswith("sha256:")
    assert record["metrics"]["model"]["rmse"] < record["metrics"]["baseline"]["rmse"]
    tags = git(origin, "tag", "-l")
    assert "v0.1.0-rc.1" in tags.split()
    message = git(work, "tag", "-l", "--format=%(contents)", "v0.1.0-rc.1")
    assert "-----BEGIN SSH SIGNATURE-----" in message  # signed, and by a key the project allows:
    git(work, "-c", f"gpg.ssh.allowedSignersFile={work / '.trainyard/allowed_signers'}", "verify-tag", "v0.1.0-rc.1")
    body = strip_signature(message)
    assert json.loads(body[body.index("{") :])["digest"] == record["digest"]
    engine.images.remove(record["reference"])
    assert engine.registry.pull(record["reference"], None) == record["image"]  # same bytes back from the registry


def test_the_release_carries_its_sbom_and_the_record_its_hash(released_flow: dict[str, Any], engine: Engine) -> None:
    """The SBOM is read from the released image itself (the artifacts folder may hold a later attempt's)."""
    record = released_flow["record"]
    _code, summed = engine.containers.capture(record["image"], ["sha256sum", "/opt/sbom/python.cdx.json"])
    digest = "sha256:" + summed.split()[0]
    assert record["sbom"] == digest
    labels = engine.images.attrs(record["image"])["Config"]["Labels"]
    assert labels["io.trainyard.sbom.sha256"] == digest and labels["org.opencontainers.image.version"]
    _code, text = engine.containers.capture(record["image"], ["cat", "/opt/sbom/python.cdx.json"])
    sbom = json.loads(text)
    assert sbom["bomFormat"] == "CycloneDX"
    # valid against its schema (the release writes it with --no-validate: this is where it is checked)
    assert JsonStrictValidator(SchemaVersion.from_version(sbom["specVersion"])).validate_str(text) is None
    names = {c["name"].lower().replace("_", "-") for c in sbom["components"]}
    assert {SPEC.project, "scikit-learn", "fastapi", "numpy"} <= names, sorted(names)
    assert "cyclonedx-bom" not in names and "pip" not in names  # the venv as it ships, not the tools


def test_integration_stage_runs_against_the_released_image(released_flow: dict[str, Any]) -> None:
    result = json.loads(cicd(released_flow["work"], "--json", "integration", env=released_flow["env"]).stdout)
    assert result["result"]["passed"] is True and result["result"]["version"] == "0.1.0-rc.1"
    ran = len(re.findall(r"^def test_", "".join(f.read_text() for f in RELEASE_TESTS.glob("test_*.py")), re.M))
    assert re.search(rf"\b{ran} passed\b", result["result"]["summary"]), result["result"]["summary"]  # all of them
    assert any(w.startswith("tag ") and " as checked/integration/" in w for w in result["writes"])  # signed
    assert any(w.startswith("push refs/tags/checked/integration/") for w in result["writes"])  # for others to merge
    kept = released_flow["work"] / "artifacts/reports/results/integration.json"  # what CI uploads
    assert json.loads(kept.read_text()) == result


def test_release_refuses_a_dirty_tree(released_flow: dict[str, Any]) -> None:
    work = released_flow["work"]
    (work / SOURCE / "scratch.py").write_text("x = 1\n")
    try:
        result = cicd(work, "release", env=released_flow["env"], check=False)
    finally:
        (work / SOURCE / "scratch.py").unlink()
    assert result.returncode == 2 and f"uncommitted changes ({SOURCE}/scratch.py)" in result.stderr


def test_no_engine_is_a_clear_error(released_flow: dict[str, Any]) -> None:
    env = {**released_flow["env"], "DOCKER_HOST": "tcp://127.0.0.1:9"}
    result = cicd(released_flow["work"], "build", env=env, check=False)
    assert result.returncode == 2
    assert "no Docker engine answers at tcp://127.0.0.1:9" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_base_image_is_a_clear_error(released_flow: dict[str, Any]) -> None:
    env = {**released_flow["env"], "TRAINYARD_BASE_IMAGE": "127.0.0.1:9/nope/python:0"}
    result = cicd(released_flow["work"], "build", env=env, check=False)
    assert result.returncode == 2
    assert "base image '127.0.0.1:9/nope/python:0' is not available locally and cannot be pulled" in result.stderr


def test_a_build_failure_shows_the_log_tail(tmp_path: Path, engine: Engine, base_image: str) -> None:
    work, _ = make_project(tmp_path)
    dockerfile = work / "cicd/build/docker/Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text().replace("WORKDIR /app", "RUN echo about-to-fail && exit 7\nWORKDIR /app")
    )
    result = cicd(work, "build", env={"TRAINYARD_BASE_IMAGE": base_image}, check=False)
    assert result.returncode == 2
    assert f"building {SPEC.images.build}" in result.stderr and "returned a non-zero code: 7" in result.stderr
    assert "about-to-fail" in result.stderr  # the tail of the log travels with the error


def test_a_refused_push_says_so_and_never_prints_the_password(released_flow: dict[str, Any], tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    if shutil.which("htpasswd") is None:
        missing("htpasswd is not installed (apt-get install apache2-utils)")
    hashed = subprocess.run(["htpasswd", "-Bbn", "ci", "right-password"], capture_output=True, text=True, check=True)
    htpasswd.write_text(hashed.stdout)
    secured = start_registry(tmp_path / "secured", htpasswd=htpasswd)
    try:
        work = released_flow["work"]
        git(work, "commit", "--quiet", "--allow-empty", "-m", "fix: a new release candidate")
        env = {
            **released_flow["env"],
            "TRAINYARD_REGISTRY": secured.address,
            "TRAINYARD_REGISTRY_USERNAME": "ci",
            "TRAINYARD_REGISTRY_PASSWORD": "canary-wrong-password",
        }
        result = cicd(work, "release", env=env, check=False)
    finally:
        secured.process.terminate()
        secured.process.wait(timeout=10)
    assert result.returncode == 2, result.stdout[-2000:]
    assert f"the registry refused {secured.address}/{RELEASE_NAME}:0.1.0-rc.2" in result.stderr, result.stderr[-2000:]
    assert "canary-wrong-password" not in result.stdout + result.stderr
    assert "v0.1.0-rc.2" not in git(work, "tag", "-l")  # nothing recorded for a release that did not ship


def test_only_signed_release_records_steer_the_version(released_flow: dict[str, Any], tmp_path: Path) -> None:
    """Tags someone made by hand that name versions (no record, no signature) steer nothing: a
    ``v41.0.0`` leaves the next pre-release where the signed record puts it, a pre-created name is
    skipped, and a final release whose name is taken is refused naming the tag; each is said."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", "--branch", "develop", str(released_flow["origin"]), str(clone))
    assert released_flow["record"]["version"] == "0.1.0-rc.1"  # the signed record on origin
    git(clone, "tag", "v41.0.0")  # lightweight: by hand
    git(clone, "tag", "v0.1.0-rc.2")  # the name the next release would take, taken by hand
    done = cicd(clone, "--json", "version")
    assert json.loads(done.stdout)["result"]["version"] == "0.1.0-rc.3", done.stdout
    assert "ignoring tag 'v41.0.0' for the version: it is no signed release record" in done.stderr
    assert "ignoring tag 'v0.1.0-rc.1'" not in done.stderr  # the signed record counts
    git(clone, "checkout", "--quiet", "-b", "main")  # a release branch: its release is final
    git(clone, "tag", "v0.1.0")
    refused = cicd(clone, "version", check=False)
    assert refused.returncode != 0, refused.stdout
    assert "tag v0.1.0 already exists and is no signed release record" in refused.stderr, refused.stderr
