"""Retraining, the git side: run the project's ``retrain`` command and, when it accepts a
challenger, commit the model card, data snapshot and settings on a new ``retrain/<date>`` branch
and push it. From there the model goes through the normal flow (pull request into develop →
release → master → Staging → Production); retraining never deploys anything itself.

The contract with the project (``<import_name>.run``): ``train --config S --output DIR`` writes
a model bundle; ``retrain --config S --model-dir DIR --output OUT [--force] [data options]``
writes ``OUT/decision.json`` (``outcome``, ``message``, ``accepted``) and, when accepted,
``OUT/update/`` with the new contents of the settings file's directory. It exits non-zero only
for bad input, and then writes nothing. ``drift --config S --model-dir DIR --loader predictions
--source URL --output OUT`` writes ``OUT/drift.json`` (``drifted``, ``current_rows``, ``features``).

``drift`` and ``retrain`` with an environment read its prediction log (:mod:`cicd.predictions`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cicd import proc
from cicd.context import Context
from cicd.errors import CommandError, ConfigError, GitError, RetrainError
from cicd.writes import mask

log = logging.getLogger(__name__)

DECISION = "decision.json"
UPDATE = "update"


def _run(cmd: Sequence[str], cwd: Path, timeout: int, what: str) -> None:
    # A URL argument (a database's) may hold a password in its userinfo, a query parameter or an
    # ODBC string: none of it is shown, here or in the step's output; only its scheme is.
    passwords = [m.group(2) for c in cmd for m in re.finditer(r"([A-Za-z][A-Za-z0-9+.-]*://)(\S+)", c)]
    log.info("$ %s", mask(" ".join(cmd), passwords))
    try:
        result = proc.run(cmd, cwd=cwd, timeout=timeout, secrets=passwords, what=what)
    except CommandError as err:
        raise RetrainError(
            f"{what} took longer than {timeout} s (retrain.timeout in pipeline.yaml) or could not start "
            f"({err}); nothing changed"
        ) from None
    if not result.ok:
        raise RetrainError(f"{what} failed (exit {result.exit_code}): see its message above; nothing was committed")


def _branch_name(ctx: Context, date: str) -> str:
    base = ctx.config.retrain.branch_name(date)
    name, n = base, 1
    while ctx.repo.branch_exists(name):
        n += 1
        name = f"{base}-{n}"
    return name


def _champion(ctx: Context, dest: Path) -> Path:
    """The champion: what a release of this commit serves (the same settings, data and seed)."""
    cli = [sys.executable, "-m", f"{ctx.config.import_name}.run"]
    _run(
        [*cli, "train", "--config", ctx.config.retrain.settings, "--output", str(dest)],
        ctx.root,
        ctx.config.retrain.timeout,
        "training the champion",
    )
    return dest


def _served_champion(ctx: Context, environment: str, dest: Path) -> tuple[Path, str]:
    """Environment's log (its URL) and a champion that is the model it serves, or a clear refusal."""
    from cicd.predictions import check_same_model, export

    exported = export(ctx, environment)
    champion = _champion(ctx, dest)
    check_same_model(exported, champion, ctx.config.environment(environment).tag)
    return champion, exported.url


def drift(ctx: Context, environment: str) -> dict[str, Any]:
    """The project's drift check on ``environment``'s prediction log against the model it serves.
    It only reads the environment and writes its report into the artifacts, dry run or not."""
    out = ctx.artifacts / "drift" / environment
    with tempfile.TemporaryDirectory(prefix="trainyard-champion-") as tmp:
        champion, url = _served_champion(ctx, environment, Path(tmp) / "champion")
        _run(
            [
                sys.executable, "-m", f"{ctx.config.import_name}.run", "drift",
                "--config", ctx.config.retrain.settings,  # its drift section: the thresholds retraining uses
                "--model-dir", str(champion), "--loader", "predictions", "--source", url, "--output", str(out),
            ],
            ctx.root,
            ctx.config.retrain.timeout,
            "the drift check",
        )  # fmt: skip
    report = json.loads((out / "drift.json").read_text(encoding="utf-8"))
    return {
        "environment": environment,
        "drifted": bool(report["drifted"]),
        "drifted_features": [f["feature"] for f in report["features"] if f["drifted"]],
        "rows": int(report["current_rows"]),
        "report": str(out),
    }


def retrain(
    ctx: Context,
    *,
    force: bool = False,
    data_args: Sequence[str] = (),
    champion: Path | None = None,
    date: str | None = None,
    environment: str | None = None,
) -> dict[str, Any]:
    """Drift check and champion/challenger; on acceptance a pushed ``retrain/<date>`` branch.

    ``environment``: check drift on that environment's prediction log; the champion must be the
    model it serves (see :mod:`cicd.predictions`); the challenger still trains on labelled data.
    """
    cfg, repo = ctx.config, ctx.repo
    repo.ensure_clean()
    settings_rel = cfg.retrain.settings
    if not (ctx.root / settings_rel).is_file():
        raise ConfigError(
            f"the model settings {settings_rel} (retrain.settings in {cfg.path}) do not exist; "
            "create them (see README: Retraining) or point retrain.settings at yours"
        )
    out = ctx.artifacts / "retrain"
    if environment is not None and champion is not None:
        raise ConfigError("--model-dir and an environment's log do not go together: the champion is what it serves")
    cli = [sys.executable, "-m", f"{cfg.import_name}.run"]
    timeout = cfg.retrain.timeout
    with tempfile.TemporaryDirectory(prefix="trainyard-champion-") as tmp:
        if environment is not None:
            champion, url = _served_champion(ctx, environment, Path(tmp) / "champion")
            data_args = [*data_args, "--predictions", url]
        elif champion is None:
            champion = _champion(ctx, Path(tmp) / "champion")
        _run(
            [
                *cli,
                "retrain",
                "--config",
                settings_rel,
                "--model-dir",
                str(champion),
                "--output",
                str(out),
                *(["--force"] if force else []),
                *data_args,
            ],
            ctx.root,
            timeout,
            "the retrain step",
        )
    try:
        decision = json.loads((out / DECISION).read_text(encoding="utf-8"))
        outcome, accepted = str(decision["outcome"]), bool(decision["accepted"])
    except (OSError, ValueError, KeyError) as err:
        raise RetrainError(f"the retrain step wrote no readable {out / DECISION}: {err}") from err
    result: dict[str, Any] = {"outcome": outcome, "branch": None, "report": str(out)}
    if not accepted:
        log.info("retrain: %s; nothing changed in git (report in %s)", outcome, out)
        return result

    update = out / UPDATE
    target_dir = Path(settings_rel).parent
    files = {(target_dir / p.relative_to(update)).as_posix(): p for p in sorted(update.rglob("*")) if p.is_file()}
    if not files:
        raise RetrainError(f"the challenger was accepted but {update} is empty; nothing was committed")
    card = decision.get("details", {})
    ev = card.get("evaluation", {})
    summary = (
        f"RMSE {ev['challenger']['rmse']:.2f} vs {ev['champion']['rmse']:.2f}"
        if "challenger" in ev and "champion" in ev
        else "challenger accepted"
    )
    drifted = ", ".join(card.get("drift", {}).get("drifted_features", [])) or "none"
    message = (
        f"feat(model): retrain on new data ({summary})\n\n"
        f"{decision.get('message', '')}\n\nDrifted features: {drifted}. Model card: {target_dir.as_posix()}/card.md\n"
        f"Written by `nox -s retrain` from {repo.head()[:12]}."
    )
    date = date or datetime.now(UTC).strftime("%Y-%m-%d")
    branch = _branch_name(ctx, date)
    commit = repo.commit_to_new_branch(branch, files, message)
    try:
        repo.push([f"refs/heads/{branch}"])
    except GitError as err:
        raise RetrainError(
            f"the retrain commit {commit[:12]} is on the local branch {branch}, but pushing it failed: {err}. "
            f"Push it with: git push origin {branch}"
        ) from err
    log.info("retrain: challenger accepted; pushed %s (%s). Open a pull request into develop.", branch, commit[:12])
    return result | {"branch": branch, "commit": commit, "committed": not ctx.dry_run}
