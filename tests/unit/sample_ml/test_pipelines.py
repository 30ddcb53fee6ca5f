from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from sample_ml.config import DataConfig, GateConfig, ModelConfig, Settings
from sample_ml.errors import BundleError, EvaluationGateError, SchemaError
from sample_ml.pipelines.bundle import fingerprint, load_bundle
from sample_ml.pipelines.evaluate import compare, evaluate, gate_decision
from sample_ml.pipelines.predict import PREDICTION_COLUMN, predict
from sample_ml.pipelines.train import train


def test_bundle_carries_the_metadata(bundle_dir: Path, diabetes: pd.DataFrame) -> None:
    bundle = load_bundle(bundle_dir)
    meta = bundle.metadata
    assert meta["model_name"] == "gbr"
    assert meta["hyperparameters"]["n_estimators"] == 150
    assert meta["schema"]["target"] == "target"
    assert meta["data"]["fingerprint"] == fingerprint(diabetes)
    assert set(meta["data"]["summary"]["features"]) == set(bundle.schema.feature_names)
    assert meta["data"]["summary"]["features"]["sex"]["kind"] == "categorical"
    assert meta["metrics"]["holdout"]["r2"] > 0.4
    for key in ("package_version", "python", "scikit_learn", "trained_at", "git_commit"):
        assert key in meta


def test_git_commit_comes_from_the_environment(settings: Settings, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GIT_COMMIT", "abc123")
    meta = load_bundle(train(replace(settings, model=ModelConfig("naive")), tmp_path / "m")).metadata
    assert meta["git_commit"] == "abc123"


def test_evaluate_writes_report_and_plot(bundle_dir: Path, settings: Settings, tmp_path: Path) -> None:
    report = evaluate(bundle_dir, settings, tmp_path)
    assert report["gate"]["passed"] is True
    assert report["model"]["rmse"] < report["baseline"]["rmse"]
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["model"] == report["model"]
    assert (tmp_path / "evaluation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluation_gate_fails_a_model_no_better_than_naive(settings: Settings, tmp_path: Path) -> None:
    naive = train(replace(settings, model=ModelConfig("naive")), tmp_path / "naive")
    with pytest.raises(EvaluationGateError, match="fails the evaluation gate") as info:
        evaluate(naive, settings, tmp_path / "eval")
    assert info.value.exit_code == 1
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["gate"]["passed"] is False  # the evidence is written before the gate decides


@pytest.mark.parametrize(
    ("model", "gate", "n_reasons"),
    [
        ({"rmse": 50.0, "r2": 0.5}, GateConfig(0.3, 0.1), 0),
        ({"rmse": 95.0, "r2": 0.5}, GateConfig(0.3, 0.1), 1),  # not 10 % below baseline
        ({"rmse": 50.0, "r2": 0.2}, GateConfig(0.3, 0.1), 1),  # below the R² floor
        ({"rmse": 101.0, "r2": 0.1}, GateConfig(0.3, 0.0), 2),  # worse than naive
        ({"rmse": float("nan"), "r2": float("nan")}, GateConfig(0.3, 0.0), 2),
    ],
)
def test_gate_decision_table(model: dict[str, float], gate: GateConfig, n_reasons: int) -> None:
    assert len(gate_decision(model, {"rmse": 100.0, "r2": 0.0}, gate)) == n_reasons


def test_predict_writes_scores_for_every_row(bundle_dir: Path, dummy_sqlite: Path, tmp_path: Path) -> None:
    out = predict(bundle_dir, DataConfig("sql", {"url": f"sqlite:///{dummy_sqlite}"}), tmp_path / "p.csv")
    frame = pd.read_csv(out)
    assert len(frame) == 442 and frame[PREDICTION_COLUMN].notna().all()


def test_predict_refuses_a_schema_mismatch_and_writes_nothing(
    bundle_dir: Path, diabetes: pd.DataFrame, tmp_path: Path
) -> None:
    src = tmp_path / "in.csv"
    diabetes.drop(columns=["s6"]).to_csv(src, index=False)
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['s6'\]"):
        predict(bundle_dir, DataConfig("csv", {"path": str(src)}), tmp_path / "out.csv")
    assert sorted(os.listdir(tmp_path)) == ["in.csv"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "model.joblib").write_bytes(b"garbage"), "corrupt model.joblib"),
        (lambda d: (d / "metadata.json").write_text("{"), "corrupt metadata.json"),
        (lambda d: (d / "metadata.json").write_text('{"format": 99}'), "unsupported format"),
        (lambda d: (d / "model.joblib").unlink(), "no model bundle"),
    ],
    ids=["corrupt-model", "corrupt-metadata", "old-format", "missing-file"],
)
def test_damaged_bundles(bundle_dir: Path, tmp_path: Path, damage, message: str) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    damage(copy)
    with pytest.raises(BundleError, match=message):
        load_bundle(copy)


def test_a_failed_train_leaves_the_previous_bundle(settings: Settings, tmp_path: Path, bundle_dir: Path) -> None:
    import shutil

    target = tmp_path / "model"
    shutil.copytree(bundle_dir, target)
    before = (target / "metadata.json").read_text()
    bad = replace(settings, data=DataConfig("csv", {"path": str(tmp_path / "absent.csv")}))
    with pytest.raises(Exception, match="does not exist"):
        train(bad, target)
    assert (target / "metadata.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_retraining_replaces_the_bundle_whole(settings: Settings, tmp_path: Path) -> None:
    target = tmp_path / "model"
    train(replace(settings, model=ModelConfig("naive")), target)
    train(replace(settings, model=ModelConfig("olsr")), target)
    assert load_bundle(target).metadata["model_name"] == "olsr"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_compare_ranks_a_real_model_above_naive(settings: Settings) -> None:
    rows = compare(replace(settings, model=ModelConfig("naive")))
    assert rows[-1]["model"] == "naive"
    assert rows[0]["rmse"] < rows[-1]["rmse"]


def test_too_few_rows(settings: Settings, diabetes: pd.DataFrame, tmp_path: Path) -> None:
    src = tmp_path / "tiny.csv"
    diabetes.head(5).to_csv(src, index=False)
    with pytest.raises(SchemaError, match="need at least 10 rows"):
        train(replace(settings, data=DataConfig("csv", {"path": str(src)})), tmp_path / "m")
