"""A newcomer on a fresh Debian 12 machine runs the README's first command, verbatim.

The machine is a bare container from the local newcomer image (Debian bookworm: its Python
3.11.2 under PEP 668, git, no git identity, no nox, no caches; ``.ci/make-base-image.sh
local/newcomer:bookworm git,ca-certificates`` builds it). It holds a clean clone of this project
and reaches the host's Docker engine through its socket and the package index the way the host
does (host network, the host's CA bundle and pip settings). The command is read from README.md, so
the test runs what a reader copies. Every stage of the demo's report must be ok.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
from pathlib import Path
from typing import Any

from cicd.images import Engine
from tests.integration.conftest import ROOT, git, make_project, missing

NEWCOMER_IMAGE = os.environ.get("TRAINYARD_NEWCOMER_IMAGE", "local/newcomer:bookworm")
HOME = "/root"
# What the host uses to reach the package index (proxy, CA bundle, pip settings); nothing else.
_PASSED_ENV = re.compile(r"^(PIP_.*|.*_PROXY|.*_proxy|SSL_CERT_FILE|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE)$")


def readme_commands(root: Path = ROOT) -> list[str]:
    """The two commands at the top of ``root``'s README.md: its first fenced bash block, comments dropped."""
    text = (root / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def readme_venv(root: Path = ROOT) -> str:
    """What both of the README's commands do first: make ``.venv`` and install nox into it."""
    return readme_commands(root)[0].split(" && .venv/bin/nox", 1)[0]


def _tar(files: dict[str, bytes | Path]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content in files.items():
            if isinstance(content, Path):
                tar.add(str(content), arcname=name)
            else:
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _docker_socket() -> str:
    """The engine's unix socket, which the newcomer's container mounts to reach it."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.startswith("unix://"):
        missing(f"the newcomer test reaches the engine through a unix socket; DOCKER_HOST is {host}")
    return host.removeprefix("unix://")


def clean_clone(tmp: Path) -> Path:
    """A clone as a newcomer gets it: ``git clone`` of an origin holding this project's files."""
    _, origin = make_project(tmp)
    git(tmp, "clone", "--quiet", "--branch", "main", str(origin), "trainyard")
    return tmp / "trainyard"


def require_newcomer_image(engine: Engine) -> None:
    if not engine.images.exists(NEWCOMER_IMAGE):
        missing(f"no newcomer image {NEWCOMER_IMAGE} (.ci/make-base-image.sh {NEWCOMER_IMAGE} git,ca-certificates)")


def run_readme_main_job(engine: Engine, base_image: str, proxy_image: str, tmp: Path) -> None:
    """The README's first command in a fresh Debian 12 container on a clean clone; every stage ok."""
    clone = clean_clone(tmp)
    command = readme_commands()[0]
    assert command.endswith("nox -s demo"), f"the README's first command should run the demo: {command}"
    socket = _docker_socket()
    env: dict[str, Any] = {k: v for k, v in os.environ.items() if _PASSED_ENV.match(k)}
    # a laptop: no CI variable, no git identity; the two images stand for Docker Hub's
    env |= {"TRAINYARD_BASE_IMAGE": base_image, "TRAINYARD_PROXY_IMAGE": proxy_image, "HOME": HOME}
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    container: Any = engine.client.containers.create(
        NEWCOMER_IMAGE,
        ["bash", "-c", f"cd {HOME}/trainyard && {command}"],
        environment=env,
        network_mode="host",
        volumes={socket: {"bind": "/var/run/docker.sock", "mode": "rw"}},
        working_dir=HOME,
    )
    try:
        files: dict[str, bytes | Path] = {"trainyard": clone}
        container.put_archive(HOME, _tar(files))
        if bundle.is_file():  # the host's trust store, where the way out re-signs TLS
            container.put_archive("/etc/ssl/certs", _tar({bundle.name: bundle.read_bytes()}))
        check = engine.client.containers.run(
            NEWCOMER_IMAGE, ["sh", "-c", "git config --get user.email; command -v nox; python3 --version"], remove=True
        ).decode()
        assert "nox" not in check and "@" not in check and "Python 3.11" in check, check
        start = time.monotonic()
        container.start()
        code = container.wait(timeout=1800)["StatusCode"]
        out = container.logs().decode(errors="replace")
        assert code == 0, f"exit {code} after {time.monotonic() - start:.0f} s:\n{out[-6000:]}"
        match = re.search(r"^report: (\S+)$", out, re.MULTILINE)
        assert match, f"the demo printed no report path:\n{out[-3000:]}"
        stream, _ = container.get_archive(match.group(1))
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile("report.json")
            assert member is not None
            report = json.load(member)
        names = [s["name"] for s in report["stages"]]
        assert names[-1] == "status" and "promote production" in names, names
        failed = [s for s in report["stages"] if not s["ok"]]
        assert report["ok"] and not failed, failed
    finally:
        container.remove(force=True)
