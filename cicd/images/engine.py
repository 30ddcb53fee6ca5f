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
from typing import Any

import docker
import requests
from docker.tls import TLSConfig

from cicd.errors import EngineUnavailableError
from cicd.images.base import reason
from cicd.images.builds import Images
from cicd.images.containers import Containers
from cicd.images.hosts import HostAccess, variable
from cicd.images.registry import RegistryClient
from cicd.writes import Writes

LOCAL_SOCKET = "unix:///var/run/docker.sock"
API_VERSION = "1.41"  # the oldest engine the toolkit supports (Debian 12's docker.io 20.10)


def _ssh_transport() -> Any:
    """docker's paramiko transport, imported now: :mod:`cicd.images` holds paramiko back while
    docker is imported (0.3 s of every command), so docker's client is given the class it would
    have imported itself."""
    from docker.api import client as api_client
    from docker.transport.sshconn import SSHHTTPAdapter

    api_client.SSHHTTPAdapter = SSHHTTPAdapter
    return SSHHTTPAdapter


def _ssh_adapter(access: HostAccess, timeout: int) -> Any:
    """docker's paramiko transport, with a key file and a known_hosts file of our choosing.

    Its own ``RejectPolicy`` stays: a host whose key is in neither ``~/.ssh/known_hosts`` nor our
    file is refused, never trusted on first use.
    """
    transport = _ssh_transport()

    class Adapter(transport):  # type: ignore[misc,valid-type]
        def get_connection(self, url: str, proxies: Any = None) -> Any:
            # docker keeps a pool per request URL (each container's, each exec's), each with SSH
            # sessions of its own; sshd allows ten at a time. One pool for the host instead.
            return super().get_connection("http+docker://ssh/", proxies)

        def _create_paramiko_client(self, base_url: str) -> None:
            super()._create_paramiko_client(base_url)
            if access.ssh_key:
                self.ssh_params["key_filename"] = access.ssh_key
            if access.known_hosts:
                self.ssh_client.load_host_keys(access.known_hosts)

    return Adapter(access.address, timeout, pool_connections=1, max_pool_size=4, shell_out=False)


def _why(err: BaseException, access: HostAccess | None) -> str:
    """One line for a failed connection; a TLS failure says which certificate to check."""
    text = reason(err)
    if access is None or not ("SSLError" in text or isinstance(err, requests.exceptions.SSLError)):
        return text
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"TLS: the engine's certificate is not signed by the CA in {variable(access.environment, 'TLS_CA')}"
    return (
        "TLS: the engine refused this client's certificate; check "
        f"{variable(access.environment, 'TLS_CERT')} and {variable(access.environment, 'TLS_KEY')}"
    )


def _client(access: HostAccess, timeout: int) -> Any:
    """A docker client for ``access``: TLS verified both ways, SSH with known hosts, or a socket."""
    if access.tls is not None:
        ca, cert, key = access.tls
        tls = TLSConfig(client_cert=(cert, key), ca_cert=ca, verify=True)
        client = docker.DockerClient(base_url=access.address, tls=tls, timeout=timeout, version=API_VERSION)
        # The engine's CA and nothing else: requests would otherwise let REQUESTS_CA_BUNDLE (set on
        # many CI machines) replace it, and every engine certificate would fail to verify.
        client.api.trust_env = False
        return client
    if access.address.startswith("ssh://"):
        # Made with the shell-out transport (which connects to nothing yet), then given ours.
        adapter = _ssh_adapter(access, timeout)
        client = docker.DockerClient(base_url=access.address, use_ssh_client=True, timeout=timeout, version=API_VERSION)
        client.api._custom_adapter = adapter
        client.api.mount("http+docker://ssh", adapter)
        return client
    return docker.DockerClient(base_url=access.address, timeout=timeout, version=API_VERSION)


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
        access: HostAccess | None = None,
    ) -> None:
        """``environment``: read ``DOCKER_HOST`` and docker's TLS variables from it (see :meth:`from_env`);
        ``access``: an environment's own host (see :mod:`cicd.images.hosts`)."""
        given = (access.address if access else host) or (environment or {}).get("DOCKER_HOST") or None
        self.where = access.where if access else given or "the local socket (/var/run/docker.sock)"
        advice = (
            f"check environments.{access.environment}.host and that its engine runs and lets this client in"
            if access
            else ""
        )
        address = given or LOCAL_SOCKET
        # An environment's host elsewhere: it can only pull what a registry holds (a DOCKER_HOST
        # of the deployer's own, where releases are built, is not "elsewhere").
        self.remote = access is not None and not address.startswith("unix://")
        socket_path = Path(address.removeprefix("unix://"))
        if address.startswith("unix://") and not socket_path.exists():
            # Said here, before a client exists: docker-py leaks the socket of a failed first call.
            raise EngineUnavailableError(self.where, f"no socket at {socket_path}", advice)
        try:
            if access is not None:
                client = _client(access, timeout)
            elif host is None and environment is not None:
                client = docker.from_env(environment=dict(environment), timeout=timeout)
            else:
                client = docker.DockerClient(base_url=address, timeout=timeout)
        except Exception as err:  # paramiko's and ssl's own errors too: the engine is not reachable
            raise EngineUnavailableError(self.where, _why(err, access), advice) from None
        try:
            client.ping()
        except Exception as err:
            client.close()
            raise EngineUnavailableError(self.where, _why(err, access), advice) from None
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
