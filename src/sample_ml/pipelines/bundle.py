"""The model bundle: a directory with the fitted pipeline and its metadata.

``model.joblib`` holds the pipeline; ``metadata.json`` is readable by people and by the CI/CD
toolkit (model name, hyperparameters, schema, data fingerprint and summary, versions, metrics).
A bundle is written to a temporary directory and renamed into place, so a reader never sees
half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from sample_ml.errors import BundleError
from sample_ml.io import atomic_dir
from sample_ml.schema import CATEGORICAL, Schema

FORMAT = 1
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
REFERENCE_FILE = "reference.json"  # the training features: the reference for drift checks


@dataclass(frozen=True)
class Bundle:
    pipeline: Pipeline
    metadata: dict[str, Any]
    path: Path

    @property
    def schema(self) -> Schema:
        return Schema.from_dict(self.metadata["schema"])


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of the data: same rows and columns in the same order → same hash."""
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(np.ascontiguousarray(frame.to_numpy(dtype="float64")).tobytes())
    return f"sha256:{digest.hexdigest()}"


def summarize(frame: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """Per-feature summary of the training data; the reference for drift checks."""
    out: dict[str, Any] = {"rows": len(frame)}
    feats: dict[str, Any] = {}
    for col in schema.features:
        values = frame[col.name]
        if col.kind == CATEGORICAL:
            counts = values.value_counts().sort_index()
            feats[col.name] = {"kind": col.kind, "counts": {str(int(float(str(k)))): int(v) for k, v in counts.items()}}
        else:
            feats[col.name] = {
                "kind": col.kind,
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                "min": float(values.min()),
                "max": float(values.max()),
                "quantiles": [float(q) for q in np.quantile(values, np.linspace(0, 1, 21))],
            }
    out["features"] = feats
    return out


def git_commit() -> str | None:
    """The commit the code came from: ``GIT_COMMIT`` if set (images), else ``git`` if present."""
    env = os.environ.get("GIT_COMMIT")
    if env:
        return env
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def runtime_info() -> dict[str, str]:
    import sklearn

    from sample_ml import __version__

    return {
        "package_version": __version__,
        "python": platform.python_version(),
        "scikit_learn": sklearn.__version__,
    }


def save_bundle(
    target: Path, pipeline: Pipeline, metadata: dict[str, Any], reference: pd.DataFrame | None = None
) -> Path:
    target = Path(target)
    with atomic_dir(target) as tmp:
        joblib.dump(pipeline, tmp / MODEL_FILE)
        meta = {"format": FORMAT, **metadata}
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
        if reference is not None:
            columns = {str(c): reference[c].astype("float64").tolist() for c in reference.columns}
            (tmp / REFERENCE_FILE).write_text(json.dumps(columns) + "\n")
    return target


def load_reference(path: str | Path) -> pd.DataFrame:
    """The training features saved with a bundle; refuses a bundle that has none."""
    file = Path(path) / REFERENCE_FILE
    if not file.is_file():
        raise BundleError(
            f"model bundle {str(path)!r} has no {REFERENCE_FILE} (the training data the drift check "
            "compares against); retrain it with this version"
        )
    try:
        return pd.DataFrame(json.loads(file.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValueError) as err:
        raise BundleError(f"model bundle {str(path)!r} has a corrupt {REFERENCE_FILE}: {err}; retrain it") from err


def load_bundle(path: str | Path) -> Bundle:
    path = Path(path)
    model_file, meta_file = path / MODEL_FILE, path / METADATA_FILE
    if not path.is_dir() or not model_file.is_file() or not meta_file.is_file():
        raise BundleError(
            f"no model bundle at {str(path)!r} (it needs {MODEL_FILE} and {METADATA_FILE}); "
            "run 'sample-ml train' first or point --model-dir at a trained bundle"
        )
    try:
        metadata = json.loads(meta_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"model bundle {str(path)!r} has corrupt {METADATA_FILE}: {err}; retrain it") from err
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT or "schema" not in metadata:
        raise BundleError(
            f"model bundle {str(path)!r} has an unsupported format "
            f"({metadata.get('format') if isinstance(metadata, dict) else '?'}); retrain it with this version"
        )
    try:
        pipeline = joblib.load(model_file)
    except Exception as err:  # joblib/pickle raise many unrelated types on a corrupt file
        raise BundleError(
            f"model bundle {str(path)!r} has a corrupt {MODEL_FILE}: {type(err).__name__}; retrain it"
        ) from err
    if not isinstance(pipeline, Pipeline):
        raise BundleError(f"model bundle {str(path)!r} does not contain a scikit-learn Pipeline; retrain it")
    return Bundle(pipeline=pipeline, metadata=metadata, path=path)
