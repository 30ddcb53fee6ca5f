"""The deployed service, over real HTTP: health, the digest it runs, predictions, bad input, latency."""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

import pytest

from cicd.http import request_json

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def holdout() -> tuple[list[dict[str, float | int]], list[float]]:
    """The held-out split the release evaluated itself on (same data, seed and size as training)."""
    from sample_ml.data_loaders import CSVDataLoader
    from sample_ml.pipelines.common import split
    from sample_ml.schema import DIABETES, as_records

    frame = CSVDataLoader(ROOT / "notebooks/dummy_data/diabetes.csv").load()
    _, test = split(frame, 0.2, 42)
    records: list[dict[str, float | int]] = [dict(r) for r in as_records(test, DIABETES.feature_names)]
    for r in records:
        r["sex"] = int(r["sex"])
    return records, test["target"].tolist()


def test_health(base_url: str) -> None:
    assert request_json(f"{base_url}/health") == (200, {"status": "ok"})


def test_runs_the_recorded_digest(base_url: str, request: pytest.FixtureRequest) -> None:
    status, meta = request_json(f"{base_url}/metadata")
    assert status == 200
    expected = request.config.getoption("--expected-digest")
    if expected:
        assert meta["image_digest"] == expected
    else:  # run by hand against a service: it must at least say which image it runs
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", meta["image_digest"]), meta


def test_predictions_match_the_release_evaluation(base_url: str, holdout, request: pytest.FixtureRequest) -> None:
    records, targets = holdout
    status, body = request_json(f"{base_url}/predict", {"records": records})
    assert status == 200 and len(body["predictions"]) == len(records)
    rmse = statistics.fmean((p - t) ** 2 for p, t in zip(body["predictions"], targets, strict=True)) ** 0.5
    expected = request.config.getoption("--expected-rmse")
    if expected is not None:
        assert rmse == pytest.approx(expected, rel=1e-6)
    else:
        assert rmse < 70.0  # the naive baseline is about 73


@pytest.mark.parametrize("bad", [{"bmi": "heavy"}, {"sex": 7}, {"extra": 1.0}])
def test_bad_input_gets_422(base_url: str, holdout, bad: dict[str, object]) -> None:
    status, body = request_json(f"{base_url}/predict", {"records": [{**holdout[0][0], **bad}]})
    assert status == 422 and body["detail"]


def test_latency_is_sane(base_url: str, holdout) -> None:
    timings = []
    for record in holdout[0][:30]:
        start = time.perf_counter()
        status, _ = request_json(f"{base_url}/predict", {"records": [record]})
        timings.append(time.perf_counter() - start)
        assert status == 200
    assert statistics.median(timings) < 0.5, f"median single-record latency {statistics.median(timings):.3f}s"
