"""Other machines' Docker engines, on this one: one behind TLS over TCP, one behind SSH.

Each is an :func:`~tests.integration.engines.extra_engine` (its own data, exec root and
socket). The TLS one also listens on ``tcp://127.0.0.1:PORT`` with ``--tlsverify`` and
certificates from a CA made here; the SSH one is reached through Debian's ``sshd`` on
127.0.0.1, whose sessions get ``DOCKER_HOST`` pointing at its socket (``SetEnv``), so that
``docker system dial-stdio`` reaches it as it would on a real host. Needs root, as ``.ci/run`` has.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cicd.errors import EngineUnavailableError
from cicd.http import free_port
from tests.integration.engines import ExtraEngine, extra_engine


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A CA of its own: its certificate and key."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-subj", f"/CN={name}", "-keyout", f"{name}-key.pem", "-out", f"{name}.pem", cwd=folder)  # fmt: skip
    return folder / f"{name}.pem", folder / f"{name}-key.pem"


def sign(folder: Path, ca: tuple[Path, Path], name: str, usage: str) -> Certificates:
    """A certificate for 127.0.0.1 (``usage``: serverAuth or clientAuth) signed by ``ca``."""
    ext = folder / f"{name}.ext"
    ext.write_text(f"subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", cwd=folder)  # fmt: skip
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-days", "2", "-extfile", str(ext), "-out", f"{name}.pem", cwd=folder)  # fmt: skip
    return Certificates(ca[0], folder / f"{name}.pem", folder / f"{name}-key.pem")


@dataclass(frozen=True)
class TLSHost:
    extra: ExtraEngine
    address: str  # tcp://127.0.0.1:PORT
    client: Certificates  # signed by the engine's CA
    stranger: Certificates  # a client certificate from another CA: refused


@contextmanager
def tls_host(name: str, scratch: Path) -> Iterator[TLSHost]:
    folder = scratch / f"{name}-tls"
    ca = make_ca(folder, "ca")
    server = sign(folder, ca, "server", "serverAuth")
    client = sign(folder, ca, "client", "clientAuth")
    stranger = sign(folder, make_ca(folder, "other-ca"), "stranger", "clientAuth")
    port = free_port()
    listen = ["-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(server.ca),
              "--tlscert", str(server.cert), "--tlskey", str(server.key)]  # fmt: skip
    with extra_engine(name, scratch, listen) as extra:
        yield TLSHost(extra, f"tcp://127.0.0.1:{port}", client, Certificates(server.ca, stranger.cert, stranger.key))


@dataclass(frozen=True)
class SSHHost:
    extra: ExtraEngine
    address: str  # ssh://root@127.0.0.1:PORT
    key: Path  # the deployer's private key (authorised on the host)
    known_hosts: Path  # the host's key, as CI's secret would hold it
    strangers: Path  # a known_hosts file without the host's key


@contextmanager
def ssh_host(name: str, scratch: Path) -> Iterator[SSHHost]:
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists():
        raise EngineUnavailableError(f"an SSH host ({name})", "sshd is not installed (apt-get install openssh-server)")
    folder = scratch / f"{name}-ssh"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    for key in ("host_key", "client_key", "other_host_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key, "-f", str(folder / key)], check=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    port = free_port()
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    with extra_engine(name, scratch) as extra:
        config = folder / "sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\nPidFile {folder / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            f"SetEnv DOCKER_HOST={extra.host}\n"
        )
        log = folder / "sshd.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while "Server listening" not in log.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise EngineUnavailableError(f"sshd for {name}", log.read_text()[-1000:])
                time.sleep(0.1)
            host_key = (folder / "host_key.pub").read_text().split()
            (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
            other = (folder / "other_host_key.pub").read_text().split()
            (folder / "strangers").write_text(f"[127.0.0.2]:{port} {other[0]} {other[1]}\n")
            yield SSHHost(extra, f"ssh://root@127.0.0.1:{port}", folder / "client_key", folder / "known_hosts",
                          folder / "strangers")  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(timeout=10)
