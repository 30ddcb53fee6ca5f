"""An environment's prediction log, read back for the drift check and retraining on what a
deployed model is actually asked (``nox -s drift -- --source staging``,
``nox -s retrain -- --source production``; both in :mod:`cicd.retrain`).

The log lives on the environment's host, in a named volume its service writes
(``environments.<name>.prediction_log``). Reading it never touches the service: a throwaway
container from the serving release's own image (no network) mounts the volume read-only and
makes a consistent SQLite backup; the same container hands over the served model's
``metadata.json``. Both land in ``artifacts/predictions/<environment>/``.

The drift reference must be the training data of the model the environment serves. The release
image carries no training rows (``reference.json`` stays out of it), so the champion is trained
from this checkout, as ``retrain`` always does, and :func:`check_same_model` refuses when that is
not the model the environment serves (other data, model or hyperparameters), saying which
commit to check out.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cicd.context import Context
from cicd.errors import PredictionLogError

log = logging.getLogger(__name__)
METADATA = "metadata.json"


@dataclass(frozen=True)
class Exported:
    environment: str
    log: Path  # a SQLite copy of the log
    metadata: dict[str, Any]  # the served bundle's metadata.json

    @property
    def url(self) -> str:
        return f"sqlite:///{self.log.resolve()}"


def export(ctx: Context, name: str) -> Exported:
    """Copy environment ``name``'s prediction log and its served model's metadata into the artifacts."""
    from cicd.deploy import get_target

    env = ctx.config.environment(name)
    if env.prediction_log is None:
        raise PredictionLogError(
            f"environment {name} keeps no prediction log: set environments.{name}.prediction_log in "
            f"{ctx.config.path} (see cicd/README.md, 'The prediction log'), deploy, and let it serve"
        )
    target = get_target(ctx, env)
    export_log = getattr(target, "export_log", None)
    if export_log is None:
        raise PredictionLogError(
            f"the {env.target} target of {name} keeps no log volume; point SERVICE_PREDICTION_LOG at a database "
            f"(environments.{name}.settings.env) and read it with "
            f"`python -m {ctx.config.import_name}.run drift --loader predictions --source URL`"
        )
    dest = ctx.artifacts / "predictions" / name
    path = export_log(dest)
    try:
        metadata = json.loads((dest / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PredictionLogError(f"the model {name} serves has no readable {METADATA}: {err}") from None
    log.info("%s: prediction log copied to %s", name, path)
    return Exported(name, path, metadata)


def _model(metadata: dict[str, Any]) -> dict[str, Any]:
    """What makes two bundles the same model for the drift check: data, model, hyperparameters."""
    data = metadata.get("data")
    data = data if isinstance(data, dict) else {}
    return {
        "data": data.get("fingerprint"),
        "model": metadata.get("model_name"),
        "hyperparameters": metadata.get("hyperparameters"),
    }


def check_same_model(exported: Exported, champion: Path, tag: str | None) -> None:
    """Refuse when the champion trained here is not the model the environment serves."""
    served = _model(exported.metadata)
    here = _model(json.loads((champion / METADATA).read_text(encoding="utf-8")))
    if served != here:
        differ = ", ".join(k for k in served if served[k] != here[k])
        commit = str(exported.metadata.get("git_commit") or "")[:12] or "unknown"
        where = f"`git checkout {tag}`" if tag else f"the commit it runs ({commit})"
        raise PredictionLogError(
            f"{exported.environment} serves another model than this checkout trains ({differ} differ: it runs "
            f"{served['model']} on data {str(served['data'])[:19]}…, trained from commit {commit}); the drift "
            f"reference would be the wrong data. Run this from {where}"
        )
