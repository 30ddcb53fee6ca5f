"""One source of truth, checked: the CI files must call exactly the sessions of the flow.

Each job of ``.github/workflows/pipeline.yml`` and ``azure-pipelines.yml`` names the row it
runs in ``TRAINYARD_ROW``; its ``nox -s ...`` commands must equal that row of ``flow`` in
``cicd/pipeline.yaml``, and every session they name must exist in ``noxfile.py``. Pure: it reads
texts and returns problems (``python -m cicd.ci_files`` in ``lint`` and a unit test run it).
"""

from __future__ import annotations

import argparse
import ast
import shlex
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from cicd.errors import ConfigError, run_cli
from cicd.plan import Step, parse_steps


def nox_steps(command: str) -> list[Step]:
    """``python -m nox -s a b -- x`` → steps a and b, each with args ``x``; other commands → []."""
    words = shlex.split(command)
    while words and words[0] in ("python", "python3", "-m"):
        words = words[1:]
    if not words or words[0] != "nox" or "-s" not in words:
        return []
    rest = words[words.index("-s") + 1 :]
    args: list[str] = []
    if "--" in rest:
        rest, args = rest[: rest.index("--")], rest[rest.index("--") + 1 :]
    return [Step(name, tuple(args)) for name in rest]


def _walk_steps(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        if "steps" in node and isinstance(node["steps"], list):
            yield from (s for s in node["steps"] if isinstance(s, Mapping))
        for value in node.values():
            yield from _walk_steps(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_steps(item)


def _row_of(job: Mapping[str, Any]) -> str | None:
    for key in ("env", "variables"):
        values = job.get(key)
        if isinstance(values, Mapping) and "TRAINYARD_ROW" in values:
            return str(values["TRAINYARD_ROW"])
    return None


def github_rows(doc: Mapping[str, Any]) -> dict[str, list[Step]]:
    rows: dict[str, list[Step]] = {}
    for job in (doc.get("jobs") or {}).values():
        row = _row_of(job)
        if row:
            rows[row] = [s for step in job.get("steps", []) for s in nox_steps(str(step.get("run", "")))]
    return rows


def azure_rows(doc: Mapping[str, Any]) -> dict[str, list[Step]]:
    rows: dict[str, list[Step]] = {}
    for stage in doc.get("stages") or []:
        for job in stage.get("jobs") or []:
            row = _row_of(job)
            if row:
                rows[row] = [s for step in _walk_steps(job) for s in nox_steps(str(step.get("script", "")))]
    return rows


def noxfile_sessions(text: str) -> set[str]:
    """Session names in a noxfile, read without importing nox."""
    names = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                if isinstance(target, ast.Attribute) and target.attr == "session":
                    names.add(node.name)
    return names


def problems(
    flow: Mapping[str, Sequence[str]], files: Mapping[str, dict[str, list[Step]]], sessions: set[str]
) -> list[str]:
    out = []
    for name, rows in files.items():
        for row, raw in flow.items():
            expected = parse_steps(row, raw)
            if row not in rows:
                out.append(f"{name}: no job runs the {row!r} row (TRAINYARD_ROW: {row})")
            elif rows[row] != expected:
                got = ", ".join(s.command() for s in rows[row]) or "nothing"
                want = ", ".join(s.command() for s in expected)
                out.append(f"{name}: the {row!r} job runs [{got}] but cicd/pipeline.yaml says [{want}]")
        for row in sorted(set(rows) - set(flow)):
            out.append(f"{name}: job row {row!r} is not a row of flow in cicd/pipeline.yaml")
        for steps in rows.values():
            for step in steps:
                if step.session not in sessions:
                    out.append(f"{name}: session {step.session!r} does not exist in noxfile.py")
    return out


def _read(root: Path, name: str) -> str:
    try:
        return (root / name).read_text()
    except OSError as err:
        raise ConfigError(
            f"cannot read {root / name} ({err.strerror}); pass --root with the project's folder"
        ) from None


def check_repository(root: Path, flow: Mapping[str, Sequence[str]]) -> list[str]:
    github = yaml.safe_load(_read(root, ".github/workflows/pipeline.yml"))
    azure = yaml.safe_load(_read(root, "azure-pipelines.yml"))
    files = {".github/workflows/pipeline.yml": github_rows(github), "azure-pipelines.yml": azure_rows(azure)}
    return problems(flow, files, noxfile_sessions(_read(root, "noxfile.py")))


def main(argv: list[str] | None = None) -> int:
    from cicd.config import load_config

    parser = argparse.ArgumentParser(prog="python -m cicd.ci_files", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="the project's folder")
    root = parser.parse_args(argv).root
    if not (root / "cicd/pipeline.yaml").is_file():
        raise ConfigError(f"no cicd/pipeline.yaml under {root}; pass --root with the project's folder")
    found = check_repository(root, load_config(root / "cicd/pipeline.yaml", env={}).flow)
    for problem in found:
        print(problem)
    print("CI files agree with cicd/pipeline.yaml" if not found else f"{len(found)} disagreement(s)")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
