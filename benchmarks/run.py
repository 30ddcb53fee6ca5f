"""Benchmarks: how fast, how small — ours side by side with the naive baseline, in the same run.

    python -m benchmarks.run [--skip-flow] [--skip-load] [--skip-hosts] [--requests 500] [--output artifacts/benchmarks]
    nox -s bench [-- --skip-flow]

Everything runs in a throwaway copy of this repository with a bare ``origin`` (your repository,
tags and deployments are untouched) against the local engine. It prints a table
(``metric | ours | baseline | target | verdict``) and writes ``results.json``. Absolute times
drift on shared machines, so every comparison is made within one run. The wheelhouse (resolved
dependencies, outside the images) is warm for both sides; "cold" means every image step runs
again (``TRAINYARD_NO_CACHE=1``, the builder's ``nocache``); the cold flow runs on a fresh copy of
the base image, so its first build finds no cache and its later builds find what it built itself.
The warm flow's copy then runs the flow twice more: with nothing new, where every stage should
reuse its signed result (``cicd.results``), and after a one-line change in the sample package;
the table shows each stage's time in both passes and what each reused.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.common import prepare
from cicd.errors import run_cli

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "benchmarks" / "baseline"
EDITED = "src/sample_ml/pipelines/predict.py"  # the one-line source change
T = TypeVar("T")


@dataclass
class Row:
    metric: str
    ours: float | None
    baseline: float | None
    unit: str
    target: str
    ok: bool | None  # None: no target, a figure for context

    def cells(self) -> list[str]:
        def fmt(v: float | None) -> str:
            return "—" if v is None else f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"

        verdict = "—" if self.ok is None else "met" if self.ok else "MISSED"
        return [self.metric, f"{fmt(self.ours)} {self.unit}", f"{fmt(self.baseline)} {self.unit}", self.target, verdict]


def table(rows: list[Row]) -> str:
    head = ["metric", "ours", "baseline", "target", "verdict"]
    cells = [head] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True))]
    lines.append("-|-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells[1:]]
    return "\n".join(lines)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    pos = (len(ordered) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


@contextlib.contextmanager
def quiet(log: Path) -> Iterator[None]:
    """Send the stages' streamed output to ``log`` instead of the terminal."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        yield


@contextlib.contextmanager
def env(**values: str | None) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- images ------------------------------------------------------------------------------------
def context(work: Path, cold: bool, keys: dict[str, str]) -> Any:
    """A context for the throwaway project; ``keys``: the variable naming its signing key."""
    from cicd.config import load_config
    from cicd.context import Context
    from cicd.images import Engine

    with env(TRAINYARD_NO_CACHE="1" if cold else None):
        engine = Engine.from_env()
    config = load_config(work / "cicd/pipeline.yaml")
    return Context(config=config, root=work, env={**os.environ, **keys}).use(engine=engine)


def build_baseline(ctx: Any) -> str:
    from cicd.images import ContextFile, tree_files
    from cicd.wheelhouse import ensure_wheelhouse

    cfg, engine = ctx.config, ctx.engine
    reqs = [ctx.root / "src/requirements/dev.txt", ctx.root / "cicd/requirements.txt"]
    wheelhouse = ensure_wheelhouse("dev", reqs, engine.images.platform(cfg.images.base))  # the same one ours uses
    files = [
        *tree_files(ctx.root, BASELINE / ".dockerignore"),
        ContextFile("Dockerfile", path=BASELINE / "Dockerfile"),
        *[ContextFile(f"wheelhouse/{p.name}", path=p) for p in sorted(wheelhouse.glob("*.whl"))],
    ]
    result = engine.images.build(
        files,
        "Dockerfile",
        "trainyard/bench-baseline:latest",
        buildargs={"BASE_IMAGE": cfg.images.base, "IMPORT_NAME": cfg.import_name, "SETTINGS": cfg.retrain.settings},
    )
    return str(result.image_id)


def image_size(ctx: Any, ref: str) -> float:
    return float(ctx.engine.images.attrs(ref)["Size"]) / 1e6


def du_mb(ctx: Any, image: str, *paths: str) -> float:
    container = ctx.engine.client.containers.run(image, ["du", "-sb", *paths], network_mode="none", detach=True)
    try:
        container.wait(timeout=120)
        out = container.logs().decode()
    finally:
        container.remove(force=True)
    return sum(int(line.split()[0]) for line in out.splitlines() if line.strip()) / 1e6


def edit_one_line(work: Path, n: int) -> None:
    path = work / EDITED
    # Unique to this run, so an engine's cache from an earlier run cannot hold this edit already.
    path.write_text(path.read_text() + f"# benchmark edit {n} {uuid.uuid4().hex}\n")


# --- the service ----------------------------------------------------------------------------------
def records(n: int, seed: int = 0) -> list[dict[str, float]]:
    from sample_ml.data_loaders import CSVDataLoader
    from sample_ml.schema import DIABETES

    frame = CSVDataLoader(ROOT / "notebooks/dummy_data/diabetes.csv").load()[DIABETES.feature_names]
    picked = frame.sample(n, replace=n > len(frame), random_state=seed)
    return [{str(k): (int(v) if k == "sex" else float(v)) for k, v in row.items()} for row in picked.to_dict("records")]


def serve_latency(ctx: Any, image: str, n_single: int, n_batches: int, workdir: Path) -> dict[str, float]:
    import pandas as pd

    from cicd.http import free_port, wait_healthy
    from sample_ml.pipelines.bundle import load_bundle
    from sample_ml.pipelines.predict import predict_frame

    engine = ctx.engine
    port = free_port()
    cid = engine.containers.start_service(
        image, f"trainyard-bench-{port}", {"SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": str(port)}
    )
    try:
        if not wait_healthy(f"http://127.0.0.1:{port}/health", 60):
            raise RuntimeError(f"the release image never became healthy: {engine.containers.logs_tail(cid)}")
        engine.containers.copy_out(cid, "/opt/model", workdir / "model")
        single, batch = records(n_single), records(1000, seed=1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def post(payload: list[dict[str, float]]) -> float:
            body = json.dumps({"records": payload})
            t0 = time.perf_counter()
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - t0
            if response.status != 200:
                raise RuntimeError(f"/predict answered {response.status}")
            return elapsed

        for rec in single[:20]:  # warm-up
            post([rec])
        http_single = [post([rec]) for rec in single]
        http_batch = [post(batch) for _ in range(n_batches)]
        conn.close()
    finally:
        engine.containers.stop(cid)

    bundle = load_bundle(workdir / "model")
    names = bundle.schema.feature_names

    def local(payload: list[dict[str, float]]) -> float:
        t0 = time.perf_counter()
        predict_frame(bundle, pd.DataFrame.from_records(payload, columns=names).astype("float64"))
        return time.perf_counter() - t0

    for rec in single[:20]:
        local([rec])
    local_single = [local([rec]) for rec in single]
    local_batch = [local(batch) for _ in range(n_batches)]
    ms = 1000.0
    return {
        "http_single_p50_ms": percentile(http_single, 50) * ms,
        "http_single_p99_ms": percentile(http_single, 99) * ms,
        "http_batch_p50_ms": percentile(http_batch, 50) * ms,
        "http_batch_p99_ms": percentile(http_batch, 99) * ms,
        "local_single_p50_ms": percentile(local_single, 50) * ms,
        "local_single_p99_ms": percentile(local_single, 99) * ms,
        "local_batch_p50_ms": percentile(local_batch, 50) * ms,
        "http_single_rps": len(http_single) / sum(http_single),
        "http_batch_rows_per_s": 1000 * len(http_batch) / sum(http_batch),
        "local_single_rps": len(local_single) / sum(local_single),
    }


# --- the whole flow -------------------------------------------------------------------------------
def fresh_base(ctx: Any) -> str:
    """A copy of the base image with a new id: nothing built on it is cached yet, so the first flow
    on it is cold, and every later step in that same flow can use what the flow itself built."""
    from cicd.images import ContextFile

    base = ctx.config.images.base
    dockerfile = f"FROM {base}\nLABEL io.trainyard.bench-cold={time.time_ns()}\n".encode()
    ref = "trainyard/bench-base:cold"
    ctx.engine.images.build([ContextFile("Dockerfile", data=dockerfile)], "Dockerfile", ref)
    return ref


def one_line_change(work: Path) -> str:
    """The benchmark's one-line change in the sample package, committed in the throwaway copy."""
    from cicd.gitops import Repo

    edit_one_line(work, 2)
    repo = Repo(work)
    try:
        repo.commit_all("fix: a one-line change in the sample package")
    finally:
        repo.close()
    return f"one line in {EDITED}"


def _pass(stages: list[Any]) -> dict[str, Any]:
    return {
        "seconds": sum(s.seconds for s in stages),
        "stages": [{"name": s.name, "seconds": round(s.seconds, 2), "reused": s.reused} for s in stages],
    }


def flow(work: Path, base: Path, base_image: str, cold: bool) -> dict[str, Any]:
    """The whole local flow in a fresh throwaway copy. Warm, the same copy then runs it twice more:
    with nothing new (every stage should reuse its result) and after a one-line change."""
    from cicd.demo import run_flows

    passes = [None] if cold else [None, None, one_line_change]
    with env(TRAINYARD_BASE_IMAGE=base_image), quiet(base / "flow.log"):
        runs = run_flows(work, base, False, passes)
    failed = [s.name for r in runs for s in r if not s.ok]
    if failed or len(runs) != len(passes):
        raise RuntimeError(f"the {'cold' if cold else 'warm'} flow failed at {failed}; see {base / 'logs'}")
    stages = runs[0]
    first = base / "logs" / ("pass-1" if len(passes) > 1 else "")
    promote_log = next(first.glob("*-promote.log")).read_text()
    promote = next(s for s in stages if s.name.startswith("promote"))
    health = sum(float(x) for x in re.findall(r"^health wait: ([\d.]+) s", promote_log, re.M))
    figures = {
        "seconds": sum(s.seconds for s in stages),
        "stages": {s.name: round(s.seconds, 2) for s in stages},
        "promote_seconds": promote.seconds,
        "promote_health_wait": health,
        "promote_builds": len(re.findall(r"^Step 1/\d+ :", promote_log, re.M)),
    }
    if not cold:
        figures["nochange"], figures["change"] = _pass(runs[1]), _pass(runs[2])
    return figures


# --- main -------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "artifacts" / "benchmarks")
    parser.add_argument("--requests", type=int, default=500, help="single-record requests (default 500)")
    parser.add_argument("--batches", type=int, default=30, help="1,000-record requests (default 30)")
    parser.add_argument("--skip-flow", action="store_true", help="skip the full local flow, cold and warm")
    parser.add_argument("--skip-load", action="store_true", help="skip the load runs with wrk (benchmarks.load)")
    parser.add_argument("--skip-hosts", action="store_true", help="skip the proxy and host figures (benchmarks.hosts)")
    args = parser.parse_args(argv)
    prepare(args.output)
    if not args.skip_load:
        from benchmarks.load import wrk_binary

        wrk_binary(", or pass --skip-load")

    from cicd import flow as stages
    from cicd.gitops import signed_throwaway_clone

    out: Path = args.output
    log = out / "stages.log"
    log.write_text("")
    tmp = Path(tempfile.mkdtemp(prefix="trainyard-bench-"))
    work, _, keys = signed_throwaway_clone(ROOT, tmp)
    figures: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count()}

    def step(name: str, fn: Callable[[], T]) -> T:
        print(f"… {name}", file=sys.stderr, flush=True)
        with quiet(log):
            seconds, result = timed(fn)
        figures[name] = seconds
        print(f"  {seconds:.1f} s", file=sys.stderr, flush=True)
        return result

    cold, warm = context(work, cold=True, keys=keys), context(work, cold=False, keys=keys)
    step("ours_cold_build", lambda: stages.build_image(cold))
    step("ours_cold_unit", lambda: stages.unit(cold, []))
    step("baseline_cold_build", lambda: build_baseline(cold))
    step("ours_nochange_build", lambda: stages.build_image(warm))
    step("ours_warm_unit", lambda: stages.unit(warm, []))
    step("baseline_nochange_build", lambda: build_baseline(warm))
    edit_one_line(work, 1)
    step("ours_change_build", lambda: stages.build_image(warm))
    step("baseline_change_build", lambda: build_baseline(warm))
    (work / EDITED).write_text(git_show(work, f"HEAD:{EDITED}"))

    record = step("release", lambda: stages.release(warm))
    release_image = f"{warm.config.images.release}:{record['version']}"
    base = warm.config.images.base
    sizes = {
        "base_mb": image_size(warm, base),
        "release_mb": image_size(warm, release_image),
        "baseline_mb": image_size(warm, "trainyard/bench-baseline:latest"),
        "release_venv_mb": du_mb(warm, release_image, "/opt/venv"),
        "model_mb": du_mb(warm, release_image, "/opt/model"),
    }
    sizes["floor_mb"] = sizes["base_mb"] + sizes["release_venv_mb"] + sizes["model_mb"]
    figures["sizes"] = sizes
    print("… serving latency", file=sys.stderr, flush=True)
    figures["service"] = serve_latency(warm, release_image, args.requests, args.batches, tmp)
    if not args.skip_load:
        from benchmarks import load

        print("… load with wrk: 1, 8 and 32 clients, metrics and log off and on (about 4 minutes)", file=sys.stderr)
        figures["load"] = load.measure(warm.engine, release_image)

    if not args.skip_hosts:
        from benchmarks import hosts

        print("… the proxy's cost, and a promotion to a host over SSH", file=sys.stderr, flush=True)
        with quiet(log):
            figures["hosts"] = hosts.measure(warm.engine, release_image)

    if not args.skip_flow:
        print("… full local flow, cold then warm (several minutes)", file=sys.stderr, flush=True)
        with quiet(log):
            cold_base = fresh_base(warm)
        figures["flow_cold"] = flow(work, tmp / "flow-cold", cold_base, cold=True)
        figures["flow_warm"] = flow(work, tmp / "flow-warm", cold_base, cold=False)
    for ref in ("trainyard/bench-baseline:latest", "trainyard/bench-base:cold"):
        with contextlib.suppress(Exception):
            warm.engine.images.remove(ref)

    rows = evaluate(figures)
    figures["rows"] = [asdict(r) for r in rows]
    (out / "results.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(table(rows))
    print(f"\n{os.cpu_count()} CPUs; figures in {out / 'results.json'}; stage logs in {log}")
    return 0


def git_show(work: Path, spec: str) -> str:
    import subprocess

    return subprocess.run(["git", "show", spec], cwd=work, check=True, capture_output=True, text=True).stdout


def stage_rows(nochange: dict[str, Any], change: dict[str, Any]) -> list[Row]:
    """Per stage: its time with nothing new (ours column) and after the one-line change (baseline
    column), and in the target column what each pass reused."""
    changed = {s["name"]: s for s in change["stages"]}
    rows = []
    for s in nochange["stages"]:
        other = changed.get(s["name"], {})
        said = f"{s['reused'] or 'ran'} / {other.get('reused') or 'ran'}"
        rows.append(
            Row(f"  {s['name']}: nothing new / one-line change", s["seconds"], other.get("seconds"), "s", said, None)
        )
    return rows


def evaluate(f: dict[str, Any]) -> list[Row]:
    """The table: each figure next to the baseline's and the issue's target."""
    oc, bc = f["ours_cold_build"], f["baseline_cold_build"]
    och, bch = f["ours_change_build"], f["baseline_change_build"]
    s, svc = f["sizes"], f["service"]
    added, baseline_added = s["release_mb"] - s["base_mb"], s["baseline_mb"] - s["base_mb"]
    rows = [
        Row("cold build", oc, bc, "s", "—", None),
        Row(
            "no-change rebuild",
            f["ours_nochange_build"],
            f["baseline_nochange_build"],
            "s",
            "< 3 s",
            f["ours_nochange_build"] < 3,
        ),
        Row(
            "rebuild after a one-line change",
            och,
            bch,
            "s",
            "≤ 15 % of our cold, ≤ 20 % of baseline's",
            och <= 0.15 * oc and och <= 0.2 * bch,
        ),
        Row("  as % of our cold build", 100 * och / oc, 100 * bch / bc, "%", "≤ 15 %", och <= 0.15 * oc),
        Row(
            "image size (release vs single-stage)",
            s["release_mb"],
            s["baseline_mb"],
            "MB",
            f"within 10 % of floor {s['floor_mb']:.0f} MB",
            s["release_mb"] <= 1.1 * s["floor_mb"],
        ),
        Row(
            "  added on top of the base image",
            added,
            baseline_added,
            "MB",
            "≤ 70 % of baseline's",
            added <= 0.7 * baseline_added,
        ),
        Row("feature stage (build + unit) cold", oc + f["ours_cold_unit"], None, "s", "—", None),
        Row(
            "feature stage (build + unit) warm",
            f["ours_nochange_build"] + f["ours_warm_unit"],
            None,
            "s",
            "< 60 s",
            f["ours_nochange_build"] + f["ours_warm_unit"] < 60,
        ),
        Row(
            "single record p50 over HTTP",
            svc["http_single_p50_ms"],
            svc["local_single_p50_ms"],
            "ms",
            "< 10 ms (baseline column: in-process)",
            svc["http_single_p50_ms"] < 10,
        ),
        Row(
            "single record p99 over HTTP",
            svc["http_single_p99_ms"],
            svc["local_single_p99_ms"],
            "ms",
            "< 50 ms",
            svc["http_single_p99_ms"] < 50,
        ),
        Row(
            "  HTTP overhead at p50",
            svc["http_single_p50_ms"] - svc["local_single_p50_ms"],
            None,
            "ms",
            "≤ 5 ms",
            svc["http_single_p50_ms"] - svc["local_single_p50_ms"] <= 5,
        ),
        Row(
            "1,000-record batch p50 / p99 over HTTP",
            svc["http_batch_p50_ms"],
            svc["http_batch_p99_ms"],
            "ms",
            "— (baseline column: p99)",
            None,
        ),
        Row(
            "throughput, single records",
            svc["http_single_rps"],
            svc["local_single_rps"],
            "req/s",
            "— (baseline column: in-process)",
            None,
        ),
        Row("throughput, 1,000-record batches", svc["http_batch_rows_per_s"], None, "rows/s", "—", None),
    ]
    if "load" in f:
        runs, over = f["load"]["runs"], f["load"]["overhead"]
        for payload in ("single", "batch"):
            for clients in (1, 8, 32):
                on, off = (
                    next(r for r in runs if (r["payload"], r["clients"], r["mode"]) == (payload, clients, mode))
                    for mode in ("on", "off")
                )
                what = "single record" if payload == "single" else "1,000-record batch"
                rows.append(
                    Row(
                        f"wrk {what}, {clients} clients (p50 {on['p50_ms']:.1f} / p99 {on['p99_ms']:.1f} ms)",
                        on["rps"],
                        off["rps"],
                        "req/s",
                        "— (baseline column: metrics and log off)",
                        None,
                    )
                )
        rows.append(
            Row(
                "metrics + prediction log: added single-record p50",
                100 * over["added"],
                None,
                "%",
                f"≤ 5 % ({over['p50_on_ms']:.3f} vs {over['p50_off_ms']:.3f} ms; A/A {over['noise']:.1%})",
                over["added"] <= 0.05,
            )
        )
    if "flow_cold" in f:
        fc, fw = f["flow_cold"], f["flow_warm"]
        promote = fw["promote_seconds"] - fw["promote_health_wait"]
        rows += [
            Row(
                "full local flow cold / warm",
                fc["seconds"],
                fw["seconds"],
                "s",
                "warm ≥ 3× faster",
                fc["seconds"] >= 3 * fw["seconds"],
            ),
            Row(
                "flow again in the same project, nothing new",
                fw["nochange"]["seconds"],
                fc["seconds"],
                "s",
                "cold ≥ 5× this (baseline column: cold)",
                fc["seconds"] >= 5 * fw["nochange"]["seconds"],
            ),
            Row("flow after a one-line change in the sample package", fw["change"]["seconds"], None, "s", "—", None),
            *stage_rows(fw["nochange"], fw["change"]),
            Row(
                "promotion, excluding health wait",
                promote,
                fw["promote_health_wait"],
                "s",
                "< 5 s (baseline column: health wait)",
                promote < 5,
            ),
            Row(
                "image builds on the promotion path",
                fw["promote_builds"],
                fc["promote_builds"],
                "",
                "0 (cold run beside it)",
                fw["promote_builds"] == 0 and fc["promote_builds"] == 0,
            ),
        ]
    if "hosts" in f:
        h = f["hosts"]
        rows += [
            Row("promotion to a host over SSH: pull by digest + switch", h["promote_s"], None, "s", "—", None),
            Row("a blue/green switch on that host", h["switch_s"], None, "s", "—", None),
            Row(
                "requests failed during the switch",
                h["switch_failed"],
                h["switch_requests"],
                "",
                "0 (baseline column: requests made)",
                h["switch_failed"] == 0,
            ),
            Row("longest request during the switch", h["switch_longest_ms"], None, "ms", "—", None),
            Row("/health p50 via the proxy", h["proxy_p50_ms"], h["direct_p50_ms"], "ms", "(baseline: direct)", None),
            Row("/health p99 via the proxy", h["proxy_p99_ms"], h["direct_p99_ms"], "ms", "(baseline: direct)", None),
        ]
    return rows


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
