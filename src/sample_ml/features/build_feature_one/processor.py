"""Processor: the flow one pipeline, prefilter → filter → postfilter → scaling."""

from __future__ import annotations

from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sample_ml.features.build_feature_one.filter import CorrelationFilter
from sample_ml.features.build_feature_one.postfilter import InteractionFeatures
from sample_ml.features.build_feature_one.prefilter import QuantileClipper


def make_feature_one(min_abs_corr: float = 0.1, clip: tuple[float, float] = (0.01, 0.99)) -> Pipeline:
    return Pipeline(
        [
            ("prefilter", QuantileClipper(*clip)),
            ("filter", CorrelationFilter(min_abs_corr)),
            ("postfilter", InteractionFeatures()),
            ("scale", StandardScaler()),
        ]
    ).set_output(transform="pandas")
