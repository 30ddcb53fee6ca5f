"""Fakes at the git and Docker boundaries, for unit tests of the orchestration (no git, no engine).

:class:`FakeRepo` keeps refs and annotated tags in dictionaries and honours the same
:class:`~cicd.writes.Writes` gate as :class:`cicd.gitops.Repo`; :class:`FakeEngine` keeps
containers in a dictionary. Both record every write in order, so a test asserts what happened.
Real tests of the same boundaries are in ``tests/integration``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from cicd.config import PipelineConfig, load_config
from cicd.context import Context
from cicd.errors import ContainerError, DirtyTreeError, GitError, PushError
from cicd.gitops import Repo, TagInfo
from cicd.http import free_port
from cicd.images import Container, Engine
from cicd.images.containers import RunResult
from cicd.writes import Writes

ROOT = Path(__file__).resolve().parents[3]


class FakeRepo:
    """Just enough of :class:`cicd.gitops.Repo` for the stages: one branch head, tags, notes."""

    def __init__(self, writes: Writes, head: str = "c" * 40, branch: str = "main") -> None:
        self.forged: set[str] = set()
        self.writes = writes
        self._head, self._branch = head, branch
        self.tags_: dict[str, TagInfo] = {}
        self.heads: dict[str, str] = {"main": head, "develop": "d" * 40}
        self.remote_tags: dict[str, TagInfo] = {}
        self.dirty: list[str] = []
        self.refuse_push = False
        self.log: list[str] = []

    # reading
    def head(self) -> str:
        return self._head

    def tree(self, rev: str = "HEAD") -> str:
        return "t" * 40

    def commit_time(self, rev: str = "HEAD") -> int:
        return 1_700_000_000

    def branch(self, env: Mapping[str, str]) -> str:
        return self._branch

    def dirty_paths(self) -> list[str]:
        return list(self.dirty)

    def ensure_clean(self) -> None:
        if self.dirty:
            raise DirtyTreeError(self.dirty)

    def tags(self) -> list[str]:
        return list(self.tags_)

    def tag(self, name: str) -> TagInfo | None:
        return self.tags_.get(name)

    def tag_infos(self) -> list[TagInfo]:
        return list(self.tags_.values())

    def verified(self, names: Sequence[str]) -> set[str]:
        """Every tag verifies, except those a test names in ``forged``."""
        return {n for n in names if n not in self.forged}

    def tag_object(self, name: str) -> str | None:
        return f"obj-{name}-{self.tags_[name].commit}" if name in self.tags_ else None

    def messages_since(self, tag: str | None, rev: str = "HEAD") -> list[str]:
        return ["feat: something"]

    def branches(self) -> list[str]:
        return list(self.heads)

    def is_ancestor(self, commit: str, rev: str = "HEAD") -> bool:
        return commit == self._head

    def rev(self, name: str) -> str:
        if name in ("HEAD", self._head):
            return self._head
        if name in self.heads:
            return self.heads[name]
        if name in self.heads.values():
            return name
        raise GitError(f"no branch, tag or commit named {name!r}")

    def has_remote(self, name: str = "origin") -> bool:
        return True

    def remote_url(self, name: str = "origin") -> str | None:
        return "file:///origin.git"

    def can_sign(self) -> bool:
        return True

    def check_can_sign(self) -> None:
        return None

    # writing, through the gate like the real one
    def create_tag(self, name: str, message: str, rev: str = "HEAD", *, force: bool = False) -> None:
        if not force and name in self.tags_:
            raise GitError(f"tag {name!r} already exists")
        commit = self._head if rev == "HEAD" else rev
        if self.writes.allow(f"tag {commit[:12]} as {name}"):
            self.tags_[name] = TagInfo(name, commit, message)
            self.log.append(f"tag {name}")

    def delete_tag(self, name: str) -> None:
        if name in self.tags_ and self.writes.allow(f"delete tag {name}"):
            del self.tags_[name]
            self.log.append(f"delete {name}")

    def push(self, refspecs: Sequence[str], remote: str = "origin", *, extra: Sequence[str] = ()) -> None:
        if not self.writes.allow(f"push {' '.join(refspecs)} to {remote} atomically"):
            return
        if self.refuse_push:
            raise PushError(f"pushing {', '.join(refspecs)} to {remote} was refused, nothing was pushed")
        for spec in refspecs:
            name = spec.lstrip("+").removeprefix("refs/tags/")
            if name in self.tags_:
                self.remote_tags[name] = self.tags_[name]
        self.log.append(f"push {' '.join(refspecs)} {' '.join(extra)}".strip())

    def merge(self, source: str, target: str, *, remote: str | None = "origin") -> str:
        self.ensure_clean()
        self.rev(source)
        if not self.writes.allow(f"merge {source} into {target}"):
            return self._head
        merged = f"m{len(self.log):039d}"
        self.heads[target] = merged
        self.log.append(f"merge {source} -> {target}")
        return merged

    def close(self) -> None:
        pass


@dataclass
class FakeContainer:
    id: str
    image: str
    labels: dict[str, str]
    running: bool = True
    port: int = 0


def _colour(conf: str) -> str:
    match = re.search(r"colour=(\w+)", conf)
    return match.group(1) if match else "?"


@dataclass
class FakeContainers:
    writes: Writes
    items: dict[str, FakeContainer] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    ids: Any = field(default_factory=lambda: itertools.count(1))
    limits: dict[str, tuple[str, int]] = field(default_factory=dict)
    runs: list[list[str]] = field(default_factory=list)  # the commands run to completion
    exit_code: int = 0  # what the next ones exit with
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (container, path) → content
    confs: dict[str, str] = field(default_factory=dict)  # proxy container → its nginx config
    unhealthy: set[str] = field(default_factory=set)  # images whose service never answers inside the host

    # the JUnit report a test command writes (the counts of a passing run), copied out as the real one is
    junit: str = '<testsuites><testsuite tests="3" failures="0" errors="0" skipped="0"/></testsuites>'

    def run(self, image: str, command: Sequence[str], **kwargs: Any) -> RunResult:
        if not self.writes.allow(f"run `{' '.join(command)[:200]}` in {image}"):
            return RunResult(exit_code=0, ran=False)
        self.runs.append([image, *command])
        for inside, outside in (kwargs.get("copy_out") or {}).items():
            report = next((a.split("=", 1)[1] for a in command if a.startswith("--junitxml=")), "")
            if report.startswith(f"{inside}/"):
                target = Path(outside) / report.removeprefix(f"{inside}/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(self.junit)
        return RunResult(exit_code=self.exit_code)

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
        self.volumes, self.env = dict(volumes or {}), dict(env)  # what the newest service got
        if not self.writes.allow(f"start the service {name} from {image}"):
            return ""
        cid = f"c{next(self.ids)}"
        self.items[cid] = FakeContainer(cid, image, dict(labels or {}), port=int(env["SERVICE_PORT"]))
        self.limits[cid] = (memory, pids)
        self.log.append(f"start {cid} {image} :{env['SERVICE_PORT']} {(labels or {}).get('io.trainyard.role')}")
        return cid

    def find(self, labels: Mapping[str, str], *, all_states: bool = True) -> list[Container]:
        return [
            Container(c.id, c.labels.get("io.trainyard.name", c.id), dict(c.labels), c.running, image=c.image)
            for c in self.items.values()
            if all(c.labels.get(k) == v for k, v in labels.items()) and (all_states or c.running)
        ]

    def stop(self, ref: str, timeout: int = 10, *, keep: bool = False) -> int | None:
        if ref not in self.items:
            return None
        self.items[ref].running = False
        self.log.append(f"stop {ref}" + (" (kept)" if keep else ""))
        if not keep:
            del self.items[ref]
        return 0

    def start(self, ref: str) -> None:
        if ref not in self.items:
            raise ContainerError(f"cannot restart container {ref}")
        self.items[ref].running = True
        self.log.append(f"restart {ref}")

    def remove(self, ref: str) -> None:
        removed = self.items.pop(ref, None)
        if removed is not None and removed.labels.get("io.trainyard.role") != "lock":
            self.log.append(f"remove {ref}")

    def remove_volume(self, name: str) -> None:
        if self.writes.allow(f"remove volume {name}"):
            self.log.append(f"remove volume {name}")

    def running(self, ref: str) -> bool:
        return ref in self.items and self.items[ref].running

    def start_proxy(
        self,
        image: str,
        name: str,
        command: Sequence[str],
        labels: Mapping[str, str],
        volumes: Mapping[str, str],
        files: Mapping[str, bytes] | None = None,
    ) -> str:
        """A proxy whose config (the command's argument, as the real one writes it) names its colour."""
        if not self.writes.allow(f"start the proxy {name} from {image}"):
            return ""
        cid = f"c{next(self.ids)}"
        self.items[cid] = FakeContainer(cid, image, dict(labels), port=int(labels["io.trainyard.port"]))
        self.confs[cid] = command[4]
        self.log.append(f"proxy {cid} → {_colour(command[4])}")
        return cid

    def execute(self, ref: str, command: Sequence[str], *, reads_only: bool = False) -> tuple[int, str]:
        """What the target runs in containers: read or reload the proxy's config, probe a service."""
        if command[0] == "cat":
            return 0, self.confs.get(ref, "")
        if command[0] == "sh" and "reload" in command[2]:
            self.confs[ref] = command[4]
            self.log.append(f"switch {ref} → {_colour(command[4])}")
            return 0, ""
        if command[0] == "python":  # a service's health probe, from inside its container
            item = self.items.get(ref)
            return (0 if item and item.running and item.image not in self.unhealthy else 1), ""
        return 0, ""  # the proxy's process list (no old workers), its pid file

    def keep_running(self, ref: str) -> None:
        if ref in self.items:
            self.items[ref].labels["restart"] = "unless-stopped"

    def claim(self, image: str, name: str, labels: Mapping[str, str]) -> str | None:
        if not self.writes.allow(f"create the lock container {name}"):
            return ""
        if any(c.labels.get("io.trainyard.name") == name for c in self.items.values()):
            return None
        cid = f"c{next(self.ids)}"
        self.items[cid] = FakeContainer(cid, image, {**labels, "io.trainyard.name": name}, running=False)
        return cid  # not logged: the tests' logs are the service's steps

    def put_file(self, ref: str, path: str, data: bytes, *, mode: int = 0o644) -> None:
        self.files[(ref, path)] = data

    def read_file(self, ref: str, path: str) -> bytes | None:
        return self.files.get((ref, path))

    def logs_tail(self, ref: str, lines: int = 25) -> list[str]:
        return [f"log of {ref}"]


@dataclass
class FakeImages:
    present: set[str] = field(default_factory=set)

    def exists(self, ref: str) -> bool:
        return ref in self.present

    def content_id(self, ref: str) -> str:
        return "sha256:content-of-" + ref

    def runs_digest(self, image_id: str, digest: str) -> bool:
        return image_id == digest  # the fake registry's pull gives an image the digest's id


@dataclass
class FakeRegistry:
    writes: Writes
    pulled: list[str] = field(default_factory=list)

    def pull(self, reference: str, credentials: tuple[str, str] | None) -> str:
        if not self.writes.allow(f"pull {reference}"):
            return reference
        self.pulled.append(reference)
        return "sha256:" + reference.rsplit(":", 1)[-1]


class FakeEngine:
    where = "a fake engine"
    remote = False

    def __init__(self, writes: Writes) -> None:
        self.writes = writes
        self.containers = FakeContainers(writes)
        self.images = FakeImages()
        self.registry = FakeRegistry(writes)

    def close(self) -> None:
        pass


# The repository's own spec with the tests' registry, read once (configs are frozen: each test
# gets its changes through ``replace``); and the release's repository in that registry.
SPEC = load_config(ROOT / "cicd" / "pipeline.yaml", env={"TRAINYARD_REGISTRY": "registry.test:5000"})
assert SPEC.registry is not None
REPOSITORY = SPEC.registry.repository(SPEC.images.release)  # registry.test:5000/<name>


def config(**environments: dict[str, Any]) -> PipelineConfig:
    """The repository's own spec, a registry configured, every environment on this engine, on a
    free port and without a proxy (the container swap; ``proxy=True`` per environment for
    blue/green), with some environments changed (or added, as copies of staging)."""
    envs = {
        name: replace(env, port=free_port(), proxy=False, host=None, service_ports=None, bind=None, public_url=None)
        for name, env in SPEC.environments.items()
    }  # where the project's own environments run is not these tests' business
    for name, changes in environments.items():
        envs[name] = replace(envs[name], **changes) if name in envs else replace(envs["staging"], name=name, **changes)
    return replace(SPEC, environments=envs)


def context(cfg: PipelineConfig | None = None, *, dry_run: bool = False, branch: str = "main") -> Context:
    ctx = Context(config=cfg or config(), root=ROOT, env={}, dry_run=dry_run, branch_override=branch)
    repo, engine = FakeRepo(ctx.writes, branch=branch), FakeEngine(ctx.writes)
    return ctx.use(repo=cast(Repo, repo), engine=cast(Engine, engine))


def fake_repo(ctx: Context) -> FakeRepo:
    return cast(FakeRepo, ctx.repo)


def fake_engine(ctx: Context) -> FakeEngine:
    return cast(FakeEngine, ctx.engine)
