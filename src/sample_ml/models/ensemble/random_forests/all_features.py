"""Random forest on both feature flows side by side."""

from __future__ import annotations

from sklearn.pipeline import FeatureUnion, Pipeline

from sample_ml.features.build_feature_one import make_feature_one
from sample_ml.features.build_features_two import make_features_two
from sample_ml.models.ensemble.random_forests.no_features import forest


def build(
    n_estimators: int = 100, max_depth: int | None = 6, min_samples_leaf: int = 5, random_state: int = 0
) -> Pipeline:
    features = FeatureUnion([("one", make_feature_one()), ("two", make_features_two())])
    features.set_output(transform="pandas")
    return Pipeline(
        [("features", features), ("model", forest(n_estimators, max_depth, min_samples_leaf, random_state))]
    )
