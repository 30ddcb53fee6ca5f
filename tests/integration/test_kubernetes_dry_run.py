"""``kubectl create --dry-run=client`` accepts the rendered manifests (no cluster involved)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace

from cicd.config import DEFAULT_PATH, load_config
from cicd.deploy.kubernetes import render, to_yaml
from tests.integration.conftest import missing


def test_kubectl_accepts_the_manifests_offline() -> None:
    if shutil.which("kubectl") is None:
        missing("kubectl is not installed")
    cfg = load_config(DEFAULT_PATH, env={})
    env = replace(cfg.environment("staging"), target="kubernetes")
    text = to_yaml(render(cfg, env, "r/sample-ml@sha256:" + "0" * 64, "sha256:" + "0" * 64, "1.0.0", "abc"))
    result = subprocess.run(
        # --validate=false: server-side schema checks need a cluster; kubernetes-validate does them offline.
        ["kubectl", "create", "--dry-run=client", "--validate=false", "-o", "name", "-f", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["deployment.apps/sample-ml-staging", "service/sample-ml-staging"]
