"""The bring-your-own-model contract: what the toolkit calls in a project, checked with one clear
line per gap (``python -m cicd.contract``, ``nox -s contract``, and part of ``lint``).

The names come from the spec (``package``, ``import_name``, ``retrain.settings``); the contract
itself is written out in cicd/README.md, "Using Trainyard for your model". Commands are checked
by asking them for ``--help``, so the package must be importable where this runs: in the build
image (``lint``) or in a venv with the package installed (``nox -s contract``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from cicd import proc
from cicd.errors import ConfigError, report, run_cli

VERSION_LINE = re.compile(r'(?m)^version\s*=\s*"[^"]*"')  # the one line a release stamps its version into
REQUIREMENTS = ("default.txt", "test.txt", "dev.txt")  # the release image, the test sessions, the build image


@dataclass(frozen=True)
class Command:
    name: str
    flags: tuple[str, ...]
    use: str  # what the toolkit does with it, for the gap's line
    required: bool = True


# What the toolkit runs as ``python -m <import_name>.run <command>``, with the flags it passes.
COMMANDS = (
    Command("train", ("--config", "--output"), "release trains the model: `train --config S --output DIR`"),
    Command(
        "evaluate",
        ("--config", "--model-dir", "--output"),
        "release gates the model: `evaluate --config S --model-dir DIR --output OUT` writes OUT/metrics.json "
        "and exits 1 when the gate fails",
    ),
    Command("serve", ("--model-dir", "--host", "--port"), "the release image's service: `serve`"),
    Command(
        "drift",
        ("--config", "--model-dir", "--loader", "--source", "--output"),
        "`nox -s drift` and `retrain`: `drift --config S --model-dir DIR --loader predictions --source URL "
        "--output OUT`",
    ),
    Command(
        "retrain",
        ("--config", "--model-dir", "--output", "--force"),
        "`nox -s retrain`: `retrain --config S --model-dir DIR --output OUT [--force]` writes OUT/decision.json",
    ),
    Command(
        "fingerprint",
        ("--config", "--output"),
        "training is reused only when the data's fingerprint is known: `fingerprint --config S --output F`",
        required=False,
    ),
)
# What each test suite is given, and so must accept (a pytest option its conftest adds).
SUITES = {
    "tests/unit": (),
    "tests/integration/release_image": ("--release-image",),
    "tests/acceptance": ("--base-url", "--expected-digest"),
}


def _help(root: Path, package: Path, module: str, *args: str) -> proc.Completed:
    """``--help`` of the project's command: its whole text in ``output``, stderr's tail in ``tail``."""
    path = os.pathsep.join(p for p in (str(package), os.environ.get("PYTHONPATH", "")) if p)  # the source layout
    return proc.run(
        [sys.executable, "-m", module, *args, "--help"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": path},
        timeout=120,
        stream=False,
        keep_output=True,
    )


def check(root: Path, package_dir: str, import_name: str, settings: str) -> tuple[list[str], list[str]]:
    """The gaps (each one line: what is missing, where, and what the toolkit needs it for) and the
    notes (optional parts left out, and what that costs)."""
    gaps: list[str] = []
    notes: list[str] = []
    package = root / package_dir
    pyproject = package / "pyproject.toml"
    if not pyproject.is_file():
        gaps.append(f"{pyproject.relative_to(root)}: missing; the release builds the package's wheel from it")
    elif len(VERSION_LINE.findall(pyproject.read_text())) != 1:
        gaps.append(
            f'{pyproject.relative_to(root)}: needs exactly one static `version = "..."` line (releases stamp it)'
        )
    for name in REQUIREMENTS:
        path = package / "requirements" / name
        if not path.is_file():
            gaps.append(f"{path.relative_to(root)}: missing; pinned requirements (default: runtime, test, dev)")
    module = f"{import_name}.run"
    top = _help(root, package, module)
    if not top.ok:
        gaps.append(
            f"`python -m {module} --help` fails (exit {top.exit_code}): the toolkit runs the project's commands "
            f"through {module}; {(top.tail or ['no output'])[-1].strip()}"
        )
    else:
        for command in COMMANDS:
            found = _help(root, package, module, command.name)
            text = found.output if found.ok else ""
            missing = [flag for flag in command.flags if not re.search(rf"(?<![\w-]){re.escape(flag)}\b", text)]
            if found.ok and not missing:
                continue
            what = "no such command" if not found.ok else f"no {', '.join(missing)}"
            line = f"`python -m {module} {command.name}`: {what}; {command.use}"
            (gaps if command.required else notes).append(line)
    conftests = (
        "\n".join(p.read_text() for p in (root / "tests").rglob("conftest.py")) if (root / "tests").is_dir() else ""
    )
    for suite, options in SUITES.items():
        if not (root / suite).is_dir():
            given = f"given {', '.join(options)}" if options else "in the build image"
            gaps.append(f"{suite}/: missing; the toolkit runs it ({given})")
            continue
        absent = [o for o in options if not re.search(rf"addoption\(\s*[\"']{re.escape(o)}[\"']", conftests)]
        if absent:
            gaps.append(
                f"{suite}/: no conftest adds {', '.join(absent)} (pytest `parser.addoption`); the toolkit passes it"
            )
    if not (root / settings).is_file():
        notes.append(
            f"{settings}: missing (retrain.settings); release trains on the command's defaults and retrain cannot run"
        )
    return gaps, notes


def main(argv: list[str] | None = None) -> int:
    from cicd.config import load_config

    parser = argparse.ArgumentParser(prog="python -m cicd.contract", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the project's folder (default: here)")
    root = parser.parse_args(argv).root.resolve()
    spec = root / "cicd" / "pipeline.yaml"
    if not spec.is_file():
        raise ConfigError(f"no cicd/pipeline.yaml under {root}; pass --root with the project's folder")
    cfg = load_config(spec, env={})
    gaps, notes = check(root, cfg.package, cfg.import_name, cfg.retrain.settings)
    for note in notes:
        print(f"note: {note}")
    return report([f"contract: {gap}" for gap in gaps], f"{cfg.import_name} meets the contract (cicd/README.md)")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
