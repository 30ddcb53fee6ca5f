"""Shared plumbing for transformers that take and return named pandas frames."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted


def check_frame(X: Any, columns: list[str] | None = None) -> pd.DataFrame:
    """Accept a DataFrame (or array with known ``columns``) and return a float frame."""
    if isinstance(X, pd.DataFrame):
        frame = X
    elif columns is not None:
        frame = pd.DataFrame(np.asarray(X), columns=columns)
    else:
        raise TypeError("feature transformers need a pandas DataFrame with named columns")
    if all(dtype == np.float64 for dtype in frame.dtypes):
        return frame  # already float: no copy (transformers never modify their input)
    return frame.astype("float64")


class FrameTransformer(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Base class: records input column names in ``fit``; subclasses implement ``_fit``/``_transform``."""

    def fit(self, X: Any, y: Any = None) -> FrameTransformer:
        frame = check_frame(X)
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        self._fit(frame, y)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        check_is_fitted(self, "feature_names_in_")
        frame = check_frame(X, list(self.feature_names_in_))
        missing = [c for c in self.feature_names_in_ if c not in frame.columns]
        if missing:
            raise ValueError(f"{type(self).__name__}: input lacks fitted column(s) {missing}")
        names = list(self.feature_names_in_)
        return self._transform(frame if list(frame.columns) == names else frame[names])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_in_")
        return np.asarray(self._names_out(list(self.feature_names_in_)), dtype=object)

    def _fit(self, frame: pd.DataFrame, y: Any) -> None:
        """Learn state from ``frame``; stateless transformers keep the default."""

    def _transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def _names_out(self, names_in: list[str]) -> list[str]:
        return names_in
