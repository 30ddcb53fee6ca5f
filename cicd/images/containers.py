"""``engine.containers``: run to completion (with files in and out), long-running services, list, stop."""

from __future__ import annotations

import io
import re
import shutil
import sys
import tarfile
import tempfile
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import requests
from docker.errors import APIError, NotFound
from docker.utils.socket import frames_iter

from cicd.errors import ContainerError
from cicd.images.base import LOG_TAIL, Part
from cicd.images.context import extract_safely, normalise


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    log_tail: list[str] = field(default_factory=list)
    ran: bool = True  # False: a dry run only said what it would run


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    labels: dict[str, str]
    running: bool
    created: str = ""
    image: str = ""  # the image's id


def _named_volumes(volumes: Mapping[str, str] | None, mode: str) -> dict[str, dict[str, str]]:
    """Docker's volume mounts for named volumes (name → where); host paths are refused, since the
    engine may be remote and the host's files are never a container's business."""
    for volume in volumes or {}:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", volume):
            raise ValueError(f"{volume!r} is not a volume name (host paths are never mounted)")
    return {name: {"bind": path, "mode": mode} for name, path in (volumes or {}).items()}


class Containers(Part):
    @contextmanager
    def _created(self, image: str, command: Sequence[str] | None, **kwargs: Any) -> Iterator[Any]:
        with self.translated(f"creating a container from {image}", f"image {image} does not exist"):
            container = self.client.containers.create(image, command=list(command) if command else None, **kwargs)
        try:
            yield container
        finally:  # always removed, Ctrl-C included
            with suppress(NotFound, APIError, requests.RequestException):
                container.remove(force=True)

    def capture(self, image: str, command: Sequence[str], timeout: float = 120) -> tuple[int, str]:
        """Run a short read-only command (network off) and return its exit code and output."""
        with self._created(image, command, network_mode="none") as c, self.translated(f"running {command[0]}"):
            c.start()
            code = int(c.wait(timeout=timeout).get("StatusCode", 1))
            return code, c.logs().decode(errors="replace")

    def run(
        self,
        image: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 1800,
        files: Mapping[str, Path] | None = None,
        files_dest: str = "/tmp/in",  # noqa: S108  # nosec B108 - a path inside the container
        copy_out: Mapping[str, Path] | None = None,
        network: str = "none",
        user: str | None = None,
        stream: IO[str] | None = None,
        volumes: Mapping[str, str] | None = None,
        reads_only: bool = False,
    ) -> RunResult:
        """Run to completion with logs streamed to ``stream`` (stderr): ``files`` (name → host path)
        are copied into ``files_dest`` first, ``copy_out`` (container path → host dir) afterwards.
        ``volumes``: named volumes → where they are mounted, read-only. ``reads_only``: the command
        changes nothing outside its own throwaway container, so it runs in a dry run too."""
        mounts = _named_volumes(volumes, "ro")
        shown = " ".join(command)
        if not reads_only and not self.writes.allow(f"run `{shown[:200]}` in {image}"):
            return RunResult(exit_code=0, ran=False)
        out = stream or sys.stderr
        tail: deque[str] = deque(maxlen=LOG_TAIL)
        with self._created(
            image, command, environment=dict(env or {}), network_mode=network, user=user, volumes=mounts
        ) as c:
            if files:
                self._put_files(c, files_dest, files)
            with self.translated(f"starting `{shown}` in {image}"):
                c.start()

            def pump() -> None:
                buffer = ""
                with suppress(requests.RequestException, APIError):
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
                with suppress(APIError, requests.RequestException):
                    c.kill()
                raise ContainerError(
                    f"`{shown}` in {image} did not finish within {timeout:.0f}s and was killed"
                ) from None
            reader.join(timeout=10)
            for src, dest in (copy_out or {}).items():
                self._copy_from(c, src, dest)
            return RunResult(exit_code=int(status.get("StatusCode", 1)), log_tail=list(tail))

    def start_service(
        self,
        image: str,
        name: str,
        env: Mapping[str, str],
        *,
        labels: Mapping[str, str] | None = None,
        memory: str = "1g",
        pids: int = 256,
        volumes: Mapping[str, str] | None = None,
    ) -> str:
        """Start a long-running container on the host network (it binds 127.0.0.1 via its env); its id.

        Least privilege: no capabilities, no privilege gain, a read-only root filesystem with a
        small tmpfs ``/tmp``, and memory and process limits. ``volumes``: named volumes (never host
        paths: the engine may be remote) → where they are mounted, writable.
        """
        mounts = _named_volumes(volumes, "rw")
        if not self.writes.allow(f"start the service {name} from {image}"):
            return ""
        with self.translated(f"starting {name} from {image}", f"image {image} does not exist"):
            container = self.client.containers.run(
                image,
                name=name,
                detach=True,
                network_mode="host",
                environment=dict(env),
                labels=dict(labels or {}),
                read_only=True,
                tmpfs={"/tmp": "rw,nosuid,nodev,size=64m"},  # noqa: S108  # nosec B108 - inside the container
                cap_drop=["ALL"],
                security_opt=["no-new-privileges:true"],
                mem_limit=memory,
                pids_limit=pids,
                volumes=mounts,
            )
        return str(container.id)

    def start_proxy(
        self,
        image: str,
        name: str,
        command: Sequence[str],
        labels: Mapping[str, str],
        volumes: Mapping[str, str],
        files: Mapping[str, bytes] | None = None,
    ) -> str:
        """Start a reverse proxy on the host network (its config binds the public address); its id.

        Read-only root with a tmpfs ``/tmp`` (its pid and buffers live there) and ``volumes``
        (named, writable: its config, which outlives the container); of root's
        capabilities it keeps only those a proxy's master needs to bind a low port and hand work to
        unprivileged workers. Once it serves, :meth:`keep_running` makes it outlive a reboot.
        ``files``: absolute path → content (0600), written before it starts (into a volume).
        """
        if not self.writes.allow(f"start the proxy {name} from {image}"):
            return ""
        with self.translated(f"starting the proxy {name} from {image}", f"image {image} does not exist"):
            container = self.client.containers.create(
                image,
                entrypoint=list(command[:1]),
                command=list(command[1:]),
                name=name,
                detach=True,
                network_mode="host",
                labels=dict(labels),
                read_only=True,
                tmpfs={"/tmp": "rw,nosuid,nodev,size=64m"},  # noqa: S108  # nosec B108 - inside the container
                cap_drop=["ALL"],
                cap_add=["NET_BIND_SERVICE", "SETUID", "SETGID", "CHOWN", "DAC_OVERRIDE"],
                security_opt=["no-new-privileges:true"],
                mem_limit="256m",
                pids_limit=64,
                volumes=_named_volumes(volumes, "rw"),
            )
            for path, data in (files or {}).items():
                self.put_file(container.id, path, data, mode=0o600)
            container.start()
        return str(container.id)

    def keep_running(self, ref: str) -> None:
        """The engine starts the container again after a crash or a reboot, unless it is stopped.

        Set only once a container has proven itself: one that crashes at start must stay down
        and say why, not restart in a loop."""
        if self.writes.allow(f"restart container {ref[:12]} with the engine"):
            with self.translated(f"setting the restart policy of {ref[:12]}", "no such container"):
                self.client.api.update_container(ref, restart_policy={"Name": "unless-stopped"})

    def claim(self, image: str, name: str, labels: Mapping[str, str]) -> str | None:
        """Create (never start) a container called ``name``: its id, or None when one by that name
        exists. The engine makes the name unique, so this is an atomic claim on the host."""
        if not self.writes.allow(f"create the lock container {name}"):
            return ""
        with self.translated(f"creating {name}", f"image {image} does not exist"):
            try:
                container = self.client.containers.create(
                    image, command=["true"], name=name, labels=dict(labels), network_mode="none"
                )
            except APIError as err:
                if err.status_code == 409:
                    return None
                raise
        return str(container.id)

    def put_file(self, ref: str, path: str, data: bytes, *, mode: int = 0o644) -> None:
        """Write ``data`` to the file ``path`` in the container (running or not; a read-only root
        takes it only in a volume)."""
        parent, name = str(Path(path).parent), Path(path).name
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = normalise(tarfile.TarInfo(name))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        with self.translated(f"writing {path} in container {ref[:12]}", "no such container"):
            self.client.containers.get(ref).put_archive(parent, buf.getvalue())

    def read_file(self, ref: str, path: str) -> bytes | None:
        """The file ``path`` of the container, or None when the container or the file is gone."""
        with self.translated(f"reading {path} in container {ref[:12]}"):
            try:
                stream, _ = self.client.containers.get(ref).get_archive(path)
            except NotFound:
                return None
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                member = tar.extractfile(Path(path).name)
                return member.read() if member else None

    def execute(self, ref: str, command: Sequence[str], *, reads_only: bool = False) -> tuple[int, str]:
        """Run ``command`` inside the running container ``ref``: its exit code and output.

        ``reads_only``: the command changes nothing (a health probe), so a dry run runs it too.
        """
        if not reads_only and not self.writes.allow(f"run {command[0]} in container {ref[:12]}"):
            return 0, ""
        api = self.client.api
        with self.translated(f"running {command[0]} in container {ref[:12]}", "no such container"):
            try:
                exec_id = api.exec_create(ref, list(command), stdout=True, stderr=True)["Id"]
            except APIError as err:
                if err.status_code == 409:  # not running (stopped, restarting): the command did not run
                    return 126, str(err.explanation or err)
                raise
            # The hijacked connection is closed here, not left to the garbage collector: over SSH
            # each one is a session, and sshd allows ten at a time (MaxSessions).
            sock = api.exec_start(exec_id, socket=True)
            try:
                output = b"".join(data for _, data in frames_iter(sock, tty=False))
            finally:
                response = getattr(sock, "_response", None)
                for part in (response, sock):  # the response first: it flushes through the socket
                    if part is not None:
                        with suppress(OSError, ValueError):
                            part.close()
            code = api.exec_inspect(exec_id).get("ExitCode")
        return int(code if code is not None else 1), output.decode(errors="replace")

    def find(self, labels: Mapping[str, str], *, all_states: bool = True) -> list[Container]:
        """Containers carrying every label in ``labels``."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        with self.translated("listing containers"):
            # The list alone, no inspect of each: a container removed between the two (another
            # deploy's lock, released) would otherwise fail the whole listing.
            found = self.client.api.containers(all=all_states, filters=filters)
        return [
            Container(
                id=str(c["Id"]),
                name=str((c.get("Names") or [""])[0]).lstrip("/"),
                labels=dict(c.get("Labels") or {}),
                running=c.get("State") == "running",
                created=datetime.fromtimestamp(int(c.get("Created") or 0), UTC).isoformat(),
                image=str(c.get("ImageID", "")),  # the image's id
            )
            for c in found
        ]

    def start(self, ref: str) -> None:
        """Start a stopped container again."""
        if self.writes.allow(f"start container {ref[:12]}"):
            with self.translated(f"restarting container {ref[:12]}", "it does not exist"):
                self.client.containers.get(ref).start()

    def stop(self, ref: str, timeout: int = 10, *, keep: bool = False) -> int | None:
        """Stop (SIGTERM, then SIGKILL after ``timeout``); remove it unless ``keep``. The exit code, or
        None when there was no such container."""
        if not self.writes.allow(f"stop {'' if keep else 'and remove '}container {ref[:12]}"):
            return None
        with self.translated(f"stopping container {ref[:12]}"):
            try:
                container = self.client.containers.get(ref)
            except NotFound:
                return None
            try:
                container.stop(timeout=timeout)
                code = container.wait(timeout=timeout + 5).get("StatusCode")
            finally:
                if not keep:
                    with suppress(NotFound, APIError):
                        container.remove(force=True)
        return None if code is None else int(code)

    def remove(self, ref: str) -> None:
        """Remove a container, running or not; nothing when it does not exist."""
        if self.writes.allow(f"remove container {ref[:12]}"):
            with self.translated(f"removing container {ref[:12]}"), suppress(NotFound):
                self.client.containers.get(ref).remove(force=True)

    def remove_volume(self, name: str) -> None:
        """Remove a named volume and what it holds; nothing when it does not exist."""
        if self.writes.allow(f"remove volume {name}"):
            with self.translated(f"removing volume {name}"), suppress(NotFound):
                self.client.volumes.get(name).remove(force=True)

    def state(self, ref: str) -> dict[str, Any]:
        """Docker's ``State`` of the container (``Running``, ``Health``...); empty when it does not exist."""
        with self.translated(f"inspecting container {ref[:12]}"):
            try:
                return dict(self.client.containers.get(ref).attrs.get("State") or {})
            except NotFound:
                return {}

    def running(self, ref: str) -> bool:
        return bool(self.state(ref).get("Running"))

    def copy_out(self, ref: str, src: str, dest: Path) -> bool:
        """Copy ``src`` (a folder's contents, or a file) out of a container into ``dest``; False if absent."""
        with self.translated(f"copying {src} out of {ref[:12]}", "no such container"):
            container = self.client.containers.get(ref)
        return self._copy_from(container, src, dest)

    def logs_tail(self, ref: str, lines: int = LOG_TAIL) -> list[str]:
        with self.translated(f"reading the log of {ref[:12]}"):
            try:
                raw: bytes = self.client.containers.get(ref).logs(tail=lines)
            except NotFound:
                return []
        return raw.decode(errors="replace").splitlines()

    def _copy_from(self, container: Any, src: str, dest: Path) -> bool:
        """Copy the contents of ``src`` (a folder) or the file ``src`` into ``dest``; False if absent."""
        with self.translated(f"copying {src} out of the container"):
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

    def _put_files(self, container: Any, dest: str, files: Mapping[str, Path]) -> None:
        """Copy host files into a new folder ``dest`` of the (created, not started) container.

        The folder is world-writable so a non-root image user can write its outputs beside them.
        """
        parent, name = str(Path(dest).parent), Path(dest).name
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            folder = normalise(tarfile.TarInfo(name))
            folder.type, folder.mode = tarfile.DIRTYPE, 0o1777
            tar.addfile(folder)
            for arcname, path in sorted(files.items()):
                info = normalise(tar.gettarinfo(str(path), arcname=f"{name}/{arcname}"))
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
        with self.translated(f"copying files into the container at {dest}"):
            container.put_archive(parent, buf.getvalue())
