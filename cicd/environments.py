"""The last rows of the flow: deploy, acceptance, promote, rollback, status.

Git is the record: each deployment adds an immutable ``deploy/<env>/<time>`` tag and moves the
environment's own tag (``environments.<name>.tag``: ``Staging``, ``Production``); acceptance
adds ``accepted/<env>/<time>``. Promotion deploys the digest its source environment
(``environments.<name>.promote_from``) runs and passed acceptance with; nothing on these paths
builds an image. Every write asks the context's :class:`~cicd.writes.Writes` first.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any, Protocol

from cicd import proc, results
from cicd.config import Environment
from cicd.context import Context
from cicd.deploy import Live, get_target
from cicd.errors import DeployError, PromotionError, PushError, RecordTrustError, ServiceError, TestsFailedError
from cicd.flow import current_release, release_records, stage_pytest
from cicd.http import request_json
from cicd.records import AcceptanceRecord, DeployRecord, Tagged, history, now, previous_distinct, scan, timestamp

log = logging.getLogger(__name__)


class Deployable(Protocol):
    """What a deploy needs of a release, or of an earlier deployment run again."""

    @property
    def version(self) -> str: ...
    @property
    def reference(self) -> str: ...
    @property
    def image(self) -> str: ...
    @property
    def digest(self) -> str: ...


def _who(ctx: Context) -> str:
    return ctx.env.get("GITHUB_ACTOR") or ctx.env.get("BUILD_REQUESTEDFOR") or getpass.getuser()


def deploy_records(ctx: Context, *, strict: bool = True) -> list[DeployRecord]:
    """Every deployment, newest first, each verified (``strict``: refuse them all if one fails)."""
    return scan(ctx.trusted_tags(strict=strict), DeployRecord)


def _local_image(ctx: Context, env: Environment, reference: str, image: str) -> str:
    """The image to run on ``env``'s engine: pulled by digest when it lives in a registry (the
    deployer's credentials go with the one pull and stay nowhere on the host), else the local
    image id. A remote host takes nothing but a registry's image by digest."""
    registry, engine = ctx.config.registry, ctx.engine_for(env)
    if registry is not None and "@" in reference:
        checked = registry.checked_reference(reference, ctx.config.images.release)
        return engine.registry.pull(checked, registry.credentials())
    if engine.remote:
        raise DeployError(
            f"{env.name} runs on another host, which gets releases only from the registry by digest, but this "
            f"release ({reference}) was never pushed to one; set registry.url in {ctx.config.path} and release again"
        )
    if not engine.images.exists(image):
        raise DeployError(f"image {image[:19]} is not on this engine and no registry holds it; run the release again")
    return image


def _record_and_push(
    ctx: Context, env: Environment, record: DeployRecord, commit: str, hold: str | None = None
) -> None:
    """Add the immutable record, move the environment's tag, push both atomically (with a lease).

    ``hold``: a tag the decision was read from (promotion's source tag): it is pushed unchanged
    with a lease too, so if it moved on the remote meanwhile, nothing lands.
    """
    repo = ctx.repo
    moving = env.tag
    old = repo.tag(moving) if moving else None
    before = repo.tag_object(moving) if moving else None
    repo.create_tag(record.tag, record.to_message(), rev=commit)
    refspecs = [f"refs/tags/{record.tag}"]
    lease: list[str] = []
    if moving:
        repo.create_tag(moving, f"{env.name}: {record.version} {record.digest}\n", rev=commit, force=True)
        refspecs.append(f"+refs/tags/{moving}")
        lease = [f"--force-with-lease=refs/tags/{moving}:{before or ''}"]
    held = repo.tag_object(hold) if hold else None
    if hold and held:
        refspecs.append(f"+refs/tags/{hold}")
        lease.append(f"--force-with-lease=refs/tags/{hold}:{held}")
    if not repo.has_remote():
        return
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
    release: Deployable | None = None,
    kind: str = "deploy",
    check_branch: bool = True,
    commit: str | None = None,
    hold: str | None = None,
) -> DeployRecord:
    """Run a release (default: this commit's) in ``name`` by digest, then record it in git.

    When the record cannot be pushed, the previous release is deployed again and the error raised.
    """
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
    target = get_target(ctx, env)
    previous = target.live()
    # A colour kept stopped behind the proxy that ran this digest is started again: nothing is pulled.
    image = release.image if target.has(release.digest) else _local_image(ctx, env, release.reference, release.image)
    log.info("deploying %s (%s) to %s at %s", release.version, release.digest, env.name, env.url)
    target.deploy(release.reference, image, release.digest, release.version, commit)
    when = now()
    record = DeployRecord(
        environment=env.name,
        version=release.version,
        digest=release.digest,
        reference=release.reference,
        image=release.image,
        commit=commit,
        time=timestamp(when),
        who=_who(ctx),
        kind=kind,
        previous_digest=previous.digest if previous else "",
        tag=DeployRecord.tag_name(env.name, when),
    )
    try:
        _record_and_push(ctx, env, record, commit, hold)
    except PushError:
        if previous is not None and previous.digest != release.digest:
            log.warning("the record could not be pushed: restoring the previous release")
            target.deploy(
                previous.reference,
                previous.reference
                if target.has(previous.digest)
                else _local_image(ctx, env, previous.reference, previous.reference),
                previous.digest,
                previous.version,
                commit,
            )
        raise
    log.info("%s now runs %s (%s); recorded as %s", env.name, record.version, record.digest, record.tag)
    return record


def _latest(ctx: Context, name: str, tags: Sequence[Tagged] | None = None) -> DeployRecord:
    records = history(scan(tags, DeployRecord) if tags is not None else deploy_records(ctx), name)
    if not records:
        raise DeployError(f"nothing has been deployed to {name} yet; run `nox -s deploy -- {name}` first")
    return records[0]


# What the acceptance suite's outcome depends on besides the deployed image and the environment's
# spec: its tests, the conftests pytest loads on the way, the toolkit and pytest's configuration.
ACCEPTANCE_INPUTS = ("tests/acceptance/", "tests/conftest.py", "tests/__init__.py", "cicd/", "pyproject.toml")


def _accepted_before(
    ctx: Context, env: Environment, record: DeployRecord, content_key: str, tags: Sequence[Tagged]
) -> AcceptanceRecord | None:
    """The newest verdict on ``env`` with ``content_key``, if it passed and the environment still
    serves that digest and is healthy (the check that proves nothing is new there); else None."""
    if results.turned_off(ctx):
        return None
    same = [a for a in scan(tags, AcceptanceRecord) if a.environment == env.name and a.key == content_key]
    if not same or not same[0].passed:  # a recorded failure is run again, never reused
        return None
    live = get_target(ctx, env).live()
    if live is None or live.digest != record.digest or not live.healthy:
        log.info("acceptance: %s is not serving %s healthily now: running the tests", env.name, record.digest[:19])
        return None
    return same[0]


def _record_verdict(ctx: Context, verdict: AcceptanceRecord) -> AcceptanceRecord:
    ctx.repo.create_tag(verdict.tag, verdict.to_message(), rev=verdict.commit)
    if ctx.repo.has_remote():
        ctx.repo.push([f"refs/tags/{verdict.tag}"])
    return verdict


def acceptance(ctx: Context, name: str, pytest_args: list[str] | None = None) -> AcceptanceRecord:
    """The project's acceptance tests against what ``name`` runs; the verdict is recorded either way.
    A passing verdict on the same digest, environment spec, tests and arguments is reused while
    the environment serves that digest healthily; a redeployment of it gets its own record."""
    env = ctx.config.environment(name)
    tags = ctx.trusted_tags()  # one read of every tag for the three kinds of record
    record = _latest(ctx, name, tags)
    release = next((r for r in release_records(ctx, tags) if r.digest == record.digest), None)
    content_key = results.key(
        "acceptance",
        {"digest": record.digest, "environment": asdict(env),
         "inputs": results.tracked_digest(ctx, ACCEPTANCE_INPUTS), "arguments": list(pytest_args or [])},
    )  # fmt: skip
    earlier = _accepted_before(ctx, env, record, content_key, tags)
    if earlier is not None:
        log.info("acceptance: passed for %s… at %s, reused", content_key[:19], earlier.time)
        if earlier.deploy_tag == record.tag:
            return earlier
        when = now()
        return _record_verdict(
            ctx,
            replace(
                earlier, deploy_tag=record.tag, commit=record.commit, time=timestamp(when),
                summary=f"reused {earlier.tag}: {earlier.summary}"[:300], tag=AcceptanceRecord.tag_name(name, when),
            ),
        )  # fmt: skip
    reports = ctx.artifacts / "reports" / f"acceptance-{name}"
    reports.mkdir(parents=True, exist_ok=True)
    cmd = stage_pytest(
        ctx, f"acceptance-{name}", ctx.root / "tests" / "acceptance", reports,
        f"--base-url={env.url}", f"--expected-digest={record.digest}",
    )  # fmt: skip
    rmse = (release.metrics.get("model") or {}).get("rmse") if release is not None else None
    if rmse is not None:  # a regression's own figure; a project whose evaluation reports none is not given it
        cmd.append(f"--expected-rmse={rmse}")
    junit = reports / "junit.xml"
    junit.unlink(missing_ok=True)
    result = proc.run([*cmd, *(pytest_args or [])], cwd=ctx.root, timeout=ctx.config.test_timeout, env=ctx.env)
    tested = results.junit_counts(junit, pytest_args)
    passed = result.ok and tested.ran > 0  # every test skipped is no pass: recorded as a failure
    when = now()
    verdict = AcceptanceRecord(
        environment=name,
        deploy_tag=record.tag,
        digest=record.digest,
        commit=record.commit,
        passed=passed,
        time=timestamp(when),
        summary=f"pytest exit {result.exit_code}: {result.tail[-1] if result.tail else ''}"[:300],
        tag=AcceptanceRecord.tag_name(name, when),
        tests=tested.tests,
        failures=tested.failures,
        skipped=tested.skipped,
        selection=tested.selection,
        complete=tested.complete,
        key=content_key,
    )
    _record_verdict(ctx, verdict)
    if not result.ok:
        raise TestsFailedError(f"acceptance tests against {name} ({env.url})", result.exit_code, str(reports))
    tested.require_some(f"acceptance tests against {name} ({env.url})", str(reports))
    log.info(
        "acceptance tests passed against %s (%s, %s); recorded as %s", name, record.version, record.digest, verdict.tag
    )
    return verdict


def _accepted_source(ctx: Context, env: Environment) -> tuple[Environment, DeployRecord]:
    """The deployment of ``env.promote_from`` on the commit its tag names, if it passed acceptance."""
    cfg = ctx.config
    if env.promote_from is None:
        sources = [e.name for e in cfg.environments.values() if e.promote_from]
        raise PromotionError(
            f"{env.name} is not promoted to (no environments.{env.name}.promote_from in {cfg.path}); "
            f"environments that are: {', '.join(sources) or 'none'}"
        )
    source = cfg.environment(env.promote_from)
    if source.tag is None:
        raise PromotionError(
            f"{source.name}, which {env.name} is promoted from, has no tag (environments.{source.name}.tag)"
        )
    tagged = ctx.repo.tag(source.tag)
    if tagged is None:
        raise PromotionError(f"there is no {source.tag} tag: deploy to {source.name} and pass acceptance there first")
    if not ctx.repo.verified([source.tag]):
        raise RecordTrustError([source.tag], ctx.config.signing.allowed_signers)
    tags = ctx.trusted_tags()  # one read of every tag for both kinds of record
    deployed = history(scan(tags, DeployRecord), source.name)
    staged = [r for r in deployed if r.commit == tagged.commit]
    if not staged:
        raise PromotionError(
            f"no {source.name} deployment is recorded for {tagged.commit[:12]}; deploy to {source.name} first"
        )
    record = staged[0]
    if record.tag != deployed[0].tag:
        # Every deploy and rollback moves the tag to its commit, so the tag names the newest
        # deployment's. One that names an older one was put back: an old, genuinely signed tag
        # object pushed again would otherwise promote the release it named (a silent downgrade).
        newest = deployed[0]
        raise PromotionError(
            f"the {source.tag} tag names {tagged.commit[:12]} ({record.version}, deployed to {source.name} at "
            f"{record.time}), but {source.name}'s newest deployment is {newest.version} ({newest.commit[:12]}, "
            f"{newest.kind} at {newest.time}): the tag was moved back by hand or an old one was pushed again. "
            f"Deploy or roll back {source.name} (either moves the tag), then promote"
        )
    verdicts = [a for a in scan(tags, AcceptanceRecord) if a.deploy_tag == record.tag]
    if not verdicts or not verdicts[0].promotable():
        if not verdicts:
            state = "has not run"
        elif verdicts[0].passed:
            state = f"was a partial run ({verdicts[0].selection or 'no tests'}), which cannot make a release promotable"
        else:
            state = "failed"
        raise PromotionError(
            f"acceptance of {record.version} on {source.name} {state}; "
            f"run `nox -s acceptance -- {source.name}` (the whole suite) and fix it first"
        )
    return source, record


def promote(ctx: Context, name: str) -> DeployRecord | None:
    """Deploy what ``promote_from`` runs, by digest, to ``name``; tag that commit. No build anywhere."""
    env = ctx.config.environment(name)
    source, record = _accepted_source(ctx, env)
    current = ctx.repo.tag(env.tag) if env.tag else None
    live = get_target(ctx, env).live()
    if current is not None and current.commit == record.commit and live and live.digest == record.digest:
        log.info(
            "%s already runs %s (%s) from %s: nothing to do", name, record.version, record.digest, record.commit[:12]
        )
        return None
    log.info("promoting %s from %s to %s", record.version, source.name, name)
    promoted = deploy(
        ctx, name, release=record, kind="promote", check_branch=False, commit=record.commit, hold=source.tag
    )
    if not ctx.dry_run and not _smoke(env):
        log.warning("smoke check of %s failed: rolling back", name)
        rollback(ctx, name)
        raise PromotionError(f"{record.version} failed its smoke check in {name} and was rolled back")
    return promoted


def _smoke(env: Environment) -> bool:
    try:
        status, _ = request_json(f"{env.url}{env.health_path}", timeout=5)
        meta_status, _ = request_json(f"{env.url}/metadata", timeout=5)
    except ServiceError:
        return False
    return status == 200 and meta_status == 200


def rollback(ctx: Context, name: str) -> DeployRecord:
    """Run ``name``'s newest earlier deployment with a different digest again."""
    env = ctx.config.environment(name)
    # Mid-incident, a record that does not verify (a stray tag someone pushed) is reported and
    # left out, never a reason to stay on the bad release: only verified records are candidates.
    target_record = previous_distinct(history(deploy_records(ctx, strict=False), name))
    if target_record is None:
        raise DeployError(f"{name} has no earlier deployment with a different digest to roll back to")
    return deploy(
        ctx, env.name, release=target_record, kind="rollback", check_branch=False, commit=target_record.commit
    )


def status(ctx: Context) -> list[dict[str, Any]]:
    """Per environment, asked of its own host: its tag's commit, the recorded release, what runs
    (behind a proxy: which colour), its health and URL."""
    rows = []
    records = deploy_records(ctx, strict=False)  # status shows what it can; it decides nothing
    for env in ctx.config.environments.values():
        latest = history(records, env.name)
        tagged = ctx.repo.tag(env.tag) if env.tag else None
        live: Live | None = None
        asked = True
        try:
            live = get_target(ctx, env).live()
        except Exception as err:  # one unreachable target must not hide the others
            log.warning("%s: cannot read the target: %s", env.name, err)
            asked = False
        if live is not None:
            health = "healthy" if live.healthy else "UNHEALTHY"
        else:
            health = "not running" if asked else "UNKNOWN"
        rows.append(
            {
                "environment": env.name,
                "tag": f"{env.tag} → {tagged.commit[:12]}" if tagged else "-",
                "version": latest[0].version if latest else "-",
                "digest": latest[0].digest if latest else "-",
                "running": live.digest if live else "-",
                "health": health,
                "asked": asked,  # False: its host (engine) could not be asked; the status is incomplete
                "url": env.url,
                "host": env.host or "local",
                "colour": (live.colour or "-") if live else "-",
            }
        )
    return rows


def format_status(rows: list[dict[str, Any]]) -> str:
    cols = ["environment", "host", "tag", "version", "digest", "running", "colour", "health", "url"]
    short = [{k: (str(r[k])[:19] if k in ("digest", "running") else str(r[k])) for k in cols} for r in rows]
    widths = {c: max(len(c), *(len(r[c]) for r in short)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in cols) for r in short]
    return "\n".join(lines)


__all__ = ["acceptance", "deploy", "format_status", "promote", "rollback", "status"]
