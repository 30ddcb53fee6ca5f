"""Champion/challenger retraining: the three outcomes, the files an accepted challenger leaves,
and bad input that writes nothing."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sample_ml.config import DataConfig, Settings, load_settings
from sample_ml.errors import BundleError, ConfigError, DataSourceError, SchemaError
from sample_ml.monitoring.simulate import batch
from sample_ml.pipelines.retrain import retrain
from sample_ml.pipelines.train import train
from sample_ml.run import main


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "new.csv") -> DataConfig:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return DataConfig("csv", {"path": str(path)})


def test_undrifted_data_keeps_the_champion(tmp_path: Path, bundle_dir: Path, settings: Settings, diabetes) -> None:
    decision = retrain(bundle_dir, settings, tmp_path / "out", new_data=_csv(tmp_path, batch(diabetes, 100)))
    assert decision.outcome == "no-drift" and not decision.accepted
    assert "no drift" in decision.message
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["decision.json", "drift.json", "drift.md"]
    assert json.loads((tmp_path / "out/decision.json").read_text())["accepted"] is False


def test_a_challenger_that_learns_nothing_is_rejected(
    tmp_path: Path, bundle_dir: Path, settings: Settings, diabetes
) -> None:
    new = _csv(tmp_path, batch(diabetes, 300, shift=1.0, shuffle_target=True))
    decision = retrain(bundle_dir, settings, tmp_path / "out", new_data=new)
    assert decision.outcome == "rejected"
    assert "is below the threshold 0.300" in decision.message
    assert decision.details["drift"]["drifted_features"] == ["bmi"]
    assert not (tmp_path / "out/update").exists()


def test_concept_drift_gives_an_accepted_challenger_and_its_model_card(
    tmp_path: Path, bundle_dir: Path, settings: Settings, diabetes, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file = tmp_path / "model/settings.yaml"
    settings_file.parent.mkdir()
    settings_file.write_text("# my header\n# second line\n" + yaml.safe_dump({"model": {"name": "gbr"}}))
    new = _csv(tmp_path, batch(diabetes, 300, shift=1.0, effect=60.0))
    monkeypatch.chdir(tmp_path)
    decision = retrain(bundle_dir, settings, "out", new_data=new, settings_file="model/settings.yaml")
    assert decision.accepted, decision.message
    update = tmp_path / "out/update"
    assert sorted(str(p.relative_to(update)) for p in update.rglob("*") if p.is_file()) == [
        "card.json",
        "card.md",
        "data/training.csv",
        "settings.yaml",
    ]
    card = json.loads((update / "card.json").read_text())
    ev = card["evaluation"]
    assert ev["challenger"]["rmse"] <= ev["champion"]["rmse"] * 0.95
    assert ev["challenger"]["r2"] >= 0.3 and card["acceptance"]["passed"]
    assert card["trigger"] == "drift" and card["drift"]["drifted_features"] == ["bmi"]
    assert "| challenger (this model) |" in (update / "card.md").read_text()
    text = (update / "settings.yaml").read_text()
    assert text.startswith("# my header\n# second line\n")
    assert yaml.safe_load(text)["data"] == {"loader": "csv", "options": {"path": "model/data/training.csv"}}

    # Put the update in place: training from the new settings reproduces the card exactly.
    shutil.copytree(update, tmp_path / "model", dirs_exist_ok=True)
    retrained = train(load_settings("model/settings.yaml"), tmp_path / "again")
    meta = json.loads((retrained / "metadata.json").read_text())
    assert meta["data"]["fingerprint"] == card["data"]["fingerprint"]
    assert meta["metrics"]["holdout"] == pytest.approx(ev["challenger"])


def test_force_trains_a_challenger_without_drift(
    tmp_path: Path, bundle_dir: Path, settings: Settings, diabetes
) -> None:
    decision = retrain(bundle_dir, settings, tmp_path / "out", new_data=_csv(tmp_path, diabetes), force=True)
    assert decision.outcome in ("accepted", "rejected")
    assert decision.details["trigger"] == "forced"
    assert (tmp_path / "out/challenger/model.joblib").is_file()


def _without(bundle_dir: Path, tmp_path: Path, what: str) -> Path:
    copy = tmp_path / "champion"
    shutil.copytree(bundle_dir, copy)
    if what == "reference":
        (copy / "reference.json").unlink()
    else:
        meta = json.loads((copy / "metadata.json").read_text())
        del meta["data"]["summary"]
        (copy / "metadata.json").write_text(json.dumps(meta))
    return copy


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("schema", SchemaError, r"missing column\(s\) \['bmi'\]"),
        ("extra column", SchemaError, "unexpected column"),
        ("empty", SchemaError, "is empty"),
        ("missing file", DataSourceError, "does not exist"),
        ("no reference", BundleError, "has no reference.json"),
        ("no summary", BundleError, "has no data summary"),
        ("no bundle", BundleError, "no model bundle"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    tmp_path: Path, bundle_dir: Path, settings: Settings, diabetes, case: str, error: type, message: str
) -> None:
    champion, new = bundle_dir, batch(diabetes, 300, shift=1.0, effect=60.0)
    data = None
    if case == "schema":
        new = new.drop(columns=["bmi"])
    elif case == "extra column":
        new = new.assign(zip_code=1)
    elif case == "empty":
        data = _csv(tmp_path, new.iloc[0:0])
    elif case == "missing file":
        data = DataConfig("csv", {"path": str(tmp_path / "nope.csv")})
    elif case in ("no reference", "no summary"):
        champion = _without(bundle_dir, tmp_path, case.split()[1])
    else:
        champion = tmp_path / "no-bundle"
    with pytest.raises(error, match=message):
        retrain(champion, settings, tmp_path / "out", new_data=data or _csv(tmp_path, new))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("retrain: {margin: 1.5}", r"retrain: margin must be in \[0, 1\)"),
        ("drift: {correction: fdr}", "drift: correction must be one of"),
        ("drift: {alpha: 2}", "alpha must be in"),
        ("retrain: {loader: 3}", r"retrain.loader: expected str"),
    ],
)
def test_bad_drift_and_retrain_settings(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path / "s.yaml")


def test_the_repository_settings_are_the_documented_defaults(repo_root: Path) -> None:
    assert load_settings(repo_root / "model/settings.yaml") == Settings()


def test_cli_outcomes_exit_zero_and_bad_input_exits_two(
    tmp_path: Path, bundle_dir: Path, diabetes, capsys: pytest.CaptureFixture[str]
) -> None:
    drifted = tmp_path / "drifted.csv"
    batch(diabetes, 300, shift=1.0, effect=60.0).to_csv(drifted, index=False)
    args = ["retrain", "--model-dir", str(bundle_dir), "--output", str(tmp_path / "out"), "--source"]
    assert main([*args, str(drifted)]) == 0
    assert capsys.readouterr().out.startswith("accepted: challenger accepted")
    diabetes.drop(columns=["s5"]).to_csv(tmp_path / "bad.csv", index=False)
    assert main([*args, str(tmp_path / "bad.csv")]) == 2
    assert "sample-ml retrain: error:" in capsys.readouterr().err


def test_sql_loader_reads_its_url_from_the_environment(
    dummy_sqlite: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sample_ml.pipelines.common import make_loader

    monkeypatch.setenv("NEW_DATA_URL", f"sqlite:///{dummy_sqlite}")
    loader = make_loader(replace(settings.retrain, loader="sql", options={"url_env": "NEW_DATA_URL"}).data)
    assert len(loader.load()) == 442
    monkeypatch.delenv("NEW_DATA_URL")
    with pytest.raises(DataSourceError, match=r"NEW_DATA_URL .* is not set"):
        make_loader(DataConfig("sql", {"url_env": "NEW_DATA_URL"}))


# --- a deployed service's prediction log as the drift check's data ---------------------------
def _prediction_log(tmp_path: Path, frame: pd.DataFrame, version: str = "1.0.0") -> str:
    """A log written by the service's own writer, as a deployed service writes it."""
    from sample_ml.service.prediction_log import PredictionLog

    url = f"sqlite:///{tmp_path / f'log-{version}.sqlite'}"
    features = [c for c in frame.columns if c != "target"]
    sink = PredictionLog(url, features)
    sink.record(frame[features].to_numpy("float64"), np.zeros(len(frame)), version, "req")
    sink.close()
    return url


def test_the_prediction_log_loader_reads_the_features_the_service_logged(
    tmp_path: Path, diabetes, dummy_sqlite: Path
) -> None:
    from sample_ml.data_loaders import get_loader

    url = _prediction_log(tmp_path, diabetes.head(60))
    frame = get_loader("predictions", url=url).load(require_target=False)
    assert list(frame.columns) == [c for c in diabetes.columns if c != "target"] and len(frame) == 60
    assert frame["bmi"].tolist() == pytest.approx(diabetes["bmi"].head(60).tolist())
    with pytest.raises(DataSourceError, match=r"version 9.9.9.* has no rows yet"):
        get_loader("predictions", url=url, version="9.9.9").load(require_target=False)
    with pytest.raises(DataSourceError, match=r"is not a prediction log of this model: no column\(s\) \['version'"):
        get_loader("predictions", url=f"sqlite:///{dummy_sqlite}", table="diabetes").load()


def test_retrain_checks_drift_on_the_log_and_trains_on_the_labelled_data(
    tmp_path: Path, bundle_dir: Path, settings: Settings, diabetes
) -> None:
    labelled = _csv(tmp_path, batch(diabetes, 300, shift=0.0, effect=60.0))  # no covariate drift in it
    calm = DataConfig("predictions", {"url": _prediction_log(tmp_path, batch(diabetes, 200), "calm")})
    decision = retrain(bundle_dir, settings, tmp_path / "calm", new_data=labelled, drift_data=calm)
    assert decision.outcome == "no-drift" and "prediction log" in decision.details["drift"]["source"]

    drifted = DataConfig("predictions", {"url": _prediction_log(tmp_path, batch(diabetes, 200, shift=1.0), "hot")})
    decision = retrain(bundle_dir, settings, tmp_path / "hot", new_data=labelled, drift_data=drifted)
    assert decision.details["drift"]["drifted_features"] == ["bmi"], decision.message
    assert decision.details["data"]["rows"] == 300  # trained on the labelled rows, not the log's 200
    assert decision.details["drift"]["current_rows"] == 200
    assert (
        "the prediction log 'predictions'"
        in (tmp_path / "hot/challenger")
        .parent.joinpath("update/card.md" if decision.accepted else "decision.json")
        .read_text()
    )


def test_cli_drift_and_retrain_take_a_prediction_log(
    tmp_path: Path, bundle_dir: Path, diabetes, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _prediction_log(tmp_path, batch(diabetes, 200, shift=1.0))
    drift = ["drift", "--model-dir", str(bundle_dir), "--output", str(tmp_path / "drift")]
    assert main([*drift, "--loader", "predictions", "--source", url]) == 0
    assert capsys.readouterr().out.startswith("DRIFT: drifted features bmi")
    labelled = tmp_path / "labelled.csv"
    batch(diabetes, 300, effect=60.0).to_csv(labelled, index=False)
    args = ["retrain", "--model-dir", str(bundle_dir), "--output", str(tmp_path / "out"), "--source", str(labelled)]
    assert main([*args, "--predictions", url]) == 0
    assert json.loads((tmp_path / "out/drift.json").read_text())["drifted"] is True
