"""A second, empty Docker engine beside the first: a fresh CI runner's engine, or another host.

``dockerd`` runs with its own data root, exec root, pid file and socket, no bridge and no
iptables (containers use the host network, as everywhere in these tests). It starts with no
images; :func:`copy_image` moves one in from another engine (``docker save | docker load``).
Needs root, as ``.ci/run`` has.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import requests
from docker.errors import APIError, DockerException, ImageNotFound

from cicd.errors import EngineUnavailableError
from cicd.images import Engine


@dataclass
class ExtraEngine:
    host: str  # unix:///run/…sock
    engine: Engine
    log: Path

    def clear_images(self, keep: set[str]) -> None:
        """Remove every image but those tagged in ``keep``, as a fresh hosted runner starts.

        A running container's image (a deployed environment) loses every tag and digest name: a
        later job finds nothing of it by name and must pull it from the registry by digest.
        """
        for image in self.engine.client.images.list():
            if keep & set(image.tags):
                continue
            try:
                self.engine.client.images.remove(image.id, force=True)
            except ImageNotFound:  # gone with an image removed before it
                pass
            except APIError:  # a running container's image cannot go: drop every name it has instead
                for ref in [*image.tags, *image.attrs.get("RepoDigests", [])]:
                    with suppress(ImageNotFound):
                        self.engine.client.images.remove(ref, force=True)


@contextmanager
def extra_engine(name: str, scratch: Path, listen: Sequence[str] = ()) -> Iterator[ExtraEngine]:
    """Start ``dockerd`` for ``name``; stop it and remove its data on exit. ``listen``: more
    ``dockerd`` arguments, such as a TLS-protected TCP address beside the socket."""
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        raise EngineUnavailableError(f"a second engine ({name})", "dockerd is not installed or this is not root")
    run = Path(f"/run/trainyard-{name}-{os.getpid()}")  # short: a unix socket path has ~100 bytes
    data = Path(f"/var/lib/trainyard-{name}-{os.getpid()}")  # beside /var/lib/docker: overlay2 works there
    run.mkdir(parents=True, exist_ok=True)
    host = f"unix://{run}/docker.sock"
    log = scratch / f"dockerd-{name}.log"
    cmd = [
        dockerd, "--data-root", str(data), "--exec-root", str(run / "exec"), "--pidfile", str(run / "docker.pid"),
        "-H", host, "--bridge=none", "--iptables=false", "--ip-masq=false", *listen,
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _answers(run / "docker.sock"):  # before a client exists: a failed one leaks its socket
            if proc.poll() is not None or time.monotonic() > deadline:
                raise EngineUnavailableError(host, f"dockerd did not start: {log.read_text()[-1500:]}")
            time.sleep(0.3)
        engine = Engine(host=host)
        try:
            yield ExtraEngine(host, engine, log)
        finally:
            with suppress(DockerException, requests.RequestException):  # a test may have stopped it already
                for container in engine.client.containers.list(all=True):
                    container.remove(force=True)
            engine.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(run, ignore_errors=True)
        subprocess.run(["rm", "-rf", "--one-file-system", str(data)], check=False)


def stop_engine(extra: ExtraEngine) -> None:
    """Stop the engine's ``dockerd`` (SIGTERM by its pid file) and wait until its socket is gone."""
    run = Path(extra.host.removeprefix("unix://")).parent
    os.kill(int((run / "docker.pid").read_text().strip()), signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _answers(run / "docker.sock"):
        if time.monotonic() > deadline:
            raise AssertionError(f"dockerd at {extra.host} did not stop")
        time.sleep(0.2)


def _answers(path: Path) -> bool:
    """The engine's socket accepts a connection and answers ``GET /_ping`` with 200."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in sock.recv(64)
        except OSError:
            return False


def copy_image(source: Engine, target: Engine, ref: str) -> None:
    """``docker save ref | docker load`` between two engines (the archive is held in memory)."""
    stream = source.client.images.get(ref).save(named=True)
    target.client.images.load(b"".join(stream))
