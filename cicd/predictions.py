"""An environment's prediction log, read back: the drift check and retraining on what a deployed
model is actually asked (``nox -s drift -- --source staging``, ``nox -s retrain -- --source production``).

The log lives on the environment's host, in a named volume its service writes
(``environments.<name>.prediction_log``). Reading it never touches the service: a throwaway
container from the serving release's own image mounts the volume read-only and makes a
consistent SQLite backup, and the same container hands over the model bundle that answered those
requests. Both land in ``artifacts/predictions/<environment>/`` (``predictions.sqlite``,
``model/``), where the project's ``drift`` and ``retrain`` commands read them: the drift
reference is the deployed model's training data, not whatever this checkout would train.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cicd import proc
from cicd.context import Context
from cicd.errors import CommandError, PredictionLogError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Exported:
    environment: str
    log: Path  # a SQLite copy of the log
    bundle: Path  # the model bundle the environment serves

    @property
    def url(self) -> str:
        return f"sqlite:///{self.log.resolve()}"


def export(ctx: Context, name: str) -> Exported:
    """Copy environment ``name``'s prediction log and served model bundle into the artifacts."""
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
            f"(environments.{name}.settings.env) and read it with `sample-ml drift --loader predictions --source URL`"
        )
    dest = ctx.artifacts / "predictions" / name
    path = export_log(dest)
    log.info("%s: prediction log copied to %s, with the model bundle that answered it", name, path)
    return Exported(name, path, dest / "model")


def drift(ctx: Context, name: str) -> dict[str, Any]:
    """The project's drift check on environment ``name``'s log against the model it serves."""
    if ctx.dry_run:
        log.info("dry run: would copy %s's prediction log and check it for drift", name)
        return {"environment": name, "dry_run": True}
    exported = export(ctx, name)
    out = ctx.artifacts / "drift" / name
    settings = ctx.config.retrain.settings  # the thresholds (its drift section), as retraining uses them
    cmd = [
        sys.executable, "-m", f"{ctx.config.import_name}.run", "drift", "--config", settings,
        "--model-dir", str(exported.bundle), "--loader", "predictions", "--source", exported.url,
        "--output", str(out),
    ]  # fmt: skip
    try:
        result = proc.run(cmd, cwd=ctx.root, timeout=ctx.config.retrain.timeout, what="the drift check")
    except CommandError as err:
        raise PredictionLogError(f"the drift check on {name}'s log could not run: {err}") from None
    if not result.ok:
        raise PredictionLogError(f"the drift check on {name}'s log failed (exit {result.exit_code}); see above")
    report = json.loads((out / "drift.json").read_text(encoding="utf-8"))
    return {
        "environment": name,
        "drifted": bool(report["drifted"]),
        "drifted_features": [f["feature"] for f in report["features"] if f["drifted"]],
        "rows": int(report["current_rows"]),
        "report": str(out),
        "log": str(exported.log),
    }
