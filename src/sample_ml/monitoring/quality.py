"""Measure the drift trigger's false-alarm and detection rates on the dummy data.

``python -m sample_ml.monitoring.quality [--trials 200] [--rows 100]``: reference = the training
split of the dummy data; each trial draws ``rows`` new rows (with replacement) from the
held-out rows, unchanged (false alarms) or with ``bmi`` shifted by one standard deviation
(detections). Seeds are fixed, so the figures are reproducible.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from sample_ml.config import DriftConfig
from sample_ml.errors import run_cli
from sample_ml.monitoring.drift import detect
from sample_ml.monitoring.simulate import load_source
from sample_ml.pipelines.common import split
from sample_ml.schema import DIABETES

# Relative to where it runs (the repository root), not to the installed module.
DATA = Path("notebooks") / "dummy_data" / "diabetes.csv"


def rates(
    trials: int,
    rows: int,
    shift_feature: str = "bmi",
    seed: int = 0,
    config: DriftConfig | None = None,
    data: Path = DATA,
) -> tuple[float, float]:
    frame = load_source(data)
    train, _ = split(frame, 0.2, 42)
    reference = train[DIABETES.feature_names]
    pool = frame[DIABETES.feature_names]
    sd = float(reference[shift_feature].std())
    rng = np.random.default_rng(seed)
    alarms = detections = 0
    for _ in range(trials):
        sample = pool.iloc[rng.integers(0, len(pool), rows)].reset_index(drop=True)
        alarms += detect(reference, sample, DIABETES, config).drifted
        shifted: pd.DataFrame = sample.assign(**{shift_feature: sample[shift_feature] + sd})
        detections += detect(reference, shifted, DIABETES, config).drifted
    return alarms / trials, detections / trials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sample_ml.monitoring.quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--rows", type=int, nargs="+", default=[20, 30, 50, 100, 200])
    parser.add_argument("--data", type=Path, default=DATA, help=f"CSV of the dummy data (default: {DATA})")
    args = parser.parse_args(argv)
    if args.trials < 1 or min(args.rows) < 1:
        parser.error("--trials and --rows must be at least 1")
    print(f"{'rows':>5} {'false alarms':>13} {'detections (1 SD bmi shift)':>28}")
    for n in args.rows:
        fpr, tpr = rates(args.trials, n, data=args.data)
        print(f"{n:>5} {fpr:>13.1%} {tpr:>28.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli("python -m sample_ml.monitoring.quality", main))
