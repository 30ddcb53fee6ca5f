"""Deploy targets behind one interface: ``docker`` (the embedded default) and ``kubernetes``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cicd.deploy.base import Live, Target

if TYPE_CHECKING:
    from cicd.config import Environment
    from cicd.context import Context


def get_target(ctx: Context, env: Environment) -> Target:
    """The target that runs ``env``, sharing the context's engine and write gate."""
    if env.target == "kubernetes":
        from cicd.deploy.kubernetes import KubernetesTarget

        return KubernetesTarget(ctx.config, env, ctx.writes)
    from cicd.deploy.docker_target import DockerTarget

    return DockerTarget(ctx.config, env, ctx.engine_for(env))


__all__ = ["Live", "Target", "get_target"]
