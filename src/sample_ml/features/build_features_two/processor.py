"""Processor: the flow two pipeline, computed on raw (unscaled) columns."""

from __future__ import annotations

from sklearn.pipeline import Pipeline

from sample_ml.features.build_features_two.transformers import (
    CategoryIndicator,
    LogTransform,
    RatioFeatures,
)


def make_features_two() -> Pipeline:
    # Ratios read the raw values, so they come before the log transform.
    return Pipeline(
        [
            ("ratios", RatioFeatures()),
            ("log", LogTransform()),
            ("indicator", CategoryIndicator()),
        ]
    ).set_output(transform="pandas")
