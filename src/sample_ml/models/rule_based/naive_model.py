"""The baseline every real model must beat: predict one number for everyone."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.pipeline import Pipeline

from sample_ml.models.common.fitted import ensure_fitted


class NaiveRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    def __init__(self, strategy: str = "mean") -> None:
        self.strategy = strategy

    def fit(self, X: Any, y: Any) -> NaiveRegressor:
        target = np.asarray(y, dtype="float64")
        if target.size == 0:
            raise ValueError("cannot fit on an empty target")
        if self.strategy == "mean":
            self.constant_ = float(target.mean())
        elif self.strategy == "median":
            self.constant_ = float(np.median(target))
        else:
            raise ValueError(f"strategy must be 'mean' or 'median', got {self.strategy!r}")
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        ensure_fitted(self, "constant_")
        return np.full(len(X), self.constant_, dtype="float64")


def build(strategy: str = "mean") -> Pipeline:
    return Pipeline([("model", NaiveRegressor(strategy=strategy))])
