"""How the toolkit reaches an environment's own Docker engine: a unix socket, TLS over TCP, or SSH.

The spec names the engine (``environments.<name>.host``); what proves who we are comes only from
environment variables, each holding a file's path or the file's text itself (a CI secret, copied
to a file only this user can read for as long as the process runs), so nothing secret is in the
spec or the CI files. For environment ``staging`` (upper-cased, other characters ``_``):

- ``tcp://host:2376``: ``TRAINYARD_STAGING_TLS_CA``, ``…_TLS_CERT``, ``…_TLS_KEY``: the CA that
  signed the engine's certificate, and the client's certificate and key. The engine's certificate
  is always verified.
- ``ssh://user@host[:port]``: the key from the SSH agent (``SSH_AUTH_SOCK``) or the file
  ``TRAINYARD_STAGING_SSH_KEY`` names; the host's key must be in ``~/.ssh/known_hosts`` or the file
  ``TRAINYARD_STAGING_SSH_KNOWN_HOSTS`` names (unknown host keys are refused). The remote user's
  ``docker`` command must reach the engine (``docker system dial-stdio``, as the docker CLI does).
- ``$VARIABLE``: the address itself is read from that variable when deploying.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cicd.errors import HostAccessError
from cicd.writes import names_a_file, shown_path


def variable(environment: str, what: str) -> str:
    """``TRAINYARD_<ENVIRONMENT>_<WHAT>``: the variable that names one of an environment's files."""
    return f"TRAINYARD_{re.sub(r'[^A-Z0-9]', '_', environment.upper())}_{what}"


@dataclass(frozen=True)
class HostAccess:
    """An environment's engine address, resolved, with the files that open it."""

    environment: str
    address: str
    tls: tuple[str, str, str] | None = None  # CA, client certificate, client key
    ssh_key: str | None = None
    known_hosts: str | None = None

    @property
    def where(self) -> str:
        return f"{self.environment}'s host {self.address}"


_TEXT = ("-----BEGIN", "ssh-", "ecdsa-", "[", "|1|")  # how a key, a certificate or a known_hosts line starts


def _file(environ: Mapping[str, str], name: str, what: str, required: bool) -> str | None:
    """The path ``name`` gives, or, when it holds the file's text itself (a CI secret), a private
    copy of that text in a file only this user can read, removed when the process ends."""
    value = environ.get(name, "")
    if not value:
        if required:
            raise HostAccessError(f"{name} is not set; set it to {what} (its text, or the path of a file)")
        return None
    if "\n" in value.strip() or value.lstrip().startswith(_TEXT) or (" " in value.strip() and "/" not in value[:1]):
        return _private_copy(name, value)  # the text itself (a path never starts so, nor spans lines)
    if names_a_file(value):
        return value
    raise HostAccessError(
        f"{name} names {shown_path(value)}, which is not a file; set it to {what} (its text, or a file's path)"
    )


def _private_copy(name: str, text: str) -> str:
    folder = Path(tempfile.mkdtemp(prefix="trainyard-host-"))  # 0700
    atexit.register(shutil.rmtree, folder, True)
    path = folder / name.lower()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text.strip() + "\n")
    return str(path)


def host_access(environment: str, host: str, environ: Mapping[str, str]) -> HostAccess:
    """Resolve ``host`` (``$VAR`` read from ``environ``) and find the files it needs; refuse what is missing."""
    address = host
    if host.startswith("$"):
        name = host.strip("${}")
        address = environ.get(name, "")
        if not address:
            raise HostAccessError(
                f"environments.{environment}.host reads ${name}, which is not set; set it to the engine's address "
                "(ssh://user@host, tcp://host:2376 or unix:///path)"
            )
        if not re.fullmatch(r"(unix|ssh|tcp)://\S+", address):
            raise HostAccessError(f"${name} must be ssh://user@host, tcp://host:2376 or unix:///path, got {address!r}")
    if address.startswith("tcp://"):
        files = (
            _file(environ, variable(environment, "TLS_CA"), "the CA certificate that signed the engine's", True),
            _file(environ, variable(environment, "TLS_CERT"), "this client's certificate", True),
            _file(environ, variable(environment, "TLS_KEY"), "this client's private key", True),
        )
        return HostAccess(environment, address, tls=(str(files[0]), str(files[1]), str(files[2])))
    if address.startswith("ssh://"):
        return HostAccess(
            environment,
            address,
            ssh_key=_file(environ, variable(environment, "SSH_KEY"), "the SSH private key", False),
            known_hosts=_file(environ, variable(environment, "SSH_KNOWN_HOSTS"), "a known_hosts file", False),
        )
    return HostAccess(environment, address)


def secret_bytes(environ: Mapping[str, str], name: str, what: str) -> bytes:
    """What ``name`` holds (a file's path, or the text itself), as bytes; refused in one line if unset."""
    path = _file(environ, name, what, True)
    assert path is not None
    return Path(path).read_bytes()
