"""Name → model factory. Each factory returns an unfitted scikit-learn Pipeline."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sklearn.pipeline import Pipeline

from sample_ml.errors import ConfigError, UnknownNameError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    factory: Callable[..., Pipeline]

    def defaults(self) -> dict[str, Any]:
        return {
            p.name: p.default
            for p in inspect.signature(self.factory).parameters.values()
            if p.default is not inspect.Parameter.empty
        }

    def build(self, params: Mapping[str, Any] | None = None) -> Pipeline:
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults()))
        if unknown:
            raise ConfigError(
                f"model {self.name!r} has no hyperparameter(s) {unknown}; it accepts {sorted(self.defaults())}"
            )
        try:
            return self.factory(**params)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"bad hyperparameters for model {self.name!r}: {err}") from err

    def resolved_params(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {**self.defaults(), **dict(params or {})}


def _registry() -> dict[str, ModelSpec]:
    # Imported here so that importing the registry does not import every model at start-up.
    from sample_ml.models.ensemble.boosting import gradient_boosting
    from sample_ml.models.ensemble.random_forests import all_features, no_features
    from sample_ml.models.regression import olsr_regressor
    from sample_ml.models.rule_based import naive_model

    specs = [
        ModelSpec("naive", "baseline: predicts the training target's mean or median", naive_model.build),
        ModelSpec("olsr", "ordinary least squares on feature flow one", olsr_regressor.build),
        ModelSpec("rf_no_features", "random forest on the raw columns", no_features.build),
        ModelSpec("rf_all_features", "random forest on feature flows one and two", all_features.build),
        ModelSpec("gbr", "gradient boosting on feature flow two", gradient_boosting.build),
    ]
    return {s.name: s for s in specs}


MODELS: dict[str, ModelSpec] = _registry()


def model_names() -> list[str]:
    return list(MODELS)


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownNameError("model", name, list(MODELS)) from None


def build_model(name: str, params: Mapping[str, Any] | None = None) -> Pipeline:
    return get_spec(name).build(params)
