"""``engine.images``: inspect, build, tag and remove images."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tempfile
from collections import deque
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import IO, Any

from docker.errors import APIError, BuildError, DockerException, ImageNotFound

from cicd.cache import CACHE
from cicd.errors import BaseImageError, ContainerError, ImageBuildError
from cicd.images.base import LOG_TAIL, Part, reason
from cicd.images.containers import Containers
from cicd.images.context import ContextFile, write_context
from cicd.wheelhouse import Platform


@dataclass(frozen=True)
class BuildResult:
    image_id: str  # "" when the build was only planned (dry run)
    steps: int
    cached_steps: int
    log: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)  # the cacheable steps that ran again ("Step 3/9 : COPY ...")

    @property
    def built(self) -> bool:
        return bool(self.image_id)


class Images(Part):
    def __init__(self, client: Any, where: str, writes: Any, *, no_cache: bool = False) -> None:
        super().__init__(client, where, writes)
        self.no_cache = no_cache

    def exists(self, ref: str) -> bool:
        with self.translated(f"inspecting image {ref}"):
            try:
                self.client.images.get(ref)
            except ImageNotFound:
                return False
        return True

    def id(self, ref: str) -> str:
        with self.translated(f"image {ref}", "it does not exist"):
            return str(self.client.images.get(ref).id)

    def attrs(self, ref: str) -> dict[str, Any]:
        with self.translated(f"image {ref}", "it does not exist"):
            return dict(self.client.images.get(ref).attrs)

    def content_id(self, ref: str) -> str:
        """``sha256:`` of what the image holds and how it runs, its labels and parent aside: the
        layers and the rest of its config. A rebuild that changes only a label (the version a
        build image is stamped with after each release, say) keeps it; anything else changes it."""
        attrs = self.attrs(ref)
        config = {k: v for k, v in (attrs.get("Config") or {}).items() if k not in ("Labels", "Image", "Hostname")}
        layers = (attrs.get("RootFS") or {}).get("Layers") or []
        doc = {"layers": layers, "config": config, "os": attrs.get("Os"), "architecture": attrs.get("Architecture")}
        return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def runs_digest(self, image_id: str, digest: str) -> bool:
        """Whether the image ``image_id`` is the release ``digest``: its own id (a release that was
        never pushed), or a manifest digest the engine pulled it by. A container's labels are only
        what whoever made it wrote; this is the engine's own account."""
        if image_id == digest:
            return True
        if not self.exists(image_id):
            return False
        return any(str(d).endswith(f"@{digest}") for d in self.attrs(image_id).get("RepoDigests") or [])

    def history(self, ref: str) -> list[dict[str, Any]]:
        with self.translated(f"image {ref}", "it does not exist"):
            return list(self.client.images.get(ref).history())

    def ensure_base(self, ref: str) -> bool:
        """Use the base image if present, else try one pull; False when a dry run would have pulled."""
        if self.exists(ref):
            return True
        if not self.writes.allow(f"pull the base image {ref} (not present locally)"):
            return False
        try:
            self.client.images.pull(ref)
        except (APIError, DockerException, OSError) as err:
            raise BaseImageError(ref, reason(err)) from None
        return True

    def platform(self, image: str) -> Platform:
        """Ask the image's own Python for its version, machine and C library. The answer depends
        only on the image's content, so it is remembered per image id (``TRAINYARD_CACHE``)."""
        image_id = self.id(image)
        cached = CACHE / "platform" / f"{image_id.replace(':', '-')}.json"
        with suppress(OSError, ValueError, TypeError):
            return Platform(**json.loads(cached.read_text()))
        script = "import platform,sys;print('%d.%d'%sys.version_info[:2],platform.machine(),platform.libc_ver()[1])"
        code, output = Containers(self.client, self.where, self.writes).capture(image, ["python3", "-c", script])
        if code != 0:
            raise ContainerError(f"cannot run python3 in {image} (exit {code}): {output.strip()[-500:]}")
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
        """Build with the log streamed to ``stream`` (stderr) as it happens."""
        if not self.writes.allow(f"build {tag} from {dockerfile} ({len(files)} files)"):
            return BuildResult(image_id="", steps=0, cached_steps=0)
        out = stream or sys.stderr
        tail: deque[str] = deque(maxlen=LOG_TAIL)
        log: list[str] = []
        steps = cached = 0
        seen_from = False
        image_id = failure = current = ""
        rebuilt: list[str] = []
        with tempfile.TemporaryFile() as ctx, self.translated(f"building {tag}"):
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
                                    counted = word != "FROM" and seen_from
                                    steps += counted
                                    current = line if counted else ""
                                    if current:
                                        rebuilt.append(current)
                                elif "Using cache" in line:
                                    cached += 1
                                    if current and rebuilt and rebuilt[-1] == current:
                                        rebuilt.pop()
                    elif "error" in chunk:  # read on to the end: a stream left half-read leaks its socket
                        failure = failure or str(chunk["error"]).strip()
                    elif "aux" in chunk and "ID" in chunk["aux"]:
                        image_id = str(chunk["aux"]["ID"])
            except (BuildError, APIError) as err:
                raise ImageBuildError(tag, reason(err), list(tail)) from None
            if failure:
                raise ImageBuildError(tag, failure, list(tail))
        return BuildResult(image_id or self.id(tag), steps, cached, log, rebuilt)

    def tag(self, image: str, repository: str, tag: str) -> str:
        if self.writes.allow(f"tag {image[:19]} as {repository}:{tag}"):
            with self.translated(f"tagging {image} as {repository}:{tag}", f"no image {image}"):
                self.client.images.get(image).tag(repository, tag=tag)
        return f"{repository}:{tag}"

    def remove(self, ref: str) -> None:
        """Remove an image (and its tag); nothing when it does not exist."""
        if self.writes.allow(f"remove image {ref}"):
            with self.translated(f"removing image {ref}"), suppress(ImageNotFound):
                self.client.images.remove(ref, force=True)
