"""Images, containers and registries through the docker SDK: the only module that imports ``docker``.

Build contexts are sent through the API as tar streams and files move in and out of
containers with ``get_archive``, so a remote engine (``DOCKER_HOST``) works the same as a
local one: nothing is bind-mounted. Every docker exception is translated here into a
:mod:`cicd.errors` class.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import docker
import requests
from docker.errors import APIError, BuildError, DockerException, ImageNotFound, NotFound
from docker.utils.build import exclude_paths

from cicd.errors import (
    BaseImageError,
    ContainerError,
    EngineUnavailableError,
    ImageBuildError,
    RegistryError,
)

LOG_TAIL = 25


@dataclass(frozen=True)
class Platform:
    python: str  # "3.11"
    machine: str  # "x86_64"
    glibc: str  # "2.36"

    def pip_platforms(self) -> list[str]:
        """pip ``--platform`` values this interpreter accepts, newest manylinux first."""
        major, minor = (int(x) for x in self.glibc.split(".")[:2])
        tags = [f"manylinux_{major}_{m}_{self.machine}" for m in range(minor, 16, -1)]
        return [*tags, f"manylinux2014_{self.machine}", f"linux_{self.machine}"]

    def key(self) -> str:
        return f"cp{self.python.replace('.', '')}-{self.machine}-glibc{self.glibc}"


@dataclass
class ContextFile:
    """One entry of a build context: ``arcname`` inside the context, from ``path`` or ``data``."""

    arcname: str
    path: Path | None = None
    data: bytes | None = None


@dataclass
class BuildResult:
    image_id: str
    steps: int
    cached_steps: int
    log: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    exit_code: int
    log_tail: list[str]


def read_ignore(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def tree_files(root: Path, ignore_file: Path, prefix: str = "") -> list[ContextFile]:
    """Files under ``root`` that the ``.dockerignore``-style ``ignore_file`` lets through."""
    included = exclude_paths(str(root), read_ignore(ignore_file))
    files = []
    for rel in sorted(included):
        full = root / rel
        if full.is_file() and not full.is_symlink():
            files.append(ContextFile(f"{prefix}{rel}", path=full))
    return files


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Identical content must give identical tar entries, or the builder's COPY cache misses.
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if info.mode & 0o111 or info.isdir() else 0o644
    return info


def write_context(files: Iterable[ContextFile], fileobj: IO[bytes]) -> None:
    with tarfile.open(fileobj=fileobj, mode="w") as tar:
        for f in sorted(files, key=lambda f: f.arcname):
            if f.data is not None:
                info = _normalise(tarfile.TarInfo(f.arcname))
                info.size = len(f.data)
                tar.addfile(info, io.BytesIO(f.data))
            elif f.path is not None:
                info = _normalise(tar.gettarinfo(str(f.path), arcname=f.arcname))
                with f.path.open("rb") as fh:
                    tar.addfile(info, fh)


def mask(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class Engine:
    """A connection to one Docker engine (``DOCKER_HOST`` or the local socket)."""

    def __init__(self, timeout: int = 600, host: str | None = None) -> None:
        """``host``: the engine's address (``unix://``, ``tcp://``, ``ssh://``); default ``DOCKER_HOST``."""
        given = host or os.environ.get("DOCKER_HOST")
        self.where = given or "the local socket (/var/run/docker.sock)"
        # TRAINYARD_NO_CACHE=1: build every step again (a cold build; benchmarks use it).
        self.no_cache = os.environ.get("TRAINYARD_NO_CACHE", "") not in ("", "0")
        address = given or "unix:///var/run/docker.sock"
        socket_path = Path(address.removeprefix("unix://"))
        if address.startswith("unix://") and not socket_path.exists():
            # Said here, before a client exists: docker-py leaks the socket of a failed first call.
            raise EngineUnavailableError(self.where, f"no socket at {socket_path}")
        try:
            self.client = (
                docker.DockerClient(base_url=host, timeout=timeout) if host else docker.from_env(timeout=timeout)
            )
        except (DockerException, requests.RequestException) as err:
            raise EngineUnavailableError(self.where, _reason(err)) from None
        try:
            self.client.ping()
        except (DockerException, requests.RequestException) as err:
            self.client.close()
            raise EngineUnavailableError(self.where, _reason(err)) from None

    def close(self) -> None:
        """Close the connection (its sockets); the engine and its containers are untouched."""
        self.client.close()

    # --- images ----------------------------------------------------------------------------
    def has_image(self, ref: str) -> bool:
        try:
            self.client.images.get(ref)
            return True
        except ImageNotFound:
            return False
        except APIError as err:
            raise ContainerError(f"cannot inspect image {ref}: {_reason(err)}") from err

    def ensure_base_image(self, ref: str) -> None:
        """Use the base image if present, else try one pull; refuse with advice when neither works."""
        if self.has_image(ref):
            return
        print(f"base image {ref} is not present locally; pulling it", flush=True)
        try:
            self.client.images.pull(ref)
        except (APIError, DockerException, requests.RequestException) as err:
            raise BaseImageError(ref, _reason(err)) from None

    def image_id(self, ref: str) -> str:
        try:
            return str(self.client.images.get(ref).id)
        except ImageNotFound:
            raise ContainerError(f"image {ref} does not exist on {self.where}") from None

    def image_attrs(self, ref: str) -> dict[str, Any]:
        try:
            return dict(self.client.images.get(ref).attrs)
        except ImageNotFound:
            raise ContainerError(f"image {ref} does not exist on {self.where}") from None

    def image_history(self, ref: str) -> list[dict[str, Any]]:
        return list(self.client.images.get(ref).history())

    def platform(self, image: str) -> Platform:
        """Ask the image's own Python for its version, machine and C library. The answer depends
        only on the image's content, so it is remembered per image id (``TRAINYARD_CACHE``)."""
        from cicd.wheelhouse import DEFAULT_CACHE

        image_id = self.image_id(image)
        cached = DEFAULT_CACHE / "platform" / f"{image_id.replace(':', '-')}.json"
        with suppress(OSError, ValueError, TypeError):
            return Platform(**json.loads(cached.read_text()))
        script = "import platform,sys;print('%d.%d'%sys.version_info[:2],platform.machine(),platform.libc_ver()[1])"
        result, output = self._run_capture(image, ["python3", "-c", script])
        if result != 0:
            raise ContainerError(f"cannot run python3 in {image} (exit {result}): {output.strip()[-500:]}")
        python, machine, glibc = output.split()[-3:]
        found = Platform(python=python, machine=machine, glibc=glibc)
        with suppress(OSError):
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps({"python": python, "machine": machine, "glibc": glibc}))
        return found

    def build(
        self,
        files: Sequence[ContextFile],
        dockerfile: str,
        tag: str,
        *,
        buildargs: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        target: str | None = None,
        network: str = "none",
        stream: IO[str] | None = None,
    ) -> BuildResult:
        """Build with the log streamed to ``stream`` (stdout) as it happens."""
        out = stream or sys.stdout
        tail: deque[str] = deque(maxlen=LOG_TAIL)
        log: list[str] = []
        steps = cached = 0
        seen_from = False
        image_id = ""
        with tempfile.TemporaryFile() as ctx:
            write_context(files, ctx)
            ctx.seek(0)
            try:
                chunks = self.client.api.build(
                    fileobj=ctx,
                    custom_context=True,
                    dockerfile=dockerfile,
                    tag=tag,
                    buildargs=dict(buildargs or {}),
                    labels=dict(labels or {}),
                    target=target,
                    network_mode=network,
                    rm=True,
                    forcerm=True,
                    nocache=self.no_cache,
                    pull=False,
                    decode=True,
                )
                for chunk in chunks:
                    if "stream" in chunk:
                        text = str(chunk["stream"])
                        out.write(text)
                        out.flush()
                        for line in text.splitlines():
                            if line.strip():
                                tail.append(line)
                                log.append(line)
                                step = re.match(r"^Step \d+/\d+ : (\w+)", line)
                                if step:
                                    # FROM, and ARG before the first FROM, are not cacheable steps.
                                    word = step.group(1).upper()
                                    seen_from = seen_from or word == "FROM"
                                    steps += 0 if word == "FROM" or not seen_from else 1
                                elif "Using cache" in line:
                                    cached += 1
                    elif "error" in chunk:
                        raise ImageBuildError(tag, str(chunk["error"]).strip(), list(tail))
                    elif "aux" in chunk and "ID" in chunk["aux"]:
                        image_id = str(chunk["aux"]["ID"])
            except (BuildError, APIError) as err:
                raise ImageBuildError(tag, _reason(err), list(tail)) from None
            except requests.RequestException as err:
                raise EngineUnavailableError(self.where, _reason(err)) from None
        if not image_id:
            image_id = self.image_id(tag)
        return BuildResult(image_id=image_id, steps=steps, cached_steps=cached, log=log)

    def tag(self, image: str, repository: str, tag: str) -> str:
        try:
            self.client.images.get(image).tag(repository, tag=tag)
        except (ImageNotFound, APIError) as err:
            raise ContainerError(f"cannot tag {image} as {repository}:{tag}: {_reason(err)}") from None
        return f"{repository}:{tag}"

    def remove_image(self, ref: str) -> None:
        with suppress(NotFound, APIError):
            self.client.images.remove(ref, force=True)

    # --- registry ---------------------------------------------------------------------------
    def push(self, repository: str, tag: str, credentials: tuple[str, str] | None, *, dry_run: bool = False) -> str:
        """Push ``repository:tag``; return the pushed reference by digest (``repository@sha256:...``)."""
        if dry_run:
            print(f"[dry-run] would push {repository}:{tag} (credentials: {'set' if credentials else 'none'})")
            return f"{repository}@sha256:{'0' * 64}"
        auth = {"username": credentials[0], "password": credentials[1]} if credentials else None
        secrets = credentials or ()
        digest = ""
        try:
            for chunk in self.client.api.push(repository, tag=tag, auth_config=auth, stream=True, decode=True):
                if "error" in chunk:
                    raise RegistryError(
                        f"the registry refused {repository}:{tag}: {mask(str(chunk['error']), secrets)}; "
                        "check the registry URL and the TRAINYARD_REGISTRY_* credentials"
                    )
                status = chunk.get("status")
                if status and chunk.get("id") is None:
                    print(mask(str(status), secrets), flush=True)
                aux = chunk.get("aux") or {}
                if "Digest" in aux:
                    digest = str(aux["Digest"])
        except (APIError, DockerException, requests.RequestException) as err:
            raise RegistryError(
                f"pushing {repository}:{tag} failed: {mask(_reason(err), secrets)}; "
                "is the registry running and reachable?"
            ) from None
        if not digest:
            raise RegistryError(f"the registry did not return a digest for {repository}:{tag}")
        return f"{repository}@{digest}"

    def pull(self, reference: str, credentials: tuple[str, str] | None) -> str:
        """Pull an image by digest reference; return the local image id."""
        auth = {"username": credentials[0], "password": credentials[1]} if credentials else None
        try:
            image = self.client.images.pull(reference, auth_config=auth)
        except (APIError, DockerException, requests.RequestException) as err:
            raise RegistryError(
                f"cannot pull {reference}: {mask(_reason(err), credentials or ())}; "
                "is the registry running, and does it still hold that digest?"
            ) from None
        return str(image.id)

    def repo_digests(self, image: str) -> list[str]:
        return [str(d) for d in self.image_attrs(image).get("RepoDigests") or []]

    # --- containers -------------------------------------------------------------------------
    @contextmanager
    def _container(self, image: str, command: Sequence[str] | None, **kwargs: Any) -> Iterator[Any]:
        try:
            container = self.client.containers.create(image, command=list(command) if command else None, **kwargs)
        except ImageNotFound:
            raise ContainerError(f"image {image} does not exist on {self.where}") from None
        except APIError as err:
            raise ContainerError(f"cannot create a container from {image}: {_reason(err)}") from None
        try:
            yield container
        finally:  # always removed, Ctrl-C included
            with suppress(NotFound, APIError):
                container.remove(force=True)

    def _run_capture(self, image: str, command: Sequence[str]) -> tuple[int, str]:
        with self._container(image, command, network_mode="none") as container:
            container.start()
            code = int(container.wait(timeout=120).get("StatusCode", 1))
            return code, container.logs().decode(errors="replace")

    def run(
        self,
        image: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 1800,
        copy_out: Mapping[str, Path] | None = None,
        network: str = "none",
        user: str | None = None,
        stream: IO[str] | None = None,
    ) -> RunResult:
        """Run to completion with logs streamed; copy ``copy_out`` (container path → host dir) afterwards."""
        out = stream or sys.stdout
        tail: deque[str] = deque(maxlen=LOG_TAIL)
        with self._container(image, command, environment=dict(env or {}), network_mode=network, user=user) as c:
            try:
                c.start()
            except APIError as err:
                raise ContainerError(f"cannot start {' '.join(command)} in {image}: {_reason(err)}") from None

            def pump() -> None:
                buffer = ""
                for chunk in c.logs(stream=True, follow=True):
                    text = chunk.decode(errors="replace")
                    out.write(text)
                    out.flush()
                    buffer += text
                    *lines, buffer = buffer.split("\n")
                    tail.extend(line for line in lines if line.strip())
                if buffer.strip():
                    tail.append(buffer)

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            try:
                status = c.wait(timeout=timeout)
            except requests.RequestException:
                c.kill()
                raise ContainerError(
                    f"{' '.join(command)} in {image} did not finish within {timeout:.0f}s and was killed"
                ) from None
            reader.join(timeout=10)
            for src, dest in (copy_out or {}).items():
                self.copy_from(c, src, dest)
            return RunResult(exit_code=int(status.get("StatusCode", 1)), log_tail=list(tail))

    def run_with_files(
        self,
        image: str,
        command: Sequence[str],
        files: Mapping[str, Path],
        dest: str,
        *,
        timeout: float = 600,
        env: Mapping[str, str] | None = None,
        copy_out: Mapping[str, Path] | None = None,
    ) -> RunResult:
        """Like :meth:`run`, with ``files`` (name → host path) copied into ``dest`` before the start."""
        tail: deque[str] = deque(maxlen=LOG_TAIL)
        with self._container(image, command, environment=dict(env or {}), network_mode="none") as c:
            self.put_files(c, dest, files)
            c.start()
            try:
                status = c.wait(timeout=timeout)
            except requests.RequestException:
                c.kill()
                raise ContainerError(f"{' '.join(command)} in {image} timed out after {timeout:.0f}s") from None
            tail.extend(c.logs().decode(errors="replace").splitlines())
            for src, out in (copy_out or {}).items():
                self.copy_from(c, src, out)
            return RunResult(exit_code=int(status.get("StatusCode", 1)), log_tail=list(tail))

    def start_service(
        self, image: str, name: str, env: Mapping[str, str], *, labels: Mapping[str, str] | None = None
    ) -> str:
        """Start a long-running container on the host network (bind to 127.0.0.1 via its env); return its id."""
        try:
            container = self.client.containers.run(
                image, name=name, detach=True, network_mode="host", environment=dict(env), labels=dict(labels or {})
            )
        except ImageNotFound:
            raise ContainerError(f"image {image} does not exist on {self.where}") from None
        except APIError as err:
            raise ContainerError(f"cannot start {name} from {image}: {_reason(err)}") from None
        return str(container.id)

    def containers(self, labels: Mapping[str, str], *, all_states: bool = True) -> list[dict[str, Any]]:
        """Containers carrying every label in ``labels``: id, name, labels, running, created."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        try:
            found = self.client.containers.list(all=all_states, filters=filters)
        except APIError as err:
            raise ContainerError(f"cannot list containers: {_reason(err)}") from None
        return [
            {
                "id": c.id,
                "name": c.name,
                "labels": dict(c.labels),
                "running": c.status == "running",
                "created": c.attrs.get("Created", ""),
            }
            for c in found
        ]

    def start_existing(self, ref: str) -> None:
        try:
            self.client.containers.get(ref).start()
        except (NotFound, APIError) as err:
            raise ContainerError(f"cannot restart container {ref[:12]}: {_reason(err)}") from None

    def stop_only(self, ref: str, timeout: int = 10) -> None:
        """Stop but keep the container, so it can be started again if its successor fails."""
        try:
            self.client.containers.get(ref).stop(timeout=timeout)
        except (NotFound, APIError) as err:
            raise ContainerError(f"cannot stop container {ref[:12]}: {_reason(err)}") from None

    def remove(self, ref: str) -> None:
        with suppress(NotFound, APIError):
            self.client.containers.get(ref).remove(force=True)

    def container_state(self, ref: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.containers.get(ref).attrs.get("State") or {})
        except NotFound:
            return None

    def logs_tail(self, ref: str, lines: int = LOG_TAIL) -> list[str]:
        try:
            raw: bytes = self.client.containers.get(ref).logs(tail=lines)
            return raw.decode(errors="replace").splitlines()
        except NotFound:
            return []

    def stop(self, ref: str, timeout: int = 10) -> int | None:
        """Stop (SIGTERM, then SIGKILL after ``timeout``) and remove; return the exit code."""
        try:
            container = self.client.containers.get(ref)
        except NotFound:
            return None
        try:
            container.stop(timeout=timeout)
            code = container.wait(timeout=timeout + 5).get("StatusCode")
        finally:
            with suppress(NotFound, APIError):
                container.remove(force=True)
        return None if code is None else int(code)

    @staticmethod
    def copy_from(container: Any, src: str, dest: Path) -> bool:
        """Copy the contents of ``src`` (a folder) or the file ``src`` into ``dest``; False if absent."""
        try:
            stream, _ = container.get_archive(src)
        except NotFound:
            return False
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile() as buf, tempfile.TemporaryDirectory() as tmp:
            for chunk in stream:
                buf.write(chunk)
            buf.seek(0)
            with tarfile.open(fileobj=buf) as tar:
                extract_safely(tar, Path(tmp))
            top = Path(tmp) / Path(src).name
            entries = list(top.iterdir()) if top.is_dir() else [top]
            for entry in entries:
                target = dest / entry.name
                if target.is_dir():
                    shutil.rmtree(target)
                shutil.move(str(entry), target)
        return True

    def put_files(self, container: Any, dest: str, files: Mapping[str, Path]) -> None:
        """Copy host files into a new folder ``dest`` of the (created, not started) container.

        The folder is world-writable so a non-root image user can write its outputs beside them.
        """
        parent, name = str(Path(dest).parent), Path(dest).name
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            folder = _normalise(tarfile.TarInfo(name))
            folder.type, folder.mode = tarfile.DIRTYPE, 0o1777
            tar.addfile(folder)
            for arcname, path in sorted(files.items()):
                info = _normalise(tar.gettarinfo(str(path), arcname=f"{name}/{arcname}"))
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
        try:
            container.put_archive(parent, buf.getvalue())
        except APIError as err:
            raise ContainerError(f"cannot copy files into the container at {dest}: {_reason(err)}") from None


def extract_safely(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract an archive from a container without letting it write outside ``dest``.

    Python 3.11.4 added ``filter="data"``; Debian 12 ships 3.11.2, so the same rules (no absolute
    or ``..`` paths, no links leaving ``dest``, no devices) are checked here when it is missing.
    """
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    root = dest.resolve()
    members = tar.getmembers()
    for member in members:
        target = (root / member.name).resolve()
        link = (target.parent / member.linkname).resolve() if member.issym() else (root / member.linkname).resolve()
        unsafe = (
            Path(member.name).is_absolute()
            or not target.is_relative_to(root)
            or member.isdev()
            or ((member.issym() or member.islnk()) and not link.is_relative_to(root))
        )
        if unsafe:
            raise ContainerError(f"refused to extract {member.name!r} from a container archive: it leaves {dest}")
    tar.extractall(dest, members=members)  # noqa: S202  # nosec B202 - every member was checked above


def _reason(err: BaseException) -> str:
    if isinstance(err, APIError) and err.explanation:
        return str(err.explanation)
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__
