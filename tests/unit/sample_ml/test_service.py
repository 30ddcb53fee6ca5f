from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from sample_ml.pipelines.bundle import load_bundle
from sample_ml.pipelines.predict import predict_frame
from sample_ml.schema import as_records
from sample_ml.service import create_app


@pytest.fixture(scope="module")
def client(bundle_dir: Path):
    with TestClient(create_app(bundle_dir)) as c:
        yield c


def test_health_is_503_until_the_model_is_loaded(bundle_dir: Path) -> None:
    app = create_app(bundle_dir)
    assert TestClient(app).get("/health").status_code == 503  # lifespan not run: not loaded
    with TestClient(app) as started:
        assert started.get("/health").json() == {"status": "ok"}


def test_metadata(client: TestClient, monkeypatch) -> None:
    monkeypatch.setenv("IMAGE_DIGEST", "sha256:" + "a" * 64)
    body = client.get("/metadata").json()
    assert body["model_name"] == "gbr"
    assert body["image_digest"] == "sha256:" + "a" * 64
    assert set(body) == {"model_name", "version", "commit", "image_digest"}  # the rest: SERVICE_METADATA=full


def test_predict_matches_in_process_scoring(client: TestClient, bundle_dir: Path, diabetes: pd.DataFrame) -> None:
    bundle = load_bundle(bundle_dir)
    rows = diabetes.head(25)
    records = as_records(rows, bundle.schema.feature_names)
    records[0]["sex"] = int(records[0]["sex"])  # categories arrive as JSON integers
    for r in records:
        r["sex"] = int(r["sex"])
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == pytest.approx(predict_frame(bundle, rows).tolist())


def _record(diabetes: pd.DataFrame) -> dict[str, float | int]:
    rec: dict[str, float | int] = dict(as_records(diabetes.head(1), list(diabetes.columns[:-1]))[0])
    rec["sex"] = int(rec["sex"])
    return rec


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.pop("bmi"), "bmi"),
        (lambda r: r.update(bmi="fat"), "bmi"),
        (lambda r: r.update(sex=3), "sex"),
        (lambda r: r.update(colour=1.0), "colour"),
        (lambda r: r.update(bp=None), "bp"),
    ],
    ids=["missing", "wrong-type", "bad-category", "extra", "null"],
)
def test_bad_records_get_422_naming_the_field(client: TestClient, diabetes: pd.DataFrame, change, field: str) -> None:
    record = _record(diabetes)
    change(record)
    response = client.post("/predict", json={"records": [record]})
    assert response.status_code == 422
    locations = [err["loc"] for err in response.json()["detail"]]
    assert any(loc[-1] == field for loc in locations), locations


@pytest.mark.parametrize("body", [{}, {"records": []}, {"records": "x"}, []])
def test_malformed_bodies_get_422(client: TestClient, body: object) -> None:
    assert client.post("/predict", json=body).status_code == 422


# --- input that cannot hurt the service ------------------------------------------------------
def _app(bundle_dir: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> TestClient:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return TestClient(create_app(bundle_dir))


def test_metadata_says_only_what_runs_unless_asked(bundle_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with _app(bundle_dir, monkeypatch) as c:
        assert set(c.get("/metadata").json()) == {"model_name", "version", "commit", "image_digest"}
        assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 404
    with _app(bundle_dir, monkeypatch, SERVICE_METADATA="full", SERVICE_DOCS="1") as c:
        body = c.get("/metadata").json()
        assert {"metrics", "features", "bounds", "hyperparameters"} <= set(body)
        assert c.get("/openapi.json").status_code == 200 and c.get("/docs").status_code == 200


def test_a_body_over_the_limit_gets_413_before_parsing(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch, diabetes: pd.DataFrame
) -> None:
    big = json.dumps({"records": [_record(diabetes)] * 50}).encode()
    with _app(bundle_dir, monkeypatch, SERVICE_MAX_BODY_BYTES="2000") as c:
        declared = c.post("/predict", content=big, headers={"content-type": "application/json"})
        assert declared.status_code == 413 and "SERVICE_MAX_BODY_BYTES" in declared.json()["detail"]
        streamed = c.post(
            "/predict", content=(big[i : i + 500] for i in range(0, len(big), 500)),  # chunked: no length
            headers={"content-type": "application/json"},
        )  # fmt: skip
        assert streamed.status_code == 413
        small = c.post("/predict", json={"records": [_record(diabetes)]})
        assert small.status_code == 200


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e308", "-1e308"])
def test_a_number_out_of_range_gets_422_naming_the_field_and_range(
    client: TestClient, diabetes: pd.DataFrame, literal: str
) -> None:
    record = _record(diabetes)
    body = json.dumps({"records": [record]}).replace(f'"bmi": {json.dumps(record["bmi"])}', f'"bmi": {literal}')
    assert literal in body
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"][-1] == "bmi"
    assert re.search(r"finite|less than or equal|greater than or equal", problem["msg"]), problem


def test_a_422_never_echoes_the_input(client: TestClient, diabetes: pd.DataFrame) -> None:
    too_many = {"records": [_record(diabetes)] * 10_001}
    response = client.post("/predict", json=too_many)
    assert response.status_code == 422 and len(response.content) < 2000, response.content[:300]
    bad_everywhere = {"records": [{**_record(diabetes), "bmi": "x" * 1000}] * 100}
    response = client.post("/predict", json=bad_everywhere)
    assert response.status_code == 422 and "xxxx" not in response.text
    assert len(response.json()["detail"]) == 20 and response.json()["errors"] == 100


def test_the_bounds_come_from_the_training_data_with_a_margin(bundle_dir: Path) -> None:
    from sample_ml.service.app import feature_bounds

    meta = load_bundle(bundle_dir).metadata
    summary = meta["data"]["summary"]["features"]["bmi"]
    lo, hi = feature_bounds(meta, 1.0)["bmi"]
    span = summary["max"] - summary["min"]
    assert lo == pytest.approx(summary["min"] - span) and hi == pytest.approx(summary["max"] + span)
    assert "sex" not in feature_bounds(meta, 1.0)  # categories are checked by name, not range


def test_metrics_count_requests_predictions_and_refusals(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch, diabetes: pd.DataFrame
) -> None:
    from sample_ml.service.metrics import REQUESTS

    def count(route: str, status: str) -> float:
        return float(REQUESTS.labels(route, "POST", status)._value.get())

    before_ok, before_413 = count("/predict", "200"), count("unmatched", "413")
    with _app(bundle_dir, monkeypatch, SERVICE_MAX_BODY_BYTES="2000", IMAGE_DIGEST="sha256:" + "b" * 64) as c:
        assert c.post("/predict", json={"records": [_record(diabetes)] * 2}).status_code == 200
        assert c.post("/predict", json={"records": [_record(diabetes)] * 50}).status_code == 413
        text = c.get("/metrics").text
    assert count("/predict", "200") == before_ok + 1 and count("unmatched", "413") == before_413 + 1
    assert "model_info{commit=" in text and 'digest="sha256:' + "b" * 64 in text
    assert "model_prediction_value_bucket" in text and "http_requests_in_flight" in text


def test_invented_methods_share_one_label_set(bundle_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that sends 300 made-up methods adds one label set ("other"), not 300: /metrics and
    the service's memory stay bounded (a flood of 3,000 once grew /metrics from 13 KB to 5.1 MB)."""
    from sample_ml.service.metrics import REQUESTS

    def label_sets() -> set[tuple[str, str, str]]:
        [metric] = REQUESTS.collect()
        return {(s.labels["route"], s.labels["method"], s.labels["status"]) for s in metric.samples}

    with _app(bundle_dir, monkeypatch) as c:
        before = label_sets()
        for n in range(300):
            c.request(f"X{n}", "/health")
        c.get("/health")
        text = c.get("/metrics").text
    added = label_sets() - before
    assert {method for _, method, _ in added} <= {"other", "GET"}, added
    assert len(added) <= 3, added
    assert "X17" not in text and 'method="other"' in text


# --- the prediction log ----------------------------------------------------------------------
def _logged(db: Path) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text("select * from predictions order by id"))]
    finally:
        engine.dispose()


def test_predictions_are_logged_with_what_was_asked(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch, diabetes: pd.DataFrame, tmp_path: Path
) -> None:
    db = tmp_path / "log.sqlite"
    with _app(bundle_dir, monkeypatch, SERVICE_PREDICTION_LOG=f"sqlite:///{db}", SERVICE_VERSION="1.2.3") as c:
        record = _record(diabetes)
        answer = c.post("/predict", json={"records": [record, record]}, headers={"x-request-id": "req-1"}).json()
        c.post("/predict", json={"records": [record]})
    rows = _logged(db)  # the app stopped: everything queued was written
    hashed = hashlib.sha256(b"req-1").hexdigest()[:32]  # the client's id is never stored as it came
    assert [r["request_id"] for r in rows[:2]] == [hashed, hashed] and len(rows) == 3
    assert rows[0]["prediction"] == pytest.approx(answer["predictions"][0]) and rows[0]["version"] == "1.2.3"
    assert rows[0]["bmi"] == pytest.approx(record["bmi"]) and rows[0]["time"].endswith("+00:00")
    assert len(rows[2]["request_id"]) == 32  # one is made when the client sends none


def test_the_log_is_sampled_and_bounded(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch, diabetes: pd.DataFrame, tmp_path: Path
) -> None:
    none, bounded = tmp_path / "none.sqlite", tmp_path / "bounded.sqlite"
    record = _record(diabetes)
    with _app(
        bundle_dir, monkeypatch, SERVICE_PREDICTION_LOG=f"sqlite:///{none}", SERVICE_PREDICTION_LOG_SAMPLE="0"
    ) as c:
        assert c.post("/predict", json={"records": [record]}).status_code == 200
    assert not none.exists() or _logged(none) == []
    monkeypatch.setenv("SERVICE_PREDICTION_LOG_SAMPLE", "1")
    with _app(
        bundle_dir, monkeypatch, SERVICE_PREDICTION_LOG=f"sqlite:///{bounded}", SERVICE_PREDICTION_LOG_MAX_ROWS="5"
    ) as c:
        for _ in range(4):
            c.post("/predict", json={"records": [record] * 3})
    assert len(_logged(bounded)) <= 5 + 3  # trimmed per batch: never more than the bound and one batch


def test_rows_past_the_age_limit_are_deleted(tmp_path: Path) -> None:
    """SERVICE_PREDICTION_LOG_MAX_AGE_DAYS: rows older than the limit go, at the next write after a
    minute; newer ones stay. The log's clock is moved on instead of waiting for days."""
    from sample_ml.service.prediction_log import PredictionLog

    db = tmp_path / "aged.sqlite"
    log = PredictionLog(f"sqlite:///{db}", ["x"], max_age_days=1.0)
    log.stopping.set()
    log.thread.join()  # the rows are written here, one write each, not by its thread
    day, start, created = 86400.0, 1_800_000_000.0, False
    try:
        for offset in (0.0, 0.5 * day, 1.2 * day, 1.7 * day):  # the first two are over a day old at the end
            log.clock = lambda offset=offset: start + offset  # type: ignore[misc]
            log.record(np.array([[1.0]]), np.array([2.0]), "1.0.0", None)
            when, request_id, version, _, _ = log.pending.popleft()
            created = log._write([(when, request_id, version, 2.0, 1.0)], created)
    finally:
        log.engine.dispose()
    kept = _logged(db)
    assert len(kept) == 2 and all(len(r["request_id"]) == 32 for r in kept), kept
    assert min(r["time"] for r in kept) >= "2027-01-16", kept  # 1,800,000,000 + 1.2 days, in UTC


def test_a_sink_that_is_down_fails_no_request(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch, diabetes: pd.DataFrame
) -> None:
    from sample_ml.service.prediction_log import DROPPED

    before = DROPPED._value.get()
    with _app(bundle_dir, monkeypatch, SERVICE_PREDICTION_LOG="sqlite:////nonexistent/dir/log.sqlite") as c:
        for _ in range(3):
            assert c.post("/predict", json={"records": [_record(diabetes)]}).status_code == 200
    assert DROPPED._value.get() >= before + 1  # said in /metrics, never to the client


def test_metrics_can_be_turned_off(bundle_dir: Path, monkeypatch: pytest.MonkeyPatch, diabetes: pd.DataFrame) -> None:
    with _app(bundle_dir, monkeypatch, SERVICE_METRICS="0") as c:
        assert c.get("/metrics").status_code == 404
        assert c.post("/predict", json={"records": [_record(diabetes)]}).status_code == 200


def test_predictions_go_into_the_histogram_as_observe_would_put_them() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from sample_ml.service import metrics

    values = np.array([-5.0, 0.0, 24.9, 25.0, 25.1, 399.0, 400.0, 1e6, 37.5, 37.5])

    def buckets(histogram: Any) -> dict[str, float]:
        return {
            str(s.labels.get("le")): s.value for m in histogram.collect() for s in m.samples if "le" in s.labels
        } | {"sum": next(s.value for m in histogram.collect() for s in m.samples if s.name.endswith("_sum"))}

    one_by_one = Histogram("check", "x", buckets=metrics.PREDICTIONS._upper_bounds[:-1], registry=CollectorRegistry())
    for value in values:
        one_by_one.observe(float(value))
    before = buckets(metrics.PREDICTIONS)
    metrics.observe_predictions(values)
    after = buckets(metrics.PREDICTIONS)
    assert {k: after[k] - before[k] for k in after} == pytest.approx(buckets(one_by_one))


def test_a_request_is_counted_before_its_last_byte_leaves() -> None:
    """A client that has its whole answer finds it counted (with two workers, its next request,
    ``/metrics``, may reach the other one before the first has finished); an app that fails
    before it answers is counted as a 500."""
    import asyncio

    from sample_ml.service.metrics import REQUESTS, RequestMetrics

    def count(status: str) -> float:
        return float(REQUESTS.labels("unmatched", "GET", status)._value.get())

    async def answers(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})

    async def fails(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("broken before any answer")

    seen: list[float] = []
    before = count("200")

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            seen.append(count("200"))

    scope = {"type": "http", "method": "GET"}
    asyncio.run(RequestMetrics(answers)(scope, None, send))
    assert seen == [before + 1] and count("200") == before + 1  # counted once, before the body went out
    failed = count("500")
    with pytest.raises(RuntimeError):
        asyncio.run(RequestMetrics(fails)(scope, None, send))
    assert count("500") == failed + 1
