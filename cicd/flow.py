"""The stages of the first two rows of the flow: build, unit, lint, release, integration.

Each stage takes a :class:`Context` (the spec, the repository, the engine) and returns a short
summary; failures raise :mod:`cicd.errors` classes. Only the modules they call touch git
(:mod:`cicd.gitops`) or Docker (:mod:`cicd.images`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatch
from functools import cached_property
from pathlib import Path
from typing import Any

import semver

from cicd import versioning
from cicd.config import PipelineConfig
from cicd.errors import CICDError, GateError, TestsFailedError, VersionError
from cicd.gitops import Repo
from cicd.images import ContextFile, Engine, read_ignore, tree_files
from cicd.records import ReleaseRecord, find_release
from cicd.wheelhouse import DEFAULT_CACHE, ensure_wheelhouse

BUILD_DOCKERFILE = "cicd/build/docker/Dockerfile"
# Paths inside throwaway containers, not on the host.
IN_REPORTS = "/tmp/reports"  # noqa: S108  # nosec B108
IN_LINT = "/tmp/lint"  # noqa: S108  # nosec B108
IN_OUT = "/tmp/out"  # noqa: S108  # nosec B108
RELEASE_DIR = "cicd/release/docker"
INSTALLER = "cicd/build/docker/installer.txt"  # uv, for both images' installs from the wheelhouse


@dataclass
class Context:
    config: PipelineConfig
    root: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    dry_run: bool = False
    branch_override: str | None = None

    @cached_property
    def repo(self) -> Repo:
        return Repo(self.root)

    @cached_property
    def engine(self) -> Engine:
        return Engine()

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def branch(self) -> str:
        return self.branch_override or self.repo.branch(self.env)

    def commit_tag(self) -> str:
        sha = self.repo.head()[:12]
        return f"{sha}-dirty" if self.repo.dirty_paths() else sha


# --- versions --------------------------------------------------------------------------------
def compute_version(ctx: Context, branch: str) -> semver.Version:
    """Next version from the latest final release tag and the commits since (reads git only)."""
    cfg = ctx.config
    scan = versioning.scan_tags(ctx.repo.tags(), cfg.tags.release)
    for tag in scan.malformed:
        print(f"warning: ignoring malformed release tag {tag!r} (not semantic versioning); rename or delete it")
    latest = versioning.latest_final(scan)
    since = cfg.tags.release_tag(str(latest)) if latest else None
    target = versioning.next_version(latest, ctx.repo.messages_since(since), cfg.release.initial_version)
    if cfg.branches.kind(branch) == "develop":
        return versioning.next_prerelease(target, scan.versions.values(), cfg.release.prerelease)
    if cfg.branches.kind(branch) == "release":
        return target
    return target.replace(prerelease="dev.0", build=ctx.repo.head()[:7])


# --- wheels ----------------------------------------------------------------------------------
def build_wheel(ctx: Context, version: str, out_dir: Path) -> Path:
    """Build the sample project's wheel with ``version`` stamped in, reproducibly (same commit → same bytes)."""
    src = ctx.root / ctx.config.package
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "src"
        shutil.copytree(src, staged, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build", "dist"))
        pyproject = staged / "pyproject.toml"
        text, count = re.subn(r'(?m)^version\s*=\s*"[^"]*"', f'version = "{version}"', pyproject.read_text())
        if count != 1:
            raise VersionError(f'{src / "pyproject.toml"} must have exactly one static `version = "..."` line')
        pyproject.write_text(text)
        epoch = str(ctx.repo.commit_time())
        # Same staged files, timestamp and interpreter → the same bytes: reuse the wheel built before.
        digest = hashlib.sha256(f"{epoch} {sys.version}".encode())
        for path in sorted(p for p in staged.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(staged)).encode() + b"\0" + path.read_bytes())
        cached_dir = DEFAULT_CACHE / "wheels" / digest.hexdigest()[:24]
        cached = sorted(cached_dir.glob("*.whl"))
        if cached:
            for old in out_dir.glob("*.whl"):
                old.unlink()
            shutil.copy2(cached[0], out_dir / cached[0].name)
            return out_dir / cached[0].name
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
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise CICDError(f"building the wheel failed:\n{result.stderr[-2000:]}")
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
    source = ctx.env.get("TRAINYARD_SOURCE_URL") or _origin_url(ctx)
    return {
        "org.opencontainers.image.title": title,
        "org.opencontainers.image.revision": ctx.repo.head(),
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.created": created,  # the commit's time: a rebuild of it is cached
        "org.opencontainers.image.source": source,
    }


def _origin_url(ctx: Context) -> str:
    try:
        url = str(ctx.repo.repo.remotes.origin.url)
    except (AttributeError, IndexError):
        return "local"
    return re.sub(r"//[^/@]+@", "//", url)  # never carry credentials into a label


def _wheelhouse_files(path: Path) -> list[ContextFile]:
    return [ContextFile(f"wheelhouse/{p.name}", path=p) for p in sorted(path.glob("*.whl"))]


def build_image(ctx: Context) -> dict[str, Any]:
    """The build image: source, tests and dev dependencies (installed from the wheelhouse)."""
    cfg, engine = ctx.config, ctx.engine
    engine.ensure_base_image(cfg.images.base)
    platform = engine.platform(cfg.images.base)
    reqs = [
        ctx.root / "src/requirements/dev.txt",
        ctx.root / "cicd/requirements.txt",
        ctx.root / INSTALLER,
    ]
    wheelhouse = ensure_wheelhouse("dev", reqs, platform)
    files = tree_files(ctx.root, ctx.root / "cicd/build/docker/.dockerignore") + _wheelhouse_files(wheelhouse)
    version = str(compute_version(ctx, ctx.branch()))
    tag = f"{cfg.images.build}:{ctx.commit_tag()}"
    result = engine.build(
        files,
        BUILD_DOCKERFILE,
        tag,
        buildargs={"BASE_IMAGE": cfg.images.base},
        labels=oci_labels(ctx, version, f"{cfg.project} build"),
    )
    engine.tag(result.image_id, cfg.images.build, "latest")
    wheel = build_wheel(ctx, versioning.to_pep440(semver.Version.parse(version)), ctx.artifacts / "dist")
    summary = {
        "image": tag,
        "image_id": result.image_id,
        "version": version,
        "wheel": str(wheel),
        "steps": result.steps,
        "cached_steps": result.cached_steps,
    }
    _write_json(ctx.artifacts / "build.json", summary)
    print(f"build image {tag} ({result.image_id[:19]}): {result.cached_steps} of {result.steps} steps from cache")
    return summary


def _build_image_ref(ctx: Context) -> str:
    tag = f"{ctx.config.images.build}:{ctx.commit_tag()}"
    if not ctx.engine.has_image(tag):
        raise CICDError(f"no build image {tag} for this commit; run `nox -s build` first")
    return tag


def unit(ctx: Context, pytest_args: list[str] | None = None) -> dict[str, Any]:
    """Unit tests inside the build image; JUnit XML and coverage copied out to artifacts/reports/unit."""
    image = _build_image_ref(ctx)
    reports = ctx.artifacts / "reports" / "unit"
    shutil.rmtree(reports, ignore_errors=True)
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
    result = ctx.engine.run(image, cmd, timeout=ctx.config.test_timeout, copy_out={IN_REPORTS: reports})
    if result.exit_code != 0:
        raise TestsFailedError(f"unit tests in {image}", result.exit_code, str(reports))
    if not image.endswith("-dirty"):  # only a committed tree can vouch for a commit
        ctx.repo.add_note(
            {"stage": "unit", "result": "passed", "time": datetime.now(UTC).isoformat(timespec="seconds")},
            dry_run=ctx.dry_run,
        )
    print(f"unit tests passed in {image}; reports in {reports}")
    return {"image": image, "reports": str(reports)}


def lint(ctx: Context) -> dict[str, Any]:
    """Every linter of :mod:`cicd.lint_tools` inside the build image, so its pinned versions are used."""
    image = _build_image_ref(ctx)
    reports = ctx.artifacts / "reports" / "lint"
    shutil.rmtree(reports, ignore_errors=True)
    result = ctx.engine.run(
        image,
        ["python", "-m", "cicd.lint_tools", "--reports", IN_LINT],
        timeout=ctx.config.test_timeout,
        copy_out={IN_LINT: reports},
    )
    if result.exit_code != 0:
        raise TestsFailedError(f"lint in {image}", result.exit_code, str(reports))
    print(f"lint passed in {image}; reports in {reports}")
    return {"image": image, "reports": str(reports)}


# --- release ---------------------------------------------------------------------------------
def _release_files(ctx: Context, wheelhouse: Path, wheel: Path, model: Path) -> list[ContextFile]:
    release_dir = ctx.root / RELEASE_DIR
    files = [
        ContextFile("Dockerfile", path=release_dir / "Dockerfile"),
        ContextFile("requirements/default.txt", path=ctx.root / "src/requirements/default.txt"),
        ContextFile("requirements/installer.txt", path=ctx.root / INSTALLER),
        ContextFile(f"dist/{wheel.name}", path=wheel),
        *_wheelhouse_files(wheelhouse),
        *[ContextFile(f"model/{p.relative_to(model)}", path=p) for p in sorted(model.rglob("*")) if p.is_file()],
    ]
    patterns = [p.removeprefix("**/") for p in read_ignore(release_dir / ".dockerignore")]
    return [f for f in files if not any(fnmatch(part, pat) for part in f.arcname.split("/") for pat in patterns)]


def _check_model_card(card_file: Path, metadata_file: Path) -> None:
    """A committed model card (written by retraining) must describe the model just trained: same data."""
    if not card_file.is_file():
        return
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
    print(f"model card {card_file.name} matches the trained model's data ({trained[:19]}…)")


def release(ctx: Context) -> ReleaseRecord:
    """Train and gate the model in the build image, build the release image, push it, record it in git."""
    cfg, engine, repo = ctx.config, ctx.engine, ctx.repo
    repo.ensure_clean()
    branch = ctx.branch()
    version = compute_version(ctx, branch)
    print(f"releasing {cfg.project} {version} from {branch} at {repo.head()[:12]}")
    build_image(ctx)
    image = _build_image_ref(ctx)
    out = ctx.artifacts / "release"
    shutil.rmtree(out, ignore_errors=True)
    settings = cfg.retrain.settings  # the model's committed settings (data, model, split, gate)
    config_arg = f" --config {shlex.quote(settings)}" if (ctx.root / settings).is_file() else ""
    cli = f"python -m {cfg.import_name}.run"
    train = (
        f"{cli} train{config_arg} --output {IN_OUT}/model"
        f" && {cli} evaluate{config_arg} --model-dir {IN_OUT}/model --output {IN_OUT}/evaluation"
    )
    result = engine.run(
        image,
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
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    _check_model_card(ctx.root / Path(settings).parent / "card.json", out / "model" / "metadata.json")
    pep440 = versioning.to_pep440(version)
    wheel = build_wheel(ctx, pep440, out / "dist")
    runtime = ensure_wheelhouse(
        "runtime", [ctx.root / "src/requirements/default.txt", ctx.root / INSTALLER], engine.platform(cfg.images.base)
    )
    built = engine.build(
        _release_files(ctx, runtime, wheel, out / "model"),
        "Dockerfile",
        f"{cfg.images.release}:{version}",
        buildargs={"BASE_IMAGE": cfg.images.base},
        labels=oci_labels(ctx, str(version), cfg.project),
    )
    engine.tag(built.image_id, cfg.images.release, repo.head()[:12])
    reference = digest = built.image_id
    if cfg.registry is not None:
        repository = cfg.registry.repository(cfg.images.release)
        engine.tag(built.image_id, repository, str(version))
        reference = engine.push(repository, str(version), cfg.registry.credentials(), dry_run=ctx.dry_run)
        digest = reference.split("@", 1)[1]
    record = ReleaseRecord(
        version=str(version),
        pep440=pep440,
        commit=repo.head(),
        tree=repo.tree(),
        branch=branch,
        image=built.image_id,
        reference=reference,
        digest=digest,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        metrics={"model": metrics["model"], "baseline": metrics["baseline"], "model_name": metrics["model_name"]},
        tag=cfg.tags.release_tag(str(version)),
    )
    repo.create_tag(record.tag, record.to_message(), dry_run=ctx.dry_run)
    if repo.has_remote():
        repo.push([f"refs/tags/{record.tag}"], dry_run=ctx.dry_run)
    _write_json(ctx.artifacts / "release.json", {**record.__dict__})
    print(f"released {record.version}: {record.reference} (tag {record.tag})")
    return record


def release_records(ctx: Context) -> list[ReleaseRecord]:
    scan = versioning.scan_tags(ctx.repo.tags(), ctx.config.tags.release)
    records = []
    for tag in scan.versions:
        info = ctx.repo.tag(tag)
        record = ReleaseRecord.from_message(tag, info.message) if info else None
        if record is not None:
            records.append(record)
    return records


def current_release(ctx: Context) -> ReleaseRecord:
    return find_release(release_records(ctx), ctx.repo.head(), ctx.repo.tree(), ctx.repo.is_ancestor)


def integration(ctx: Context, pytest_args: list[str] | None = None) -> dict[str, Any]:
    """Integration tests against the exact release image of this commit (pulled by digest if pushed)."""
    record = current_release(ctx)
    cfg = ctx.config
    image = record.image
    if cfg.registry is not None and "@" in record.reference:
        image = ctx.engine.pull(record.reference, cfg.registry.credentials())
        if image != record.image:
            print(f"note: pulled image id {image[:19]} differs from the built one {record.image[:19]}")
    reports = ctx.artifacts / "reports" / "integration"
    reports.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(ctx.root / "tests/integration/release_image"),
        f"--release-image={image}",
        f"--junitxml={reports / 'junit.xml'}",
        "-p",
        "no:cacheprovider",
        *(pytest_args or []),
    ]
    code = subprocess.run(cmd, cwd=ctx.root, check=False).returncode
    if code != 0:
        raise TestsFailedError(f"integration tests against {record.reference}", code, str(reports))
    ctx.repo.add_note(
        {
            "stage": "integration",
            "result": "passed",
            "version": record.version,
            "digest": record.digest,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        dry_run=ctx.dry_run,
    )
    print(f"integration tests passed against {record.version} ({record.reference})")
    return {"version": record.version, "reference": record.reference}


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


# --- merge -----------------------------------------------------------------------------------
def merge(ctx: Context, source: str | None = None) -> str:
    """Merge a branch whose checks passed into its target: feature → develop, develop → master/main.

    The evidence is the git note the passing stage left on the branch's head commit (``unit``
    for a feature branch, ``integration`` for develop). On conflict the merge is aborted and the
    target is left as it was.
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
    notes = [n for n in repo.notes(head) if n.get("stage") == needed and n.get("result") == "passed"]
    if not notes:
        raise CICDError(
            f"{source} ({head[:12]}) has no passing `{needed}` record; run `nox -s "
            f"{'build unit' if needed == 'unit' else 'release integration'}` on it first"
        )
    merged = repo.merge(source, target, dry_run=ctx.dry_run)
    print(f"merged {source} into {target} at {merged[:12]}")
    return merged
