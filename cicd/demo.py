"""The main job: the whole flow, end to end, in a throwaway copy of this repository.

``python -m cicd demo`` copies the project (as it is now, uncommitted changes included) into a
temporary repository with a bare ``origin``, gives its environments free ports, and runs every
row of the flow there: build → unit → release → integration → merge → deploy staging →
acceptance → promote production → status. It runs where the spec says: the embedded default is
the local engine and no external registry; an environment with a ``host`` is deployed to that
host (with ``TRAINYARD_REGISTRY`` set, and the host's variables as for any deploy), next to but
apart from the real environment there (its own ports and labels). Your own repository, tags and
deployments are untouched. It ends with a short report of each stage and stops the services it
started, wherever they run (``--keep`` leaves them running).

``python -m cicd demo --local`` is the short version without Docker: the package's own train,
evaluate and serve on this machine, called as the contract says (cicd/README.md).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, cast

from cicd import proc
from cicd.errors import CICDError
from cicd.http import free_port, request_json, wait_healthy


@dataclass
class Stage:
    name: str
    ok: bool
    seconds: float
    detail: str
    reused: str = ""  # what a stage took from an earlier pass with the same inputs (cicd.results)


def write_report(stages: list[Stage], path: Path) -> Path:
    """The report as data (``report.json``), for scripts and tests that must not parse the table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"ok": all(s.ok for s in stages), "stages": [asdict(s) for s in stages]}, indent=2))
    return path


def report(stages: list[Stage]) -> str:
    width = max([len(s.name) for s in stages] + [5])
    lines = ["", f"{'stage'.ljust(width)}  result  seconds  detail"]
    for s in stages:
        detail = f"{s.detail} ({s.reused})" if s.reused else s.detail
        lines.append(f"{s.name.ljust(width)}  {'ok' if s.ok else 'FAILED':6}  {s.seconds:7.1f}  {detail}")
    return "\n".join(lines)


# --- the whole flow ------------------------------------------------------------------------
FLOW: list[tuple[str, list[str], str | None]] = [
    ("build", ["build"], "develop"),
    ("unit", ["unit"], None),
    ("release", ["release"], None),
    ("integration", ["integration"], None),
    ("merge develop→main", ["merge"], None),
    ("deploy staging", ["deploy", "staging"], "main"),
    ("acceptance staging", ["acceptance", "staging"], None),
    ("promote production", ["promote", "production"], None),
    ("status", ["status"], None),
]


def _summary(command: str, result: Any) -> str:
    """One line for the report, from the command's JSON result (never from its printed text)."""
    r = result if isinstance(result, dict) else {}
    lines = {
        "build": lambda: f"build image {r['image']}: {r['cached_steps']} of {r['steps']} steps from cache",
        "unit": lambda: f"unit tests passed in {r['image']}",
        "release": lambda: f"released {r['version']}: {r['reference']}",
        "integration": lambda: f"integration tests passed against {r['version']} ({r['reference']})",
        "merge": lambda: f"merged {r['source']} into {r['target']} at {r['commit'][:12]}",
        "deploy": lambda: f"{r['environment']} now runs {r['version']} ({r['digest'][:19]})",
        "acceptance": lambda: f"acceptance passed on {r['environment']}; recorded as {r['tag']}",
        "promote": lambda: f"{r['environment']} now runs {r['version']} ({r['digest'][:19]})" if r else "nothing to do",
        "status": lambda: ", ".join(f"{row['environment']}: {row['health']}" for row in result),
    }
    try:
        return lines[command]()[:110]
    except (KeyError, TypeError):
        return json.dumps(result)[:110]


def _reused(command: str, result: Any) -> str:
    """What the stage reused, from its JSON result: ``reused``, ``training reused`` or nothing."""
    r = result if isinstance(result, dict) else {}
    if r.get("reused") or (command == "acceptance" and str(r.get("summary", "")).startswith("reused")):
        return "reused"
    if isinstance(r.get("training"), dict) and r["training"].get("reused"):
        return "training reused"
    return ""


Change = Callable[[Path], str]  # edits the throwaway copy, commits, and says what it changed


def use_free_ports(spec: Path) -> dict[str, int]:
    """Give every environment in the spec a port that is free now (and a proxied one's colours
    too), in place (the rest of the text as it was), so that a throwaway copy's services never
    take a real environment's port; the public ports, by environment."""
    from cicd.config import load_config

    text, ports = spec.read_text(), {}
    for name, environment in load_config(spec, env={}).environments.items():
        ports[name] = free_port()
        colours = f"service_ports: [{free_port()}, {free_port()}]"  # behind a proxy: the colours' ports too
        if environment.proxied and environment.service_ports is not None:
            blue, green = environment.service_ports
            text = re.sub(rf"service_ports:\s*\[\s*{blue}\s*,\s*{green}\s*\]", colours, text)
        elif environment.proxied:
            text = re.sub(rf"(?m)^(\s+)port:\s*{environment.port}\b.*$", rf"\g<0>\n\g<1>{colours}", text)
        text = re.sub(rf"(?m)^(\s+port:\s*){environment.port}\b", rf"\g<1>{ports[name]}", text)
    spec.write_text(text)
    return ports


def run_flow(root: Path, workdir: Path | None, keep: bool) -> list[Stage]:
    """The whole flow once in a throwaway copy of ``root`` (see the module's docstring)."""
    return run_flows(root, workdir, keep, [None])[0]


def run_flows(root: Path, workdir: Path | None, keep: bool, passes: Sequence[Change | None]) -> list[list[Stage]]:
    """The whole flow once per pass in one throwaway copy: a pass's change (None: nothing new) is
    made on ``develop`` before it. The first pass's report starts with the clone; a failed pass
    ends the run. The benchmark uses this to time an unchanged and a one-line-changed flow."""
    from cicd.config import load_config
    from cicd.gitops import Repo, signed_throwaway_clone
    from cicd.images import Engine

    start = time.perf_counter()
    engine = Engine.from_env()  # fail early, with advice, when no engine answers
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="trainyard-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    work, _origin, keys = signed_throwaway_clone(root, base)
    env = {**os.environ, **keys}
    spec = work / "cicd" / "pipeline.yaml"
    use_free_ports(spec)
    repo = Repo(work)  # git through the toolkit: a machine without a git identity gets the default one
    repo.commit_all("chore: free ports for this throwaway run")
    repo.push(["refs/heads/develop"])
    runs: list[list[Stage]] = [[Stage("clone", True, time.perf_counter() - start, f"throwaway copy in {work}")]]
    logs = base / "logs"
    logs.mkdir(exist_ok=True)
    try:
        for n, change in enumerate(passes):
            stages = runs[-1] if n == 0 else []
            if n:
                runs.append(stages)
            if change is not None:
                repo.switch("develop")
                stages.append(Stage("change", True, 0.0, change(work)))
            if not _run_stages(work, env, logs / (f"pass-{n + 1}" if len(passes) > 1 else ""), repo, stages):
                break
    finally:
        if not keep:
            discard_environments(load_config(spec, env=env), work, env)
        engine.close()
        repo.close()
        print(f"\nreport: {write_report([s for r in runs for s in r], base / 'report.json')}", file=sys.stderr)
    return runs


def discard_environments(config: Any, work: Path, env: dict[str, str]) -> None:
    """Stop the throwaway copy's services on each environment's own engine; a host that cannot be
    reached is said, and the others are still cleaned."""
    from cicd.context import Context
    from cicd.deploy.docker_target import DockerTarget

    with Context(config=config, root=work, env=env) as ctx:
        for environment in config.environments.values():
            if environment.target != "docker":
                continue
            try:
                DockerTarget(config, environment, ctx.engine_for(environment)).discard()
            except CICDError as err:
                print(f"could not stop the demo's {environment.name}: {err}", file=sys.stderr)


def _run_stages(work: Path, env: dict[str, str], logs: Path, repo: Any, stages: list[Stage]) -> bool:
    """Every stage of :data:`FLOW` in ``work``, appended to ``stages``; False at the first failure."""
    logs.mkdir(parents=True, exist_ok=True)
    for name, args, branch in FLOW:
        if branch:
            repo.switch(branch, pull="origin" if branch == "main" else None)
        print(f"\n=== {name}: python -m cicd {' '.join(args)}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        log = logs / f"{len(stages):02d}-{args[0]}.log"
        with log.open("w") as fh:
            done = proc.run(
                [sys.executable, "-m", "cicd", "--root", str(work), "--json", *args],
                cwd=work,
                env=env,
                timeout=3600,
                stream=cast(IO[str], _Tee(fh, sys.stderr)),
                keep_output=True,
            )
        ok, reused = done.ok, ""
        try:
            result = json.loads(done.output)["result"]
            detail = _summary(args[0], result) if ok else f"exit {done.exit_code}: see {log}"
            reused = _reused(args[0], result) if ok else ""
        except (ValueError, KeyError):
            ok, detail = False, f"no JSON result (exit {done.exit_code}): see {log}"
        stages.append(Stage(name, ok, time.perf_counter() - t0, detail, reused))
        if not ok:
            return False
    return True


class _Tee:
    """Write to several streams at once (the stage's log file and the terminal)."""

    def __init__(self, *streams: IO[str]) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


# --- the short version, no Docker ----------------------------------------------------------
def _cli(module: str, *args: str, cwd: Path) -> proc.Completed:
    return proc.run([sys.executable, "-m", module, *args], cwd=cwd, timeout=900)


def _serve_check(module: str, root: Path, model: Path, log: Path) -> str:
    port = free_port()
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "serve", "--model-dir", str(model), "--port", str(port)],
            cwd=root,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_healthy(f"{base}/health", timeout=60, is_alive=lambda: proc.poll() is None):
            raise RuntimeError(f"the service never became healthy at {base}/health; see {log}")
        status, meta = request_json(f"{base}/metadata")
        if status != 200:
            raise RuntimeError(f"GET /metadata answered {status}: {meta}")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"the service exited with {proc.returncode} after SIGTERM")
        described = ", ".join(f"{k} {meta[k]}" for k in ("model_name", "version") if k in meta)
        return f"{base}: /health ok, /metadata ok ({described or 'answered'}), clean SIGTERM stop"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_local(root: Path, workdir: Path) -> list[Stage]:
    stages = _run_local(root, workdir)
    print(f"\nreport: {write_report(stages, workdir / 'report.json')}", file=sys.stderr)
    return stages


def _run_local(root: Path, workdir: Path) -> list[Stage]:
    """The package's own commands, as the contract (cicd/README.md) has the toolkit call them."""
    from cicd.config import load_config

    cfg = load_config(root / "cicd" / "pipeline.yaml", env={})
    module, settings = f"{cfg.import_name}.run", str(root / cfg.retrain.settings)
    model, evaluation = workdir / "model", workdir / "evaluation"
    steps = [
        ("train", ["train", "--config", settings, "--output", str(model)], f"bundle in {model}"),
        (
            "evaluate",
            ["evaluate", "--config", settings, "--model-dir", str(model), "--output", str(evaluation)],
            f"report in {evaluation}",
        ),
    ]
    stages: list[Stage] = []
    for name, args, detail in steps:
        start = time.perf_counter()
        result = _cli(module, *args, cwd=root)
        ok = result.ok
        stages.append(Stage(name, ok, time.perf_counter() - start, detail if ok else f"exit code {result.exit_code}"))
        if not ok:
            return stages
    start = time.perf_counter()
    try:
        detail = _serve_check(module, root, model, workdir / "serve.log")
        stages.append(Stage("serve", True, time.perf_counter() - start, detail))
    except (RuntimeError, OSError, subprocess.TimeoutExpired, CICDError) as err:
        stages.append(Stage("serve", False, time.perf_counter() - start, str(err)))
    return stages
