"""Feature flow one: clip outliers, keep informative columns, add interactions, scale."""

from sample_ml.features.build_feature_one.processor import make_feature_one

__all__ = ["make_feature_one"]
