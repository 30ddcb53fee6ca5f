from __future__ import annotations

from pathlib import Path

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
    assert set(body) >= {"version", "package_version", "commit", "metrics", "data_fingerprint"}


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
