"""The ``kubernetes`` target, for users who outgrow one host (AKS or any cluster).

It renders a Deployment and a Service (image by digest, readiness and liveness probes,
resources, rolling-update settings), applies them with ``kubectl`` to the configured context,
waits for the rollout and undoes it on failure. No cluster can be had where this template is
tested: the rendered manifests are validated offline with ``kubernetes-validate`` (strict, two
Kubernetes versions); applying, the rollout wait and the undo against a live cluster are untested.

Settings (``environments.<name>.settings``): ``context``, ``namespace``, ``replicas``,
``resources`` (requests/limits), ``service_type``, ``service_port``, ``env`` (extra variables),
``secret_env`` (variables read from Secrets: ``NAME: secret-name/key``, never values). The
environment's ``url`` (``environments.<name>.url``: the Ingress or load balancer's address) is
where acceptance and status reach it, as for the docker target.

The pod runs hardened: a non-root user and group, ``seccompProfile: RuntimeDefault``, every
capability dropped, no privilege escalation, a read-only root filesystem with a writable
``/tmp`` (``emptyDir``), and no service-account token mounted (the service calls no API).
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from cicd import proc
from cicd.config import Environment, PipelineConfig
from cicd.deploy.base import Live
from cicd.errors import CommandError, DeployError
from cicd.writes import Writes

CONTAINER_PORT = 8000
DEFAULT_RESOURCES = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}


def _name(project: str, env: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", f"{project}-{env}".lower()).strip("-")[:63]


def render(
    config: PipelineConfig, env: Environment, reference: str, digest: str, version: str, commit: str
) -> list[dict[str, Any]]:
    """The manifests for one release in one environment (pure: no cluster needed)."""
    s = dict(env.settings)
    name = _name(config.project, env.name)
    labels = {
        "app.kubernetes.io/name": config.project,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": re.sub(r"[^A-Za-z0-9_.-]", "_", version)[:63],
    }
    selector = {"app.kubernetes.io/instance": name}
    probe = {"httpGet": {"path": env.health_path, "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 3}
    extra_env = {str(k): str(v) for k, v in (s.get("env") or {}).items()}
    container_env: list[dict[str, Any]] = [
        {"name": k, "value": v}
        for k, v in {
            **extra_env,
            "SERVICE_HOST": "0.0.0.0",  # noqa: S104  # nosec B104 - binds inside the pod
            "SERVICE_PORT": str(CONTAINER_PORT),
            "IMAGE_DIGEST": digest,
            "SERVICE_VERSION": version,
            "GIT_COMMIT": commit,
        }.items()
    ]
    for var, ref in _secret_env(env).items():
        secret, key = ref
        container_env.append({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": s.get("namespace", "default"),
            "labels": labels,
            "annotations": {
                "trainyard.io/digest": digest,
                "trainyard.io/reference": reference,
                "trainyard.io/commit": commit,
            },
        },
        "spec": {
            "replicas": int(s.get("replicas", 2)),
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {**labels, **selector}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                    "containers": [
                        {
                            "name": "service",
                            "image": reference,
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"name": "http", "containerPort": CONTAINER_PORT}],
                            "env": container_env,
                            "readinessProbe": {**probe, "initialDelaySeconds": 5},
                            "livenessProbe": {**probe, "initialDelaySeconds": 30, "failureThreshold": 3},
                            "resources": s.get("resources", DEFAULT_RESOURCES),
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108  # nosec B108
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": s.get("namespace", "default"), "labels": labels},
        "spec": {
            "type": s.get("service_type", "ClusterIP"),
            "selector": selector,
            "ports": [{"name": "http", "port": int(s.get("service_port", 80)), "targetPort": "http"}],
        },
    }
    return [deployment, service]


def _secret_env(env: Environment) -> dict[str, tuple[str, str]]:
    """``settings.secret_env``: variable → (Secret, key), from ``NAME: secret-name/key``."""
    raw = env.settings.get("secret_env") or {}
    if not isinstance(raw, dict):
        raise DeployError(f"environments.{env.name}.settings.secret_env must map variables to secret-name/key")
    out = {}
    for var, ref in raw.items():
        if not isinstance(ref, str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[-._a-zA-Z0-9]+", ref):
            raise DeployError(f"environments.{env.name}.settings.secret_env.{var} must be secret-name/key, got {ref!r}")
        secret, key = ref.split("/", 1)
        out[str(var)] = (secret, key)
    return out


def to_yaml(manifests: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(manifests, sort_keys=False)


class KubernetesTarget:
    def __init__(self, config: PipelineConfig, env: Environment, writes: Writes | None = None) -> None:
        self.config, self.env = config, env
        self.writes = writes or Writes()
        self.name = _name(config.project, env.name)
        settings = dict(env.settings)
        self.namespace = str(settings.get("namespace", "default"))
        self.context = settings.get("context")

    def _kubectl(self, *args: str, stdin: str | None = None) -> str:
        cmd = ["kubectl", *(["--context", str(self.context)] if self.context else []), "-n", self.namespace, *args]
        try:
            result = proc.run(cmd, input=stdin, timeout=900, keep_output=True, stream=False)
        except CommandError as err:
            if err.code is None and "cannot start" in str(err):
                raise DeployError(
                    "kubectl is not installed; install it to deploy to a kubernetes environment"
                ) from None
            raise DeployError(str(err)) from None
        if not result.ok:
            raise DeployError(f"kubectl {' '.join(args)} failed: " + "\n".join(result.tail)[-1500:])
        return result.output

    def deploy(self, reference: str, image: str, digest: str, version: str, commit: str) -> Live:
        manifests = to_yaml(render(self.config, self.env, reference, digest, version, commit))
        if not self.writes.allow(f"kubectl apply {self.name} ({reference}) in {self.namespace}"):
            return Live(self.env.name, reference, digest, version, self.env.url, healthy=False, detail="dry run")
        self._kubectl("apply", "-f", "-", stdin=manifests)
        try:
            self._kubectl("rollout", "status", f"deployment/{self.name}", f"--timeout={int(self.env.health_timeout)}s")
        except DeployError as err:
            self._kubectl("rollout", "undo", f"deployment/{self.name}")
            raise DeployError(f"the rollout of {version} to {self.env.name} failed and was undone: {err}") from None
        return Live(self.env.name, reference, digest, version, self.env.url, healthy=True, detail=self.name)

    def has(self, digest: str) -> bool:
        """The cluster pulls by digest itself; nothing is kept to start again."""
        return False

    def live(self) -> Live | None:
        try:
            data = json.loads(self._kubectl("get", "deployment", self.name, "-o", "json"))
        except DeployError:
            return None
        notes = data.get("metadata", {}).get("annotations", {})
        ready = data.get("status", {}).get("readyReplicas", 0) or 0
        return Live(
            self.env.name,
            notes.get("trainyard.io/reference", ""),
            notes.get("trainyard.io/digest", ""),
            data["metadata"].get("labels", {}).get("app.kubernetes.io/version", ""),
            self.env.url,
            healthy=ready > 0,
            detail=f"{ready} ready",
        )
