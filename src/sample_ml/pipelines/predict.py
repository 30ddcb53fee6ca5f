"""Predict: batch-score rows from any loader and write them, with a prediction column, to CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sample_ml.config import DataConfig
from sample_ml.io import write_with
from sample_ml.pipelines.bundle import Bundle, load_bundle
from sample_ml.pipelines.common import make_loader, step

PREDICTION_COLUMN = "prediction"


def predict_frame(bundle: Bundle, frame: pd.DataFrame) -> np.ndarray:
    """Score already-validated rows: columns in the bundle's declared order."""
    return np.asarray(bundle.pipeline.predict(frame[bundle.schema.feature_names]), dtype="float64")


def predict(bundle_dir: str | Path, data: DataConfig, output: str | Path) -> Path:
    bundle = load_bundle(bundle_dir)
    schema = bundle.schema
    loader = make_loader(data, schema)
    with step(f"loading {loader.describe()}"):
        frame = loader.load(require_target=False)
    with step(f"scoring {len(frame)} rows with {bundle.metadata['model_name']}"):
        result = frame.copy()
        result[PREDICTION_COLUMN] = predict_frame(bundle, frame)
    out = Path(output)
    write_with(out, lambda tmp: result.to_csv(tmp, index=False))
    print(f"wrote {len(result)} predictions to {out}", flush=True)
    return out
