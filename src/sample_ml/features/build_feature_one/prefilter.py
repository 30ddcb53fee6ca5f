"""Prefilter: clip each column to quantiles learned on the training data (winsorising)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from sample_ml.features.common import FrameTransformer


class QuantileClipper(FrameTransformer):
    def __init__(self, lower: float = 0.01, upper: float = 0.99) -> None:
        self.lower = lower
        self.upper = upper

    def _fit(self, frame: pd.DataFrame, y: Any) -> None:
        if not 0.0 <= self.lower < self.upper <= 1.0:
            raise ValueError(f"need 0 <= lower < upper <= 1, got lower={self.lower}, upper={self.upper}")
        self.lower_bounds_ = frame.quantile(self.lower)
        self.upper_bounds_ = frame.quantile(self.upper)

    def _transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.clip(lower=self.lower_bounds_, upper=self.upper_bounds_, axis=1)
