from __future__ import annotations

import numpy as np
import pandas as pd

from sample_ml.features.common import FrameTransformer


class LogTransform(FrameTransformer):
    """``log1p`` of positive-valued columns; other columns pass through."""

    def __init__(self, columns: tuple[str, ...] = ("s1", "s2", "s3", "s6")) -> None:
        self.columns = columns

    def _transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        cols = [c for c in self.columns if c in out]
        if cols:  # one vectorised call: per-column pandas clips cost more than the model on one row
            out[cols] = np.log1p(np.maximum(out[cols].to_numpy(dtype="float64"), 0.0))
        return out


class RatioFeatures(FrameTransformer):
    """Ratios of raw columns, e.g. total cholesterol over HDL; a zero denominator gives 0, and a
    ratio is kept within ±``LIMIT`` (a near-zero denominator would otherwise overflow the float32
    that tree models compute in: found by fuzzing the service)."""

    LIMIT = 1e9

    def __init__(self, ratios: tuple[tuple[str, str], ...] = (("s1", "s3"), ("bmi", "age"))) -> None:
        self.ratios = ratios

    def _transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        for num, den in self.ratios:
            n, d = frame[num].to_numpy(dtype="float64"), frame[den].to_numpy(dtype="float64")
            ratio = np.divide(n, d, out=np.zeros_like(n), where=d != 0.0)
            out[f"{num}_per_{den}"] = np.clip(np.nan_to_num(ratio, nan=0.0), -self.LIMIT, self.LIMIT)
        return out

    def _names_out(self, names_in: list[str]) -> list[str]:
        return names_in + [f"{n}_per_{d}" for n, d in self.ratios]


class CategoryIndicator(FrameTransformer):
    """Replace a small-integer category column by one indicator per non-reference level."""

    def __init__(self, column: str = "sex", categories: tuple[int, ...] = (1, 2)) -> None:
        self.column = column
        self.categories = categories

    def _levels(self) -> list[int]:
        return list(self.categories[1:])

    def _transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.drop(columns=[self.column])
        for level in self._levels():
            out[f"{self.column}_{level}"] = (frame[self.column] == level).astype("float64")
        return out

    def _names_out(self, names_in: list[str]) -> list[str]:
        return [n for n in names_in if n != self.column] + [f"{self.column}_{lv}" for lv in self._levels()]
