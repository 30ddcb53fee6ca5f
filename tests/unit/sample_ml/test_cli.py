from __future__ import annotations

import json
from pathlib import Path

import pytest

from sample_ml.run import build_parser, main

COMMANDS = ["train", "evaluate", "predict", "serve", "models", "compare", "drift", "fingerprint"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: sample-ml" in capsys.readouterr().out


def test_train_evaluate_predict_round_trip(tmp_path: Path, dummy_csv: Path, capsys) -> None:
    model, evaluation, preds = tmp_path / "model", tmp_path / "eval", tmp_path / "p.csv"
    data = ["--loader", "csv", "--source", str(dummy_csv)]
    assert main(["train", *data, "--model", "olsr", "--param", "fit_intercept=true", "--output", str(model)]) == 0
    assert main(["evaluate", *data, "--model-dir", str(model), "--output", str(evaluation)]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out[out.out.index("{") :])["gate"]["passed"] is True
    assert "fitting olsr" in out.err  # progress on the slow steps
    assert main(["predict", *data, "--model-dir", str(model), "--output", str(preds)]) == 0
    assert preds.read_text().splitlines()[0].endswith(",prediction")


def test_fingerprint_is_what_train_records(tmp_path: Path, dummy_csv: Path, capsys) -> None:
    data = ["--source", str(dummy_csv)]
    assert main(["fingerprint", *data, "--output", str(tmp_path / "fp.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "fp.json").read_text()) == printed and printed["rows"] > 0
    assert main(["train", *data, "--model", "naive", "--output", str(tmp_path / "m")]) == 0
    recorded = json.loads((tmp_path / "m" / "metadata.json").read_text())["data"]
    assert (printed["fingerprint"], printed["rows"]) == (recorded["fingerprint"], recorded["rows"])


def test_sql_source_via_flags(tmp_path: Path, dummy_sqlite: Path) -> None:
    argv = ["train", "--loader", "sql", "--source", f"sqlite:///{dummy_sqlite}", "--table", "diabetes"]
    assert main([*argv, "--model", "naive", "--output", str(tmp_path / "m")]) == 0


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["train", "--model", "svm"], 2, "unknown model 'svm'"),
        (["train", "--loader", "xls"], 2, "unknown data loader 'xls'"),
        (["train", "--source", "/absent.csv"], 2, "does not exist"),
        (["train", "--table", "t"], 2, "--table only applies to the sql and predictions loaders"),
        (["evaluate", "--model-dir", "/absent"], 2, "no model bundle at '/absent'"),
        (["predict", "--model-dir", "/absent"], 2, "no model bundle"),
        (["serve", "--model-dir", "/absent"], 2, "no model bundle"),
        (["train", "--config", "/absent.yaml"], 2, "config file '/absent.yaml' does not exist"),
    ],
)
def test_errors_are_one_line_and_non_zero(argv: list[str], code: int, message: str, capsys) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_failed_gate_exits_1(tmp_path: Path, dummy_csv: Path, capsys) -> None:
    data = ["--source", str(dummy_csv)]
    assert main(["train", *data, "--model", "naive", "--output", str(tmp_path / "m")]) == 0
    assert main(["evaluate", *data, "--model-dir", str(tmp_path / "m"), "--output", str(tmp_path / "e")]) == 1
    assert "fails the evaluation gate" in capsys.readouterr().err


def test_models_lists_every_model(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ["naive", "olsr", "rf_no_features", "rf_all_features", "gbr"]:
        assert name in out


def test_bad_param_syntax_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["train", "--param", "noequals"])
    assert info.value.code == 2
