"""Run every linter, inside the build image, and fail if any failed or could not run.

``python -m cicd.lint_tools [--reports DIR]``: ruff (lint + format check), mypy, bandit, hadolint on
the four Dockerfiles (each image's and its dependencies'), yamllint on the YAML files, the GitHub
and Azure schemas (check-jsonschema, offline), actionlint, the check that the CI files call
exactly the flow's sessions, the locks, and the bring-your-own-model contract (``cicd.contract``).
Each tool's output is printed and saved to ``REPORT_DIR/<tool>.txt``. A tool that is missing
counts as a failure: a check that did not run never counts as passed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from cicd import proc
from cicd.ci_files import AZURE_FILE, GITHUB_FILE
from cicd.config import load_config

DOCKERFILES = [
    f"cicd/{image}/docker/{part}" for image in ("build", "release") for part in ("deps.Dockerfile", "Dockerfile")
]
YAML = ["cicd/pipeline.yaml"]
YAMLLINT_CONFIG = "{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}, comments: {min-spaces-from-content: 1}}}"  # noqa: E501

CHECKS: list[tuple[str, list[str]]] = [
    ("ruff", ["ruff", "check", "--no-cache", "."]),
    ("ruff-format", ["ruff", "format", "--no-cache", "--check", "."]),
    ("mypy", ["mypy", "--no-incremental", "--cache-dir=/dev/null"]),
    ("bandit", ["bandit", "-q", "-r", "{source}", "cicd", "-ll"]),  # {source}: the package's code, from the spec
    ("hadolint", ["hadolint", "--failure-threshold", "warning", *DOCKERFILES]),
    ("yamllint", ["yamllint", "--strict", "-d", YAMLLINT_CONFIG, *YAML]),
    (
        "github-schema",
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", GITHUB_FILE],
    ),
    (
        "azure-schema",
        [
            "check-jsonschema",
            "--builtin-schema",
            "vendor.azure-pipelines",
            "--regex-variant",
            "nonunicode",
            AZURE_FILE,
        ],
    ),
    ("actionlint", ["actionlint", "-no-color", GITHUB_FILE]),
    ("ci-files", ["python", "-m", "cicd.ci_files"]),
    ("locks", ["python", "-m", "cicd.locks"]),
    ("contract", ["python", "-m", "cicd.contract"]),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cicd.lint_tools", description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, default=Path("reports/lint"), help="where each tool's output goes")
    reports = parser.parse_args(argv).reports
    reports.mkdir(parents=True, exist_ok=True)
    cfg = load_config(env={})
    source = f"{cfg.package}/{cfg.import_name}"
    results: list[tuple[str, str]] = []
    for name, template in CHECKS:
        cmd = [part.replace("{source}", source) for part in template]  # not format(): the yamllint config has braces
        absent = [part for part in cmd if part.endswith((".yml", ".yaml")) and not Path(part).exists()]
        if absent:  # a project with one CI system has no file for the other: nothing there to check
            results.append((name, f"not applicable (no {', '.join(absent)})"))
            continue
        extra = [f for f in (".github", AZURE_FILE) if Path(f).exists()] if name == "yamllint" else []
        if shutil.which(cmd[0]) is None:
            results.append((name, "DID NOT RUN (not installed)"))
            continue
        print(f"--- {name}: {' '.join(cmd)}", flush=True)
        with (reports / f"{name}.txt").open("w") as report:
            done = proc.run([*cmd, *extra], timeout=1800, stream=report)
        print((reports / f"{name}.txt").read_text().strip(), flush=True)
        results.append((name, "passed" if done.ok else f"FAILED (exit {done.exit_code})"))
    print("\nlint summary:")
    for name, outcome in results:
        print(f"  {name:14} {outcome}")
    missing = [name for name, outcome in results if outcome.startswith("DID NOT RUN")]
    if missing:
        print(
            f"error: {', '.join(missing)} did not run (not installed); run the linters where their pinned versions "
            "are, with nox -s lint, or pip install -r src/requirements/dev.txt",
            file=sys.stderr,
        )
        return 2
    return 0 if all(outcome == "passed" or outcome.startswith("not applicable") for _, outcome in results) else 1


if __name__ == "__main__":
    sys.exit(main())
