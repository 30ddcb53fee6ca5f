"""Command line of the toolkit: ``python -m cicd <command>``; the nox sessions call this.

Errors the user can act on print one line (``error: ...``) and exit 2 (1 for failed tests or
a failed gate); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cicd.errors import run_cli

ROOT = Path(__file__).resolve().parents[1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cicd", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="pipeline spec (default: cicd/pipeline.yaml)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository to work on (default: this one)")
    parser.add_argument("--branch", help="act as if on this branch (default: CI variables, then git)")
    parser.add_argument("--dry-run", action="store_true", help="log writes to git, Docker and registries instead")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="the whole flow in a throwaway copy of this repository; print a report")
    demo.add_argument("--workdir", type=Path, default=None, help="where the copy goes (default: a new temp folder)")
    demo.add_argument("--keep", action="store_true", help="leave the demo's staging and production running")
    demo.add_argument("--local", action="store_true", help="no Docker: the sample CLI's train/evaluate/predict/serve")
    sub.add_parser("config", help="print the resolved pipeline spec")
    sub.add_parser("version", help="print the version the current branch would release")
    sub.add_parser("build", help="build the wheel and the build image")
    for name, text in (
        ("unit", "unit tests inside the build image"),
        ("integration", "integration tests against this commit's release image"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments")
    sub.add_parser("lint", help="ruff, mypy, bandit, hadolint, yamllint inside the build image")
    sub.add_parser("release", help="train + gate in the build image, build, push and record the release image")
    sub.add_parser("merge", help="merge this branch into its target once its checks passed").add_argument(
        "source", nargs="?", help="branch to merge (default: the current one)"
    )
    for name, text in (
        ("deploy", "deploy this commit's release image to an environment, by digest"),
        ("promote", "deploy what Staging runs to an environment (production); tag the Staging commit"),
        ("rollback", "redeploy an environment's previous recorded digest"),
    ):
        sub.add_parser(name, help=text).add_argument("environment", help="environment name from pipeline.yaml")
    p = sub.add_parser("acceptance", help="acceptance tests against an environment's deployed service")
    p.add_argument("environment")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments")
    sub.add_parser("status", help="for each environment: commit, version, digest and live health")
    p = sub.add_parser("retrain", help="drift check and champion/challenger; an accepted model goes to a new branch")
    p.add_argument("--force", action="store_true", help="train and compare a challenger even without drift")
    p.add_argument("--model-dir", type=Path, help="the champion's bundle (default: trained from this commit)")
    p.add_argument("--date", help=argparse.SUPPRESS)  # fixes {date} in the branch name (tests)
    data = p.add_argument_group("new data (default: the retrain section of the model settings)")
    data.add_argument("--loader", help="csv or sql")
    data.add_argument("--source", help="CSV path or SQLAlchemy URL")
    data.add_argument("--table", help="table for the sql loader")
    p = sub.add_parser("ci", help="run the sessions of the flow's row for this branch and event")
    p.add_argument("--plan", action="store_true", help="print the sessions without running them")
    p.add_argument("--branch", dest="ci_branch", help="the branch (default: the CI's variables, then git)")
    p.add_argument(
        "--event",
        choices=["push", "pull_request", "manual", "schedule"],
        help="default: from the CI's variables, else push",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _dispatch(args))


def _dispatch(args: argparse.Namespace) -> int:
    root = args.root.resolve()
    if args.command == "demo":
        from cicd.demo import report, run_flow, run_local

        if args.local:
            stages = run_local(root, args.workdir or root / "artifacts" / "demo")
        else:
            stages = run_flow(root, args.workdir, args.keep)
        print(report(stages))
        return 0 if all(s.ok for s in stages) else 1

    from cicd import flow
    from cicd.config import load_config

    config = load_config(args.config or root / "cicd" / "pipeline.yaml")
    ctx = flow.Context(config=config, root=root, dry_run=args.dry_run, branch_override=args.branch)
    if args.command == "config":
        print(config)
    elif args.command == "version":
        print(flow.compute_version(ctx, ctx.branch()))
    elif args.command == "build":
        flow.build_image(ctx)
    elif args.command == "unit":
        flow.unit(ctx, _strip(args.pytest_args))
    elif args.command == "lint":
        flow.lint(ctx)
    elif args.command == "release":
        record = flow.release(ctx)
        print(json.dumps({"version": record.version, "reference": record.reference, "tag": record.tag}))
    elif args.command == "retrain":
        from cicd.retrain import retrain

        if args.source and Path(args.source).exists():  # the retrain step runs in the repository root
            args.source = str(Path(args.source).resolve())
        data_args = [f"--{k}={getattr(args, k)}" for k in ("loader", "source", "table") if getattr(args, k)]
        result = retrain(ctx, force=args.force, data_args=data_args, champion=args.model_dir, date=args.date)
        print(json.dumps(result))
    elif args.command in ("deploy", "promote", "rollback", "acceptance", "status"):
        from cicd import environments

        if args.command == "deploy":
            environments.deploy(ctx, args.environment)
        elif args.command == "promote":
            environments.promote(ctx, args.environment)
        elif args.command == "rollback":
            environments.rollback(ctx, args.environment)
        elif args.command == "acceptance":
            environments.acceptance(ctx, args.environment, _strip(args.pytest_args))
        else:
            print(environments.format_status(environments.status(ctx)))
    elif args.command == "ci":
        return _ci(ctx, args)
    elif args.command == "merge":
        flow.merge(ctx, args.source)
    elif args.command == "integration":
        flow.integration(ctx, _strip(args.pytest_args))
    return 0


def _ci(ctx: Any, args: argparse.Namespace) -> int:
    import subprocess

    from cicd.gitops import event_from_env
    from cicd.plan import plan

    branch = args.ci_branch or ctx.branch()
    event = args.event or event_from_env(ctx.env) or "push"
    row, steps = plan(ctx.config.flow, ctx.config.branches, branch, event)
    print(f"branch {branch!r}, event {event}: row {row!r}")
    if not steps:
        print(f"nothing to run: flow.{row} in {ctx.config.path} lists no sessions")
        return 0
    for step in steps:
        print(f"  {step.command()}")
    if args.plan:
        return 0
    for step in steps:
        print(f"\n=== {step.command()}", flush=True)
        code = subprocess.run(sub_command(args, branch, step.session, step.args), check=False).returncode
        if code != 0:
            print(f"error: {step.command()} failed (exit {code}); the rest of the row did not run", file=sys.stderr)
            return code
    return 0


def sub_command(args: argparse.Namespace, branch: str, session: str, session_args: Sequence[str]) -> list[str]:
    """The command ``ci`` runs for one session: every global option reaches it (a ``--dry-run ci``
    stays dry, ``--config X ci`` keeps using X)."""
    cmd = [sys.executable, "-m", "cicd", "--root", str(args.root.resolve()), "--branch", branch]
    if args.config is not None:
        cmd += ["--config", str(args.config.resolve())]
    if args.dry_run:
        cmd.append("--dry-run")
    return [*cmd, session, *session_args]


def _strip(extra: list[str]) -> list[str]:
    return extra[1:] if extra[:1] == ["--"] else extra


if __name__ == "__main__":
    sys.exit(main())
