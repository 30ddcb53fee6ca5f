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
        settings={
            "namespace": "ml",
            "replicas": 3,
            "env": {"LOG_LEVEL": "info"},
            "secret_env": {"API_TOKEN": "ml-service/api-token"},
        },
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
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["IMAGE_DIGEST"] == DIGEST and env["LOG_LEVEL"] == "info"
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert "kind: Deployment" in to_yaml(manifests)


def test_the_pod_is_hardened_and_reads_secrets_by_reference(manifests: list[dict[str, Any]]) -> None:
    pod = manifests[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsGroup"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    hardened = container["securityContext"]
    assert hardened["capabilities"] == {"drop": ["ALL"]} and hardened["readOnlyRootFilesystem"] is True
    assert hardened["allowPrivilegeEscalation"] is False and hardened["seccompProfile"] == {"type": "RuntimeDefault"}
    # a read-only root with a writable /tmp of its own
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["name"] == "tmp" and "emptyDir" in pod["volumes"][0]
    secret = next(e for e in container["env"] if e["name"] == "API_TOKEN")
    assert secret == {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "ml-service", "key": "api-token"}}}
    assert all("value" not in e for e in container["env"] if "valueFrom" in e)


@pytest.mark.parametrize("ref", ["no-slash", "Upper/key", "/key", 42])
def test_a_secret_reference_that_is_not_name_and_key_is_refused(ref: object) -> None:
    from cicd.errors import DeployError

    cfg = load_config(DEFAULT_PATH, env={})
    env = replace(cfg.environment("production"), target="kubernetes", settings={"secret_env": {"TOKEN": ref}})
    with pytest.raises(DeployError, match=r"secret_env\.TOKEN must be secret-name/key"):
        render(cfg, env, REFERENCE, DIGEST, "1.0.0", "c0ffee")
