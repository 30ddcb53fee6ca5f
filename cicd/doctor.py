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
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cicd.config import PipelineConfig
from cicd.errors import CICDError, GitError

if TYPE_CHECKING:
    from cicd.context import Context

SECURITY = "cicd/README.md#security-model"


@dataclass(frozen=True)
class Check:
    """One line of the list: what was checked, whether it is done, what was seen, what to run."""

    name: str
    ok: bool | None  # None: a note, neither done nor to do (what only the CI system can show)
    seen: str
    fix: str | None = None


def _git_checks(ctx: Context) -> tuple[list[Check], bool]:
    """The repository, its first commit, ``origin`` and the develop branch; whether it has a commit."""
    root, release = ctx.root, ctx.config.branches.release
    main = "main" if "main" in release else release[0]
    start = f"git init --initial-branch={main} && git add -A && git commit -m 'Start from Trainyard'"
    try:
        repo = ctx.repo
    except GitError:
        return [
            Check("git repository", False, f"{root} is not a git repository (the records are git tags)", start)
        ], False
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
        fix = "git remote add origin <your repository's URL> && git push -u origin --all"
        checks.append(Check("origin", False, seen, fix))
    else:
        checks.append(Check("origin", True, url))
    develop = ctx.config.branches.develop
    if develop in repo.branches():
        checks.append(Check(f"branch {develop}", True, "present"))
    else:
        seen = f"no {develop} branch: features merge into it, and its CI job makes the releases"
        checks.append(Check(f"branch {develop}", False, seen, f"git branch {develop} && git push origin {develop}"))
    return checks, True


def _signing_check(ctx: Context, committed: bool) -> Check:
    spec = ctx.config.signing
    if not spec.required:
        return Check("signing", True, "off (signing.required: false): records are unsigned, for local use only")
    if not committed:
        return Check(
            "signing",
            False,
            "checked once the repository exists",
            f"after the first commit, run this again ({SECURITY})",
        )
    try:
        ctx.repo.check_can_sign()
    except CICDError as err:
        fix = (
            "mkdir -p -m 700 ~/.ssh && ssh-keygen -t ed25519 -f ~/.ssh/trainyard -N '' && "
            "git config user.signingkey ~/.ssh/trainyard && "
            'echo "$(git config user.email || echo trainyard) $(cut -d" " -f1,2 ~/.ssh/trainyard.pub)" '
            f">> {spec.allowed_signers}"
        )  # then the new line of that file goes in through review, like any change
        return Check("signing", False, str(err), fix)
    key = spec.key_env if ctx.env.get(spec.key_env) else "git's user.signingkey"
    return Check("signing", True, f"{key} signs, and {spec.allowed_signers} lists it")


def _engine_checks(ctx: Context) -> list[Check]:
    try:
        engine = ctx.engine
    except CICDError as err:
        return [Check("docker engine", False, str(err), "start Docker (or set DOCKER_HOST to an engine that runs)")]
    base = ctx.config.images.base
    here = engine.images.exists(base)
    return [
        Check("docker engine", True, engine.where),
        Check("base image", True, f"{base} is here" if here else f"{base}: the first build pulls it"),
    ]


def _answers(url: str, opener: Callable[[str], object]) -> str | None:
    """The scheme under which ``url``'s registry API answers (any HTTP status counts), or None."""
    for scheme in ("https", "http"):
        try:
            opener(f"{scheme}://{url}/v2/")
            return scheme
        except urllib.error.HTTPError:
            return scheme  # 401 without credentials: it is there
        except OSError:  # refused, unreachable, or TLS asked of a plain-HTTP registry
            continue
    return None


def _open(address: str) -> object:
    with urllib.request.urlopen(address, timeout=5) as resp:  # noqa: S310  # nosec B310 - https/http to the registry the spec names
        return resp.status


def _registry_check(config: PipelineConfig, env: Mapping[str, str], opener: Callable[[str], object] = _open) -> Check:
    """Whether the spec's registry answers, and its credentials come in pairs. An environment on
    another host without a registry is that host's line (:meth:`Context.engine_for` refuses it)."""
    registry = config.registry
    if registry is None:
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


def _host_checks(ctx: Context) -> list[Check]:
    checks = []
    for environment in ctx.config.environments.values():
        if not environment.host or environment.target != "docker":
            continue
        try:
            engine = ctx.engine_for(environment)
        except CICDError as err:
            checks.append(Check(f"host of {environment.name}", False, str(err), f"see {SECURITY}"))
            continue
        checks.append(Check(f"host of {environment.name}", True, engine.where))
    return checks


def run(ctx: Context) -> list[Check]:
    """Every check, in the order a first day goes, through the command's own context (one
    repository, one connection per engine; the caller closes it)."""
    config = ctx.config
    checks, committed = _git_checks(ctx)
    checks.append(_signing_check(ctx, committed))
    if shutil.which("ssh-keygen") is None and config.signing.required:
        checks.append(
            Check(
                "ssh-keygen",
                False,
                "not installed: records are signed and verified with it",
                "apt install openssh-client",
            )
        )
    checks += _engine_checks(ctx)
    checks.append(_registry_check(config, ctx.env))
    checks += _host_checks(ctx)
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
