"""Filter: keep columns whose absolute correlation with the target reaches a threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sample_ml.features.common import FrameTransformer


class CorrelationFilter(FrameTransformer):
    def __init__(self, min_abs_corr: float = 0.1) -> None:
        self.min_abs_corr = min_abs_corr

    def _fit(self, frame: pd.DataFrame, y: Any) -> None:
        if y is None:
            raise ValueError("CorrelationFilter needs the target y in fit")
        target = pd.Series(np.asarray(y, dtype="float64"), index=frame.index)
        corr = frame.corrwith(target).abs().fillna(0.0)
        self.correlations_ = corr
        kept = [c for c in frame.columns if corr[c] >= self.min_abs_corr]
        # Never drop everything: keep the single most correlated column at least.
        self.selected_ = kept or [str(corr.idxmax())]

    def _transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame[self.selected_]

    def _names_out(self, names_in: list[str]) -> list[str]:
        return list(self.selected_)
