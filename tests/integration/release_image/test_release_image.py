"""The release image, as shipped: lean, non-root, healthy, and it serves real requests."""

from __future__ import annotations

import csv
import http.client
import time
import uuid
from pathlib import Path

from cicd.http import free_port, request_json, wait_healthy
from cicd.images import Engine

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "notebooks" / "dummy_data" / "diabetes.csv"


def _declared_body_status(port: int, length: int) -> int:
    """POST /predict announcing a body of ``length`` bytes, send none of it, and read the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("POST", "/predict")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        response = conn.getresponse()
        response.read()
        return int(response.status)
    finally:
        conn.close()


def test_runs_as_non_root_with_a_healthcheck(engine: Engine, release_image: str) -> None:
    config = engine.images.attrs(release_image)["Config"]
    assert config["User"] not in ("", "0", "root")
    assert config["Healthcheck"]["Test"][-1] == "/opt/trainyard/healthcheck.py"  # the toolkit's own probe
    assert config["Cmd"][-1] == 'exec python -m "$APP_MODULE" serve' and any(
        e.startswith("APP_MODULE=") and e.endswith(".run") for e in config["Env"]
    )  # the spec's import_name, never a name written into the Dockerfile
    labels = config["Labels"]
    for key in ("revision", "version", "created", "source"):
        assert labels[f"org.opencontainers.image.{key}"]


def test_contains_no_source_tests_compilers_or_secrets(engine: Engine, release_image: str) -> None:
    script = (
        "import os, shutil, sys, sample_ml;"
        "bad=[p for p in ('/app','/wheelhouse','/tmp/dist','/opt/venv/bin/pip') if os.path.exists(p)];"
        "bad+=[c for c in ('gcc','cc','g++','make','git') if shutil.which(c)];"
        "import importlib.util as u; bad+=[m for m in ('pip','setuptools') if u.find_spec(m)];"  # no installers
        "bad+=[os.path.join(r,f) for r,_,fs in os.walk('/') if not r.startswith(('/proc','/sys'))"
        " for f in fs if f.startswith('test_') and f.endswith('.py') and 'sample_ml' in r];"
        "bad+=[os.path.join(r,f) for r,_,fs in os.walk('/opt/model') for f in fs"
        " if f.endswith(('.csv','.sqlite')) or f == 'reference.json'];"
        "bad+=[r for r,ds,_ in os.walk('/opt') if '.git' in ds];"
        "print('BAD', bad); print('PKG', sample_ml.__file__); sys.exit(1 if bad else 0)"
    )
    result = engine.containers.run(release_image, ["python", "-c", script], timeout=120)
    assert result.exit_code == 0, result.log_tail
    assert any("/opt/venv/lib/" in line for line in result.log_tail), "sample_ml must be the installed wheel"


def test_cli_trains_evaluates_and_predicts_inside_the_image(engine: Engine, release_image: str, tmp_path: Path) -> None:
    script = (
        "set -e; cd /tmp/work; "
        "sample-ml train --source diabetes.csv --model olsr --output model; "
        "sample-ml evaluate --source diabetes.csv --model-dir model --output eval; "
        "sample-ml predict --source diabetes.csv --model-dir /opt/model --output preds.csv"
    )
    result = engine.containers.run(
        release_image,
        ["sh", "-c", script],
        files={"diabetes.csv": DATA},
        files_dest="/tmp/work",
        timeout=600,
        copy_out={"/tmp/work/preds.csv": tmp_path, "/tmp/work/eval": tmp_path / "eval"},
    )
    assert result.exit_code == 0, "\n".join(result.log_tail)
    with (tmp_path / "preds.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 442 and all(float(r["prediction"]) > 0 for r in rows)
    assert (tmp_path / "eval" / "metrics.json").is_file()


def test_serves_real_requests_on_127_0_0_1_and_stops_cleanly(engine: Engine, release_image: str) -> None:
    port = free_port()
    name = f"trainyard-test-{uuid.uuid4().hex[:8]}"
    cid = engine.containers.start_service(
        release_image, name, {"SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": str(port), "IMAGE_DIGEST": "sha256:test"}
    )
    try:
        base = f"http://127.0.0.1:{port}"
        alive = lambda: engine.containers.running(cid)  # noqa: E731
        assert wait_healthy(f"{base}/health", timeout=60, is_alive=alive), engine.containers.logs_tail(cid)
        status, meta = request_json(f"{base}/metadata")
        assert status == 200 and meta["image_digest"] == "sha256:test"
        with DATA.open() as fh:
            row = next(csv.DictReader(fh))
        record = {k: (int(float(v)) if k == "sex" else float(v)) for k, v in row.items() if k != "target"}
        status, body = request_json(f"{base}/predict", {"records": [record] * 3})
        assert status == 200 and len(body["predictions"]) == 3
        status, body = request_json(f"{base}/predict", {"records": [{**record, "bmi": "x"}]})
        assert status == 422
        for bad in (float("nan"), float("inf"), 1e308):  # once 500s: now 422s naming the field
            status, body = request_json(f"{base}/predict", {"records": [{**record, "bmi": bad}]})
            assert status == 422 and body["detail"][0]["loc"][-1] == "bmi", body
        assert _declared_body_status(port, 25_000_000) == 413  # refused by its length, before any byte is read
        assert request_json(f"{base}/openapi.json")[0] == 404
        deadline = time.monotonic() + 90  # the first probe runs one interval (30 s) after the start
        while engine.containers.state(cid).get("Health", {}).get("Status") != "healthy":
            assert time.monotonic() < deadline, "the image's HEALTHCHECK never reported healthy"
            time.sleep(1)
    finally:
        code = engine.containers.stop(cid)
    assert code == 0, engine.containers.logs_tail(cid)
