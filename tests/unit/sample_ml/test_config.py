from __future__ import annotations

from pathlib import Path

import pytest

from sample_ml.config import Settings, load_settings, with_overrides
from sample_ml.errors import ConfigError


def test_defaults_without_a_file() -> None:
    assert load_settings(None) == Settings()


def test_a_full_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "data: {loader: sql, options: {url: 'sqlite:///x.db', table: t}}\n"
        "model: {name: olsr, params: {fit_intercept: false}}\n"
        "split: {test_size: 0.25, seed: 7}\n"
        "gate: {min_r2: 0.2, baseline_margin: 0}\n"
    )
    s = load_settings(path)
    assert s.data.loader == "sql" and s.data.options["table"] == "t"
    assert s.model.params == {"fit_intercept": False}
    assert s.split.seed == 7 and s.gate.baseline_margin == 0.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data: [1, 2]", "data: must be a mapping"),
        ("modle: {}", r"unknown section\(s\) \['modle'\]"),
        ("model: {nme: x}", r"unknown key\(s\) \['nme'\]"),
        ("split: {seed: 'x'}", "split.seed: expected int"),
        ("split: {test_size: 1.5}", "test_size must be between 0 and 1"),
        ("- just\n- a list", "top level must be a mapping"),
        ("data: {options: 3}", "data.options: must be a mapping"),
        ("a: [", "is not valid YAML"),
    ],
)
def test_bad_files_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings("/nonexistent/c.yaml")


def test_overrides_skip_none() -> None:
    s = with_overrides(Settings(), **{"model.name": "olsr", "split.seed": None})
    assert s.model.name == "olsr" and s.split.seed == Settings().split.seed
