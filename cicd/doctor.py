"""The first day, checked: ``python -m cicd doctor`` (``nox -s doctor``) lists what a project still
needs before its flow can run, each with the command that does it.

It runs anywhere, even before ``git init`` (right after ``copier copy``), writes nothing, and
asks only what it can ask from here: the git repository, its first commit, ``origin`` and the
develop branch; the signing key and its ``allowed_signers`` line (the same check ``release``
makes before it builds); ssh-keygen; the Docker engine and the base image; the registry; each
environment's own host. What only the CI system knows (its secrets, environments and branch
rules) it names as the next step, with where the README says how. Exit 0 when nothing is left
to do, 1 otherwise.
"""

from __future__ import annotations

import shutil
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cicd.config import PipelineConfig
from cicd.errors import CICDError, GitError

SECURITY = "cicd/README.md#security-model"


@dataclass(frozen=True)
class Check:
    """One line of the list: what was checked, whether it is done, what was seen, what to run."""

    name: str
    ok: bool | None  # None: a note, neither done nor to do (what only the CI system can show)
    seen: str
    fix: str | None = None


def _git_checks(root: Path, config: PipelineConfig) -> tuple[list[Check], bool]:
    """The repository, its first commit, ``origin`` and the develop branch; whether it has a commit."""
    from cicd.gitops import Repo

    main = "main" if "main" in config.branches.release else config.branches.release[0]
    start = f"git init --initial-branch={main} && git add -A && git commit -m 'Start from Trainyard'"
    try:
        repo = Repo(root)
    except GitError:
        return [
            Check("git repository", False, f"{root} is not a git repository (the records are git tags)", start)
        ], False
    with repo:
        if repo.root.resolve() != root.resolve():  # found further up: someone else's repository
            seen = f"{root} is inside the repository at {repo.root}, not one of its own"
            return [Check("git repository", False, seen, start)], False
        if not repo.repo.head.is_valid():
            first = 'git add -A && git commit -m "Start from Trainyard"'
            return [Check("first commit", False, "the repository has no commit yet", first)], False
        checks = [Check("git repository", True, f"{root}, at {repo.head()[:12]}")]
        url = repo.remote_url("origin")
        if url is None:
            seen = "no remote named origin: the records and merges are pushed there, and CI clones from it"
            checks.append(
                Check(
                    "origin", False, seen, "git remote add origin <your repository's URL> && git push -u origin --all"
                )
            )
        else:
            checks.append(Check("origin", True, url))
        develop = config.branches.develop
        if develop in repo.branches():
            checks.append(Check(f"branch {develop}", True, "present"))
        else:
            seen = f"no {develop} branch: features merge into it, and its CI job makes the releases"
            checks.append(Check(f"branch {develop}", False, seen, f"git branch {develop} && git push origin {develop}"))
    return checks, True


def _signing_check(root: Path, config: PipelineConfig, env: Mapping[str, str], committed: bool) -> Check:
    if not config.signing.required:
        return Check("signing", True, "off (signing.required: false): records are unsigned, for local use only")
    if not committed:
        return Check(
            "signing",
            False,
            "checked once the repository exists",
            f"after the first commit, run this again ({SECURITY})",
        )
    from cicd.context import Context

    ctx = Context(config=config, root=root, env=dict(env))
    try:
        ctx.repo.check_can_sign()
    except CICDError as err:
        listed = config.signing.allowed_signers
        fix = (
            "mkdir -p -m 700 ~/.ssh && ssh-keygen -t ed25519 -f ~/.ssh/trainyard -N '' && "
            "git config user.signingkey ~/.ssh/trainyard && "
            'echo "$(git config user.email || echo trainyard) $(cut -d" " -f1,2 ~/.ssh/trainyard.pub)" '
            f">> {listed}"
        )  # then the new line of that file goes in through review, like any change
        return Check("signing", False, str(err), fix)
    finally:
        ctx.close()
    key = "git's user.signingkey" if not env.get(config.signing.key_env) else config.signing.key_env
    return Check("signing", True, f"{key} signs, and {config.signing.allowed_signers} lists it")


def _engine_checks(config: PipelineConfig, env: Mapping[str, str]) -> list[Check]:
    from cicd.images import Engine

    try:
        engine = Engine.from_env(env)
    except CICDError as err:
        return [Check("docker engine", False, str(err), "start Docker (or set DOCKER_HOST to an engine that runs)")]
    with engine:
        checks = [Check("docker engine", True, engine.where)]
        base = config.images.base
        here = engine.images.exists(base)
        checks.append(Check("base image", True, f"{base} is here" if here else f"{base}: the first build pulls it"))
    return checks


def _answers(url: str, opener: Callable[[str], object]) -> str | None:
    """The scheme under which ``url``'s registry API answers (any HTTP status counts), or None."""
    for scheme in ("https", "http"):
        try:
            opener(f"{scheme}://{url}/v2/")
            return scheme
        except urllib.error.HTTPError:
            return scheme  # 401 without credentials: it is there
        except (OSError, ssl.SSLError):
            continue
    return None


def _open(address: str) -> object:
    with urllib.request.urlopen(address, timeout=5) as resp:  # noqa: S310  # nosec B310 - https/http to the registry the spec names
        return resp.status


def _registry_check(config: PipelineConfig, env: Mapping[str, str], opener: Callable[[str], object] = _open) -> Check:
    registry = config.registry
    remote = [e.name for e in config.environments.values() if e.host and not e.host.startswith("unix://")]
    if registry is None:
        if remote:
            return Check(
                "registry",
                False,
                f"none, and {', '.join(remote)} run on other hosts, which get releases only from a registry",
                f"set registry.url in {config.path} or TRAINYARD_REGISTRY (a CI variable)",
            )
        return Check("registry", True, "none: releases stay on this engine (set TRAINYARD_REGISTRY for CI)")
    if _answers(registry.url, opener) is None:
        return Check(
            "registry", False, f"{registry.url} does not answer", "start it, or fix registry.url / TRAINYARD_REGISTRY"
        )
    names = [registry.username_env, registry.password_env]
    given = [name for name in names if env.get(name)]
    if len(given) == 1:  # a user without a password, or the other way round: the push would be refused
        unset = next(name for name in names if name not in given)
        return Check("registry", False, f"{registry.url} answers; {given[0]} is set but {unset} is not", f"set {unset}")
    return Check("registry", True, f"{registry.url} answers" + (", with credentials" if given else ""))


def _host_checks(root: Path, config: PipelineConfig, env: Mapping[str, str]) -> list[Check]:
    from cicd.context import Context

    checks = []
    ctx = Context(config=config, root=root, env=dict(env))
    try:
        for environment in config.environments.values():
            if not environment.host or environment.target != "docker":
                continue
            try:
                engine = ctx.engine_for(environment)
            except CICDError as err:
                checks.append(Check(f"host of {environment.name}", False, str(err), f"see {SECURITY}"))
                continue
            checks.append(Check(f"host of {environment.name}", True, engine.where))
    finally:
        ctx.close()
    return checks


def run(root: Path, config: PipelineConfig, env: Mapping[str, str]) -> list[Check]:
    """Every check, in the order a first day goes."""
    checks, committed = _git_checks(root, config)
    checks.append(_signing_check(root, config, env, committed))
    if shutil.which("ssh-keygen") is None and config.signing.required:
        checks.append(
            Check(
                "ssh-keygen",
                False,
                "not installed: records are signed and verified with it",
                "apt install openssh-client",
            )
        )
    checks += _engine_checks(config, env)
    checks.append(_registry_check(config, env))
    checks += _host_checks(root, config, env)
    checks.append(
        Check(
            "CI secrets",
            None,
            f"not visible from here: the signing key ({config.signing.key_env}) and the registry's password "
            f"go into the CI system's protected environments, for the protected branches only ({SECURITY})",
        )
    )
    return checks


def report(checks: list[Check]) -> str:
    """One line per check (``ok`` or ``todo``), each to-do followed by its command."""
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        status = "note" if c.ok is None else "ok  " if c.ok else "todo"
        lines.append(f"{status}  {c.name.ljust(width)}  {c.seen}")
        if c.ok is False and c.fix:
            lines.append(f"      {''.ljust(width)}  → {c.fix}")
    left = sum(c.ok is False for c in checks)
    lines.append("nothing left to do" if not left else f"{left} to do")
    return "\n".join(lines)
