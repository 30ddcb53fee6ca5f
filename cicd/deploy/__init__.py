"""Deploy targets behind one interface: ``docker`` (the embedded default) and ``kubernetes``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cicd.deploy.base import Live, Target

if TYPE_CHECKING:
    from cicd.config import Environment, PipelineConfig


def get_target(config: PipelineConfig, env: Environment) -> Target:
    if env.target == "kubernetes":
        from cicd.deploy.kubernetes import KubernetesTarget

        return KubernetesTarget(config, env)
    from cicd.deploy.docker_target import DockerTarget

    return DockerTarget(config, env)


__all__ = ["Live", "Target", "get_target"]
