"""The stages of the first two rows of the flow: build, unit, lint, release, integration, merge.

Each stage takes a :class:`~cicd.context.Context` (the spec, the repository, the engine) and
returns its result as data (``python -m cicd --json`` prints it); progress goes to ``logging``;
failures raise :mod:`cicd.errors` classes. Only the modules they call touch git
(:mod:`cicd.gitops`) or Docker (:mod:`cicd.images`), and every write asks the context's
:class:`~cicd.writes.Writes` first, so ``--dry-run`` builds, runs and records nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import semver

from cicd import proc, results, versioning
from cicd.cache import CACHE
from cicd.context import Context
from cicd.contract import VERSION_LINE  # the one line build_wheel stamps
from cicd.errors import CICDError, GateError, ReleaseNotFoundError, TestsFailedError, VersionError
from cicd.images import ContextFile, read_ignore, tree_files
from cicd.records import CheckRecord, ReleaseRecord, Tagged, find_release, scan, timestamp
from cicd.wheelhouse import ensure_wheelhouse, wheelhouse_key

log = logging.getLogger(__name__)

BUILD_DOCKERFILE = "cicd/build/docker/Dockerfile"
BUILD_DEPS_DOCKERFILE = "cicd/build/docker/deps.Dockerfile"  # its dependencies: an image of their own
DEPS_LABEL = "io.trainyard.deps.key"  # the content key a dependencies image was built for
PROJECT = "project/"  # where the project's files go in the build image's context (the wheelhouse beside)
# Paths inside throwaway containers, not on the host.
IN_REPORTS = "/tmp/reports"  # noqa: S108  # nosec B108
IN_LINT = "/tmp/lint"  # noqa: S108  # nosec B108
IN_AUDIT = "/tmp/audit"  # noqa: S108  # nosec B108
IN_OUT = "/tmp/out"  # noqa: S108  # nosec B108
RELEASE_DIR = "cicd/release/docker"
INSTALLER = "cicd/build/docker/installer.txt"  # uv, for both images' installs from the wheelhouse


# --- versions --------------------------------------------------------------------------------
def compute_version(ctx: Context, branch: str, tags: Sequence[Tagged] | None = None) -> semver.Version:
    """Next version from the latest final release and the commits since (reads git only).

    Only signed release records count (:func:`release_records`; ``tags``: the caller's one read
    of :meth:`Context.trusted_tags`): a tag made by hand that names a version (``v41.0.0``, with no
    record) steers nothing; its name is only never taken again (the next pre-release skips it,
    and a final release whose name it holds is refused, naming it)."""
    cfg = ctx.config
    read = ctx.trusted_tags(strict=False) if tags is None else tags
    scan = versioning.scan_tags([t.name for t in read], cfg.tags.release)
    for tag in scan.malformed:
        log.warning("warning: ignoring malformed release tag %r (not semantic versioning); rename or delete it", tag)
    released = {r.tag for r in release_records(ctx, read)}
    stray = sorted(set(scan.versions) - released)
    for tag in stray:
        log.warning(
            "warning: ignoring tag %r for the version: it is no signed release record (made by hand?); "
            "if nobody needs it: git push origin :refs/tags/%s && git tag -d %s",
            tag, tag, tag,
        )  # fmt: skip
    records = versioning.TagScan({t: v for t, v in scan.versions.items() if t in released}, [])
    latest = versioning.latest_final(records)
    since = cfg.tags.release_tag(str(latest)) if latest else None
    target = versioning.next_version(latest, ctx.repo.messages_since(since), cfg.release.initial_version)
    if cfg.branches.kind(branch) == "develop":
        return versioning.next_prerelease(target, scan.versions.values(), cfg.release.prerelease)
    if cfg.branches.kind(branch) == "release":
        taken = cfg.tags.release_tag(str(target))
        if taken in stray:
            raise VersionError(
                f"the next release is {target}, but tag {taken} already exists and is no signed release record "
                f"(made by hand?): if nobody needs it, delete it (git push origin :refs/tags/{taken} && "
                f"git tag -d {taken}) and release again"
            )
        return target
    return target.replace(prerelease="dev.0", build=ctx.repo.head()[:7])


# --- wheels ----------------------------------------------------------------------------------


def _package_files(ctx: Context) -> tuple[str, list[str]]:
    """The package folder's prefix (``src/``) and the files git lists under it, relative to it:
    what the wheel is built from (a leftover build/lib/ or egg-info never enters it)."""
    package = Path(ctx.config.package).as_posix().strip("/")
    prefix = "" if package in ("", ".") else f"{package}/"
    return prefix, sorted(p.removeprefix(prefix) for p in ctx.repo.listed_files() if p.startswith(prefix))


def package_digest(ctx: Context) -> str:
    """What decides the wheel's contents apart from its version: the listed package files, with
    pyproject's version line blanked (every release stamps a new one, so the wheel's own hash
    would never repeat)."""
    prefix, listed = _package_files(ctx)
    h = hashlib.sha256()
    for rel in listed:
        data = (ctx.root / prefix / rel).read_bytes()
        if rel == "pyproject.toml":
            data = VERSION_LINE.sub('version = ""', data.decode()).encode()
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return "sha256:" + h.hexdigest()


WHEEL_METADATA = {"METADATA", "WHEEL", "RECORD", "entry_points.txt", "top_level.txt"}  # what a build adds
_LICENSE = re.compile(r"(LICEN[CS]E|COPYING|NOTICE|AUTHORS)[\w.-]*")  # license files older setuptools puts there


def wheel_problem(wheel: Path, staged: Path) -> str | None:
    """Why ``wheel`` is not a build of the sources in ``staged`` (None: it is one). Every file in it
    must be a staged file byte for byte, except the metadata a build writes in ``*.dist-info/``
    (:data:`WHEEL_METADATA`, and license files): a planted or altered file, a ``.pth`` beside the
    package, or a changed module is caught before the wheel goes anywhere."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.infolist():
                name = member.filename
                if member.is_dir():
                    continue
                top, _, rest = name.partition("/")
                if top.endswith(".dist-info"):
                    if rest not in WHEEL_METADATA and not rest.startswith("licenses/") and not _LICENSE.match(rest):
                        return f"{name} is no file a build writes"
                    continue
                source = staged / name
                if ".." in Path(name).parts or not source.is_file() or source.read_bytes() != archive.read(member):
                    return f"{name} differs from the sources or is not among them"
    except (OSError, zipfile.BadZipFile) as err:
        return f"unreadable: {err}"
    return None


def build_wheel(ctx: Context, version: str, out_dir: Path) -> Path:
    """Build the sample project's wheel with ``version`` stamped in, reproducibly (same commit → same bytes)."""
    src = ctx.root / ctx.config.package
    out_dir.mkdir(parents=True, exist_ok=True)
    _, listed = _package_files(ctx)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "src"
        for rel in listed:
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, staged / rel)
        pyproject = staged / "pyproject.toml"
        text, count = VERSION_LINE.subn(f'version = "{version}"', pyproject.read_text())
        if count != 1:
            raise VersionError(f'{src / "pyproject.toml"} must have exactly one static `version = "..."` line')
        pyproject.write_text(text)
        epoch = str(ctx.repo.commit_time())
        # Same staged files, timestamp and interpreter → the same bytes: reuse the wheel built before.
        digest = hashlib.sha256(f"{epoch} {sys.version}".encode())
        for path in sorted(p for p in staged.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(staged)).encode() + b"\0" + path.read_bytes())
        cached_dir = CACHE / "wheels" / digest.hexdigest()[:24]
        cached = sorted(cached_dir.glob("*.whl"))
        problem = wheel_problem(cached[0], staged) if cached else None
        if cached and problem is None:
            for old in out_dir.glob("*.whl"):
                old.unlink()
            shutil.copy2(cached[0], out_dir / cached[0].name)
            return out_dir / cached[0].name
        if problem is not None:
            log.warning(
                "the cached wheel %s is not what these sources build (%s): building it again", cached[0], problem
            )
            shutil.rmtree(cached_dir, ignore_errors=True)
        env = {**os.environ, "SOURCE_DATE_EPOCH": epoch}
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "-w",
            tmp,
            str(staged),
        ]
        result = proc.run(cmd, env=env, timeout=600, stream=False)
        if not result.ok:
            raise CICDError("building the wheel failed:\n" + "\n".join(result.tail))
        wheels = list(Path(tmp).glob("*.whl"))
        target = out_dir / wheels[0].name
        for old in out_dir.glob("*.whl"):
            old.unlink()
        with suppress(OSError):
            cached_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(wheels[0], cached_dir / f".{wheels[0].name}.tmp")
            os.replace(cached_dir / f".{wheels[0].name}.tmp", cached_dir / wheels[0].name)
        shutil.move(str(wheels[0]), target)
    return target


# --- images ----------------------------------------------------------------------------------
def oci_labels(ctx: Context, version: str, title: str) -> dict[str, str]:
    created = datetime.fromtimestamp(ctx.repo.commit_time(), UTC).isoformat()
    source = ctx.env.get("TRAINYARD_SOURCE_URL") or ctx.repo.remote_url() or "local"
    return {
        "org.opencontainers.image.title": title,
        "org.opencontainers.image.revision": ctx.repo.head(),
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.created": created,  # the commit's time: a rebuild of it is cached
        "org.opencontainers.image.source": source,
    }


def _wheelhouse_files(path: Path) -> list[ContextFile]:
    return [ContextFile(f"wheelhouse/{p.name}", path=p) for p in sorted(path.glob("*.whl"))]


def dependencies_image(
    ctx: Context, repository: str, dockerfile: str, files: Sequence[ContextFile], wheelhouse: tuple[str, list[Path]]
) -> tuple[str, str, bool]:
    """The image of one Dockerfile's dependencies (a ``deps.Dockerfile``, with ``files`` and the
    wheelhouse ``(name, locks)`` as its context): reused when one built from the same inputs is
    in the engine, else built, the wheelhouse made or reused first. Its id, its tag
    (``<repository>-deps:<key>``) and whether it was reused.

    The key covers every input of that build but the wheels' bytes, which the locks' hashes pin
    (the wheelhouse's own key): the Dockerfile and ``files`` by content, the locks, the base image
    by id. So a commit's build sends only its own files; the wheelhouse is read again only when
    the dependencies change. ``--no-cache`` builds it again."""
    cfg, engine = ctx.config, ctx.engine
    name, locks = wheelhouse
    platform = engine.images.platform(cfg.images.base)
    inputs = {
        "dockerfile": dockerfile,
        "files": {
            f.arcname: hashlib.sha256(f.data if f.data is not None else Path(str(f.path)).read_bytes()).hexdigest()
            for f in files
        },
        "wheelhouse": f"{name}-{wheelhouse_key(locks, platform)}",
        "base": engine.images.id(cfg.images.base),
    }
    key = "sha256:" + hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    tag = f"{repository}-deps:{key.removeprefix('sha256:')[:16]}"
    if not engine.images.no_cache and engine.images.exists(tag):
        labels = (engine.images.attrs(tag).get("Config") or {}).get("Labels") or {}
        if labels.get(DEPS_LABEL) == key:
            log.info("dependencies %s: reused (the same Dockerfile, locks and base image)", tag)
            return engine.images.id(tag), tag, True
    built = engine.images.build(
        [*files, *_wheelhouse_files(ensure_wheelhouse(name, locks, platform))],
        dockerfile,
        tag,
        buildargs={"BASE_IMAGE": cfg.images.base},
        labels={DEPS_LABEL: key},
    )
    log.info(
        "dependencies %s (%s): %d of %d steps from cache", tag, built.image_id[:19], built.cached_steps, built.steps
    )
    return built.image_id, tag, False


def build_image(ctx: Context) -> dict[str, Any]:
    """The build image: source and tests over the dev dependencies' own image (:func:`dependencies_image`)."""
    cfg, engine = ctx.config, ctx.engine
    version = str(compute_version(ctx, ctx.branch()))
    tag = f"{cfg.images.build}:{ctx.commit_tag()}"
    if ctx.dry_run:  # no pull, no wheelhouse, no wheel: only what would be built
        ctx.writes.allow(
            f"build {tag} from {BUILD_DOCKERFILE} over its dependencies ({BUILD_DEPS_DOCKERFILE} with the dev "
            "wheelhouse, when they changed), and this commit's wheel"
        )
        return {"image": tag, "image_id": "", "version": version, "built": False}
    engine.images.ensure_base(cfg.images.base)
    if "@sha256:" not in cfg.images.base:
        log.warning("base image %s is pinned by tag only: whatever image has that tag is built on", cfg.images.base)
    reqs = [
        ctx.root / "src/requirements/dev.txt",
        ctx.root / "cicd/requirements.txt",
        ctx.root / INSTALLER,
    ]
    listed = ctx.repo.listed_files()  # never a file git ignores
    files = tree_files(ctx.root, ctx.root / "cicd/build/docker/.dockerignore", PROJECT, only=listed)
    deps_inputs = ("src/requirements/", "cicd/requirements.txt", INSTALLER, BUILD_DEPS_DOCKERFILE)
    deps_id, deps_tag, deps_reused = dependencies_image(
        ctx,
        cfg.images.build,
        PROJECT + BUILD_DEPS_DOCKERFILE,
        [f for f in files if f.arcname.removeprefix(PROJECT).startswith(deps_inputs)],
        ("dev", reqs),
    )
    result = engine.images.build(
        files,
        PROJECT + BUILD_DOCKERFILE,
        tag,
        buildargs={"DEPS_IMAGE": deps_id},
        labels=oci_labels(ctx, version, f"{cfg.project} build"),
    )
    engine.images.tag(result.image_id, cfg.images.build, "latest")
    wheel = build_wheel(ctx, versioning.to_pep440(semver.Version.parse(version)), ctx.artifacts / "dist")
    summary = {
        "image": tag,
        "image_id": result.image_id,
        "version": version,
        "wheel": str(wheel),
        "steps": result.steps,
        "cached_steps": result.cached_steps,
        "rebuilt": result.rebuilt,
        "dependencies": {"image": deps_tag, "image_id": deps_id, "reused": deps_reused},
        "built": True,
    }
    _write_json(ctx.artifacts / "build.json", summary)
    log.info(
        "build image %s (%s): %d of %d steps from cache", tag, result.image_id[:19], result.cached_steps, result.steps
    )
    return summary


def stage_pytest(ctx: Context, stage: str, tests: Path, reports: Path, *options: str) -> list[str]:
    """The command a stage runs its tests on the host with: this Python's pytest on ``tests``, the
    JUnit XML in ``reports``, no cache folder, and a tmp folder of the stage's own (``--basetemp``):
    pytest's shared ``/tmp/pytest-of-<user>`` is tidied by every session that ends, and two sessions
    ending at once on one machine (CI agents side by side, stages in parallel) race there and fail
    passing tests."""
    temp = ctx.artifacts / "tmp"
    temp.mkdir(parents=True, exist_ok=True)  # pytest makes --basetemp itself, not its parents
    return [
        sys.executable, "-m", "pytest", str(tests), *options, f"--junitxml={reports / 'junit.xml'}",
        f"--basetemp={temp / stage}", "-p", "no:cacheprovider",
    ]  # fmt: skip


def _build_image_ref(ctx: Context, built: str | None = None) -> tuple[str, str]:
    """This commit's build image: its tag (for people) and the id to run (never the tag: it could
    name another image by now). The id is the one ``build`` made (``built``, or the id it wrote to
    ``artifacts/build.json``); a tag that names anything else is refused."""
    tag = f"{ctx.config.images.build}:{ctx.commit_tag()}"
    if not ctx.engine.images.exists(tag):
        if ctx.dry_run:
            log.warning("[dry-run] no build image %s yet: `nox -s build` makes it", tag)
            return tag, tag
        raise CICDError(f"no build image {tag} for this commit; run `nox -s build` first")
    if ctx.dry_run:  # nothing runs in it
        return tag, tag
    if built is None:
        try:
            recorded = json.loads((ctx.artifacts / "build.json").read_text())
        except (OSError, ValueError):
            recorded = {}
        if recorded.get("image") != tag:
            raise CICDError(f"artifacts/build.json does not say which image {tag} is; run `nox -s build` first")
        built = str(recorded["image_id"])
    if ctx.engine.images.id(tag) != built:
        raise CICDError(
            f"{tag} names another image than the {built[:19]} `nox -s build` made; run `nox -s build` again"
        )
    return tag, built


def _passed(
    ctx: Context,
    stage: str,
    commit_tag: str,
    subject: str,
    *,
    version: str = "",
    push: bool = False,
    key: str = "",
    tested: results.Tested | None = None,
) -> None:
    """Vouch for this commit with a signed check record: the merge gate reads it. ``commit_tag`` is
    :meth:`Context.commit_tag` as the stage already had it: a dirty tree vouches for nothing. Where
    nothing can sign (a CI job given no key, by design), the pass is said and not recorded.
    ``tested``: what a test stage's report says ran; the record is complete only if the whole
    suite ran (no selection, some test not skipped). A stage that is no test run (lint, training)
    is complete as it is."""
    repo = ctx.repo
    if commit_tag.endswith("-dirty"):
        return
    if not repo.can_sign():
        log.warning(
            "%s passed, but no signing key is here (%s), so no check record: `nox -s merge` accepts only "
            "signed ones (in CI, the pull request's required check is the gate)",
            stage,
            ctx.config.signing.key_env,
        )
        return
    when = datetime.now(UTC)
    head = repo.head()
    record = CheckRecord(
        stage=stage, commit=head, subject=subject, time=timestamp(when), version=version, key=key,
        tests=tested.tests if tested else 0, skipped=tested.skipped if tested else 0,
        selection=tested.selection if tested else "", complete=tested.complete if tested else True,
        tag=CheckRecord.tag_name(stage, head, when),
    )  # fmt: skip
    repo.create_tag(record.tag, record.to_message())
    if push and repo.has_remote():
        repo.push([f"refs/tags/{record.tag}"])


def _content(ctx: Context, image_id: str) -> str:
    """The build image's part of a key: its content id (labels aside, so the version it is stamped
    with does not count); in a dry run before any build, its name."""
    if ctx.dry_run and not ctx.engine.images.exists(image_id):
        return image_id
    return ctx.engine.images.content_id(image_id)


def _reused(
    ctx: Context,
    stage: str,
    content_key: str,
    commit_tag: str,
    subject: str,
    *,
    version: str = "",
    push: bool = False,
    tags: Sequence[Tagged] | None = None,
) -> dict[str, Any] | None:
    """Reuse a verified pass of ``stage`` with ``content_key`` if there is one: say so in one line and
    leave this commit its own record (the merge gate reads it). The stage's result, or None: run it."""
    earlier = results.reusable(ctx, stage, content_key, tags)
    if earlier is None:
        return None
    log.info("%s: passed for %s… at %s, reused", stage, content_key[:19], earlier.time)
    # the same inputs and arguments: as complete (or as partial) as the pass it reuses
    tested = results.Tested(tests=earlier.tests, skipped=earlier.skipped, selection=earlier.selection)
    _passed(ctx, stage, commit_tag, subject, version=version, push=push, key=content_key, tested=tested)
    return {"ran": False, "passed": True, "reused": earlier.tag, "key": content_key, "complete": tested.complete}


def unit(ctx: Context, pytest_args: list[str] | None = None) -> dict[str, Any]:
    """Unit tests inside the build image; JUnit XML and coverage copied out to artifacts/reports/unit."""
    image, image_id = _build_image_ref(ctx)
    reports = ctx.artifacts / "reports" / "unit"
    cmd = [
        "python",
        "tests/run_tests.py",
        "--test-type",
        "unit",
        "-p",
        "no:cacheprovider",
        f"--junitxml={IN_REPORTS}/junit.xml",
        "--cov",
        f"--cov-report=xml:{IN_REPORTS}/coverage.xml",
        "--cov-report=term",
        *(pytest_args or []),
    ]
    content_key = results.key("unit", {"image": _content(ctx, image_id), "command": cmd})
    commit_tag = image.rsplit(":", 1)[-1]  # the build image is tagged with the commit tag
    reused = _reused(ctx, "unit", content_key, commit_tag, image_id)
    if reused is not None:
        return {"image": image, **reused}
    if not ctx.dry_run:
        shutil.rmtree(reports, ignore_errors=True)
    result = ctx.engine.containers.run(image_id, cmd, timeout=ctx.config.test_timeout, copy_out={IN_REPORTS: reports})
    if not result.ran:
        return {"image": image, "ran": False, "key": content_key}
    if result.exit_code != 0:
        raise TestsFailedError(f"unit tests in {image}", result.exit_code, str(reports))
    tested = results.junit_counts(reports / "junit.xml", pytest_args)
    tested.require_some(f"unit tests in {image}", str(reports))
    _passed(ctx, "unit", commit_tag, image_id, key=content_key, tested=tested)
    log.info("unit tests passed in %s; reports in %s", image, reports)
    return {
        "image": image, "reports": str(reports), "ran": True, "passed": True, "tail": result.log_tail[-3:],
        "key": content_key, "complete": tested.complete,
    }  # fmt: skip


def lint(ctx: Context) -> dict[str, Any]:
    """Every linter of :mod:`cicd.lint_tools` inside the build image, so its pinned versions are used."""
    image, image_id = _build_image_ref(ctx)
    reports = ctx.artifacts / "reports" / "lint"
    cmd = ["python", "-m", "cicd.lint_tools", "--reports", IN_LINT]
    content_key = results.key("lint", {"image": _content(ctx, image_id), "command": cmd})
    reused = _reused(ctx, "lint", content_key, image.rsplit(":", 1)[-1], image_id)
    if reused is not None:  # the audit asks a vulnerability database that changes by the day: never reused
        return {"image": image, **reused, "audit": _audit(ctx, image_id, reports / "audit")}
    if not ctx.dry_run:
        shutil.rmtree(reports, ignore_errors=True)
    result = ctx.engine.containers.run(image_id, cmd, timeout=ctx.config.test_timeout, copy_out={IN_LINT: reports})
    if not result.ran:
        return {"image": image, "ran": False, "key": content_key}
    if result.exit_code != 0:
        raise TestsFailedError(f"lint in {image}", result.exit_code, str(reports))
    _passed(ctx, "lint", image.rsplit(":", 1)[-1], image_id, key=content_key)
    audit = _audit(ctx, image_id, reports / "audit")
    log.info("lint passed in %s; dependency audit: %s; reports in %s", image, audit, reports)
    return {
        "image": image, "reports": str(reports), "ran": True, "passed": True, "audit": audit, "key": content_key,
    }  # fmt: skip


def _audit(ctx: Context, image_id: str, reports: Path) -> str:
    """``python -m cicd.audit`` in the build image, with the network on (it asks a vulnerability
    service): ``passed``, or ``not checked`` (said, never a pass); known vulnerabilities fail lint."""
    result = ctx.engine.containers.run(
        image_id,
        ["python", "-m", "cicd.audit", "--reports", IN_AUDIT],
        timeout=ctx.config.test_timeout,
        copy_out={IN_AUDIT: reports},
        network="host",
    )
    try:
        outcome = str(json.loads((reports / "audit.json").read_text())["outcome"])
    except (OSError, ValueError, KeyError):
        outcome = "not checked"
    if outcome == "vulnerable" or (result.exit_code not in (0, 3)):
        raise TestsFailedError(f"the dependency audit in {image_id[:19]}", result.exit_code, str(reports))
    if outcome != "passed":
        log.warning("dependency audit NOT CHECKED (not a pass): see %s", reports / "audit.json")
    return outcome


# --- release ---------------------------------------------------------------------------------
def _release_context(ctx: Context, files: list[ContextFile]) -> list[ContextFile]:
    """``files`` less what the release ``.dockerignore`` keeps out (a second guard)."""
    patterns = [p.removeprefix("**/") for p in read_ignore(ctx.root / RELEASE_DIR / ".dockerignore")]
    return [f for f in files if not any(fnmatch(part, pat) for part in f.arcname.split("/") for pat in patterns)]


def _release_files(ctx: Context, wheel: Path, model: Path) -> list[ContextFile]:
    release_dir = ctx.root / RELEASE_DIR
    files = [
        ContextFile("Dockerfile", path=release_dir / "Dockerfile"),
        ContextFile("healthcheck.py", path=release_dir / "healthcheck.py"),
        ContextFile(f"dist/{wheel.name}", path=wheel),
        *[ContextFile(f"model/{p.relative_to(model)}", path=p) for p in sorted(model.rglob("*")) if p.is_file()],
    ]
    return _release_context(ctx, files)


def _release_dependencies(ctx: Context) -> str:
    """The id of the release image's dependencies image (the runtime wheelhouse's venv)."""
    release_dir = ctx.root / RELEASE_DIR
    locks = [ctx.root / "src/requirements/default.txt", ctx.root / INSTALLER]
    files = [
        ContextFile("deps.Dockerfile", path=release_dir / "deps.Dockerfile"),
        ContextFile("requirements/default.txt", path=locks[0]),
        ContextFile("requirements/installer.txt", path=locks[1]),
    ]
    deps_id, _, _ = dependencies_image(
        ctx, ctx.config.images.release, "deps.Dockerfile", _release_context(ctx, files), ("runtime", locks)
    )
    return deps_id


SBOM_DIR = "/opt/sbom"  # where the release Dockerfile writes the CycloneDX SBOM of /opt/venv
SBOM_LABEL = "io.trainyard.sbom.sha256"


def _with_sbom_label(ctx: Context, image_id: str, tag: str, dest: Path) -> tuple[str, str]:
    """Copy the SBOM the release image carries out to ``dest``; label the image with its sha256 (a
    one-line build on top: no layer changes). The labelled image's id and ``sha256:<hex>``."""
    engine = ctx.engine
    shutil.rmtree(dest, ignore_errors=True)
    engine.containers.run(image_id, ["true"], timeout=120, copy_out={SBOM_DIR: dest})
    sboms = sorted(dest.glob("*.cdx.json"))
    if not sboms:
        raise CICDError(f"the release image has no SBOM in {SBOM_DIR}; check cicd/release/docker/Dockerfile")
    sbom = "sha256:" + hashlib.sha256(sboms[0].read_bytes()).hexdigest()
    labelled = engine.images.build(
        [ContextFile("Dockerfile", data=f"FROM {image_id}\n".encode())], "Dockerfile", tag, labels={SBOM_LABEL: sbom}
    )
    log.info("SBOM %s (%s) labelled on %s", sboms[0].name, sbom[:19], labelled.image_id[:19])
    return labelled.image_id, sbom


def _check_model_card(card_file: Path, metadata_file: Path) -> str | None:
    """A committed model card (written by retraining) must describe the model just trained: same
    data. The data fingerprint both agree on, or None when there is no card."""
    if not card_file.is_file():
        return None
    try:
        expected = json.loads(card_file.read_text(encoding="utf-8"))["data"]["fingerprint"]
        trained = json.loads(metadata_file.read_text(encoding="utf-8"))["data"]["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise GateError(f"cannot compare {card_file} with the trained model ({err}); nothing was released") from err
    if expected != trained:
        raise GateError(
            f"the model was trained on data {trained[:19]}…, but the model card {card_file} describes "
            f"{expected[:19]}…; the card and the data snapshot must change together (rerun `nox -s retrain`). "
            "Nothing was released."
        )
    log.info("model card %s matches the trained model's data (%s…)", card_file.name, trained[:19])
    return str(trained)


def _released_here(ctx: Context, branch: str, tags: Sequence[Tagged]) -> ReleaseRecord | None:
    """This very commit's verified release from this branch: releasing it again would make the same
    thing under a new version (a merge of the same tree is a new commit, and released anew)."""
    head = ctx.repo.head()
    return next((r for r in release_records(ctx, tags) if r.commit == head and r.branch == branch), None)


def _training_key(ctx: Context, image_id: str, command: str, config_args: list[str]) -> str | None:
    """The content key of training and its gate, or None (said) when the project gives no data
    fingerprint. Inputs: the package (:func:`package_digest`, its pins included), the settings
    file, the data's fingerprint as the project computes it in the build image (the data ``train``
    would read, wherever it lives), the base image, the toolkit's pins and the command. Left out:
    the commit (the bundle's ``git_commit`` names the one that trained it) and the time."""
    cfg = ctx.config
    with tempfile.TemporaryDirectory(prefix="trainyard-fingerprint-") as tmp:
        result = ctx.engine.containers.run(
            image_id,
            ["python", "-m", f"{cfg.import_name}.run", "fingerprint", *config_args, "--output", f"{IN_OUT}/data.json"],
            timeout=cfg.release.train_timeout,
            copy_out={IN_OUT: Path(tmp)},
        )
        try:
            data = str(json.loads((Path(tmp) / "data.json").read_text())["fingerprint"])
        except (OSError, ValueError, KeyError, TypeError):
            log.info(
                "train: `%s.run fingerprint` gave no data fingerprint (exit %s), so training is never reused",
                cfg.import_name, result.exit_code,
            )  # fmt: skip
            return None
    settings = ctx.root / cfg.retrain.settings
    return results.key(
        "train",
        {
            "package": package_digest(ctx),
            "settings": hashlib.sha256(settings.read_bytes()).hexdigest() if settings.is_file() else "",
            "data": data,
            "base": ctx.engine.images.id(cfg.images.base),
            "toolkit": results.files_digest(ctx.root, ["cicd/requirements.txt", INSTALLER]),
            "command": command,
        },
    )


def _train(ctx: Context, image: str, image_id: str, out: Path, tags: Sequence[Tagged] | None) -> dict[str, Any]:
    """Train and gate the model in the build image into ``out`` (``model/``, ``evaluation/``), or
    reuse a bundle trained before from the same inputs whose stored files verify against its record."""
    cfg, repo = ctx.config, ctx.repo
    settings = cfg.retrain.settings  # the model's committed settings (data, model, split, gate)
    config_args = ["--config", settings] if (ctx.root / settings).is_file() else []
    config_arg = "".join(f" {shlex.quote(a)}" for a in config_args)
    cli = f"python -m {shlex.quote(cfg.import_name)}.run"
    train = (
        f"{cli} train{config_arg} --output {IN_OUT}/model"
        f" && {cli} evaluate{config_arg} --model-dir {IN_OUT}/model --output {IN_OUT}/evaluation"
    )
    content_key = _training_key(ctx, image_id, train, config_args)
    earlier = results.reusable(ctx, "train", content_key, tags) if content_key else None
    if content_key and earlier is not None and results.restore("train", content_key, earlier.subject, out):
        log.info(
            "train: passed for %s… at %s (bundle %s…), reused", content_key[:19], earlier.time, earlier.subject[:19]
        )
        _passed(ctx, "train", ctx.commit_tag(), earlier.subject, push=True, key=content_key)
        return {"ran": False, "passed": True, "reused": earlier.tag, "key": content_key, "bundle": earlier.subject}
    result = ctx.engine.containers.run(
        image_id,
        ["sh", "-c", train],
        env={"GIT_COMMIT": repo.head()},
        timeout=cfg.release.train_timeout,
        copy_out={IN_OUT: out},
    )
    if result.exit_code != 0:
        raise GateError(
            f"training or the evaluation gate failed in {image} (exit {result.exit_code}); "
            f"nothing was released. See the log above and {out / 'evaluation'}"
        )
    bundle = results.keep("train", content_key, out) if content_key else results.folder_digest(out)
    if content_key:
        _passed(ctx, "train", ctx.commit_tag(), bundle, push=True, key=content_key)
    return {"ran": True, "passed": True, "key": content_key or "", "bundle": bundle}


def release(ctx: Context) -> dict[str, Any]:
    """Train and gate the model in the build image, build the release image, push it, record it in git."""
    cfg, repo = ctx.config, ctx.repo
    repo.ensure_clean()
    try:  # the record is signed at the end: a missing or unlisted key is said before the build
        repo.check_can_sign()
    except CICDError as err:
        if not ctx.dry_run:
            raise
        log.warning("warning: a real release would stop here: %s", err)
    engine = ctx.engine
    branch = ctx.branch()
    tags = None if results.turned_off(ctx) else ctx.trusted_tags()  # one read for the version and both reuse checks
    version = compute_version(ctx, branch, tags)
    tag = cfg.tags.release_tag(str(version))
    done = None if tags is None else _released_here(ctx, branch, tags)
    if done is not None:
        log.info(
            "release: %s was released from this commit at %s (%s), reused", done.version, done.created, done.reference
        )
        summary = {**done.__dict__, "released": False, "reused": done.tag}
        if not ctx.dry_run:
            _write_json(ctx.artifacts / "release.json", summary)
        return summary
    log.info("releasing %s %s from %s at %s", cfg.project, version, branch, repo.head()[:12])
    image, image_id = _build_image_ref(ctx, build_image(ctx)["image_id"] or None)
    if ctx.dry_run:
        ctx.writes.allow(f"train and gate the model in {image}")
        ctx.writes.allow(f"build {cfg.images.release}:{version} from the model, the wheel and the runtime wheelhouse")
        if cfg.registry is not None:
            engine.registry.push(cfg.registry.repository(cfg.images.release), str(version), None)
        repo.create_tag(tag, "(the release record)")
        if repo.has_remote():
            repo.push([f"refs/tags/{tag}"])
        return {"version": str(version), "tag": tag, "released": False}
    out = ctx.artifacts / "release"
    shutil.rmtree(out, ignore_errors=True)
    training = _train(ctx, image, image_id, out, tags)
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    settings = cfg.retrain.settings
    card = _check_model_card(ctx.root / Path(settings).parent / "card.json", out / "model" / "metadata.json")
    pep440 = versioning.to_pep440(version)
    wheel = build_wheel(ctx, pep440, out / "dist")
    built = engine.images.build(
        _release_files(ctx, wheel, out / "model"),
        "Dockerfile",
        f"{cfg.images.release}:{version}",
        buildargs={
            "BASE_IMAGE": cfg.images.base,
            "DEPS_IMAGE": _release_dependencies(ctx),
            "IMPORT_NAME": cfg.import_name,
        },
        labels=oci_labels(ctx, str(version), cfg.project),
    )
    image_id, sbom = _with_sbom_label(ctx, built.image_id, f"{cfg.images.release}:{version}", out / "sbom")
    engine.images.tag(image_id, cfg.images.release, repo.head()[:12])
    reference = digest = image_id
    if cfg.registry is not None:
        repository = cfg.registry.repository(cfg.images.release)
        engine.images.tag(image_id, repository, str(version))
        reference = engine.registry.push(repository, str(version), cfg.registry.credentials())
        digest = reference.split("@", 1)[1]
    record = ReleaseRecord(
        version=str(version),
        pep440=pep440,
        commit=repo.head(),
        tree=repo.tree(),
        branch=branch,
        image=image_id,
        reference=reference,
        digest=digest,
        created=timestamp(datetime.now(UTC)),
        metrics={"model": metrics["model"], "baseline": metrics["baseline"], "model_name": metrics["model_name"]},
        sbom=sbom,
        tag=tag,
    )
    repo.create_tag(record.tag, record.to_message())
    if repo.has_remote():
        repo.push([f"refs/tags/{record.tag}"])
    summary = {**record.__dict__, "released": True, "model_card_fingerprint": card, "training": training}
    _write_json(ctx.artifacts / "release.json", summary)
    log.info("released %s: %s (tag %s)", record.version, record.reference, record.tag)
    return summary


def release_records(ctx: Context, tags: Sequence[Tagged] | None = None) -> list[ReleaseRecord]:
    """Every valid release record, newest first, each verified (tags that do not follow
    ``tags.release`` are left out). ``tags``: the caller's one read of :meth:`Context.trusted_tags`."""
    read = ctx.trusted_tags() if tags is None else tags
    names = set(versioning.scan_tags([t.name for t in read], ctx.config.tags.release).versions)
    return [r for r in scan(read, ReleaseRecord) if r.tag in names]


def current_release(ctx: Context, tags: Sequence[Tagged] | None = None) -> ReleaseRecord:
    return find_release(release_records(ctx, tags), ctx.repo.head(), ctx.repo.tree(), ctx.repo.is_ancestor)


def integration(ctx: Context, pytest_args: list[str] | None = None) -> dict[str, Any]:
    """Integration tests against the exact release image of this commit (pulled by digest if pushed)."""
    try:
        tags = ctx.trusted_tags()  # one read for the release record and the reuse check
        record = current_release(ctx, tags)
    except ReleaseNotFoundError:
        if not ctx.dry_run:
            raise
        log.warning("[dry-run] no release of this commit yet: would test the one `nox -s release` makes")
        return {"ran": False}
    cfg = ctx.config
    content_key = results.key(
        "integration",
        {"digest": record.digest, "inputs": results.tracked_digest(ctx, results.INTEGRATION_INPUTS),
         "arguments": list(pytest_args or [])},
    )  # fmt: skip
    reused = _reused(
        ctx, "integration", content_key, ctx.commit_tag(), record.digest, version=record.version, push=True, tags=tags
    )
    if reused is not None:
        return {"version": record.version, "reference": record.reference, **reused}
    image = record.image
    if cfg.registry is not None and "@" in record.reference:
        reference = cfg.registry.checked_reference(record.reference, cfg.images.release)
        image = ctx.engine.registry.pull(reference, cfg.registry.credentials())
        if not ctx.dry_run and image != record.image:
            log.info("note: pulled image id %s differs from the built one %s", image[:19], record.image[:19])
    if not ctx.writes.allow(f"run tests/integration/release_image against {record.reference}"):
        return {"version": record.version, "reference": record.reference, "ran": False, "key": content_key}
    reports = ctx.artifacts / "reports" / "integration"
    reports.mkdir(parents=True, exist_ok=True)
    tests = ctx.root / "tests/integration/release_image"
    cmd = [*stage_pytest(ctx, "integration", tests, reports, f"--release-image={image}"), *(pytest_args or [])]
    (reports / "junit.xml").unlink(missing_ok=True)
    result = proc.run(cmd, cwd=ctx.root, timeout=cfg.test_timeout, env=ctx.env)
    if not result.ok:
        raise TestsFailedError(f"integration tests against {record.reference}", result.exit_code, str(reports))
    tested = results.junit_counts(reports / "junit.xml", pytest_args)
    tested.require_some(f"integration tests against {record.reference}", str(reports))
    _passed(
        ctx, "integration", ctx.commit_tag(), record.digest, version=record.version, push=True, key=content_key,
        tested=tested,
    )  # fmt: skip
    log.info("integration tests passed against %s (%s)", record.version, record.reference)
    return {
        "version": record.version,
        "reference": record.reference,
        "ran": True,
        "passed": True,
        "summary": result.tail[-1] if result.tail else "",
        "key": content_key,
        "complete": tested.complete,
    }


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


# --- merge -----------------------------------------------------------------------------------
def merge(ctx: Context, source: str | None = None) -> dict[str, Any]:
    """Merge a branch whose checks passed into its target: feature → develop, develop → master/main.

    The evidence is a signed check record (``checked/<stage>/...``, verified like every record)
    that the passing stage left for the branch's head commit (``unit`` for a feature branch,
    ``integration`` for develop). On conflict the merge is aborted and the target is left as it was.
    """
    cfg, repo = ctx.config, ctx.repo
    source = source or ctx.branch()
    kind = cfg.branches.kind(source)
    if kind == "release":
        raise CICDError(f"{source} is a release branch: it is deployed, not merged anywhere")
    if kind == "develop":
        existing = set(repo.branches())
        target = next((b for b in cfg.branches.release if b in existing), cfg.branches.release[0])
        needed = "integration"
    else:
        target, needed = cfg.branches.develop, "unit"
    head = repo.rev(source)
    checks = [c for c in scan(ctx.trusted_tags(), CheckRecord) if c.stage == needed and c.commit == head]
    run = "build unit" if needed == "unit" else "release integration"
    if not checks:
        raise CICDError(
            f"{source} ({head[:12]}) has no passing `{needed}` record (a signed check record); run `nox -s "
            f"{run}` on it first"
        )
    if not any(c.complete for c in checks):
        what = checks[0].selection or f"{checks[0].skipped} of {checks[0].tests} tests skipped"
        raise CICDError(
            f"{source} ({head[:12]}) has only a partial `{needed}` pass ({what}), which cannot merge; run "
            f"`nox -s {run}` with no test selection"
        )
    merged = repo.merge(source, target)
    log.info("merged %s into %s at %s", source, target, merged[:12])
    return {"source": source, "target": target, "commit": merged, "merged": not ctx.dry_run}
