"""Failure drills: break things on purpose and print ``drill | expected | observed | verdict``.

    python -m benchmarks.drills [--output artifacts/drills] [--variants 300]
    nox -s drills

A throwaway copy of this repository with a bare ``origin``, its own registry process and its own
ports: two releases, staging and production deployed through the real flow, then each drill.
After every drill the environment that was serving is checked over HTTP (same digest, or the
newer one the drill's recovery deployed), the tags are checked against the rules, and after the
next successful deploy no stray container may remain. Exit 0 only if every drill held.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.common import prepare
from cicd.errors import run_cli

ROOT = Path(__file__).resolve().parents[1]
LABEL = "io.trainyard"


@dataclass
class Drill:
    name: str
    expected: str
    observed: str
    ok: bool


class Lab:
    """The throwaway project, its registry and helpers to run the toolkit and look at the result."""

    def __init__(self, tmp: Path, base_image: str) -> None:
        from cicd.demo import use_free_ports
        from cicd.gitops import signed_throwaway_clone
        from cicd.http import free_port
        from cicd.images import Engine

        self.tmp, self.engine = tmp, Engine.from_env()
        self.registry_dir = tmp / "registry"
        self.registry_port = free_port()
        self.registry: subprocess.Popen[bytes] | None = None
        self.start_registry()
        self.work, self.origin, keys = signed_throwaway_clone(ROOT, tmp / "project")
        spec = self.work / "cicd/pipeline.yaml"
        self.ports = use_free_ports(spec)
        self.env = {
            **os.environ,
            **keys,
            "TRAINYARD_BASE_IMAGE": base_image,
            "TRAINYARD_REGISTRY": f"127.0.0.1:{self.registry_port}",
            "GIT_AUTHOR_NAME": "Drill",
            "GIT_AUTHOR_EMAIL": "drill@example.com",
            "GIT_COMMITTER_NAME": "Drill",
            "GIT_COMMITTER_EMAIL": "drill@example.com",
        }
        self.log = tmp / "drills.log"
        self.git("commit", "--quiet", "-am", "chore: ports for the drills")
        self.git("push", "--quiet", "origin", "develop")

    # --- processes ---------------------------------------------------------------------------
    def start_registry(self) -> None:
        """Start (or restart, same port and storage) a real ``docker-registry`` process."""
        import shutil
        import urllib.request

        binary = shutil.which("docker-registry") or shutil.which("registry")
        if binary is None:
            raise SystemExit("no registry binary: apt-get install docker-registry")
        self.registry_dir.mkdir(parents=True, exist_ok=True)
        config = self.registry_dir / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.registry_dir / 'storage'}\n"
            f"http:\n  addr: 127.0.0.1:{self.registry_port}\n"
        )
        with (self.registry_dir / "registry.log").open("ab") as log:
            self.registry = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.registry_port}/v2/", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("the drill registry did not start")

    def stop_registry(self) -> None:
        if self.registry and self.registry.poll() is None:
            self.registry.terminate()
            self.registry.wait(timeout=10)

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.work, check=True, capture_output=True, text=True, env=self.env
        ).stdout.strip()

    def cicd(
        self, *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "cicd", "--root", str(self.work), *args]
        result = subprocess.run(cmd, cwd=self.work, env=env or self.env, capture_output=True, text=True, check=False)
        with self.log.open("a") as fh:
            fh.write(f"\n$ {' '.join(args)} → {result.returncode}\n{result.stdout}\n{result.stderr}\n")
        if check and result.returncode != 0:
            raise RuntimeError(f"python -m cicd {' '.join(args)} exited {result.returncode}: {result.stderr[-1500:]}")
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "cicd", "--root", str(self.work), *args],
            cwd=self.work,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    # --- observations ------------------------------------------------------------------------------
    def serving(self, env: str) -> str | None:
        """The digest the environment's service reports over HTTP, or None if it does not answer."""
        from cicd.errors import ServiceError
        from cicd.http import request_json

        try:
            status, body = request_json(f"http://127.0.0.1:{self.ports[env]}/metadata", timeout=3)
        except ServiceError:
            return None
        return str(body.get("image_digest")) if status == 200 else None

    def containers(self, env: str) -> int:
        labels = {f"{LABEL}.environment": env, f"{LABEL}.port": str(self.ports[env])}
        return len(self.engine.containers.find(labels))

    def tags(self, prefix: str) -> list[str]:
        names = subprocess.run(
            ["git", "tag", "-l", f"{prefix}*"], cwd=self.origin, capture_output=True, text=True, check=True
        ).stdout.split()
        return sorted(names)

    def tag_commit(self, name: str) -> str | None:
        result = subprocess.run(
            ["git", "rev-list", "-n1", name], cwd=self.origin, capture_output=True, text=True, check=False
        )
        return result.stdout.strip() or None

    def digest(self) -> str:
        return str(json.loads((self.work / "artifacts/release.json").read_text())["digest"])

    def release_to_main(self, message: str) -> str:
        """A new commit on develop → release → integration → merge into main; return its digest."""
        self.git("checkout", "--quiet", "develop")
        self.git("merge", "--quiet", "main")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        self.cicd("release")
        digest = self.digest()
        self.cicd("integration")
        self.cicd("merge")
        self.git("checkout", "--quiet", "main")
        self.git("pull", "--quiet", "origin", "main")
        return digest

    def cleanup(self) -> None:
        from cicd.config import load_config
        from cicd.deploy.docker_target import DockerTarget

        config = load_config(self.work / "cicd/pipeline.yaml", env={})
        for env_config in config.environments.values():
            DockerTarget(config, env_config, self.engine).discard()
        self.stop_registry()


def short(digest: str | None) -> str:
    return "nothing" if digest is None else digest.split(":")[-1][:12]


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line a failed command printed (progress comes before it on stderr)."""
    return next((ln for ln in result.stderr.splitlines() if ln.startswith("error:")), "(no error line)")


# --- the drills ------------------------------------------------------------------------------------
def drill_kill_mid_swap(lab: Lab, v2: str) -> Drill:
    before = lab.serving("staging")
    records = len(lab.tags("deploy/staging/"))
    proc = lab.popen("deploy", "staging")
    assert proc.stdout is not None
    killed_at = "never"
    for line in proc.stdout:
        if line.startswith("health wait:"):  # the candidate is healthy: the swap starts now
            # Kill at the worst moment: the old service stopped, the new one not yet serving.
            deadline = time.monotonic() + 20
            while lab.serving("staging") is not None and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            killed_at = "with the old service stopped" if lab.serving("staging") is None else "mid-swap"
            break
    proc.wait()
    right_after = lab.serving("staging")
    again = lab.cicd("deploy", "staging", check=False)
    after, count = lab.serving("staging"), lab.containers("staging")
    new_records = len(lab.tags("deploy/staging/")) - records
    ok = killed_at != "never" and again.returncode == 0 and after == v2 and count == 1 and new_records == 1
    return Drill(
        "deploy SIGKILLed mid-swap, then deployed again",
        "re-run deploys v2 (staging is down until then); 1 container; 1 new record",
        f"killed {killed_at}; just after: {short(right_after)} (before: {short(before)}); re-run exit "
        f"{again.returncode}; serving {short(after)}; {count} container(s); {new_records} new record(s)",
        ok,
    )


def drill_registry_stopped_during_push(lab: Lab, serving: str) -> Drill:
    lab.git("checkout", "--quiet", "develop")
    lab.git("merge", "--quiet", "main")
    lab.git("commit", "--quiet", "--allow-empty", "-m", "fix: the release the registry drops")
    tags_before = lab.tags("v")
    proc = lab.popen("release")
    assert proc.stdout is not None
    stopped = False
    output = []
    for line in proc.stdout:
        output.append(line)
        if not stopped and "The push refers to repository" in line:
            lab.stop_registry()
            stopped = True
    code = proc.wait()
    text = "".join(output)
    message = next((ln for ln in text.splitlines() if ln.startswith("error:")), "")
    tags_after = lab.tags("v")
    lab.start_registry()
    retry = lab.cicd("release", check=False)
    after = lab.serving("staging")
    lab.git("checkout", "--quiet", "main")
    ok = stopped and code == 2 and "Traceback" not in text and tags_after == tags_before
    ok = ok and retry.returncode == 0 and after == serving
    return Drill(
        "registry stopped during a release push",
        "exit 2 with a message; no release tag; retry after restart works",
        f"exit {code}: {message[:90]}; tags unchanged: {tags_after == tags_before}; retry exit "
        f"{retry.returncode}; staging serving {short(after)}",
        ok,
    )


def drill_engine_unreachable(lab: Lab, serving: str) -> Drill:
    result = lab.cicd("deploy", "staging", env={**lab.env, "DOCKER_HOST": "tcp://127.0.0.1:9"}, check=False)
    after = lab.serving("staging")
    ok = result.returncode == 2 and "no Docker engine answers" in result.stderr and after == serving
    return Drill(
        "engine unreachable (DOCKER_HOST to a closed port)",
        "exit 2, says no engine answers; staging untouched",
        f"exit {result.returncode}: {error_line(result)[:80]}; staging serving {short(after)}",
        ok,
    )


def drill_never_healthy(lab: Lab, serving: str) -> Drill:
    broken = lab.tmp / "broken-pipeline.yaml"
    broken.write_text(
        (lab.work / "cicd/pipeline.yaml")
        .read_text()
        .replace("  staging:\n", "  staging:\n    settings: {env: {MODEL_DIR: /nope}}\n")
        .replace("health_timeout: 60", "health_timeout: 15")
    )
    records = lab.tags("deploy/staging/")
    result = lab.cicd("--config", str(broken), "deploy", "staging", check=False)
    after = lab.serving("staging")
    ok = result.returncode == 2 and "never answered" in result.stderr and after == serving
    ok = ok and lab.tags("deploy/staging/") == records and lab.containers("staging") == 1
    return Drill(
        "a release whose service never becomes healthy",
        "refused on the trial port; old one serving; no record; no stray",
        f"exit {result.returncode}; staging serving {short(after)}; records unchanged: "
        f"{lab.tags('deploy/staging/') == records}; {lab.containers('staging')} container(s)",
        ok,
    )


def drill_port_taken(lab: Lab) -> Drill:
    port = lab.ports["integration"]
    lab.git("checkout", "--quiet", "develop")
    try:
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            result = lab.cicd("deploy", "integration", check=False)
    finally:
        lab.git("checkout", "--quiet", "main")
    ok = result.returncode == 2 and "taken by another program" in result.stderr and lab.containers("integration") == 0
    return Drill(
        "a port already taken by another program",
        "exit 2, names the port; nothing started",
        f"exit {result.returncode}: {error_line(result)[:80]}; {lab.containers('integration')} container(s)",
        ok,
    )


def drill_five_promotions(lab: Lab, staged: str) -> Drill:
    records = len(lab.tags("deploy/production/"))
    results: list[subprocess.CompletedProcess[str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(lab.cicd("--json", "promote", "production", check=False)))
        for _ in range(5)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r.returncode == 0 and json.loads(r.stdout)["result"] is not None]
    others = [r for r in results if r not in winners]
    # the others were refused (the lock) or found nothing to do (a null result)
    polite = all(
        "in progress" in r.stderr or (r.returncode == 0 and json.loads(r.stdout)["result"] is None) for r in others
    )
    new_records = len(lab.tags("deploy/production/")) - records
    after = lab.serving("production")
    same_commit = lab.tag_commit("Production") == lab.tag_commit("Staging")
    ok = len(winners) == 1 and polite and new_records == 1 and after == staged and same_commit
    ok = ok and lab.containers("production") == 1
    return Drill(
        "five promotions started at once",
        "1 winner, 4 told 'in progress'/'nothing to do'; 1 record; Production = Staging",
        f"{len(winners)} winner(s); others polite: {polite}; {new_records} new record(s); production serving "
        f"{short(after)}; Production = Staging: {same_commit}; {lab.containers('production')} container(s)",
        ok,
    )


def drill_malformed_specs(lab: Lab, variants: int) -> Drill:
    from benchmarks.specs import check_variants

    tracebacks, errors, accepted = check_variants(lab.work / "cicd/pipeline.yaml", variants)
    # And through the command line, for a few: one line on stderr, exit 2, no traceback.
    bad = lab.tmp / "bad.yaml"
    cli_ok = True
    for text in ("images: [", "project: 3\n", "environments:\n  qa: 7\n", ": :"):
        bad.write_text(text)
        result = lab.cicd("--config", str(bad), "status", check=False)
        cli_ok = cli_ok and result.returncode == 2 and "Traceback" not in result.stderr
    return Drill(
        f"{variants} malformed pipeline.yaml variants (hypothesis)",
        "a ConfigError naming the file every time; never a traceback",
        f"{errors} clear errors, {accepted} still valid, {len(tracebacks)} tracebacks; CLI clean: {cli_ok}"
        + (f"; first: {tracebacks[0][:80]}" if tracebacks else ""),
        not tracebacks and cli_ok,
    )


def drill_canary_password(lab: Lab) -> Drill:
    canary = f"canary-{uuid.uuid4().hex}"
    env = {**lab.env, "TRAINYARD_REGISTRY_USERNAME": "drill", "TRAINYARD_REGISTRY_PASSWORD": canary}
    lab.git("checkout", "--quiet", "develop")
    lab.git("commit", "--quiet", "--allow-empty", "-m", "fix: the canary release")
    build = lab.cicd("build", env=env, check=False)
    release = lab.cicd("release", env=env, check=False)
    lab.git("checkout", "--quiet", "main")
    logs = build.stdout + build.stderr + release.stdout + release.stderr
    found: list[str] = []
    if canary in logs:
        found.append("logs")
    record = json.loads((lab.work / "artifacts/release.json").read_text())
    images = [f"trainyard/sample-ml-build:{lab.git('rev-parse', 'develop')[:12]}", record["image"]]
    for ref in images:
        attrs = lab.engine.images.attrs(ref)
        config = attrs.get("Config") or {}
        if canary in json.dumps(config.get("Labels") or {}):
            found.append(f"{ref} labels")
        if canary in json.dumps(config.get("Env") or []):
            found.append(f"{ref} env")
        if canary in json.dumps(lab.engine.images.history(ref)):
            found.append(f"{ref} history")
        image = lab.engine.client.images.get(ref)
        with tempfile.TemporaryFile() as tar:
            for chunk in image.save():
                tar.write(chunk)
            tar.seek(0)
            window = b""
            while block := tar.read(1 << 20):
                if canary.encode() in window[-len(canary) :] + block:
                    found.append(f"{ref} layers")
                    break
                window = block
    ok = build.returncode == 0 and release.returncode == 0 and not found
    return Drill(
        "a canary registry password in the environment",
        "absent from logs, layers, history, labels and env of both images",
        f"build exit {build.returncode}, release exit {release.returncode}; found in: {', '.join(found) or 'nowhere'}",
        ok,
    )


# --- main -------------------------------------------------------------------------------------------
def table(drills: list[Drill]) -> str:
    head = ("drill", "expected", "observed", "verdict")
    rows = [head] + [(d.name, d.expected, d.observed, "held" if d.ok else "BROKE") for d in drills]
    widths = [min(max(len(r[i]) for r in rows), 70) for i in range(3)]
    out = []
    for r in rows:
        out.append(" | ".join([*(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)), r[3]]))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "artifacts" / "drills")
    parser.add_argument("--variants", type=int, default=300, help="malformed pipeline.yaml variants")
    args = parser.parse_args(argv)
    prepare(args.output)
    base_image = os.environ.get("TRAINYARD_BASE_IMAGE", "python:3.11-slim")
    tmp = Path(tempfile.mkdtemp(prefix="trainyard-drills-"))
    print(f"… setting up a throwaway project in {tmp} (two releases, staging and production)", file=sys.stderr)
    lab = Lab(tmp, base_image)
    drills: list[Drill] = []
    try:
        lab.release_to_main("fix: the first release")
        lab.cicd("deploy", "staging")
        lab.cicd("acceptance", "staging")
        lab.cicd("promote", "production")
        v2 = lab.release_to_main("fix: the second release")
        steps: list[tuple[str, Callable[[], Drill]]] = [
            ("kill mid-swap", lambda: drill_kill_mid_swap(lab, v2)),
            ("registry down mid-push", lambda: drill_registry_stopped_during_push(lab, v2)),
            ("engine unreachable", lambda: drill_engine_unreachable(lab, v2)),
            ("never healthy", lambda: drill_never_healthy(lab, v2)),
            ("port taken", lambda: drill_port_taken(lab)),
            ("five promotions", lambda: (lab.cicd("acceptance", "staging"), drill_five_promotions(lab, v2))[1]),
            ("malformed specs", lambda: drill_malformed_specs(lab, args.variants)),
            ("canary password", lambda: drill_canary_password(lab)),
        ]
        for label, run in steps:
            print(f"… drill: {label}", file=sys.stderr, flush=True)
            try:
                drills.append(run())
            except Exception as err:  # a drill that crashed is a drill that broke, with the reason
                drills.append(Drill(label, "—", f"drill crashed: {type(err).__name__}: {err}"[:300], False))
                traceback.print_exc()
        # After everything: the environments still serve what the rules say, with no strays.
        final = lab.cicd("deploy", "staging", check=False)
        drills.append(
            Drill(
                "afterwards: the next successful deploy",
                "staging and production serve v2; one container each",
                f"deploy exit {final.returncode}; staging {short(lab.serving('staging'))}, production "
                f"{short(lab.serving('production'))}; containers {lab.containers('staging')} + "
                f"{lab.containers('production')}",
                final.returncode == 0
                and lab.serving("staging") == v2 == lab.serving("production")
                and lab.containers("staging") == 1 == lab.containers("production"),
            )
        )
    finally:
        lab.cleanup()
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "drills.json").write_text(json.dumps([asdict(d) for d in drills], indent=2) + "\n")
    print(table(drills))
    held = sum(d.ok for d in drills)
    print(f"\n{held}/{len(drills)} drills held; log of every command in {lab.log}")
    return 0 if held == len(drills) else 1


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
