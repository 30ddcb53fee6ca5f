"""Command line of the toolkit: ``python -m cicd <command>``; the nox sessions call this.

Progress goes to stderr; with ``--json`` the command's result is printed on stdout as one JSON
document (with the writes it made, or would have made with ``--dry-run``), for CI to keep and
scripts to read. Errors the user can act on print one line (``error: ...``) and exit 2 (1 for
failed tests or a failed gate); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cicd import proc
from cicd.errors import ConfigError, run_cli
from cicd.writes import names_a_file

ROOT = Path(__file__).resolve().parents[1]


def _global_options(parser: argparse.ArgumentParser, *, top: bool, branch: bool = True) -> None:
    """The options every command takes, before or after its name (``nox -s release -- --dry-run``).

    After the name they default to "not given", so the value given before it is kept.
    """

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    parser.add_argument(
        "--config", type=Path, default=default(None), help="pipeline spec (default: cicd/pipeline.yaml)"
    )
    parser.add_argument(
        "--root", type=Path, default=default(ROOT), help="the repository to work on (default: this one)"
    )
    if branch:
        parser.add_argument("--branch", default=default(None), help="act as if on this branch (default: CI, then git)")
    for flag, text in (
        ("--dry-run", "say every write to git, Docker and registries instead of doing it"),
        ("--json", "print the result as JSON on stdout (progress goes to stderr)"),
        ("--quiet", "progress: warnings only"),
        ("--no-cache", "rerun every stage even when a verified pass of the same inputs exists"),
    ):
        parser.add_argument(flag, action="store_true", default=default(False), help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cicd", description=__doc__.splitlines()[0])
    _global_options(parser, top=True)
    common, without_branch = argparse.ArgumentParser(add_help=False), argparse.ArgumentParser(add_help=False)
    _global_options(common, top=False)
    _global_options(without_branch, top=False, branch=False)  # ``ci`` has its own --branch
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    class Sub:
        @staticmethod
        def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
            parents = [without_branch if name == "ci" else common]
            made: argparse.ArgumentParser = subparsers.add_parser(name, parents=parents, **kwargs)
            return made

    sub = Sub()
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
    sub.add_parser("doctor", help="what this project still needs before its flow runs, each with its command")
    p = sub.add_parser("retrain", help="drift check and champion/challenger; an accepted model goes to a new branch")
    p.add_argument("--force", action="store_true", help="train and compare a challenger even without drift")
    p.add_argument("--model-dir", type=Path, help="the champion's bundle (default: trained from this commit)")
    p.add_argument("--date", help=argparse.SUPPRESS)  # fixes {date} in the branch name (tests)
    data = p.add_argument_group("new data (default: the retrain section of the model settings)")
    data.add_argument("--loader", help="csv or sql")
    data.add_argument(
        "--source",
        help="CSV path, SQLAlchemy URL, or an environment: the drift check reads its prediction log (run this from "
        "the commit it serves); the challenger trains on the labelled data of the model settings",
    )
    data.add_argument("--table", help="table for the sql loader")
    data.add_argument(
        "--predictions", metavar="URL", help="check drift on this prediction log (a database URL) instead"
    )
    p = sub.add_parser("drift", help="drift check on an environment's prediction log against the model it serves")
    p.add_argument("--source", required=True, metavar="ENVIRONMENT", help="the environment whose log to check")
    p = sub.add_parser("ci", help="run the sessions of the flow's row for this branch and event")
    p.add_argument("--plan", action="store_true", help="print the sessions without running them")
    p.add_argument("--branch", dest="ci_branch", help="the branch (default: the CI's variables, then git)")
    p.add_argument(
        "--event",
        choices=["push", "pull_request", "manual", "schedule"],
        help="default: from the CI's variables, else push",
    )
    return parser


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Progress to whatever ``sys.stderr`` is when a line is written, not when logging was set up
    (a caller that swaps stderr, such as a test, never leaves the handler on a closed stream)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        handlers=[_Stderr()], format="%(message)s", level=logging.WARNING if args.quiet else logging.INFO, force=True
    )
    return run_cli(lambda: _dispatch(args))


def plain(value: Any) -> Any:
    """A result as JSON-ready data: dataclasses (records, stages) become mappings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _dispatch(args: argparse.Namespace) -> int:
    root = args.root.resolve()
    if args.command == "demo":
        from cicd.demo import report, run_flow, run_local

        if args.local:
            stages = run_local(root, args.workdir or root / "artifacts" / "demo")
        else:
            stages = run_flow(root, args.workdir, args.keep)
        ok = all(s.ok for s in stages)
        print(json.dumps({"ok": ok, "stages": plain(stages)}, indent=2) if args.json else report(stages))
        return 0 if ok else 1

    from cicd.config import load_config
    from cicd.context import Context

    config = load_config(args.config or root / "cicd" / "pipeline.yaml")
    ctx = Context(config=config, root=root, dry_run=args.dry_run, branch_override=args.branch)
    if args.no_cache:
        from cicd.results import NO_CACHE

        ctx.env[NO_CACHE] = "1"
    try:
        code, result, human = _run(ctx, args)
        doc = {"command": args.command, "dry_run": args.dry_run, "result": plain(result), "writes": ctx.writes.journal}
        text = json.dumps(doc, indent=2, sort_keys=True, default=str)
        if args.command not in ("config", "version", "doctor"):  # these only read
            _keep(root, args, text)
        if args.json:
            print(text)
        elif human is not None:
            print(human)
        return code
    finally:
        ctx.close()


def _keep(root: Path, args: argparse.Namespace, text: str) -> None:
    """Every result is also kept as ``artifacts/reports/results/<command>[-<env>].json``: the CI
    jobs upload ``artifacts/reports/``, so each run's results stay with it."""
    name = args.command + (f"-{args.environment}" if getattr(args, "environment", None) else "")
    folder = root / "artifacts" / "reports" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(text + "\n", encoding="utf-8")


def _run(ctx: Any, args: argparse.Namespace) -> tuple[int, Any, str | None]:
    """Run the command: its exit code, its result (data) and what to print without ``--json``."""
    from cicd import flow

    command = args.command
    if command == "config":
        return 0, ctx.config, str(ctx.config)
    if command == "version":
        version = str(flow.compute_version(ctx, ctx.branch()))
        return 0, {"version": version}, version
    if command == "ci":
        return _ci(ctx, args)
    if command == "doctor":
        from cicd import doctor

        checks = doctor.run(ctx)
        return (1 if any(c.ok is False for c in checks) else 0), checks, doctor.report(checks)
    if command == "retrain":
        from cicd.retrain import retrain

        environment = _environment_source(ctx, args)
        if args.source and names_a_file(args.source, or_folder=True):  # the retrain step runs in the repository root
            args.source = str(Path(args.source).resolve())
        if args.predictions and environment:
            raise ConfigError("--predictions and --source <environment> both name a log: give one")
        named = ("loader", "source", "table", "predictions")
        data_args = [f"--{k}={getattr(args, k)}" for k in named if getattr(args, k)]
        result = retrain(
            ctx, force=args.force, data_args=data_args, champion=args.model_dir, date=args.date, environment=environment
        )
        return 0, result, None
    if command == "drift":
        from cicd.retrain import drift

        environment = _environment_source(ctx, args)
        if environment is None:
            raise ConfigError(
                f"--source must name an environment of {ctx.config.path} ({', '.join(ctx.config.environments)}); "
                f"for a file or a database, run the project's own drift command "
                f"(`python -m {ctx.config.import_name}.run drift --help`)"
            )
        report = drift(ctx, environment)
        verdict = "DRIFT" if report["drifted"] else "no drift"
        features = ", ".join(report["drifted_features"]) or "none"
        human = f"{environment}: {verdict} in {report['rows']} logged rows (drifted: {features}); {report['report']}"
        return 0, report, human
    if command in ("deploy", "promote", "rollback", "acceptance", "status"):
        from cicd import environments

        if command == "status":
            rows = environments.status(ctx)
            unasked = [r["environment"] for r in rows if not r["asked"]]
            if unasked:  # a table of dashes is no status: said, and not exit 0
                logging.getLogger("cicd").error(
                    "error: could not ask the host of %s (see the warnings above): the status is incomplete",
                    ", ".join(unasked),
                )
            return (2 if unasked else 0), rows, environments.format_status(rows)
        if command == "acceptance":
            return 0, environments.acceptance(ctx, args.environment, _strip(args.pytest_args)), None
        stage = {"deploy": environments.deploy, "promote": environments.promote, "rollback": environments.rollback}
        return 0, stage[command](ctx, args.environment), None
    if command in ("unit", "integration"):
        run = flow.unit if command == "unit" else flow.integration
        return 0, run(ctx, _strip(args.pytest_args)), None
    if command == "merge":
        return 0, flow.merge(ctx, args.source), None
    stages = {"build": flow.build_image, "lint": flow.lint, "release": flow.release}
    return 0, stages[command](ctx), None


def _environment_source(ctx: Any, args: argparse.Namespace) -> str | None:
    """``--source <environment>``: that environment's prediction log (None: a file, a URL or nothing)."""
    source = args.source
    if not source or source not in ctx.config.environments:
        return None
    if names_a_file(source, or_folder=True):
        raise ConfigError(
            f"--source {source} is both an environment and a path here; say ./{source} for the file, "
            "or rename one of them"
        )
    if getattr(args, "loader", None) or getattr(args, "table", None):
        raise ConfigError(f"--loader and --table do not apply to an environment's prediction log (--source {source})")
    args.source = None
    return str(source)


def _ci(ctx: Any, args: argparse.Namespace) -> tuple[int, Any, str | None]:
    from cicd.gitops import event_from_env
    from cicd.plan import plan

    log = logging.getLogger("cicd.ci")
    branch = args.ci_branch or ctx.branch()
    event = args.event or event_from_env(ctx.env) or "push"
    row, steps = plan(ctx.config.flow, ctx.config.branches, branch, event)
    result: dict[str, Any] = {"branch": branch, "event": event, "row": row, "steps": [], "ok": True}
    log.info("branch %r, event %s: row %r", branch, event, row)
    if not steps:
        log.info("nothing to run: flow.%s in %s lists no sessions", row, ctx.config.path)
        return 0, result, None
    if args.plan:  # printed once, on stdout
        result["steps"] = [{"command": s.command(), "ran": False} for s in steps]
        return 0, result, "\n".join(s.command() for s in steps)
    for step in steps:
        log.info("  %s", step.command())
    for step in steps:
        log.info("\n=== %s", step.command())
        # Each session's own progress streams to stderr; its stdout (its result with --json) is read.
        done = proc.run(sub_command(args, branch, step.session, step.args), timeout=24 * 3600, keep_output=args.json)
        entry: dict[str, Any] = {"command": step.command(), "exit_code": done.exit_code}
        if args.json:
            try:
                entry["result"] = json.loads(done.output)
            except ValueError:
                entry["result"] = None
        result["steps"].append(entry)
        if not done.ok:
            log.error("error: %s failed (exit %d); the rest of the row did not run", step.command(), done.exit_code)
            result["ok"] = False
            return done.exit_code, result, None
    return 0, result, None


def sub_command(args: argparse.Namespace, branch: str, session: str, session_args: Sequence[str]) -> list[str]:
    """The command ``ci`` runs for one session: every global option reaches it (a ``--dry-run ci``
    stays dry, ``--config X ci`` keeps using X)."""
    cmd = [sys.executable, "-m", "cicd", "--root", str(args.root.resolve()), "--branch", branch]
    if args.config is not None:
        cmd += ["--config", str(args.config.resolve())]
    if args.dry_run:
        cmd.append("--dry-run")
    if args.json:
        cmd.append("--json")
    if args.no_cache:
        cmd.append("--no-cache")
    return [*cmd, session, *session_args]


def _strip(extra: list[str]) -> list[str]:
    return extra[1:] if extra[:1] == ["--"] else extra


if __name__ == "__main__":
    sys.exit(main())
