"""Helpers shared by the stages: loading configured data, the held-out split, metrics, progress."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

from sample_ml.config import DataConfig
from sample_ml.data_loaders import DataLoader, get_loader
from sample_ml.errors import SchemaError
from sample_ml.schema import DIABETES, Schema

MIN_ROWS = 10


def make_loader(data: DataConfig, schema: Schema = DIABETES) -> DataLoader:
    return get_loader(data.loader, schema=schema, **data.options)


def split(frame: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The deterministic train / held-out split; evaluate reuses the seed recorded at training."""
    if len(frame) < MIN_ROWS:
        raise SchemaError(f"need at least {MIN_ROWS} rows to train and hold out a test split, got {len(frame)}")
    train, test = train_test_split(frame, test_size=test_size, random_state=seed)
    return train, test


def regression_metrics(y_true: pd.Series | np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


@contextmanager
def step(message: str) -> Iterator[None]:
    """Progress on stderr for the slow steps: what is running, then how long it took."""
    print(f"… {message}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    yield
    print(f"✓ {message} ({time.perf_counter() - start:.2f}s)", file=sys.stderr, flush=True)
