"""Project settings: where data comes from, which model, how to split and gate, when data has
drifted and when a retrained model replaces the current one.

Loaded from YAML (``--config``, the repository's ``model/settings.yaml``) over defaults; the
CLI's flags override single values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from sample_ml.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    loader: str = "csv"
    options: dict[str, Any] = field(default_factory=lambda: {"path": "notebooks/dummy_data/diabetes.csv"})


@dataclass(frozen=True)
class ModelConfig:
    name: str = "gbr"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SplitConfig:
    test_size: float = 0.2
    seed: int = 42


@dataclass(frozen=True)
class GateConfig:
    """The evaluation gate: the model must beat the naive baseline's RMSE by ``baseline_margin``
    (a fraction, 0.1 = 10 % lower) and reach ``min_r2`` on the held-out split."""

    min_r2: float = 0.3
    baseline_margin: float = 0.1


CORRECTIONS = ("holm", "bonferroni", "none")


@dataclass(frozen=True)
class DriftConfig:
    """When new data has drifted from the training data (see :mod:`sample_ml.monitoring.drift`):
    a feature drifts when its corrected p-value is below ``alpha``; the data set drifts when the
    share of drifted features reaches ``min_drifted_share``."""

    alpha: float = 0.05
    correction: str = "holm"
    min_drifted_share: float = 0.1  # 0.1 of 10 features: one drifted feature is enough
    psi_bins: int = 10

    def __post_init__(self) -> None:
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {CORRECTIONS}, got {self.correction!r}")
        if not 0 < self.alpha < 1 or not 0 < self.min_drifted_share <= 1:
            raise ValueError("alpha must be in (0, 1) and min_drifted_share in (0, 1]")
        if self.psi_bins < 2:
            raise ValueError(f"psi_bins must be at least 2, got {self.psi_bins}")


@dataclass(frozen=True)
class RetrainConfig:
    """Champion/challenger: where new data comes from (``loader`` and ``options``, as in ``data``),
    and how much better the challenger must be: its RMSE on the shared evaluation set must be at
    least ``margin`` (a fraction, 0.05 = 5 % lower) below the champion's, and it must pass the gate."""

    margin: float = 0.05
    loader: str = "csv"
    options: dict[str, Any] = field(default_factory=lambda: {"path": "notebooks/dummy_data/diabetes.csv"})

    def __post_init__(self) -> None:
        if not 0 <= self.margin < 1:
            raise ValueError(f"margin must be in [0, 1), got {self.margin}")

    @property
    def data(self) -> DataConfig:
        return DataConfig(self.loader, dict(self.options))


@dataclass(frozen=True)
class Settings:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)


_SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "split": SplitConfig,
    "gate": GateConfig,
    "drift": DriftConfig,
    "retrain": RetrainConfig,
}


def _section(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        default = getattr(cls(), key)
        if isinstance(default, dict) and not isinstance(value, dict):
            raise ConfigError(f"{where}.{key}: must be a mapping")
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(default, dict) and type(value) is not type(default):
            raise ConfigError(f"{where}.{key}: expected {type(default).__name__}, got {value!r}")
        values[key] = value
    try:
        return cls(**values)
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None


def load_settings(path: str | Path | None = None) -> Settings:
    if path is None:
        return Settings()
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {err}") from err
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r}: top level must be a mapping")
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"config file {str(path)!r}: unknown section(s) {unknown}; allowed: {sorted(_SECTIONS)}")
    sections = {name: _section(cls, raw.get(name), f"{path}: {name}") for name, cls in _SECTIONS.items()}
    settings = Settings(**sections)
    split = settings.split
    if not 0.0 < split.test_size < 1.0:
        raise ConfigError(f"{path}: split.test_size must be between 0 and 1, got {split.test_size}")
    return settings


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """Return settings with dotted overrides applied, e.g. ``{"model.name": "olsr"}``."""
    for dotted, value in changes.items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        settings = replace(settings, **{section: replace(getattr(settings, section), **{key: value})})
    return settings
