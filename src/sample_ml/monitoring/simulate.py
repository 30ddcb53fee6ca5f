"""New data for trying drift checks and retraining: a batch drawn from the dummy data, optionally
shifted and with a changed relation to the target.

``python -m sample_ml.monitoring.simulate --output new.csv [--rows 300] [--shift 1.0] [--effect 60]``
draws ``rows`` rows (seeded; with replacement only beyond the data's size), moves ``--feature``
(default ``bmi``) by ``--shift`` of its standard deviations (covariate drift) and adds
``--effect`` times its standardized value to the target (concept drift: the feature now matters
more). ``--shuffle-target`` shuffles the target, so no model can learn it. With
``--shift 0 --effect 0`` the batch is like the training data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from sample_ml.data_loaders import CSVDataLoader
from sample_ml.errors import DataSourceError, run_cli
from sample_ml.io import write_with
from sample_ml.schema import DIABETES

# Relative to where it runs (the repository root), not to the installed module.
DATA = Path("notebooks") / "dummy_data" / "diabetes.csv"


def load_source(path: Path) -> pd.DataFrame:
    """The rows to draw from; a missing default says where it is looked for."""
    if not path.is_file():
        raise DataSourceError(f"no data at {path}; run from the repository root or pass --data PATH.csv")
    return CSVDataLoader(path).load()


def batch(
    frame: pd.DataFrame,
    rows: int,
    *,
    seed: int = 0,
    feature: str = "bmi",
    shift: float = 0.0,
    effect: float = 0.0,
    shuffle_target: bool = False,
) -> pd.DataFrame:
    """``rows`` rows of ``frame`` (features and target), drifted as the module docstring says."""
    if feature not in DIABETES.feature_names:
        raise ValueError(f"unknown feature {feature!r}; one of {DIABETES.feature_names}")
    rng = np.random.default_rng(seed)
    # Without replacement while there are rows enough: a duplicated row in both the challenger's
    # training split and the shared evaluation split would flatter the challenger.
    picks = rng.choice(len(frame), size=rows, replace=rows > len(frame))
    out = frame.iloc[picks].reset_index(drop=True)
    mean, sd = float(frame[feature].mean()), float(frame[feature].std())
    out[feature] = out[feature] + shift * sd
    if DIABETES.target and effect:
        out[DIABETES.target] = out[DIABETES.target] + effect * (out[feature] - mean) / sd
    if DIABETES.target and shuffle_target:
        out[DIABETES.target] = rng.permutation(out[DIABETES.target].to_numpy())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sample_ml.monitoring.simulate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", type=Path, required=True, help="CSV file to write")
    parser.add_argument(
        "--data",
        type=Path,
        default=DATA,
        help=f"CSV the rows are drawn from (default: {DATA}, from the repository root)",
    )
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--feature", default="bmi")
    parser.add_argument("--shift", type=float, default=1.0, help="shift in standard deviations (default 1.0)")
    parser.add_argument("--effect", type=float, default=60.0, help="added target per standard deviation (default 60)")
    parser.add_argument("--shuffle-target", action="store_true", help="shuffle the target: nothing left to learn")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    frame = batch(
        load_source(args.data),
        args.rows,
        seed=args.seed,
        feature=args.feature,
        shift=args.shift,
        effect=args.effect,
        shuffle_target=args.shuffle_target,
    )
    write_with(args.output, lambda tmp: frame.to_csv(tmp, index=False))
    print(f"wrote {len(frame)} rows to {args.output} ({args.feature} shifted {args.shift} SD, effect {args.effect})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli("python -m sample_ml.monitoring.simulate", main))
