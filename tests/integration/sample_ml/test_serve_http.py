"""The service answers real HTTP on 127.0.0.1 and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cicd.http import free_port, request_json, wait_healthy


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, dummy_csv: Path) -> Path:
    out = tmp_path_factory.mktemp("serve") / "model"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "sample_ml.run",
            "train",
            "--source",
            str(dummy_csv),
            "--model",
            "olsr",
            "--output",
            str(out),
        ],
        check=True,
    )
    return out


def serve(bundle: Path, *extra: str) -> tuple[str, subprocess.Popen[str]]:
    """``sample-ml serve`` on a free port, healthy; its base URL and process."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sample_ml.run", "serve", "--model-dir", str(bundle), "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    if not wait_healthy(f"{base}/health", timeout=60, is_alive=lambda: proc.poll() is None):
        proc.kill()
        pytest.fail(f"service did not become healthy:\n{proc.communicate()[0]}")
    return base, proc


def rows(dummy_csv: Path) -> list[dict[str, float]]:
    """The dummy data's records, as a client sends them."""
    import csv

    with dummy_csv.open() as fh:
        return [
            {k: (int(float(v)) if k == "sex" else float(v)) for k, v in r.items() if k != "target"}
            for r in csv.DictReader(fh)
        ]


@pytest.fixture
def server(bundle: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    base, proc = serve(bundle)
    yield base, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_real_http_round_trip_and_clean_sigterm(server: tuple[str, subprocess.Popen[str]]) -> None:
    base, proc = server
    status, meta = request_json(f"{base}/metadata")
    assert status == 200 and meta["model_name"] == "olsr"
    record = {
        "age": 59.0,
        "sex": 2,
        "bmi": 32.1,
        "bp": 101.0,
        "s1": 157.0,
        "s2": 93.2,
        "s3": 38.0,
        "s4": 4.0,
        "s5": 4.8598,
        "s6": 87.0,
    }
    status, body = request_json(f"{base}/predict", {"records": [record, record]})
    assert status == 200 and len(body["predictions"]) == 2
    assert body["predictions"][0] == pytest.approx(body["predictions"][1])
    status, body = request_json(f"{base}/predict", {"records": [{**record, "bmi": "x"}]})
    assert status == 422 and body["detail"][0]["loc"][-1] == "bmi"
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, output
    assert "Shutting down" in output


def test_serve_refuses_a_missing_bundle_before_binding(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sample_ml.run", "serve", "--model-dir", str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no model bundle" in result.stderr and "Traceback" not in result.stderr


def _samples(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples in a Prometheus exposition whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] == name and all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
    return total


def test_metrics_add_up_over_two_workers_and_sigterm_stops_them(bundle: Path, dummy_csv: Path) -> None:
    import urllib.request

    base, proc = serve(bundle, "--workers", "2")
    try:
        record = rows(dummy_csv)[0]
        for _ in range(30):  # new connections: the two workers share them
            assert request_json(f"{base}/predict", {"records": [record, record]})[0] == 200
        assert request_json(f"{base}/predict", {"records": [{**record, "bmi": 1e308}]})[0] == 422
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:  # noqa: S310 - a local URL
            text = resp.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    assert _samples(text, "http_requests_total", route="/predict", method="POST", status="200") == 30
    assert _samples(text, "http_requests_total", route="/predict", status="422") == 1
    assert _samples(text, "model_prediction_value_count") == 60
    assert _samples(text, "http_request_duration_seconds_count", route="/predict") == 31
    assert _samples(text, "model_info", model_name="olsr") >= 1
    assert "http_requests_in_flight" in text


def test_sigterm_drains_requests_in_flight(bundle: Path, dummy_csv: Path) -> None:
    """Requests already being served when SIGTERM comes all finish (0 failures); then exit 0."""
    import time
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    base, proc = serve(bundle)
    signalled = False
    try:
        batch = {"records": (rows(dummy_csv) * 23)[:10_000]}  # the largest batch: each takes a while to parse and score
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(request_json, f"{base}/predict", batch, 120) for _ in range(8)]
            deadline, in_flight = time.monotonic() + 30, 0.0
            while time.monotonic() < deadline and in_flight < 4:  # being served, not just sent
                with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:  # noqa: S310 - local
                    in_flight = _samples(resp.read().decode(), "http_requests_in_flight") - 1  # not this one
            proc.send_signal(signal.SIGTERM)
            signalled = True
            assert in_flight >= 4, "the requests were not in flight when SIGTERM came"
            answers = [f.result() for f in futures]
    finally:
        if not signalled:  # one SIGTERM only: a second, mid-shutdown, would kill it (exit -15)
            proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    assert [status for status, _ in answers] == [200] * 8, out[-2000:]
    assert all(len(body["predictions"]) == 10_000 for _, body in answers)
    assert proc.returncode == 0, out[-3000:]
