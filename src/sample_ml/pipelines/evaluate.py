"""Evaluate: score a bundle on the held-out split against the naive baseline and the gate.

Writes ``metrics.json`` and ``evaluation.png`` (predicted vs actual, residuals) before the
gate decides, so a failed gate still leaves its evidence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sample_ml.config import GateConfig, Settings
from sample_ml.errors import EvaluationGateError
from sample_ml.io import write_json, write_with
from sample_ml.models.common.registry import MODELS, build_model
from sample_ml.pipelines.bundle import load_bundle
from sample_ml.pipelines.common import make_loader, regression_metrics, split, step

METRICS_FILE = "metrics.json"
PLOT_FILE = "evaluation.png"


def gate_decision(model: dict[str, float], baseline: dict[str, float], gate: GateConfig) -> list[str]:
    """Return the reasons the model fails the gate; an empty list means it passes."""
    reasons = []
    limit = baseline["rmse"] * (1.0 - gate.baseline_margin)
    if not model["rmse"] <= limit:
        reasons.append(
            f"RMSE {model['rmse']:.3f} is not at least {gate.baseline_margin:.0%} below the naive "
            f"baseline's {baseline['rmse']:.3f} (limit {limit:.3f})"
        )
    if not model["r2"] >= gate.min_r2:
        reasons.append(f"R² {model['r2']:.3f} is below the threshold {gate.min_r2:.3f}")
    return reasons


def _plot(y_true: np.ndarray, y_pred: np.ndarray, title: str, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.5))
    lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    ax1.scatter(y_true, y_pred, s=12, alpha=0.7)
    ax1.plot([lo, hi], [lo, hi], "k--", linewidth=1)
    ax1.set(xlabel="actual", ylabel="predicted", title="predicted vs actual")
    residuals = y_true - y_pred
    ax2.scatter(y_pred, residuals, s=12, alpha=0.7)
    ax2.axhline(0.0, color="k", linestyle="--", linewidth=1)
    ax2.set(xlabel="predicted", ylabel="residual (actual − predicted)", title="residuals")
    fig.suptitle(title)
    fig.tight_layout()
    write_with(target, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def evaluate(bundle_dir: str | Path, settings: Settings, output_dir: str | Path) -> dict[str, Any]:
    """Write the evaluation report; raise :class:`EvaluationGateError` when the gate fails."""
    bundle = load_bundle(bundle_dir)
    schema = bundle.schema
    loader = make_loader(settings.data, schema)
    with step(f"loading {loader.describe()}"):
        frame = loader.load()
    seed, test_size = bundle.metadata["split"]["seed"], bundle.metadata["split"]["test_size"]
    train_part, test_part = split(frame, test_size, seed)
    x_train, y_train = schema.split_xy(train_part)
    x_test, y_test = schema.split_xy(test_part)
    with step(f"scoring {bundle.metadata['model_name']} on {len(test_part)} held-out rows"):
        y_pred = bundle.pipeline.predict(x_test)
    baseline = build_model("naive").fit(x_train, y_train)
    model_metrics = regression_metrics(y_test, y_pred)
    baseline_metrics = regression_metrics(y_test, baseline.predict(x_test))
    reasons = gate_decision(model_metrics, baseline_metrics, settings.gate)
    report = {
        "model_name": bundle.metadata["model_name"],
        "model": model_metrics,
        "baseline": baseline_metrics,
        "gate": {
            "min_r2": settings.gate.min_r2,
            "baseline_margin": settings.gate.baseline_margin,
            "passed": not reasons,
            "reasons": reasons,
        },
        "holdout_rows": len(test_part),
        "data_source": loader.describe(),
    }
    out = Path(output_dir)
    with step(f"writing {out / METRICS_FILE} and {out / PLOT_FILE}"):
        write_json(out / METRICS_FILE, report)
        _plot(
            y_test.to_numpy(),
            np.asarray(y_pred),
            f"{report['model_name']}: RMSE {model_metrics['rmse']:.1f}, R² {model_metrics['r2']:.3f}",
            out / PLOT_FILE,
        )
    if reasons:
        raise EvaluationGateError(
            f"model {report['model_name']!r} fails the evaluation gate: "
            + "; ".join(reasons)
            + f". See {out / METRICS_FILE}."
        )
    return report


def compare(settings: Settings) -> list[dict[str, Any]]:
    """Fit every registered model on the same split; rows sorted best (lowest RMSE) first."""
    frame = make_loader(settings.data).load()
    train_part, test_part = split(frame, settings.split.test_size, settings.split.seed)
    from sample_ml.schema import DIABETES

    x_train, y_train = DIABETES.split_xy(train_part)
    x_test, y_test = DIABETES.split_xy(test_part)
    rows = []
    for name in MODELS:
        with step(f"fitting {name}"):
            model = build_model(name).fit(x_train, y_train)
        rows.append({"model": name, **regression_metrics(y_test, model.predict(x_test))})
    return sorted(rows, key=lambda r: r["rmse"])
