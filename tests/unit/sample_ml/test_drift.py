from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sample_ml.config import DriftConfig
from sample_ml.errors import SchemaError
from sample_ml.monitoring.drift import adjust, detect, psi
from sample_ml.monitoring.quality import rates
from sample_ml.schema import DIABETES


@pytest.mark.parametrize(
    ("method", "p", "expected"),
    [
        ("none", [0.01, 0.04, 0.03], [0.01, 0.04, 0.03]),
        ("bonferroni", [0.01, 0.04, 0.5], [0.03, 0.12, 1.0]),
        ("holm", [0.01, 0.04, 0.03], [0.03, 0.06, 0.06]),
        ("holm", [], []),
    ],
)
def test_multiple_testing_corrections(method: str, p: list[float], expected: list[float]) -> None:
    assert adjust(p, method) == pytest.approx(expected)


def test_psi_is_zero_for_the_same_distribution_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=5000)
    assert psi(ref, ref) == pytest.approx(0.0, abs=1e-9)
    assert psi(ref, ref + 0.1) < psi(ref, ref + 1.0)


def test_a_shift_is_reported_on_the_right_feature(diabetes: pd.DataFrame) -> None:
    reference = diabetes[DIABETES.feature_names]
    current = reference.sample(150, random_state=1).assign(s5=lambda f: f["s5"] + 2 * f["s5"].std())
    report = detect(reference, current, DIABETES)
    assert report.drifted and report.drifted_features == ["s5"]
    assert {f.test for f in report.features} == {"kolmogorov-smirnov", "chi-squared"}


def test_a_categorical_shift_uses_chi_squared(diabetes: pd.DataFrame) -> None:
    reference = diabetes[DIABETES.feature_names]
    current = reference.sample(200, random_state=2).assign(sex=1.0)
    assert "sex" in detect(reference, current, DIABETES).drifted_features


@pytest.mark.parametrize(
    ("current", "message"),
    [
        (lambda f: f.drop(columns=["bmi"]), r"lacks feature\(s\) \['bmi'\]"),
        (lambda f: f.head(3), "drift needs at least 5"),
        (lambda f: f.iloc[0:0], "drift needs at least 5"),
    ],
)
def test_bad_input(diabetes: pd.DataFrame, current, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        detect(diabetes, current(diabetes), DIABETES)


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="correction must be one of"):
        DriftConfig(correction="fdr")


def test_measured_false_alarm_and_detection_rates(dummy_csv: Path) -> None:
    """100 seeded trials at the documented batch size (50 rows): ≤ 5 % false alarms, ≥ 95 % detections."""
    false_alarms, detections = rates(trials=100, rows=50, seed=7, data=dummy_csv)
    assert false_alarms <= 0.05
    assert detections >= 0.95


def test_drift_cli_writes_the_reports(bundle_dir, diabetes: pd.DataFrame, tmp_path, capsys) -> None:
    import json

    from sample_ml.run import main

    drifted = tmp_path / "new.csv"
    diabetes.drop(columns=["target"]).assign(bmi=lambda f: f["bmi"] + 2 * f["bmi"].std()).to_csv(drifted, index=False)
    out = tmp_path / "report"
    assert main(["drift", "--model-dir", str(bundle_dir), "--source", str(drifted), "--output", str(out)]) == 0
    assert "DRIFT: drifted features bmi" in capsys.readouterr().out
    assert json.loads((out / "drift.json").read_text())["drifted"] is True
    assert "| bmi | kolmogorov-smirnov |" in (out / "drift.md").read_text()
    assert (out / "drift-bmi.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "drift.json").read_text())["low_power"] is False
    assert "Low power" not in (out / "drift.md").read_text()


def test_a_small_batch_is_reported_as_low_power(bundle_dir, diabetes: pd.DataFrame, tmp_path) -> None:
    import json

    from sample_ml.run import main

    diabetes.head(12).to_csv(tmp_path / "small.csv", index=False)
    out = tmp_path / "report"
    assert (
        main(["drift", "--model-dir", str(bundle_dir), "--source", str(tmp_path / "small.csv"), "--output", str(out)])
        == 0
    )
    assert json.loads((out / "drift.json").read_text())["low_power"] is True
    assert "**Low power:** only 12 new rows. Below 30 rows" in (out / "drift.md").read_text()


def test_a_bundle_without_a_reference_is_refused(bundle_dir, dummy_csv, tmp_path) -> None:
    import shutil

    from sample_ml.config import DataConfig
    from sample_ml.errors import BundleError
    from sample_ml.monitoring.report import check_drift

    copy = tmp_path / "old-bundle"
    shutil.copytree(bundle_dir, copy)
    (copy / "reference.json").unlink()
    with pytest.raises(BundleError, match=r"has no reference\.json"):
        check_drift(copy, DataConfig("csv", {"path": str(dummy_csv)}), tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written
