"""Data drift between the model's training data (the reference) and new data.

Per feature: a two-sample Kolmogorov–Smirnov test for numeric features and a chi-squared test
of the category counts for categorical ones, with a multiple-testing correction across
features (Holm by default, which keeps the chance of *any* false alarm at or below ``alpha``),
and the population stability index (PSI) as the size of each shift. The data set has drifted
when the share of drifted features reaches ``min_drifted_share``.

Statistical power depends on the sample size. Measured on the dummy data with the defaults
(``python -m sample_ml.monitoring.quality``, 200 seeded trials per size): false alarms stay at
or under 3 % at every size; a one-standard-deviation shift of ``bmi`` is caught 84.5 % of the
time from 20 new rows, 98.5 % from 30 and 100 % from 50 or more. The documented batch size is
50 rows; below about 30 rows the test has little power.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from sample_ml.config import DriftConfig
from sample_ml.errors import SchemaError
from sample_ml.schema import CATEGORICAL, Schema

MIN_ROWS = 5
LOW_POWER_ROWS = 30  # measured (module docstring): below this a 1-SD shift is missed too often


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    test: str
    statistic: float
    p_value: float
    p_adjusted: float
    psi: float
    drifted: bool


@dataclass(frozen=True)
class DriftReport:
    drifted: bool
    drifted_share: float
    reference_rows: int
    current_rows: int
    features: list[FeatureDrift] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"low_power": self.low_power}

    @property
    def low_power(self) -> bool:
        """Too few new rows for the check to catch a one-standard-deviation shift reliably."""
        return self.current_rows < LOW_POWER_ROWS

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index over the reference's quantile bins (0 = identical)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0
    edges[0], edges[-1] = -np.inf, np.inf
    ref = np.histogram(reference, edges)[0] / len(reference)
    cur = np.histogram(current, edges)[0] / len(current)
    ref, cur = np.clip(ref, 1e-6, None), np.clip(cur, 1e-6, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _categorical(reference: np.ndarray, current: np.ndarray) -> tuple[float, float, float]:
    levels = np.union1d(np.unique(reference), np.unique(current))
    table = np.array([[np.sum(reference == v) for v in levels], [np.sum(current == v) for v in levels]])
    if table.shape[1] < 2:
        return 0.0, 1.0, 0.0
    chi2, p, _, _ = stats.chi2_contingency(table)
    ref_p = np.clip(table[0] / table[0].sum(), 1e-6, None)
    cur_p = np.clip(table[1] / table[1].sum(), 1e-6, None)
    return float(chi2), float(p), float(np.sum((cur_p - ref_p) * np.log(cur_p / ref_p)))


def adjust(p_values: list[float], method: str) -> list[float]:
    """Holm or Bonferroni adjusted p-values (capped at 1), in the input order."""
    m = len(p_values)
    if method == "none" or m == 0:
        return list(p_values)
    if method == "bonferroni":
        return [min(1.0, p * m) for p in p_values]
    order = np.argsort(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[idx]))
        adjusted[idx] = running
    return [float(a) for a in adjusted]


def detect(
    reference: pd.DataFrame, current: pd.DataFrame, schema: Schema, config: DriftConfig | None = None
) -> DriftReport:
    """Compare ``current`` with ``reference`` feature by feature; both must carry the schema's features."""
    config = config or DriftConfig()
    names = schema.feature_names
    for label, frame in (("reference", reference), ("current", current)):
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise SchemaError(f"the {label} data lacks feature(s) {missing}; it must have {names}")
        if len(frame) < MIN_ROWS:
            raise SchemaError(f"the {label} data has {len(frame)} rows; drift needs at least {MIN_ROWS}")
    rows = []
    for col in schema.features:
        ref = reference[col.name].to_numpy(dtype="float64")
        cur = current[col.name].to_numpy(dtype="float64")
        if col.kind == CATEGORICAL:
            stat, p, size = _categorical(ref, cur)
            rows.append((col.name, "chi-squared", stat, p, size))
        else:
            result = stats.ks_2samp(ref, cur)
            rows.append(
                (
                    col.name,
                    "kolmogorov-smirnov",
                    float(result.statistic),
                    float(result.pvalue),
                    psi(ref, cur, config.psi_bins),
                )
            )
    adjusted = adjust([r[3] for r in rows], config.correction)
    features = [
        FeatureDrift(name, test, stat, p, p_adj, size, p_adj < config.alpha)
        for (name, test, stat, p, size), p_adj in zip(rows, adjusted, strict=True)
    ]
    share = sum(f.drifted for f in features) / len(features)
    return DriftReport(
        drifted=share >= config.min_drifted_share,
        drifted_share=share,
        reference_rows=len(reference),
        current_rows=len(current),
        features=features,
        config=asdict(config),
    )
