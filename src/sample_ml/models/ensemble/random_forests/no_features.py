"""Random forest on the raw columns: trees need no scaling or engineered features."""

from __future__ import annotations

from sklearn.ensemble import RandomForestRegressor
from sklearn.pipeline import Pipeline


def forest(n_estimators: int, max_depth: int | None, min_samples_leaf: int, random_state: int) -> RandomForestRegressor:
    """The forest both random-forest models share; only their features differ."""
    return RandomForestRegressor(
        n_estimators=n_estimators, max_depth=max_depth, min_samples_leaf=min_samples_leaf, random_state=random_state
    )


def build(
    n_estimators: int = 100, max_depth: int | None = 6, min_samples_leaf: int = 5, random_state: int = 0
) -> Pipeline:
    return Pipeline([("model", forest(n_estimators, max_depth, min_samples_leaf, random_state))])
