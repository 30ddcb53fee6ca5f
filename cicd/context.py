"""What every stage gets: the spec, the repository, the engine, and the one write gate they share."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cicd.config import Environment, PipelineConfig
from cicd.errors import DeployError, RecordTrustError
from cicd.gitops import Repo, TagInfo
from cicd.images import Engine
from cicd.images.engine import LOCAL_SOCKET
from cicd.images.hosts import host_access
from cicd.records import is_record
from cicd.signing import Signing
from cicd.writes import Writes

log = logging.getLogger(__name__)


@dataclass
class Context:
    config: PipelineConfig
    root: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    dry_run: bool = False
    branch_override: str | None = None
    hosts: dict[str, Engine] = field(default_factory=dict)  # environments' own engines, by address

    @cached_property
    def writes(self) -> Writes:
        """Asked before every write to git, the engine or a registry; the registry password is masked."""
        registry = self.config.registry
        secrets = [self.env.get(registry.password_env, "")] if registry else []
        return Writes(dry_run=self.dry_run, secrets=[s for s in secrets if s])

    @cached_property
    def signing(self) -> Signing | None:
        """How records are signed and verified; None when the spec says ``signing.required: false``."""
        spec = self.config.signing
        if not spec.required:
            log.warning(
                "signing.required is false in %s: records are written unsigned and read unverified "
                "(for local experiments only)",
                self.config.path,
            )
            return None
        return Signing.from_spec(self.root, spec.allowed_signers, spec.key_env, self.env)

    @cached_property
    def repo(self) -> Repo:
        return Repo(self.root, writes=self.writes, signing=self.signing)

    def trusted_tags(self, *, strict: bool = True) -> list[TagInfo]:
        """Every tag, with each record verified first (one ``git verify-tag``).

        A record tag that does not verify is refused: ``strict`` raises :class:`RecordTrustError`
        naming them (a stage must not decide on a set of records someone may have added to);
        otherwise (``status``) they are left out with a warning.
        """
        tags = self.repo.tag_infos()
        records = [t.name for t in tags if is_record(t.message)]
        good = self.repo.verified(records)
        refused = sorted(set(records) - good)
        if refused:
            where = self.config.signing.allowed_signers
            if strict:
                raise RecordTrustError(refused, where)
            log.warning("left out records not signed by an allowed signer (%s): %s", where, ", ".join(refused))
        return [t for t in tags if t.name not in refused]

    @cached_property
    def engine(self) -> Engine:
        return Engine.from_env(self.env, writes=self.writes)

    def engine_for(self, env: Environment) -> Engine:
        """The engine that runs ``env``: its own ``host``'s (one connection per address), else :attr:`engine`.

        A remote host gets images only from the registry, by digest: without a registry in the
        spec it is refused here, before anything changes anywhere.
        """
        if env.host is None or env.target != "docker":
            return self.engine
        access = host_access(env.name, env.host, self.env)
        if access.address.startswith("unix://") and access.address == self.env.get("DOCKER_HOST", LOCAL_SOCKET):
            return self.engine
        if access.address not in self.hosts:
            if not access.address.startswith("unix://") and self.config.registry is None:
                raise DeployError(
                    f"{env.name} runs on another host ({access.address}), which gets releases only from a registry, "
                    f"by digest; set registry.url in {self.config.path} (or TRAINYARD_REGISTRY), release again, "
                    "then deploy"
                )
            self.hosts[access.address] = Engine(access=access, writes=self.writes)
        return self.hosts[access.address]

    def use(self, *, repo: Repo | None = None, engine: Engine | None = None) -> Context:
        """Give the context parts made elsewhere (an engine with other settings; fakes in unit tests)."""
        if repo is not None:
            self.__dict__["repo"] = repo
        if engine is not None:
            self.__dict__["engine"] = engine
        return self

    @property
    def artifacts(self) -> Path:
        """Where the stages write. It ignores itself in git (a ``.gitignore`` of its own), so a
        repository whose ``.gitignore`` does not list it (one Trainyard was added to) stays clean."""
        path = self.root / "artifacts"
        if not self.dry_run and not (path / ".gitignore").is_file():
            path.mkdir(parents=True, exist_ok=True)
            (path / ".gitignore").write_text("# Trainyard's outputs (cicd/context.py): never committed\n*\n")
        return path

    def branch(self) -> str:
        return self.branch_override or self.repo.branch(self.env)

    def commit_tag(self) -> str:
        sha = self.repo.head()[:12]
        return f"{sha}-dirty" if self.repo.dirty_paths() else sha

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close what was opened (the repository's helper processes, the engine's sockets)."""
        for name in ("repo", "engine"):
            opened = self.__dict__.pop(name, None)
            if opened is not None:
                opened.close()
        for engine in self.hosts.values():
            engine.close()
        self.hosts.clear()
