"""Feature flow two: log-transform skewed lab values, add clinical ratios, encode sex."""

from sample_ml.features.build_features_two.processor import make_features_two

__all__ = ["make_features_two"]
