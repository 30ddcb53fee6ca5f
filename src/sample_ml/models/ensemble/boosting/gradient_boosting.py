"""Gradient-boosted shallow trees on feature flow two."""

from __future__ import annotations

from sklearn.ensemble import GradientBoostingRegressor
from sklearn.pipeline import Pipeline

from sample_ml.features.build_features_two import make_features_two


def build(
    n_estimators: int = 150,
    learning_rate: float = 0.05,
    max_depth: int = 2,
    subsample: float = 0.8,
    random_state: int = 0,
) -> Pipeline:
    return Pipeline(
        [
            ("features", make_features_two()),
            (
                "model",
                GradientBoostingRegressor(
                    n_estimators=n_estimators,
                    learning_rate=learning_rate,
                    max_depth=max_depth,
                    subsample=subsample,
                    random_state=random_state,
                ),
            ),
        ]
    )
