"""Real components for integration tests: the Docker engine, a registry process, git repositories.

When ``CI=true`` a missing component fails the test (a check that did not run never counts as
passed); on a laptop without Docker those tests are skipped with the reason.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cicd import demo
from cicd.config import load_config
from cicd.errors import EngineUnavailableError
from cicd.gitops import throwaway_clone
from cicd.http import free_port
from cicd.images import Engine
from cicd.records import CheckRecord, timestamp
from cicd.signing import new_key

ROOT = Path(__file__).resolve().parents[2]
# The project's names, from its spec: the toolkit's tests name no package of their own.
SPEC = load_config(ROOT / "cicd" / "pipeline.yaml", env={})
SOURCE = f"{SPEC.package}/{SPEC.import_name}"  # the package's code, e.g. src/sample_ml
RELEASE_NAME = SPEC.images.release.rsplit("/", 1)[-1]  # the release's repository name in a registry
# In CI a missing component fails the test. CI systems say so in their own variables too: GitHub's
# runners set GITHUB_ACTIONS, Azure's agents TF_BUILD; a job's own environment may lack CI=true.
IN_CI = (
    os.environ.get("CI", "").lower() == "true"
    or os.environ.get("GITHUB_ACTIONS", "").lower() == "true"
    or os.environ.get("TF_BUILD", "").lower() == "true"
)
BASE_CANDIDATES = ("python:3.11-slim", "local/python:3.11-bookworm")
RELEASE_TESTS = Path(__file__).resolve().parent / "release_image"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The release image's own suite, in a whole run, is run once, by the ``integration`` stage
    that test_release_flow.py calls against the session's release (and asserts all of it passed),
    not a second time against the same image. Asked for (``--release-image``, or its folder named
    on the command line) or without that module (a project's own suite), it is collected here."""
    if collection_path != RELEASE_TESTS or not (RELEASE_TESTS.parent / "test_release_flow.py").exists():
        return None
    if config.getoption("--release-image"):
        return None
    named = [Path(arg.split("::", 1)[0]).resolve() for arg in config.args]
    return not any(p == RELEASE_TESTS or RELEASE_TESTS in p.parents for p in named)


def new_batch(
    data: Path,
    rows: int,
    *,
    seed: int,
    feature: str,
    shift: float = 0.0,
    effect: float = 0.0,
    shuffle_target: bool = False,
) -> Any:
    """New rows for the project's model, as the drift and retraining tests need them (a DataFrame):
    ``rows`` rows of the CSV ``data`` (seeded; without replacement while there are enough), the
    column ``feature`` moved by ``shift`` standard deviations (covariate drift), and ``effect``
    times its standardized value added to the last column, the target (the relation changes); or
    the target shuffled, so that no model can learn it. The package's own simulator is not used:
    the toolkit's tests import no package of the project."""
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(data)
    target = frame.columns[-1]
    rng = np.random.default_rng(seed)
    out = frame.iloc[rng.choice(len(frame), size=rows, replace=rows > len(frame))].reset_index(drop=True)
    mean, sd = float(frame[feature].mean()), float(frame[feature].std())
    out[feature] = out[feature] + shift * sd
    out[target] = out[target] + effect * (out[feature] - mean) / sd
    if shuffle_target:
        out[target] = rng.permutation(out[target].to_numpy())
    return out


def missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} (CI=true: a test that cannot run fails)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def engine() -> Engine:
    try:
        return Engine.from_env()
    except EngineUnavailableError as err:
        missing(f"no Docker engine: {err}")
        raise


@pytest.fixture(scope="session")
def base_image(engine: Engine) -> str:
    wanted = os.environ.get("TRAINYARD_BASE_IMAGE")
    for ref in ([wanted] if wanted else []) + list(BASE_CANDIDATES):
        if engine.images.exists(ref):
            return ref
    missing(f"no base image: none of {[wanted, *BASE_CANDIDATES]} is present (.ci/make-base-image.sh builds one)")
    raise AssertionError


@pytest.fixture(scope="session")
def proxy_image(engine: Engine) -> str:
    """The proxy's image (``TRAINYARD_PROXY_IMAGE``, which ``.ci/run`` builds from Debian's nginx)."""
    wanted = os.environ.get("TRAINYARD_PROXY_IMAGE") or "local/nginx:bookworm"
    if not engine.images.exists(wanted):
        missing(f"no proxy image: {wanted} is not present (.ci/make-proxy-image.sh builds one)")
    return wanted


@dataclass
class Registry:
    address: str  # host:port
    process: subprocess.Popen[bytes]
    storage: Path
    config: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        """Start it again on the same address with the same storage (after :meth:`stop`)."""
        self.stop()
        log = (self.config.parent / "registry.log").open("ab")
        with log:
            self.process = subprocess.Popen([_registry_binary(), "serve", str(self.config)], stdout=log, stderr=log)
        _wait_up(self.address, self.process, self.config.parent / "registry.log")


def _registry_binary() -> str:
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        missing("no registry binary (apt-get install docker-registry)")
        raise AssertionError
    return binary


def _wait_up(address: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://{address}/v2/", timeout=1)
            return
        except urllib.error.HTTPError:
            return  # 401 with auth on: it is up
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    pytest.fail(f"registry did not start: {log.read_text()[-2000:]}")


def start_registry(tmp: Path, htpasswd: Path | None = None) -> Registry:
    binary = _registry_binary()
    port = free_port()
    storage = tmp / "storage"
    storage.mkdir(parents=True)
    auth = f"auth:\n  htpasswd:\n    realm: trainyard-test\n    path: {htpasswd}\n" if htpasswd else ""
    config = tmp / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{auth}"
    )
    with (tmp / "registry.log").open("wb") as log:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    _wait_up(f"127.0.0.1:{port}", proc, tmp / "registry.log")
    return Registry(f"127.0.0.1:{port}", proc, storage, config)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.process.terminate()
    reg.process.wait(timeout=10)


# The git identity every test process commits with (a CI machine has none of its own).
IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **IDENTITY}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


@functools.cache
def signer() -> tuple[Path, str]:
    """The test session's signing key: its path, and the allowed-signers line every project gets."""
    return new_key(Path(tempfile.mkdtemp(prefix="trainyard-signer-")), "trainyard-tests")


def sign_passing_check(work: Path, stage: str, subject: str = "sha256:" + "0" * 64, version: str = "") -> None:
    """A signed, complete check record of ``stage`` for HEAD, as a passing stage leaves it, for a
    test whose subject comes after the merge gate. That the records the real stages make pass the
    gate, the demo's merges show (newcomer, classifier) and the CI jobs' (fresh machines)."""
    head, when = git(work, "rev-parse", "HEAD"), datetime.now(UTC)
    passed = CheckRecord(
        stage=stage, commit=head, subject=subject, time=timestamp(when), version=version,
        tag=CheckRecord.tag_name(stage, head, when), tests=1, complete=True,
    )  # fmt: skip
    signing = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={signer()[0]}"]
    git(work, *signing, "tag", "-s", "-m", passed.to_message(), passed.tag)


def make_project(tmp: Path) -> tuple[Path, Path]:
    """A clone of this project (tracked and new files as they are now) with a bare ``origin``,
    whose allowed signers include the session's key (``signer``), which ``cicd`` signs with."""
    return throwaway_clone(ROOT, tmp, allowed_signer=(".trainyard/allowed_signers", signer()[1]))


# The suite's deploys share two CPUs with three workers' builds, engines and services: a release
# healthy 2.6 s after it starts on a quiet machine (1.9 CPU-s) once had not finished starting
# after the spec's 60 s (test_hosts, its second deploy under load). A failing release still fails
# at once (the deploy sees its container stop); only a slow start gets longer.
LOADED_HEALTH_TIMEOUT = 180


def patient(spec: Path) -> None:
    """Every environment of ``spec`` waits :data:`LOADED_HEALTH_TIMEOUT` seconds for health, in place."""
    wait = rf"\g<1>{LOADED_HEALTH_TIMEOUT}"
    text, found = re.subn(r"(?m)^(\s+health_timeout:\s*)[0-9.]+\s*$", wait, spec.read_text())
    assert found, f"no health_timeout in {spec}"
    spec.write_text(text)


def use_free_ports(work: Path) -> None:
    """Give the project's environments free ports (the defaults may be taken) and the time a loaded
    machine needs (:func:`patient`), commit it on the checked-out branch and push ``develop``."""
    demo.use_free_ports(work / "cicd" / "pipeline.yaml")
    patient(work / "cicd" / "pipeline.yaml")
    git(work, "commit", "--quiet", "-am", "chore: free ports for this test")
    git(work, "push", "--quiet", "origin", "develop")


def toolkit_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """What the toolkit runs with in the tests: the session's key and git identity, and ``env``."""
    return {
        **os.environ,
        "TRAINYARD_SIGNING_KEY": str(signer()[0]),
        **(env or {}),
        **IDENTITY,
        "TRAINYARD_CACHE": os.environ.get("TRAINYARD_CACHE", str(Path.home() / ".cache" / "trainyard")),
    }


def toolkit_command(work: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "cicd", "--root", str(work), *args]


def cicd(
    work: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the toolkit in ``work`` exactly as a session would, output captured (and shown on failure)."""
    result = subprocess.run(
        toolkit_command(work, *args),
        cwd=work,
        env=toolkit_env(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"python -m cicd {' '.join(args)} exited {result.returncode}:\n{result.stdout[-4000:]}\n"
            f"{result.stderr[-4000:]}"
        )
    return result


@pytest.fixture(scope="session")
def released_flow(
    tmp_path_factory: pytest.TempPathFactory, engine: Engine, base_image: str, registry: Registry
) -> dict[str, Any]:
    """One real release on ``develop`` in a throwaway project with a bare origin and a real registry."""
    import json

    work, origin = make_project(tmp_path_factory.mktemp("flow"))
    env = {"TRAINYARD_BASE_IMAGE": base_image, "TRAINYARD_REGISTRY": registry.address}
    result = cicd(work, "release", env=env)
    record = json.loads((work / "artifacts" / "release.json").read_text())
    return {"work": work, "origin": origin, "env": env, "record": record, "log": result.stdout}
