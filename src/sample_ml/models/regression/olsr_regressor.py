"""Ordinary least squares, solved with ``numpy.linalg.lstsq`` (stable for collinear features)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.pipeline import Pipeline

from sample_ml.features.build_feature_one import make_feature_one
from sample_ml.models.common.fitted import ensure_fitted


class OLSRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    def __init__(self, fit_intercept: bool = True) -> None:
        self.fit_intercept = fit_intercept

    def _design(self, X: Any) -> np.ndarray:
        A = np.asarray(X, dtype="float64")
        if self.fit_intercept:
            A = np.column_stack([np.ones(len(A)), A])
        return A

    def fit(self, X: Any, y: Any) -> OLSRegressor:
        A = self._design(X)
        b = np.asarray(y, dtype="float64")
        coef, *_ = np.linalg.lstsq(A, b, rcond=None)
        if self.fit_intercept:
            self.intercept_, self.coef_ = float(coef[0]), coef[1:]
        else:
            self.intercept_, self.coef_ = 0.0, coef
        self.n_features_in_ = len(self.coef_)
        return self

    def predict(self, X: Any) -> np.ndarray:
        ensure_fitted(self, "coef_")
        result: np.ndarray = np.asarray(X, dtype="float64") @ self.coef_ + self.intercept_
        return result


def build(fit_intercept: bool = True, min_abs_corr: float = 0.1) -> Pipeline:
    return Pipeline([("features", make_feature_one(min_abs_corr=min_abs_corr)), ("model", OLSRegressor(fit_intercept))])
