"""Retraining, the git side: run the project's ``retrain`` command and, when it accepts a
challenger, commit the model card, data snapshot and settings on a new ``retrain/<date>`` branch
and push it. From there the model goes through the normal flow (pull request into develop →
release → master → Staging → Production); retraining never deploys anything itself.

The contract with the project (``<import_name>.run``): ``train --config S --output DIR`` writes
a model bundle; ``retrain --config S --model-dir DIR --output OUT [--force] [data options]``
writes ``OUT/decision.json`` (``outcome``, ``message``, ``accepted``) and, when accepted,
``OUT/update/`` with the new contents of the settings file's directory. It exits non-zero only
for bad input, and then writes nothing.
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

    ``environment``: check drift on that environment's prediction log, with the model it serves
    as the champion (see :mod:`cicd.predictions`); the challenger still trains on labelled data.
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
    if environment is not None:
        from cicd.predictions import export

        if champion is not None:
            raise ConfigError("--model-dir and an environment's log do not go together: the champion is what it serves")
        exported = export(ctx, environment)
        champion, data_args = exported.bundle, [*data_args, "--predictions", exported.url]
    cli = [sys.executable, "-m", f"{cfg.import_name}.run"]
    timeout = cfg.retrain.timeout
    with tempfile.TemporaryDirectory(prefix="trainyard-champion-") as tmp:
        if champion is None:
            # The champion is what a release of this commit serves: the same settings, data and seed.
            champion = Path(tmp) / "champion"
            _run(
                [*cli, "train", "--config", settings_rel, "--output", str(champion)],
                ctx.root,
                timeout,
                "training the champion",
            )
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
