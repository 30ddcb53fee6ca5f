"""Failure drills: break things on purpose and print ``drill | expected | observed | verdict``.

    python -m benchmarks.drills [--output artifacts/drills] [--variants 300]
    nox -s drills

A throwaway copy of this repository with a bare ``origin``, its own registry process (which asks
for a password, as a team's does: a canary the last drill looks for everywhere) and its own
ports: two releases, staging and production deployed through the real flow, then each drill.
Each drill first shows that its fault really happened (the deploy was killed with both colours
up, the push failed against the stopped registry, the service's own log names the missing
model, ...): a drill whose fault no longer takes effect breaks. Then the environment that was
serving is checked over HTTP (same digest, or the newer one the drill's recovery deployed), the
tags against the rules, and its containers against what a finished deploy leaves: behind a
proxy, the proxy, one serving colour and at most one kept colour; nothing else. Exit 0 only if
every drill held. The suite runs the same drills (tests/integration/test_drills.py).
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
from collections import Counter
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
        from cicd.config import load_config
        from cicd.demo import use_free_ports
        from cicd.gitops import signed_throwaway_clone
        from cicd.http import free_port
        from cicd.images import Engine

        self.tmp, self.engine = tmp, Engine.from_env()
        self.registry_dir = tmp / "registry"
        self.registry_port = free_port()
        self.registry: subprocess.Popen[bytes] | None = None
        # The registry asks for a password, as a team's does; it is a canary made here, which the
        # "canary password" drill looks for in everything the lab's commands leave.
        self.password = f"canary-{uuid.uuid4().hex}"
        self.registry_config = self._registry_config()
        self.start_registry()
        self.work, self.origin, keys = signed_throwaway_clone(ROOT, tmp / "project")
        spec = self.work / "cicd/pipeline.yaml"
        self.ports = use_free_ports(spec)
        self.env = {
            **os.environ,
            **keys,
            "TRAINYARD_BASE_IMAGE": base_image,
            "TRAINYARD_REGISTRY": f"127.0.0.1:{self.registry_port}",
            "TRAINYARD_REGISTRY_USERNAME": "drill",
            "TRAINYARD_REGISTRY_PASSWORD": self.password,
            "GIT_AUTHOR_NAME": "Drill",
            "GIT_AUTHOR_EMAIL": "drill@example.com",
            "GIT_COMMITTER_NAME": "Drill",
            "GIT_COMMITTER_EMAIL": "drill@example.com",
        }
        self.log = tmp / "drills.log"
        self.proxied = {name for name, env in load_config(spec, env={}).environments.items() if env.proxied}
        self.git("commit", "--quiet", "-am", "chore: ports for the drills")
        self.git("push", "--quiet", "origin", "develop")

    # --- processes ---------------------------------------------------------------------------
    def _registry_config(self) -> Path:
        """The registry's config and password file, written once: every (re)start serves them."""
        import shutil

        if shutil.which("htpasswd") is None:
            raise SystemExit("no htpasswd (the registry's password file): apt-get install apache2-utils")
        self.registry_dir.mkdir(parents=True, exist_ok=True)
        users = self.registry_dir / "htpasswd"
        hashed = subprocess.run(
            ["htpasswd", "-Bbn", "drill", self.password], capture_output=True, text=True, check=True
        ).stdout
        users.write_text(hashed)
        config = self.registry_dir / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.registry_dir / 'storage'}\n"
            f"http:\n  addr: 127.0.0.1:{self.registry_port}\n"
            f"auth:\n  htpasswd:\n    realm: trainyard-drills\n    path: {users}\n"
        )
        return config

    def start_registry(self) -> None:
        """Start (or restart, same port and storage) a real ``docker-registry`` process."""
        import shutil
        import urllib.error
        import urllib.request

        binary = shutil.which("docker-registry") or shutil.which("registry")
        if binary is None:
            raise SystemExit("no registry binary: apt-get install docker-registry")
        with (self.registry_dir / "registry.log").open("ab") as log:
            serve = [binary, "serve", str(self.registry_config)]
            self.registry = subprocess.Popen(serve, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.registry_port}/v2/", timeout=1)  # nosec B310
                return
            except urllib.error.HTTPError as err:  # it answers: 401 without the password
                if err.code == 401:
                    return
                time.sleep(0.1)
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

    def census(self, env: str) -> dict[str, int]:
        """The environment's containers by what they are: ``serving`` (running), ``kept`` (a stopped
        colour, for a rollback), ``proxy``, and anything else by its role (``candidate``, ``lock``)."""
        labels = {f"{LABEL}.environment": env, f"{LABEL}.port": str(self.ports[env])}
        counts: Counter[str] = Counter()
        for c in self.engine.containers.find(labels):
            role = c.labels.get(f"{LABEL}.role", "unlabelled")
            if role == "serving":
                role = "serving" if c.running else "kept"
            elif role == "proxy" and not c.running:
                role = "stopped proxy"
            counts[role] += 1
        return dict(counts)

    def tidy(self, env: str) -> bool:
        """As a finished deploy leaves it: behind a proxy, the proxy, one serving colour and at most
        one kept; without one, one serving container. No candidate, no lock, nothing else."""
        found = self.census(env)
        if env in self.proxied:
            return found in ({"proxy": 1, "serving": 1}, {"proxy": 1, "serving": 1, "kept": 1})
        return found == {"serving": 1}

    def shape(self, env: str) -> str:
        return _counts(self.census(env))

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
    """SIGKILL the deploy at the worst moment behind a proxy: the new colour is up and healthy, the
    proxy not yet switched, the lock held. Staging must serve the old release throughout."""
    before = lab.serving("staging")
    records = len(lab.tags("deploy/staging/"))
    at_kill: dict[str, int] = {}
    with lab.popen("deploy", "staging") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("health wait:"):  # the new colour answers: the switch comes next
                os.kill(proc.pid, signal.SIGKILL)
                at_kill = lab.census("staging")
                break
        code = proc.wait()
    right_after = lab.serving("staging")
    # the fault took effect: killed, with both colours running and the lock left behind
    killed = code == -signal.SIGKILL and at_kill.get("serving") == 2 and at_kill.get("lock") == 1
    again = lab.cicd("deploy", "staging", check=False)
    recovered = "recovered the lock" in again.stderr
    after, tidy = lab.serving("staging"), lab.tidy("staging")
    new_records = len(lab.tags("deploy/staging/")) - records
    ok = killed and right_after == before and again.returncode == 0 and recovered
    ok = ok and after == v2 and tidy and new_records == 1
    return Drill(
        "deploy SIGKILLed mid-swap, then deployed again",
        "killed with both colours up and the lock held; the old release serves throughout; the re-run "
        "recovers the lock and deploys v2; proxy + 1 serving (+ 1 kept); 1 new record",
        f"exit {code}, at the kill: {_counts(at_kill)}; just after: {short(right_after)} (before: "
        f"{short(before)}); re-run exit {again.returncode}, lock recovered: {recovered}; serving {short(after)}; "
        f"{lab.shape('staging')}; {new_records} new record(s)",
        ok,
    )


def _counts(census: dict[str, int]) -> str:
    return " + ".join(f"{n} {what}" for what, n in sorted(census.items())) or "no container"


def drill_registry_stopped_during_push(lab: Lab, serving: str) -> Drill:
    lab.git("checkout", "--quiet", "develop")
    lab.git("merge", "--quiet", "main")
    lab.git("commit", "--quiet", "--allow-empty", "-m", "fix: the release the registry drops")
    tags_before = lab.tags("v")
    stopped = False
    output = []
    with lab.popen("release") as proc:
        assert proc.stdout is not None
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
    # the fault took effect: the push itself failed against the stopped registry
    refused = f"127.0.0.1:{lab.registry_port}" in message
    ok = stopped and refused and code == 2 and "Traceback" not in text and tags_after == tags_before
    ok = ok and retry.returncode == 0 and after == serving
    return Drill(
        "registry stopped during a release push",
        "stopped as the push began; exit 2 naming the registry; no release tag; retry after restart works",
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
    )  # the service stops at once without a model: the deploy sees it exit, not a timeout
    records = lab.tags("deploy/staging/")
    result = lab.cicd("--config", str(broken), "deploy", "staging", check=False)
    after = lab.serving("staging")
    # the fault took effect: the service itself said it found no model where it was pointed
    injected = "no model bundle at '/nope'" in result.stderr
    unchanged = lab.tags("deploy/staging/") == records
    ok = injected and result.returncode == 2 and "never answered" in result.stderr and after == serving
    ok = ok and unchanged and lab.tidy("staging")
    return Drill(
        "a release whose service never becomes healthy",
        "its log says no model at /nope; refused, never switched to; old one serving; no record; no stray",
        f"exit {result.returncode}; its log names /nope: {injected}; staging serving {short(after)}; "
        f"records unchanged: {unchanged}; {lab.shape('staging')}"
        + ("" if injected else f"; it said: {result.stderr[-600:]!r}"),
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
    named = f"port {port} of environment integration is taken" in result.stderr
    ok = result.returncode == 2 and named and not lab.census("integration")
    return Drill(
        "a port already taken by another program",
        "exit 2, names the port; nothing started",
        f"exit {result.returncode}: {error_line(result)[:80]}; {lab.shape('integration')}",
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
    # the fault took effect: at least one of them ran into the winner's lock while it deployed
    overlapped = sum("in progress" in r.stderr for r in others)
    new_records = len(lab.tags("deploy/production/")) - records
    after = lab.serving("production")
    same_commit = lab.tag_commit("Production") == lab.tag_commit("Staging")
    ok = len(winners) == 1 and polite and overlapped >= 1 and new_records == 1 and after == staged
    ok = ok and same_commit and lab.tidy("production")
    return Drill(
        "five promotions started at once",
        "1 winner, 4 told 'in progress' (at least one) or 'nothing to do'; 1 record; Production = Staging",
        f"{len(winners)} winner(s); {overlapped} told 'in progress', others polite: {polite}; {new_records} new "
        f"record(s); production serving {short(after)}; Production = Staging: {same_commit}; "
        f"{lab.shape('production')}",
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
    """The lab's registry password (a canary made for this lab, used by every push and pull of
    every drill) in nothing any command left: their output, the project's files, git's objects
    and refs (origin's too), and the labels, environment, history and layers of both images."""
    canary = lab.password
    lab.git("checkout", "--quiet", "develop")
    lab.git("commit", "--quiet", "--allow-empty", "-m", "fix: the canary release")
    build = lab.cicd("build", check=False)
    release = lab.cicd("release", check=False)
    lab.git("checkout", "--quiet", "main")
    record = json.loads((lab.work / "artifacts/release.json").read_text())
    pushed = build.returncode == 0 and release.returncode == 0 and "@sha256:" in record["reference"]
    found: list[str] = []
    if canary in lab.log.read_text(errors="replace"):  # every command of every drill so far
        found.append("the commands' output")
    found += [str(p.relative_to(lab.work)) for p in lab.work.rglob("*")
              if p.is_file() and ".git" not in p.parts and canary.encode() in p.read_bytes()]  # fmt: skip
    for repo in (lab.work, lab.origin):
        history = subprocess.run(
            ["sh", "-c", "git log -p --all && git for-each-ref --format='%(refname) %(contents)'"],
            cwd=repo, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        if canary in history:
            found.append(f"git in {repo.name}")
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
    return Drill(
        "the registry's password (a canary) used by every push and pull",
        "a release pushed with it; absent from output, files, git, and both images' layers and metadata",
        f"build exit {build.returncode}, release exit {release.returncode}, pushed {record['reference'][-20:]}; "
        f"found in: {', '.join(found) or 'nowhere'}",
        pushed and not found,
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


# The drills in the order they run, by the name ``run_all`` files each under (the suite has one
# test per name: tests/integration/test_drills.py).
NAMES = [
    "kill mid-swap",
    "registry down mid-push",
    "engine unreachable",
    "never healthy",
    "port taken",
    "five promotions",
    "malformed specs",
    "canary password",
    "afterwards",
]


def run_all(lab: Lab, variants: int) -> dict[str, Drill]:
    """Set the lab up (two releases; staging and production deployed) and run every drill, in the
    order of :data:`NAMES`. A drill that crashed is a drill that broke, with the reason."""
    lab.release_to_main("fix: the first release")
    lab.cicd("deploy", "staging")
    lab.cicd("acceptance", "staging")
    lab.cicd("promote", "production")
    v2 = lab.release_to_main("fix: the second release")

    def afterwards() -> Drill:  # the environments still serve what the rules say, with no strays
        final = lab.cicd("deploy", "staging", check=False)
        return Drill(
            "afterwards: the next successful deploy",
            "staging and production serve v2; each: proxy + 1 serving (+ 1 kept), no stray",
            f"deploy exit {final.returncode}; staging {short(lab.serving('staging'))}, production "
            f"{short(lab.serving('production'))}; staging: {lab.shape('staging')}; production: "
            f"{lab.shape('production')}",
            final.returncode == 0
            and lab.serving("staging") == v2 == lab.serving("production")
            and lab.tidy("staging")
            and lab.tidy("production"),
        )

    steps: dict[str, Callable[[], Drill]] = {
        "kill mid-swap": lambda: drill_kill_mid_swap(lab, v2),
        "registry down mid-push": lambda: drill_registry_stopped_during_push(lab, v2),
        "engine unreachable": lambda: drill_engine_unreachable(lab, v2),
        "never healthy": lambda: drill_never_healthy(lab, v2),
        "port taken": lambda: drill_port_taken(lab),
        "five promotions": lambda: (lab.cicd("acceptance", "staging"), drill_five_promotions(lab, v2))[1],
        "malformed specs": lambda: drill_malformed_specs(lab, variants),
        "canary password": lambda: drill_canary_password(lab),
        "afterwards": afterwards,
    }
    assert list(steps) == NAMES
    drills: dict[str, Drill] = {}
    for label, run in steps.items():
        print(f"… drill: {label}", file=sys.stderr, flush=True)
        try:
            drills[label] = run()
        except Exception as err:
            drills[label] = Drill(label, "—", f"drill crashed: {type(err).__name__}: {err}"[:300], False)
            traceback.print_exc()
    return drills


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
    try:
        drills = list(run_all(lab, args.variants).values())
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
