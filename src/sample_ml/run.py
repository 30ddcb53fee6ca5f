"""The application CLI: ``python -m sample_ml.run COMMAND`` (train, evaluate, predict, serve, drift, retrain,
fingerprint, models, compare).

Installed as the ``sample-ml`` console script. Every command has ``--help``. Errors the user
can fix print one line and exit non-zero (2 for bad input, 1 for a failed evaluation gate).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import yaml

from sample_ml import __version__
from sample_ml.config import DataConfig, Settings, load_settings, with_overrides
from sample_ml.errors import ConfigError, run_cli


def _param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def _data_args(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_argument_group(f"{what} (defaults come from --config)")
    group.add_argument("--loader", help="data loader name: csv, sql or predictions (a service's prediction log)")
    group.add_argument(
        "--source", help="CSV path (csv) or SQLAlchemy URL, e.g. sqlite:///data.sqlite (sql, predictions)"
    )
    group.add_argument("--table", help="table name for the sql loaders (default: diabetes; predictions)")


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    if args.loader or args.source or args.table:
        loader = args.loader or settings.data.loader
        options = dict(settings.data.options) if loader == settings.data.loader else {}
        if args.source:
            options["path" if loader == "csv" else "url"] = args.source
        if args.table:
            if loader == "csv":
                raise ConfigError("--table only applies to the sql and predictions loaders")
            options["table"] = args.table
        settings = replace(settings, data=DataConfig(loader, options))
    if getattr(args, "model", None) or getattr(args, "param", None):
        params = dict(settings.model.params) if not args.model or args.model == settings.model.name else {}
        params.update(dict(args.param or []))
        settings = with_overrides(settings, **{"model.name": args.model, "model.params": params})
    return settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sample-ml", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="YAML settings file (sections: data, model, split, gate, drift, retrain)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", parents=[common], help="fit a model and write a model bundle")
    _data_args(p, "training data")
    p.add_argument("--model", help="model name (see 'sample-ml models')")
    p.add_argument("--param", action="append", type=_param, metavar="KEY=VALUE", help="hyperparameter, repeatable")
    p.add_argument("--output", default="artifacts/model", help="bundle directory (default: %(default)s)")

    p = sub.add_parser("evaluate", parents=[common], help="score a bundle on the held-out split and apply the gate")
    _data_args(p, "evaluation data")
    p.add_argument("--model-dir", default="artifacts/model", help="bundle directory (default: %(default)s)")
    p.add_argument("--output", default="artifacts/evaluation", help="report directory (default: %(default)s)")

    p = sub.add_parser("predict", parents=[common], help="batch-score data from a loader into a CSV file")
    _data_args(p, "data to score")
    p.add_argument("--model-dir", default="artifacts/model", help="bundle directory (default: %(default)s)")
    p.add_argument("--output", default="artifacts/predictions.csv", help="CSV to write (default: %(default)s)")

    p = sub.add_parser("serve", help="run the HTTP prediction service")
    env = os.environ
    p.add_argument(
        "--model-dir",
        default=env.get("MODEL_DIR", "artifacts/model"),
        help="bundle directory (default: $MODEL_DIR or %(default)s)",
    )
    p.add_argument(
        "--host",
        default=env.get("SERVICE_HOST", "127.0.0.1"),
        help="address to bind (default: $SERVICE_HOST or %(default)s)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(env.get("SERVICE_PORT", "8000")),
        help="port (default: $SERVICE_PORT or %(default)s)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=int(env.get("SERVICE_WORKERS", "1")),
        help="worker processes (default: $SERVICE_WORKERS or %(default)s); /metrics adds theirs up",
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])

    p = sub.add_parser("drift", parents=[common], help="compare new data with the model's training data")
    _data_args(p, "new data")
    p.add_argument("--model-dir", default="artifacts/model", help="bundle directory (default: %(default)s)")
    p.add_argument("--output", default="artifacts/drift", help="report directory (default: %(default)s)")

    p = sub.add_parser(
        "retrain",
        parents=[common],
        help="drift check, then champion/challenger: retrain on new data, keep the better model",
    )
    _data_args(p, "new data (default: the retrain section of --config)")
    p.add_argument("--model-dir", default="artifacts/model", help="the champion's bundle (default: %(default)s)")
    p.add_argument(
        "--output",
        default="artifacts/retrain",
        help="decision, drift report, challenger and (if accepted) update/ (default: %(default)s)",
    )
    p.add_argument("--force", action="store_true", help="train and compare a challenger even without drift")
    p.add_argument(
        "--predictions",
        metavar="URL",
        help="check drift on this prediction log (SQLAlchemy URL) instead of the new data; it has no labels, "
        "so a challenger still trains on the new data",
    )

    p = sub.add_parser(
        "fingerprint",
        parents=[common],
        help="the data fingerprint `train` would record (metadata.json data.fingerprint), as JSON",
    )
    _data_args(p, "training data")
    p.add_argument("--output", help="also write the JSON to this file")

    sub.add_parser("models", help="list the registered models and their hyperparameters")

    p = sub.add_parser("compare", parents=[common], help="fit every model on the same split and rank them")
    _data_args(p, "data")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(f"sample-ml {args.command}", lambda: _dispatch(args))


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "models":
        from sample_ml.models import MODELS

        for spec in MODELS.values():
            print(f"{spec.name:16} {spec.description}\n{'':16} defaults: {spec.defaults()}")
        return 0
    if args.command == "serve":
        from sample_ml.service.app import serve

        serve(args.model_dir, host=args.host, port=args.port, log_level=args.log_level, workers=args.workers)
        return 0
    settings = _settings(args)
    if args.command == "train":
        from sample_ml.pipelines.train import train

        path = train(settings, args.output)
        print(f"model bundle written to {path}")
        return 0
    if args.command == "evaluate":
        from sample_ml.pipelines.evaluate import evaluate

        report = evaluate(args.model_dir, settings, args.output)
        print(json.dumps({"model": report["model"], "baseline": report["baseline"], "gate": report["gate"]}, indent=2))
        return 0
    if args.command == "predict":
        from sample_ml.pipelines.predict import predict

        predict(args.model_dir, settings.data, args.output)
        return 0
    if args.command == "drift":
        from sample_ml.monitoring.report import check_drift

        drift = check_drift(args.model_dir, settings.data, args.output, settings.drift)
        drifted = ", ".join(drift.drifted_features) or "none"
        print(f"{'DRIFT' if drift.drifted else 'no drift'}: drifted features {drifted}; report in {args.output}")
        return 0
    if args.command == "retrain":
        from sample_ml.pipelines.retrain import retrain

        new_data = settings.data if args.loader or args.source or args.table else None
        logged = DataConfig("predictions", {"url": args.predictions}) if args.predictions else None
        decision = retrain(
            args.model_dir,
            settings,
            args.output,
            new_data=new_data,
            drift_data=logged,
            settings_file=args.config,
            force=args.force,
        )
        print(f"{decision.outcome}: {decision.message}")
        update = f"; files to commit in {args.output}/update" if decision.accepted else ""
        print(f"decision in {args.output}/decision.json{update}")
        return 0
    if args.command == "fingerprint":
        from sample_ml.pipelines.bundle import fingerprint
        from sample_ml.pipelines.common import make_loader

        frame = make_loader(settings.data).load()
        text = json.dumps({"fingerprint": fingerprint(frame), "rows": len(frame)})
        if args.output:
            os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
            with open(args.output, "w", encoding="utf-8") as out:
                out.write(text + "\n")
        print(text)
        return 0
    if args.command == "compare":
        from sample_ml.pipelines.evaluate import compare

        print(f"{'model':16} {'rmse':>8} {'mae':>8} {'r2':>7}")
        for row in compare(settings):
            print(f"{row['model']:16} {row['rmse']:8.2f} {row['mae']:8.2f} {row['r2']:7.3f}")
        return 0
    raise AssertionError(f"unhandled command {args.command}")  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
