"""The last two rows of the flow: deploy, acceptance, promote, rollback, status.

Git is the record: each deployment adds an immutable ``deploy/<env>/<time>`` tag and moves the
environment's tag (``Staging``, ``Production``); acceptance adds ``accepted/<env>/<time>``.
Promotion deploys the digest that Staging runs; nothing on these paths builds an image.
"""

from __future__ import annotations

import getpass
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from cicd.config import Environment
from cicd.deploy import Live, get_target
from cicd.deploy.records import AcceptanceRecord, DeployRecord, history, previous_distinct
from cicd.errors import DeployError, PromotionError, PushError, TestsFailedError
from cicd.flow import Context, current_release
from cicd.http import request_json
from cicd.records import ReleaseRecord

T = TypeVar("T")


def _who(ctx: Context) -> str:
    return ctx.env.get("GITHUB_ACTOR") or ctx.env.get("BUILD_REQUESTEDFOR") or getpass.getuser()


def env_tag(ctx: Context, env: Environment) -> str | None:
    tags = ctx.config.tags
    return {"staging": tags.staging, "production": tags.production}.get(env.name)


def _tag_records(ctx: Context, prefix: str, parse: Callable[[str, str], T | None]) -> list[T]:
    out = []
    for name in ctx.repo.tags():
        if name.startswith(prefix):
            info = ctx.repo.tag(name)
            record = parse(name, info.message) if info else None
            if record is not None:
                out.append(record)
    return out


def deploy_records(ctx: Context) -> list[DeployRecord]:
    return _tag_records(ctx, "deploy/", DeployRecord.from_message)


def acceptance_records(ctx: Context) -> list[AcceptanceRecord]:
    return _tag_records(ctx, "accepted/", AcceptanceRecord.from_message)


def _as_release(record: DeployRecord) -> ReleaseRecord:
    """What a recorded deployment ran, as a release to deploy again (promotion, rollback)."""
    return ReleaseRecord(
        version=record.version,
        pep440="",
        commit=record.commit,
        tree="",
        branch="",
        image=record.image,
        reference=record.reference,
        digest=record.digest,
        created=record.time,
    )


def _local_image(ctx: Context, reference: str, image: str) -> str:
    """The image to run: pulled by digest when it lives in a registry, else the local image id."""
    registry = ctx.config.registry
    if registry is not None and "@" in reference:
        return ctx.engine.pull(reference, registry.credentials())
    if not ctx.engine.has_image(image):
        raise DeployError(f"image {image[:19]} is not on this engine and no registry holds it; run the release again")
    return image


def _record_and_push(ctx: Context, env: Environment, record: DeployRecord, commit: str) -> None:
    """Add the immutable record, move the environment's tag, push both atomically (with a lease)."""
    repo = ctx.repo
    moving = env_tag(ctx, env)
    old = repo.tag(moving) if moving else None
    repo.create_tag(record.tag, record.to_message(), rev=commit, dry_run=ctx.dry_run)
    refspecs = [f"refs/tags/{record.tag}"]
    lease: list[str] = []
    if moving:
        before = repo.tag_object(moving)
        repo.create_tag(
            moving, f"{env.name}: {record.version} {record.digest}\n", rev=commit, force=True, dry_run=ctx.dry_run
        )
        refspecs.append(f"+refs/tags/{moving}")
        lease = [f"--force-with-lease=refs/tags/{moving}:{before or ''}"]
    if repo.has_remote() and not ctx.dry_run:
        try:
            repo.push(refspecs, extra=lease)
        except PushError:
            repo.delete_tag(record.tag)
            if moving:
                if old is not None:
                    repo.create_tag(moving, old.message, rev=old.commit, force=True)
                else:
                    repo.delete_tag(moving)
            raise


def deploy(
    ctx: Context,
    name: str,
    *,
    release: ReleaseRecord | None = None,
    kind: str = "deploy",
    check_branch: bool = True,
    commit: str | None = None,
) -> DeployRecord:
    cfg, repo = ctx.config, ctx.repo
    env = cfg.environment(name)
    if kind == "deploy":
        repo.ensure_clean()
    if check_branch:
        branch = ctx.branch()
        if branch not in env.branches:
            raise DeployError(
                f"{env.name} deploys from {' or '.join(env.branches)}, but this is {branch!r}; "
                f"merge into {env.branches[0]} and deploy from there"
            )
    release = release or current_release(ctx)
    commit = commit or repo.head()
    target = get_target(cfg, env)
    previous = target.live()
    image = _local_image(ctx, release.reference, release.image)
    print(f"deploying {release.version} ({release.digest}) to {env.name} at {env.url}", flush=True)
    if ctx.dry_run:
        print(f"[dry-run] would run {release.reference} in {env.name}")
    else:
        target.deploy(release.reference, image, release.digest, release.version, commit)
    now = datetime.now(UTC)
    record = DeployRecord(
        environment=env.name,
        version=release.version,
        digest=release.digest,
        reference=release.reference,
        image=release.image,
        commit=commit,
        time=now.isoformat(timespec="seconds"),
        who=_who(ctx),
        kind=kind,
        previous_digest=previous.digest if previous else "",
        tag=DeployRecord.tag_name(env.name, now),
    )
    try:
        _record_and_push(ctx, env, record, commit)
    except PushError:
        if previous is not None and previous.digest != release.digest:
            print("the record could not be pushed: restoring the previous release", flush=True)
            target.deploy(
                previous.reference,
                _local_image(ctx, previous.reference, previous.reference),
                previous.digest,
                previous.version,
                commit,
            )
        raise
    print(f"{env.name} now runs {record.version} ({record.digest}); recorded as {record.tag}")
    return record


def _latest(ctx: Context, name: str) -> DeployRecord:
    records = history(deploy_records(ctx), name)
    if not records:
        raise DeployError(f"nothing has been deployed to {name} yet; run `nox -s deploy -- {name}` first")
    return records[0]


def acceptance(ctx: Context, name: str, pytest_args: list[str] | None = None) -> AcceptanceRecord:
    env = ctx.config.environment(name)
    record = _latest(ctx, name)
    release = next((r for r in _releases(ctx) if r.digest == record.digest), None)
    reports = ctx.artifacts / "reports" / f"acceptance-{name}"
    reports.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(ctx.root / "tests" / "acceptance"),
        f"--base-url={env.url}",
        f"--expected-digest={record.digest}",
        f"--junitxml={reports / 'junit.xml'}",
        "-p",
        "no:cacheprovider",
    ]
    if release is not None and release.metrics.get("model"):
        cmd.append(f"--expected-rmse={release.metrics['model']['rmse']}")
    code = subprocess.run([*cmd, *(pytest_args or [])], cwd=ctx.root, check=False).returncode
    now = datetime.now(UTC)
    result = AcceptanceRecord(
        environment=name,
        deploy_tag=record.tag,
        digest=record.digest,
        commit=record.commit,
        passed=code == 0,
        time=now.isoformat(timespec="seconds"),
        summary=f"pytest exit {code}",
        tag=AcceptanceRecord.tag_name(name, now),
    )
    ctx.repo.create_tag(result.tag, result.to_message(), rev=record.commit, dry_run=ctx.dry_run)
    if ctx.repo.has_remote() and not ctx.dry_run:
        ctx.repo.push([f"refs/tags/{result.tag}"])
    if code != 0:
        raise TestsFailedError(f"acceptance tests against {name} ({env.url})", code, str(reports))
    print(f"acceptance tests passed against {name} ({record.version}, {record.digest}); recorded as {result.tag}")
    return result


def _releases(ctx: Context) -> list[ReleaseRecord]:
    from cicd.flow import release_records

    return release_records(ctx)


def promote(ctx: Context, name: str) -> DeployRecord | None:
    """Deploy what Staging runs, by digest, to ``name``; tag the Staging commit. No build anywhere."""
    cfg = ctx.config
    env = cfg.environment(name)
    source_env = cfg.environment("staging")
    staging = ctx.repo.tag(cfg.tags.staging)
    if staging is None:
        raise PromotionError(f"there is no {cfg.tags.staging} tag: deploy to staging and pass acceptance first")
    staged = [r for r in history(deploy_records(ctx), source_env.name) if r.commit == staging.commit]
    if not staged:
        raise PromotionError(f"no staging deployment is recorded for {staging.commit[:12]}; deploy to staging first")
    record = staged[0]
    verdicts = [a for a in acceptance_records(ctx) if a.deploy_tag == record.tag]
    verdicts.sort(key=lambda a: a.tag, reverse=True)
    if not verdicts or not verdicts[0].passed:
        state = "failed" if verdicts else "has not run"
        raise PromotionError(
            f"acceptance of {record.version} on staging {state}; run `nox -s acceptance -- staging` and fix it first"
        )
    production = ctx.repo.tag(cfg.tags.production)
    live = get_target(cfg, env).live()
    if production is not None and production.commit == staging.commit and live and live.digest == record.digest:
        print(f"{name} already runs {record.version} ({record.digest}) from {staging.commit[:12]}: nothing to do")
        return None
    release = _as_release(record)
    promoted = deploy(ctx, name, release=release, kind="promote", check_branch=False, commit=staging.commit)
    if not _smoke(env):
        print(f"smoke check of {name} failed: rolling back", flush=True)
        rollback(ctx, name)
        raise PromotionError(f"{record.version} failed its smoke check in {name} and was rolled back")
    return promoted


def _smoke(env: Environment) -> bool:
    try:
        status, _ = request_json(f"{env.url}{env.health_path}", timeout=5)
        meta_status, _ = request_json(f"{env.url}/metadata", timeout=5)
    except OSError:
        return False
    return status == 200 and meta_status == 200


def rollback(ctx: Context, name: str) -> DeployRecord:
    env = ctx.config.environment(name)
    records = history(deploy_records(ctx), name)
    target_record = previous_distinct(records)
    if target_record is None:
        raise DeployError(f"{name} has no earlier deployment with a different digest to roll back to")
    release = _as_release(target_record)
    return deploy(ctx, env.name, release=release, kind="rollback", check_branch=False, commit=target_record.commit)


def status(ctx: Context) -> list[dict[str, Any]]:
    rows = []
    records = deploy_records(ctx)
    for env in ctx.config.environments.values():
        latest = history(records, env.name)
        tag = env_tag(ctx, env)
        tagged = ctx.repo.tag(tag) if tag else None
        live: Live | None = None
        try:
            live = get_target(ctx.config, env).live()
        except Exception as err:
            print(f"{env.name}: cannot read the target: {err}", file=sys.stderr)
        rows.append(
            {
                "environment": env.name,
                "tag": f"{tag} → {tagged.commit[:12]}" if tagged else "-",
                "version": latest[0].version if latest else "-",
                "digest": latest[0].digest if latest else "-",
                "running": live.digest if live else "-",
                "health": ("healthy" if live.healthy else "UNHEALTHY") if live else "not running",
                "url": env.url,
            }
        )
    return rows


def format_status(rows: list[dict[str, Any]]) -> str:
    cols = ["environment", "tag", "version", "digest", "running", "health", "url"]
    short = [{k: (str(r[k])[:19] if k in ("digest", "running") else str(r[k])) for k in cols} for r in rows]
    widths = {c: max(len(c), *(len(r[c]) for r in short)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in cols) for r in short]
    return "\n".join(lines)


__all__ = ["acceptance", "deploy", "format_status", "promote", "rollback", "status"]
