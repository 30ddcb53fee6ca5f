"""Train: load data, fit the configured model on the training split, write a model bundle."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from sample_ml.config import Settings
from sample_ml.models.common.registry import get_spec
from sample_ml.pipelines.bundle import fingerprint, git_commit, runtime_info, save_bundle, summarize
from sample_ml.pipelines.common import make_loader, regression_metrics, split, step
from sample_ml.schema import DIABETES


def train(settings: Settings, output_dir: str | Path) -> Path:
    """Fit ``settings.model`` on ``settings.data`` and save the bundle to ``output_dir``; return its path."""
    get_spec(settings.model.name).build(settings.model.params)  # validates hyperparameters before any I/O
    loader = make_loader(settings.data)
    with step(f"loading {loader.describe()}"):
        frame = loader.load()
    return fit_and_save(settings, frame, loader.describe(), output_dir)


def fit_and_save(settings: Settings, frame: pd.DataFrame, source: str, output_dir: str | Path) -> Path:
    """Fit ``settings.model`` on the training split of ``frame``; the bundle records the held-out metrics."""
    spec = get_spec(settings.model.name)
    params = spec.resolved_params(settings.model.params)
    pipeline = spec.build(settings.model.params)
    train_part, test_part = split(frame, settings.split.test_size, settings.split.seed)
    x_train, y_train = DIABETES.split_xy(train_part)
    x_test, y_test = DIABETES.split_xy(test_part)
    with step(f"fitting {spec.name} on {len(train_part)} rows"):
        pipeline.fit(x_train, y_train)
    metrics = regression_metrics(y_test, pipeline.predict(x_test))
    metadata = {
        "model_name": spec.name,
        "model_description": spec.description,
        "hyperparameters": params,
        "schema": DIABETES.to_dict(),
        "data": {
            "source": source,
            "fingerprint": fingerprint(frame),
            "rows": len(frame),
            "train_fingerprint": fingerprint(train_part),
            "summary": summarize(x_train, DIABETES),
        },
        "split": {"test_size": settings.split.test_size, "seed": settings.split.seed},
        "metrics": {"holdout": metrics},
        "git_commit": git_commit(),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **runtime_info(),
    }
    with step(f"writing model bundle to {output_dir}"):
        path = save_bundle(Path(output_dir), pipeline, metadata, reference=x_train)
    return path
