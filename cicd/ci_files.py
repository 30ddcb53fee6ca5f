"""One source of truth, checked: the CI files call exactly the flow's sessions, with least privilege.

Each job of ``.github/workflows/pipeline.yml`` and ``azure-pipelines.yml`` names the row it
runs in ``TRAINYARD_ROW``; its ``nox -s ...`` commands must equal that row of ``flow`` in
``cicd/pipeline.yaml``, and every session they name must exist in ``noxfile.py``.

The privilege rules (:func:`privilege_problems`): a job whose sessions are all read-only
(``READ_ONLY``, e.g. the feature row, which runs any branch's code) gets no secrets, no write
token and no persisted credentials. Only jobs that push records or branches may hold
``contents: write``; secrets live in jobs (GitHub: with an ``environment``, whose secrets they
are; Azure: variable groups linked to a job), never workflow- or pipeline-wide; GitHub actions
are pinned by commit SHA with the version in a comment; ``pip install`` always uses
``--require-hashes``; an Azure stage that gets secrets runs only for develop, main or master (its
``condition``, evaluated by :func:`azure_condition` for every kind of run). Pure: it reads texts
and returns problems (``python -m cicd.ci_files`` in ``lint`` and a unit test run it).
"""

from __future__ import annotations

import argparse
import ast
import itertools
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from cicd.errors import ConfigError, report, run_cli
from cicd.plan import Step, parse_steps

GITHUB_FILE, AZURE_FILE = ".github/workflows/pipeline.yml", "azure-pipelines.yml"  # the CI files a project may have


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
    env = job.get("env")
    if isinstance(env, Mapping) and "TRAINYARD_ROW" in env:
        return str(env["TRAINYARD_ROW"])
    return job_variables(job)[0].get("TRAINYARD_ROW")


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


# Sessions that push nothing and need no secret: a job made only of these is read-only.
READ_ONLY = frozenset({"build", "unit", "lint", "integration", "status", "tests", "contract"})
_SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
_USES = re.compile(r"^\s*(?:-\s*)?uses:\s*(?P<ref>[^\s#]+)\s*(?:#\s*(?P<comment>.*))?$")


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif node is not None:
        yield str(node)


def _pip_without_hashes(commands: Iterator[str]) -> list[str]:
    return [c for c in commands if re.search(r"\bpip3? install\b", c) and "--require-hashes" not in c]


def _read_only(steps: Sequence[Step]) -> bool:
    return bool(steps) and all(step.session in READ_ONLY for step in steps)


def _split_top(expr: str, operator: str) -> list[str]:
    """``expr`` split at ``operator`` outside parentheses and quotes."""
    parts, depth, quoted, start, at = [], 0, False, 0, 0
    while at < len(expr):
        char = expr[at]
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        elif not quoted and depth == 0 and expr.startswith(operator, at):
            parts.append(expr[start:at])
            start = at = at + len(operator)
            continue
        at += 1
    return [*parts, expr[start:]]


def _unwrapped(expr: str) -> str:
    """``expr`` without the parentheses that enclose all of it."""
    expr = expr.strip()
    while expr.startswith("(") and _closing(expr) == len(expr) - 1:
        expr = expr[1:-1].strip()
    return expr


def _closing(expr: str) -> int:
    """Where the parenthesis that opens ``expr`` closes (-1: nowhere)."""
    depth, quoted = 0, False
    for at, char in enumerate(expr):
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
            if depth == 0:
                return at
    return -1


def _github_branch_guarded(condition: str) -> bool:
    """Whether a GitHub job's ``if:`` requires ``github.ref`` to be a protected branch: one of its
    top-level ``&&`` terms is ``github.ref == '<protected>'``, or an ``||`` of only such tests."""
    expr = _unwrapped(condition.removeprefix("${{").removesuffix("}}"))
    for term in _split_top(expr, "&&"):
        tests = [_unwrapped(t) for t in _split_top(_unwrapped(term), "||")]
        if all(re.fullmatch(r"github\.ref\s*==\s*'([^']+)'", t) and t.split("'")[1] in PROTECTED for t in tests):
            return True
    return False


def github_privilege_problems(doc: Mapping[str, Any], text: str) -> list[str]:
    """Least privilege in a GitHub workflow (see the module's docstring)."""
    name = GITHUB_FILE
    out: list[str] = []
    if doc.get("permissions") != {}:
        out.append(f"{name}: top-level permissions must be {{}}, so each job grants only what it needs")
    if any("secrets." in s for s in _strings(doc.get("env"))):
        out.append(f"{name}: secrets in the workflow-level env reach every job; move them to the jobs that need them")
    for job_name, job in (doc.get("jobs") or {}).items():
        where = f"{name}: job {job_name!r}"
        steps = job.get("steps") or []
        sessions = [s for step in steps for s in nox_steps(str(step.get("run", "")))]
        read_only = _read_only(sessions)
        granted = job.get("permissions")
        if not isinstance(granted, Mapping):
            out.append(f"{where} declares no permissions mapping; grant only what it needs (e.g. contents: read)")
            granted = {}
        for scope, level in granted.items():
            if level == "write" and (read_only or scope != "contents"):
                why = "runs only read-only sessions" if read_only else "may only be granted contents: write"
                out.append(f"{where} is granted {scope}: write but {why}")
        uses_secrets = any("secrets." in s for s in _strings(job)) or job.get("secrets") == "inherit"
        if read_only and uses_secrets:
            out.append(f"{where} runs any branch's code (read-only sessions) and must get no secrets")
        elif uses_secrets and not job.get("environment"):
            out.append(f"{where} uses secrets without an environment; make them that environment's secrets")
        if (uses_secrets or job.get("environment")) and not _github_branch_guarded(str(job.get("if") or "")):
            out.append(
                f"{where} gets secrets but its `if:` lets it run on any branch; require github.ref == "
                f"{' or '.join(repr(b) for b in PROTECTED)} (and restrict its environment's deployment branches)"
            )
        for step in steps:
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                persist = (step.get("with") or {}).get("persist-credentials", True)
                if read_only and persist is not False:
                    out.append(f"{where} pushes nothing, so its checkout must set persist-credentials: false")
        for command in _pip_without_hashes(str(step.get("run", "")) for step in steps):
            out.append(f"{where} installs without --require-hashes: {command.strip()}")
    for number, line in enumerate(text.splitlines(), 1):
        found = _USES.match(line)
        if not found or found["ref"].startswith(("./", "docker://")):
            continue
        if not _SHA_PIN.match(found["ref"]):
            out.append(f"{name}:{number}: {found['ref']} must be pinned by full commit SHA (version in a comment)")
        elif not (found["comment"] or "").strip():
            out.append(f"{name}:{number}: {found['ref']} needs its version in a comment (# vX.Y.Z)")
    return out


def _azure_jobs(doc: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for stage in doc.get("stages") or []:
        yield from (job for job in stage.get("jobs") or [] if isinstance(job, Mapping))


def job_variables(job: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """An Azure job's variables (mapping or list form) and the variable groups it links."""
    variables = job.get("variables") or {}
    if isinstance(variables, Mapping):
        return {str(k): str(v) for k, v in variables.items()}, []
    values: dict[str, str] = {}
    groups: list[str] = []
    for item in variables:
        if isinstance(item, Mapping) and "group" in item:
            groups.append(str(item["group"]))
        elif isinstance(item, Mapping) and "name" in item:
            values[str(item["name"])] = str(item.get("value", ""))
    return values, groups


# --- Azure stage conditions --------------------------------------------------------------------
# Enough of Azure's expression language to decide, for a stage, which runs would run it: calls of
# the functions below on string literals, `variables['Name']` (or `variables.Name`), and
# `${{ parameters.x }}` (template expressions, filled in first). Anything else is refused.
_EXPRESSION = re.compile(
    r"\s*(?:'(?P<text>(?:[^']|'')*)'|variables\[\s*'(?P<indexed>[^']+)'\s*\]|variables\.(?P<dotted>[\w.]+)"
    r"|(?P<word>[A-Za-z_]\w*)|(?P<mark>[(),]))"
)
_FUNCTIONS: dict[str, Any] = {
    "and": lambda *a: all(_truthy(x) for x in a),
    "or": lambda *a: any(_truthy(x) for x in a),
    "not": lambda a: not _truthy(a),
    "eq": lambda a, b: str(a).lower() == str(b).lower(),
    "ne": lambda a, b: str(a).lower() != str(b).lower(),
    "in": lambda a, *b: str(a).lower() in [str(x).lower() for x in b],
    "notin": lambda a, *b: str(a).lower() not in [str(x).lower() for x in b],
    "startswith": lambda a, b: str(a).lower().startswith(str(b).lower()),
    "endswith": lambda a, b: str(a).lower().endswith(str(b).lower()),
    "contains": lambda a, b: str(b).lower() in str(a).lower(),
    "succeeded": lambda *a: True,  # the question is what the stage's own condition lets through
    "always": lambda *a: True,
    "failed": lambda *a: False,
    "canceled": lambda *a: False,
}


def _truthy(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() not in ("", "false", "0")


def azure_condition(text: str, variables: Mapping[str, str], parameters: Mapping[str, str]) -> bool:
    """Whether an Azure ``condition`` holds for a run with ``variables`` (``Build.Reason``,
    ``Build.SourceBranch``, ...) and ``parameters``. :class:`ConfigError` for what it cannot read."""
    filled = re.sub(r"\$\{\{\s*parameters\.(\w+)\s*\}\}", lambda m: parameters.get(m.group(1), ""), text)
    tokens: list[tuple[str, str]] = []
    at = 0
    while filled[at:].strip():
        found = _EXPRESSION.match(filled, at)
        if found is None:
            raise ConfigError(f"cannot read the condition {text.strip()!r} at {filled[at:].strip()[:20]!r}")
        kind = str(found.lastgroup)
        tokens.append((kind, found.group(kind)))
        at = found.end()
    value, rest = _expression(tokens, text, {k.lower(): v for k, v in variables.items()})
    if rest:
        raise ConfigError(f"cannot read the condition {text.strip()!r}: it goes on after its end")
    return _truthy(value)


def _expression(
    tokens: list[tuple[str, str]], text: str, variables: Mapping[str, str]
) -> tuple[Any, list[tuple[str, str]]]:
    if not tokens:
        raise ConfigError(f"cannot read the condition {text.strip()!r}: it ends early")
    (kind, value), rest = tokens[0], tokens[1:]
    if kind == "text":
        return value.replace("''", "'"), rest
    if kind in ("indexed", "dotted"):
        return variables.get(value.lower(), ""), rest
    if kind != "word" or value.lower() not in _FUNCTIONS or not rest or rest[0] != ("mark", "("):
        raise ConfigError(f"cannot read the condition {text.strip()!r}: {value!r} is no function it knows")
    args: list[Any] = []
    rest = rest[1:]
    while rest and rest[0] != ("mark", ")"):
        arg, rest = _expression(rest, text, variables)
        args.append(arg)
        if rest and rest[0] == ("mark", ","):
            rest = rest[1:]
    if not rest:
        raise ConfigError(f"cannot read the condition {text.strip()!r}: a ( is never closed")
    return _FUNCTIONS[value.lower()](*args), rest[1:]


PROTECTED = ("refs/heads/develop", "refs/heads/main", "refs/heads/master")  # branches only reviews reach
# Runs Azure starts, and branches a run may be of: a pushed branch of anyone's, a pull request's merge.
REASONS = ("IndividualCI", "BatchedCI", "PullRequest", "Manual", "Schedule", "ResourceTrigger")
UNPROTECTED = ("refs/heads/feature/x", "refs/heads/retrain/2026-01-05", "refs/pull/1/merge")


def _azure_secrets(job: Mapping[str, Any]) -> tuple[list[str], bool]:
    """What secrets an Azure job gets: the variable groups it links, and whether a step's ``env``
    reads a variable (``$(...)``)."""
    in_env = any("$(" in s for step in _walk_steps(job) for s in _strings(step.get("env")))
    return job_variables(job)[1], in_env


def _azure_branch_problems(doc: Mapping[str, Any]) -> list[str]:
    """A stage whose jobs get secrets (a variable group, or ``$(...)`` in a step's ``env``) must run
    only for develop, main or master: its condition is evaluated for every kind of run, every
    parameter value and an unprotected branch. (The variable groups' own *Branch control* check,
    set in Azure, is what a branch's edited copy of this file cannot remove: README.)"""
    values = {
        str(p.get("name")): [str(v) for v in p.get("values") or [p.get("default", "")]]
        for p in doc.get("parameters") or []
        if isinstance(p, Mapping)
    }
    choices = [dict(zip(values, combo, strict=True)) for combo in itertools.product(*values.values())] or [{}]
    out = []
    for stage in doc.get("stages") or []:
        held = [_azure_secrets(job) for job in stage.get("jobs") or [] if isinstance(job, Mapping)]
        groups = sorted({g for job_groups, _ in held for g in job_groups})
        if not (groups or any(in_env for _, in_env in held)):
            continue
        condition = str(stage.get("condition") or "succeeded()")
        run = next(
            (
                (reason, branch)
                for reason in REASONS
                for branch in UNPROTECTED
                for parameters in choices
                if azure_condition(condition, {"Build.Reason": reason, "Build.SourceBranch": branch}, parameters)
            ),
            None,
        )
        if run is not None:
            reason, branch = run
            what = ", ".join(groups) if groups else "secrets in its steps' env"
            out.append(
                f"{AZURE_FILE}: stage {stage.get('stage')!r} gets {what} but also runs for {branch} ({reason}); "
                f"give it a condition on {', '.join(b.removeprefix('refs/heads/') for b in PROTECTED)} "
                "(and Branch control on the variable groups: cicd/README.md, Azure Pipelines)"
            )
    return out


def azure_privilege_problems(doc: Mapping[str, Any]) -> list[str]:
    """Least privilege in an Azure pipeline (see the module's docstring)."""
    name = AZURE_FILE
    out: list[str] = []
    top = doc.get("variables") or []
    if isinstance(top, list) and any(isinstance(v, Mapping) and "group" in v for v in top):
        out.append(f"{name}: a pipeline-wide variable group reaches every stage; link it to the jobs that need it")
    for stage in doc.get("stages") or []:
        stage_vars = stage.get("variables") or []
        if isinstance(stage_vars, list) and any(isinstance(v, Mapping) and "group" in v for v in stage_vars):
            out.append(f"{name}: stage {stage.get('stage')!r} links a variable group; link it to the job that needs it")
    out += _azure_branch_problems(doc)
    for job in _azure_jobs(doc):
        where = f"{name}: job {job.get('job') or job.get('deployment')!r}"
        steps = list(_walk_steps(job))
        sessions = [s for step in steps for s in nox_steps(str(step.get("script", "")))]
        read_only = _read_only(sessions)
        groups, secret_env = _azure_secrets(job)
        if read_only and (groups or secret_env):
            out.append(f"{where} runs any branch's code (read-only sessions) and must get no variable group or secret")
        for step in steps:
            if "checkout" in step and read_only and str(step.get("persistCredentials", "false")).lower() == "true":
                out.append(f"{where} pushes nothing, so its checkout must not set persistCredentials: true")
        for command in _pip_without_hashes(str(step.get("script", "")) for step in steps):
            out.append(f"{where} installs without --require-hashes: {command.strip()}")
    return out


def _read(root: Path, name: str) -> str:
    try:
        return (root / name).read_text()
    except OSError as err:
        raise ConfigError(
            f"cannot read {root / name} ({err.strerror}); pass --root with the project's folder"
        ) from None


def check_repository(root: Path, flow: Mapping[str, Sequence[str]]) -> list[str]:
    """The CI files the project has (GitHub's, Azure's, or both; at least one) against the flow."""
    present = [name for name in (GITHUB_FILE, AZURE_FILE) if (root / name).is_file()]
    if not present:
        return [f"no CI file: neither {GITHUB_FILE} nor {AZURE_FILE}; the flow runs nowhere but by hand"]
    texts = {name: _read(root, name) for name in present}
    docs = {name: yaml.safe_load(text) for name, text in texts.items()}
    files = {name: github_rows(doc) if name == GITHUB_FILE else azure_rows(doc) for name, doc in docs.items()}
    return [
        *problems(flow, files, noxfile_sessions(_read(root, "noxfile.py"))),
        *(github_privilege_problems(docs[GITHUB_FILE], texts[GITHUB_FILE]) if GITHUB_FILE in docs else []),
        *(azure_privilege_problems(docs[AZURE_FILE]) if AZURE_FILE in docs else []),
    ]


def main(argv: list[str] | None = None) -> int:
    from cicd.config import load_config

    parser = argparse.ArgumentParser(prog="python -m cicd.ci_files", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="the project's folder")
    root = parser.parse_args(argv).root
    if not (root / "cicd/pipeline.yaml").is_file():
        raise ConfigError(f"no cicd/pipeline.yaml under {root}; pass --root with the project's folder")
    found = check_repository(root, load_config(root / "cicd/pipeline.yaml", env={}).flow)
    return report(found, "CI files agree with cicd/pipeline.yaml, least privilege held")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
