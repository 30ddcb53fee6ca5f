"""The connection to one Docker engine and the translation of docker's exceptions.

:class:`Engine` is split by concern: ``engine.images`` (inspect, build, tag, remove),
``engine.containers`` (run to completion, services, list, stop) and ``engine.registry`` (push,
pull). Each part asks the shared :class:`~cicd.writes.Writes` gate before a write, and turns
every docker or ``requests`` exception into a :mod:`cicd.errors` class in :meth:`Part.translated`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import docker
import requests
from docker.errors import DockerException

from cicd.errors import EngineUnavailableError
from cicd.images.base import reason
from cicd.images.builds import Images
from cicd.images.containers import Containers
from cicd.images.registry import RegistryClient
from cicd.writes import Writes

LOCAL_SOCKET = "unix:///var/run/docker.sock"


class Engine:
    """A connection to one Docker engine (``host``: ``unix://``, ``tcp://``, ``ssh://``; default the local socket)."""

    def __init__(
        self,
        host: str | None = None,
        *,
        environment: Mapping[str, str] | None = None,
        no_cache: bool = False,
        writes: Writes | None = None,
        timeout: int = 600,
    ) -> None:
        """``environment``: read ``DOCKER_HOST`` and docker's TLS variables from it (see :meth:`from_env`)."""
        given = host or (environment or {}).get("DOCKER_HOST") or None
        self.where = given or "the local socket (/var/run/docker.sock)"
        address = given or LOCAL_SOCKET
        socket_path = Path(address.removeprefix("unix://"))
        if address.startswith("unix://") and not socket_path.exists():
            # Said here, before a client exists: docker-py leaks the socket of a failed first call.
            raise EngineUnavailableError(self.where, f"no socket at {socket_path}")
        try:
            if host is None and environment is not None:
                client = docker.from_env(environment=dict(environment), timeout=timeout)
            else:
                client = docker.DockerClient(base_url=address, timeout=timeout)
        except (DockerException, requests.RequestException) as err:
            raise EngineUnavailableError(self.where, reason(err)) from None
        try:
            client.ping()
        except (DockerException, requests.RequestException) as err:
            client.close()
            raise EngineUnavailableError(self.where, reason(err)) from None
        self.client = client
        self.writes = writes or Writes()
        self.images = Images(client, self.where, self.writes, no_cache=no_cache)
        self.containers = Containers(client, self.where, self.writes)
        self.registry = RegistryClient(client, self.where, self.writes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, writes: Writes | None = None) -> Engine:
        """The engine ``DOCKER_HOST`` names (docker's TLS variables included); ``TRAINYARD_NO_CACHE=1``
        builds every step again (a cold build; the benchmarks use it)."""
        env = os.environ if env is None else env
        return cls(environment=env, no_cache=env.get("TRAINYARD_NO_CACHE", "") not in ("", "0"), writes=writes)

    def close(self) -> None:
        """Close the connection (its sockets); the engine and its containers are untouched."""
        self.client.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
