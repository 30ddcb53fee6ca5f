"""Retrain: a drift-triggered champion/challenger round.

1. Check every input before writing anything: the champion bundle with its data summary and
   reference sample, and the new data (from ``settings.retrain`` or the CLI) against the
   champion's schema.
2. Drift check of the new data against the champion's training data. No drift (and no
   ``force``): the champion stays; only the drift report and ``decision.json`` are written.
   With ``drift_data`` (a deployed service's prediction log) the drift check reads that instead:
   what the model is asked in production says *when* to retrain; the labelled new data still
   says *what* it is retrained on (a log holds no truth to train on).
3. Otherwise the new data is snapshotted to CSV and read back through the CSV loader, exactly as
   a release will read it; a challenger is trained on its training split, and champion and
   challenger are scored on the same held-out split, next to the naive baseline.
4. The challenger is accepted only if its RMSE is at least ``retrain.margin`` below the
   champion's and it passes the evaluation gate. Then ``update/`` holds the new contents of
   the settings directory (``model/`` in this repository): the model card (``card.json``,
   ``card.md``), the data snapshot (``data/training.csv``) and ``settings.yaml`` pointing at it.
   The CI/CD toolkit commits those on a ``retrain/<date>`` branch; a release then trains the
   same model from them, so a retrained model reaches production only through the normal flow.

The whole output directory is replaced atomically; every outcome ends with ``decision.json``.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sample_ml.config import DataConfig, Settings
from sample_ml.data_loaders.csv_loader import CSVDataLoader
from sample_ml.errors import BundleError
from sample_ml.io import atomic_dir, write_json, write_text
from sample_ml.models.common.registry import build_model
from sample_ml.monitoring.drift import DriftReport, detect
from sample_ml.monitoring.report import write_report
from sample_ml.pipelines.bundle import Bundle, fingerprint, load_bundle, load_reference
from sample_ml.pipelines.common import make_loader, regression_metrics, split, step
from sample_ml.pipelines.evaluate import gate_decision
from sample_ml.pipelines.train import fit_and_save

DECISION_FILE = "decision.json"
UPDATE_DIR = "update"
CHALLENGER_DIR = "challenger"
CARD_JSON = "card.json"
CARD_MD = "card.md"
SNAPSHOT = "data/training.csv"
SETTINGS_FILE = "settings.yaml"
DEFAULT_SETTINGS_DIR = Path("model")


@dataclass(frozen=True)
class Decision:
    outcome: str  # "no-drift", "rejected" or "accepted"
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"


def _champion(path: str | Path) -> tuple[Bundle, pd.DataFrame]:
    bundle = load_bundle(path)
    data = bundle.metadata.get("data")
    if not isinstance(data, dict) or not data.get("summary") or not data.get("fingerprint"):
        raise BundleError(
            f"model bundle {str(path)!r} has no data summary and fingerprint (metadata.json: data.summary, "
            "data.fingerprint), so its training data is unknown; retrain it with this version first"
        )
    return bundle, load_reference(path)


def retrain(
    champion_dir: str | Path,
    settings: Settings,
    output_dir: str | Path,
    *,
    new_data: DataConfig | None = None,
    drift_data: DataConfig | None = None,
    settings_file: str | Path | None = None,
    force: bool = False,
) -> Decision:
    """One champion/challenger round; see the module docstring. Raises only for bad input."""
    champion, reference = _champion(champion_dir)
    schema = champion.schema
    loader = make_loader(new_data or settings.retrain.data, schema)
    with step(f"loading new data from {loader.describe()}"):
        frame = loader.load()  # labels are needed to train and to compare
    current, _ = schema.split_xy(frame)
    drift_origin = loader.describe()
    if drift_data is not None:
        logged = make_loader(drift_data, schema)
        with step(f"loading {logged.describe()} for the drift check"):
            current = logged.load(require_target=False)
        drift_origin = logged.describe()
    drift = detect(reference, current, schema, settings.drift)
    settings_dir = Path(settings_file).parent if settings_file else DEFAULT_SETTINGS_DIR

    with atomic_dir(Path(output_dir)) as out:
        write_report(drift, reference, current, out)
        if not drift.drifted and not force:
            decision = Decision(
                "no-drift",
                f"no drift: {_drift_line(drift)}; the champion stays and nothing was retrained",
                {"drift": _drift_summary(drift, drift_origin)},
            )
        else:
            origins = (loader.describe(), drift_origin)
            decision = _challenge(champion, settings, frame, origins, drift, out, settings_dir, force)
            if decision.accepted:
                _write_update(out / UPDATE_DIR, decision.details, settings, settings_file, settings_dir)
            else:  # the staged snapshot goes; the challenger bundle stays as evidence
                shutil.rmtree(out / UPDATE_DIR)
        write_json(out / DECISION_FILE, asdict(decision) | {"accepted": decision.accepted})
    return decision


def _challenge(
    champion: Bundle,
    settings: Settings,
    frame: pd.DataFrame,
    origins: tuple[str, str],  # of the training data, of the drift check's data
    drift: DriftReport,
    out: Path,
    settings_dir: Path,
    force: bool,
) -> Decision:
    schema = champion.schema
    snapshot_path = (settings_dir / SNAPSHOT).as_posix()
    staged = out / UPDATE_DIR / SNAPSHOT
    staged.parent.mkdir(parents=True)
    frame.to_csv(staged, index=False)
    # Train on the rows as a release will read them back from the snapshot, not on the frame in memory.
    data = CSVDataLoader(path=str(staged), schema=schema).load()
    challenger_settings = replace(settings, data=DataConfig("csv", {"path": snapshot_path}))
    fit_and_save(challenger_settings, data, CSVDataLoader(path=snapshot_path).describe(), out / CHALLENGER_DIR)
    challenger = load_bundle(out / CHALLENGER_DIR)

    train_part, eval_part = split(data, settings.split.test_size, settings.split.seed)
    x_train, y_train = schema.split_xy(train_part)
    x_eval, y_eval = schema.split_xy(eval_part)
    with step(f"scoring champion and challenger on the same {len(eval_part)} held-out rows"):
        scores = {
            "challenger": regression_metrics(y_eval, challenger.pipeline.predict(x_eval)),
            "champion": regression_metrics(y_eval, champion.pipeline.predict(x_eval)),
            "baseline": regression_metrics(y_eval, build_model("naive").fit(x_train, y_train).predict(x_eval)),
        }
    margin = settings.retrain.margin
    limit = scores["champion"]["rmse"] * (1.0 - margin)
    reasons = gate_decision(scores["challenger"], scores["baseline"], settings.gate)
    if not scores["challenger"]["rmse"] <= limit:
        reasons.insert(
            0,
            f"challenger RMSE {scores['challenger']['rmse']:.3f} is not at least {margin:.0%} below the "
            f"champion's {scores['champion']['rmse']:.3f} (limit {limit:.3f})",
        )
    meta = challenger.metadata
    card = {
        "model": {
            "name": meta["model_name"],
            "description": meta["model_description"],
            "hyperparameters": meta["hyperparameters"],
        },
        "trained_at": meta["trained_at"],
        "runtime": {k: meta[k] for k in ("package_version", "python", "scikit_learn")},
        "trigger": "forced" if force and not drift.drifted else "drift",
        "data": {
            "origin": origins[0],
            "snapshot": snapshot_path,
            "fingerprint": meta["data"]["fingerprint"],
            "rows": meta["data"]["rows"],
            "train_fingerprint": meta["data"]["train_fingerprint"],
            "split": meta["split"],
        },
        "evaluation": {
            "rows": len(eval_part),
            "fingerprint": fingerprint(eval_part),
            **scores,
            "improvement": 1.0 - scores["challenger"]["rmse"] / scores["champion"]["rmse"],
        },
        "acceptance": {"margin": margin, "gate": asdict(settings.gate), "passed": not reasons, "reasons": reasons},
        "champion": {
            "model_name": champion.metadata["model_name"],
            "fingerprint": champion.metadata["data"]["fingerprint"],
            "git_commit": champion.metadata.get("git_commit"),
            "trained_at": champion.metadata.get("trained_at"),
        },
        "drift": _drift_summary(drift, origins[1]),
    }
    ch, cp = scores["challenger"]["rmse"], scores["champion"]["rmse"]
    if reasons:
        return Decision(
            "rejected",
            f"challenger rejected, the champion stays: {'; '.join(reasons)}. {_drift_line(drift)}",
            card,
        )
    return Decision(
        "accepted",
        f"challenger accepted: RMSE {ch:.2f} vs the champion's {cp:.2f} on the same {len(eval_part)} rows "
        f"({card['evaluation']['improvement']:.1%} better). {_drift_line(drift)}",
        card,
    )


def _drift_line(drift: DriftReport) -> str:
    names = ", ".join(drift.drifted_features) or "none"
    return (
        f"{drift.drifted_share:.0%} of features drifted (trigger at {drift.config['min_drifted_share']:.0%}): "
        f"{names}; {drift.current_rows} new rows vs {drift.reference_rows} reference rows"
    )


def _drift_summary(drift: DriftReport, source: str) -> dict[str, Any]:
    return {
        "source": source,
        "drifted": drift.drifted,
        "drifted_share": drift.drifted_share,
        "drifted_features": drift.drifted_features,
        "reference_rows": drift.reference_rows,
        "current_rows": drift.current_rows,
        "config": drift.config,
        "features": [asdict(f) for f in drift.features],
    }


def _write_update(
    update: Path, card: dict[str, Any], settings: Settings, settings_file: str | Path | None, settings_dir: Path
) -> None:
    write_json(update / CARD_JSON, card)
    write_text(update / CARD_MD, card_markdown(card))
    header: list[str] = []
    if settings_file:
        raw = yaml.safe_load(Path(settings_file).read_text(encoding="utf-8")) or {}
        for line in Path(settings_file).read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            header.append(line)
    else:
        raw = asdict(settings)
    raw["data"] = {"loader": "csv", "options": {"path": (settings_dir / SNAPSHOT).as_posix()}}
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    header.append(f"# data: set by 'sample-ml retrain' on {stamp} to the snapshot the accepted challenger used.")
    write_text(update / SETTINGS_FILE, "\n".join(header) + "\n" + yaml.safe_dump(raw, sort_keys=False))


def _metric_row(name: str, m: dict[str, float]) -> str:
    return f"| {name} | {m['rmse']:.3f} | {m['mae']:.3f} | {m['r2']:.3f} |"


def card_markdown(card: dict[str, Any]) -> str:
    """The readable model card, written next to ``card.json``."""
    ev, data, drift, acc = card["evaluation"], card["data"], card["drift"], card["acceptance"]
    lines = [
        f"# Model card: {card['model']['name']}",
        "",
        f"{card['model']['description']}. Trained {card['trained_at']} by `sample-ml retrain` "
        f"(trigger: {card['trigger']}); it replaced the champion trained {card['champion']['trained_at']} "
        f"from commit {(card['champion']['git_commit'] or 'unknown')[:12]}.",
        "",
        "## Evaluation",
        "",
        f"All three scored on the same {ev['rows']} held-out rows of the new data ({ev['fingerprint'][:19]}…). "
        f"Accepted: RMSE at least {acc['margin']:.0%} below the champion's and the gate "
        f"(R² ≥ {acc['gate']['min_r2']}, {acc['gate']['baseline_margin']:.0%} better than the baseline).",
        "",
        "| model | RMSE | MAE | R² |",
        "|---|---|---|---|",
        _metric_row("challenger (this model)", ev["challenger"]),
        _metric_row("champion (previous model)", ev["champion"]),
        _metric_row("naive baseline", ev["baseline"]),
        "",
        f"Improvement over the champion: {ev['improvement']:.1%} lower RMSE.",
        "",
        "## Data",
        "",
        f"- origin: {data['origin']}",
        f"- snapshot: `{data['snapshot']}`, {data['rows']} rows, `{data['fingerprint']}`",
        f"- split: test size {data['split']['test_size']}, seed {data['split']['seed']}",
        f"- hyperparameters: `{card['model']['hyperparameters']}`",
        f"- runtime: {', '.join(f'{k} {v}' for k, v in card['runtime'].items())}",
        "",
        "## Drift that triggered it",
        "",
        f"{drift['drifted_share']:.0%} of features drifted (trigger at {drift['config']['min_drifted_share']:.0%}, "
        f"alpha {drift['config']['alpha']}, {drift['config']['correction']} correction); "
        f"{drift['current_rows']} new rows ({drift.get('source', 'the new data')}) "
        f"vs {drift['reference_rows']} reference rows.",
        "",
        "| feature | test | p adjusted | PSI | drifted |",
        "|---|---|---|---|---|",
        *[
            f"| {f['feature']} | {f['test']} | {f['p_adjusted']:.2g} | {f['psi']:.3f} | "
            f"{'**yes**' if f['drifted'] else 'no'} |"
            for f in drift["features"]
        ],
    ]
    return "\n".join(lines) + "\n"
