"""The main job on a fresh machine: train, evaluate, predict and serve the sample model.

Runs the application CLI exactly as a user would, in ``artifacts/demo`` (git-ignored), then
starts the HTTP service on a free 127.0.0.1 port, sends it real requests, stops it with
SIGTERM, and prints a short report of each stage.
"""

from __future__ import annotations

import csv
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cicd.http import request_json, wait_healthy


@dataclass
class Stage:
    name: str
    ok: bool
    seconds: float
    detail: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sample_ml.run", *args], cwd=cwd, text=True, check=False)


def _records(data: Path, n: int) -> list[dict[str, float | int]]:
    with data.open() as fh:
        rows = [row for _, row in zip(range(n), csv.DictReader(fh), strict=False)]
    return [{k: (int(float(v)) if k == "sex" else float(v)) for k, v in row.items() if k != "target"} for row in rows]


def _serve_check(root: Path, model: Path, data: Path, log: Path) -> str:
    port = _free_port()
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sample_ml.run", "serve", "--model-dir", str(model), "--port", str(port)],
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
        status, body = request_json(f"{base}/predict", {"records": _records(data, 3)})
        if status != 200:
            raise RuntimeError(f"POST /predict answered {status}: {body}")
        preds = ", ".join(f"{p:.1f}" for p in body["predictions"])
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"the service exited with {proc.returncode} after SIGTERM")
        return f"{base}: /health ok, model {meta['model_name']}, predictions [{preds}], clean SIGTERM stop"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_demo(root: Path, workdir: Path) -> list[Stage]:
    data = root / "notebooks" / "dummy_data" / "diabetes.csv"
    model, evaluation, preds = workdir / "model", workdir / "evaluation", workdir / "predictions.csv"
    steps = [
        ("train", ["train", "--source", str(data), "--output", str(model)], f"bundle in {model}"),
        (
            "evaluate",
            ["evaluate", "--source", str(data), "--model-dir", str(model), "--output", str(evaluation)],
            f"report in {evaluation}",
        ),
        (
            "predict",
            ["predict", "--source", str(data), "--model-dir", str(model), "--output", str(preds)],
            f"scores in {preds}",
        ),
    ]
    stages: list[Stage] = []
    for name, args, detail in steps:
        start = time.perf_counter()
        result = _cli(*args, cwd=root)
        stages.append(
            Stage(
                name,
                result.returncode == 0,
                time.perf_counter() - start,
                detail if result.returncode == 0 else f"exit code {result.returncode}",
            )
        )
        if result.returncode != 0:
            return stages
    start = time.perf_counter()
    try:
        detail = _serve_check(root, model, data, workdir / "serve.log")
        stages.append(Stage("serve", True, time.perf_counter() - start, detail))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        stages.append(Stage("serve", False, time.perf_counter() - start, str(err)))
    return stages


def report(stages: list[Stage]) -> str:
    lines = ["", "stage      result  seconds  detail"]
    for s in stages:
        lines.append(f"{s.name:10} {'ok' if s.ok else 'FAILED':7} {s.seconds:7.1f}  {s.detail}")
    return "\n".join(lines)
