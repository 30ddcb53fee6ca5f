"""The kubernetes target's manifests, validated offline against the Kubernetes schemas.

No cluster is available where this template is tested: rendering and schema validity (strict,
against the official schemas of two Kubernetes versions) are checked here. ``kubectl create -f
--dry-run=client`` cannot help: it still asks a server for API discovery. Applying to a live
cluster, the rollout wait and the undo are not tested.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import kubernetes_validate
import pytest

from cicd.config import DEFAULT_PATH, load_config
from cicd.deploy.kubernetes import render, to_yaml

DIGEST = "sha256:" + "ab" * 32
REFERENCE = f"registry.example.com/{load_config(DEFAULT_PATH, env={}).project}@{DIGEST}"


@pytest.fixture
def manifests() -> list[dict[str, Any]]:
    cfg = load_config(DEFAULT_PATH, env={})
    env = replace(
        cfg.environment("production"),
        target="kubernetes",
        settings={"namespace": "ml", "replicas": 3, "env": {"LOG_LEVEL": "info"}},
    )
    return render(cfg, env, REFERENCE, DIGEST, "1.2.0-rc.1", "c0ffee")


@pytest.mark.parametrize("version", ["1.30", "1.33"])
def test_manifests_are_valid_kubernetes(manifests: list[dict[str, Any]], version: str) -> None:
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_deployment_runs_the_digest_with_probes_and_a_safe_rollout(manifests: list[dict[str, Any]]) -> None:
    deployment, service = manifests
    spec = deployment["spec"]
    container = spec["template"]["spec"]["containers"][0]
    assert container["image"] == REFERENCE  # by digest, never by a moving tag
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["limits"]
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert spec["replicas"] == 3 and deployment["metadata"]["namespace"] == "ml"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["IMAGE_DIGEST"] == DIGEST and env["LOG_LEVEL"] == "info"
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert "kind: Deployment" in to_yaml(manifests)
