"""The declared data schema and its check, shared by loaders, training and the service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sample_ml.errors import SchemaError

NUMERIC = "numeric"
CATEGORICAL = "categorical"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = NUMERIC  # NUMERIC or CATEGORICAL (categories are small integers)
    description: str = ""
    categories: tuple[int, ...] = ()


@dataclass(frozen=True)
class Schema:
    """Feature columns plus an optional target column.

    ``validate`` returns a clean float frame in declared column order, or raises
    :class:`SchemaError` naming the offending columns.
    """

    features: tuple[Column, ...]
    target: str | None = "target"
    extra_columns: str = "error"  # "error" or "ignore"
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_names", tuple(c.name for c in self.features))

    @property
    def feature_names(self) -> list[str]:
        return list(self._names)

    def to_dict(self) -> dict[str, object]:
        return {
            "features": [{"name": c.name, "kind": c.kind, "categories": list(c.categories)} for c in self.features],
            "target": self.target,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Schema:
        try:
            cols = tuple(
                Column(
                    name=str(c["name"]),
                    kind=str(c.get("kind", NUMERIC)),
                    categories=tuple(int(v) for v in c.get("categories", ())),
                )
                for c in data["features"]  # type: ignore[attr-defined]
            )
        except (KeyError, TypeError, ValueError) as err:
            raise SchemaError(f"malformed schema description: {err}") from err
        target = data.get("target")
        return cls(features=cols, target=None if target is None else str(target))

    def without_target(self) -> Schema:
        return Schema(features=self.features, target=None, extra_columns=self.extra_columns)

    def validate(self, frame: pd.DataFrame, *, require_target: bool = True, source: str = "data") -> pd.DataFrame:
        if frame.empty or len(frame.index) == 0:
            raise SchemaError(f"{source} is empty: it has no rows; supply at least one record")
        expected = list(self._names)
        if self.target is not None and (require_target or self.target in frame.columns):
            expected.append(self.target)
        missing = [c for c in expected if c not in frame.columns]
        if missing:
            raise SchemaError(f"{source} is missing column(s) {missing}; expected {expected}")
        extra = [c for c in frame.columns if c not in expected]
        if extra and self.extra_columns == "error":
            raise SchemaError(
                f"{source} has unexpected column(s) {[str(c) for c in extra]}; expected exactly {expected}"
            )
        out = frame.loc[:, expected].copy()
        bad_type = [
            c
            for c in expected
            if not (pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c]))
        ]
        if bad_type:
            raise SchemaError(
                f"{source} has non-numeric values in column(s) {bad_type}; every feature must be a number"
            )
        out = out.astype("float64")
        nan_cols = [c for c in expected if out[c].isna().any()]
        if nan_cols:
            counts = {c: int(out[c].isna().sum()) for c in nan_cols}
            raise SchemaError(f"{source} has missing values (NaN) in {counts}; fill or drop those rows first")
        inf_cols = [c for c in expected if not np.isfinite(out[c].to_numpy()).all()]
        if inf_cols:
            raise SchemaError(f"{source} has infinite values in column(s) {inf_cols}")
        for col in self.features:
            if col.kind == CATEGORICAL and col.categories:
                unknown = sorted({float(v) for v in out[col.name].unique()} - {float(v) for v in col.categories})
                if unknown:
                    raise SchemaError(
                        f"{source} column {col.name!r} has value(s) {unknown[:5]} outside its "
                        f"categories {list(col.categories)}"
                    )
        return out

    def split_xy(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        if self.target is None:
            raise SchemaError("this schema declares no target column")
        return frame[self.feature_names], frame[self.target]


DIABETES = Schema(
    features=(
        Column("age", description="age in years"),
        Column("sex", CATEGORICAL, "sex, coded 1 or 2", categories=(1, 2)),
        Column("bmi", description="body mass index"),
        Column("bp", description="average blood pressure"),
        Column("s1", description="tc, total serum cholesterol"),
        Column("s2", description="ldl, low-density lipoproteins"),
        Column("s3", description="hdl, high-density lipoproteins"),
        Column("s4", description="tch, total cholesterol / HDL"),
        Column("s5", description="ltg, log of serum triglycerides"),
        Column("s6", description="glu, blood sugar level"),
    ),
    target="target",
)


def as_records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, float]]:
    return [dict(zip(columns, map(float, row), strict=True)) for row in frame[list(columns)].to_numpy()]
