"""Postfilter: add pairwise products of kept columns (domain interactions)."""

from __future__ import annotations

import pandas as pd

from sample_ml.features.common import FrameTransformer

DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (("bmi", "bp"), ("bmi", "s5"), ("bp", "s5"))


class InteractionFeatures(FrameTransformer):
    def __init__(self, pairs: tuple[tuple[str, str], ...] = DEFAULT_PAIRS) -> None:
        self.pairs = pairs

    def _active(self, names: list[str]) -> list[tuple[str, str]]:
        # A pair whose column the filter dropped is skipped, not an error.
        return [(a, b) for a, b in self.pairs if a in names and b in names]

    def _transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        for a, b in self._active(list(frame.columns)):
            out[f"{a}_x_{b}"] = frame[a] * frame[b]
        return out

    def _names_out(self, names_in: list[str]) -> list[str]:
        return names_in + [f"{a}_x_{b}" for a, b in self._active(names_in)]
