"""No traceback for a user's mistake, from any entry point.

Every ``python -m`` module and console script of ``cicd``, ``sample_ml`` and ``benchmarks`` is
run for real, as a user on a fresh machine would run it (a new empty HOME: no git identity, no
caches), with a bad argument, a missing file and, where it uses one, a missing component (no
Docker engine, no git repository, no service). Each must end with one ``error:`` line that names
the problem and what to do, and exit 2 (a health probe says unhealthy with 1, as Docker expects).
The table is checked against the entry points found in the tree, so a new one cannot be missed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from cicd.http import free_port
from tests.integration.conftest import ROOT

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


@dataclass(frozen=True)
class Case:
    module: str
    kind: str  # bad argument | missing file | missing component
    args: tuple[str, ...]
    says: str  # a regex the error line must match: the problem and the fix
    env: tuple[tuple[str, str], ...] = ()
    exit_code: int = 2
    cwd: str = "empty"  # empty: a folder with nothing in it; root: the repository


def case(
    module: str,
    kind: str,
    *args: str,
    says: str,
    exit_code: int = 2,
    cwd: str = "empty",
    env: dict[str, str] | None = None,
) -> Case:
    return Case(module, kind, args, says, tuple((env or {}).items()), exit_code, cwd)


BAD_ARG = "unrecognized arguments: --no-such-flag|invalid choice|expected one argument"
CASES = [
    # the toolkit
    case("cicd", "bad argument", "--no-such-flag", "status", says=BAD_ARG),
    case(
        "cicd",
        "missing file",
        "--config",
        "/nonexistent/pipeline.yaml",
        "status",
        says=r"/nonexistent/pipeline.yaml does not exist.*--config",
    ),
    case(
        "cicd",
        "missing component",
        "--root",
        "{tmp}",
        "--config",
        "{root}/cicd/pipeline.yaml",
        "status",
        says=r"not inside a git repository.*clone",
    ),
    case(
        "cicd", "missing component", "build", says=r"no Docker engine answers.*start dockerd", cwd="root", env=NO_ENGINE
    ),
    case(
        "cicd", "missing file", "merge", "no-such-branch", says=r"no branch.*no-such-branch.*check the name", cwd="root"
    ),
    case("cicd.lint_tools", "bad argument", "--no-such-flag", says=BAD_ARG),
    case("cicd.lint_tools", "missing component", "--reports", "{tmp}/lint", says=r"did not run.*(install|nox -s lint)"),
    case("cicd.locks", "bad argument", "--no-such-flag", says=BAD_ARG),
    case("cicd.locks", "missing file", "--root", "{tmp}", says=r"no cicd/pipeline.yaml under.*--root"),
    case(
        "cicd.locks",
        "missing component",
        "--write",
        "--root",
        "{root}",
        says=r"uv is not installed.*nox -s lock",
        env={"PATH": "/nonexistent"},
    ),
    case("cicd.audit", "bad argument", "--no-such-flag", says=BAD_ARG),
    case(
        "cicd.audit",
        "missing component",
        "--reports",
        "{tmp}/a",
        says=r"pip-audit is not installed.*nox -s lint",
        env={"PATH": "/nonexistent"},
    ),
    case("cicd.audit", "missing file", "--reports", "/proc/none/a", says=r"cannot create.*/proc/none"),
    case("cicd.ci_files", "bad argument", "--no-such-flag", says=BAD_ARG),
    case("cicd.ci_files", "missing file", "--root", "{tmp}", says=r"no cicd/pipeline.yaml under.*--root"),
    case("cicd.contract", "bad argument", "--no-such-flag", says=BAD_ARG),
    case("cicd.contract", "missing file", "--root", "{tmp}", says=r"no cicd/pipeline.yaml under.*--root"),
    # the sample package
    case("sample_ml.run", "bad argument", "train", "--no-such-flag", says=BAD_ARG),
    case("sample_ml.run", "missing file", "train", "--config", "/nonexistent.yaml", says=r"/nonexistent.yaml"),
    case("sample_ml.run", "missing file", "train", "--source", "/nonexistent.csv", says=r"does not exist"),
    case("sample_ml.run", "missing component", "serve", "--model-dir", "{tmp}/none", says=r"bundle|model"),
    case(
        "sample_ml.run",
        "missing component",
        "predict",
        "--loader=sql",
        "--source=sqlite:////nonexistent/db.sqlite",
        "--output={tmp}/p.csv",
        "--model-dir={tmp}/none",
        says=r"bundle|database|cannot",
    ),
    case("sample_ml.monitoring.simulate", "bad argument", "--output", "x.csv", "--rows", "many", says=r"invalid int"),
    case("sample_ml.monitoring.simulate", "missing file", "--output", "{tmp}/x.csv", says=r"no data at.*--data"),
    case("sample_ml.monitoring.quality", "bad argument", "--no-such-flag", says=BAD_ARG),
    case("sample_ml.monitoring.quality", "missing file", "--trials", "1", says=r"no data at.*--data"),
    case("cicd.release.docker.healthcheck", "bad argument", "--no-such-flag", says=BAD_ARG),
    case(
        "cicd.release.docker.healthcheck",
        "missing component",
        "--port",
        "{free_port}",
        says=r"nothing healthy answers.*start the service",
        exit_code=1,
    ),
    # the benchmarks
    case("benchmarks.run", "bad argument", "--requests", "lots", says=r"invalid int"),
    case("benchmarks.run", "missing component", "--output", "{tmp}/b", says=r"no Docker engine", env=NO_ENGINE),
    case("benchmarks.run", "missing file", "--output", "/proc/none/b", says=r"cannot (create|write).*/proc/none"),
    case("benchmarks.load", "bad argument", "--image", "x", "--seconds", "lots", says=r"invalid int"),
    case("benchmarks.load", "missing component", "--image", "x", "--output", "{tmp}/l", says="Docker", env=NO_ENGINE),
    case("benchmarks.load", "missing file", "--image", "x", "--output", "/proc/none/l", says=r"cannot create.*/proc"),
    case("benchmarks.drills", "bad argument", "--variants", "some", says=r"invalid int"),
    case("benchmarks.drills", "missing component", "--output", "{tmp}/d", says=r"no Docker engine", env=NO_ENGINE),
    case("benchmarks.drills", "missing file", "--output", "/proc/none/d", says=r"cannot (create|write).*/proc/none"),
]


def _run(
    module: str, *args: str, cwd: Path, home: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` as a user on a fresh machine: an empty HOME, the packages importable."""
    keep = ("PATH", "LANG", "SSL_CERT_FILE", "TRAINYARD_BASE_IMAGE")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("PIP_")}
    env |= {"HOME": str(home), "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}", **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def entry_points() -> set[str]:
    """Every ``python -m`` module in the three packages, and the console scripts' modules."""
    found = set()
    for folder, package_root in (("cicd", ROOT), ("benchmarks", ROOT), ("sample_ml", ROOT / "src")):
        for path in (package_root / folder).rglob("*.py"):
            if '__name__ == "__main__"' in path.read_text():
                parts = path.relative_to(package_root).with_suffix("").parts
                found.add(".".join(parts[:-1] if parts[-1] == "__main__" else parts))
    scripts = tomllib.loads((ROOT / "src/pyproject.toml").read_text())["project"]["scripts"]
    found |= {target.split(":")[0] for target in scripts.values()}
    return found


def test_the_table_covers_every_entry_point() -> None:
    kinds: dict[str, set[str]] = {}
    for c in CASES:
        kinds.setdefault(c.module, set()).add(c.kind)
    assert set(kinds) == entry_points()
    for module, seen in kinds.items():
        assert {"bad argument"} < seen, f"{module}: a bad argument and a missing file or component"


@pytest.mark.parametrize("c", CASES, ids=[f"{c.module}:{c.kind}:{' '.join(c.args)[:40]}" for c in CASES])
def test_a_mistake_gets_one_line_and_its_exit_code(c: Case, tmp_path: Path) -> None:
    home, empty = tmp_path / "home", tmp_path / "empty"
    home.mkdir()
    empty.mkdir()
    values = {"tmp": str(tmp_path), "root": str(ROOT), "free_port": str(free_port())}
    args = [a.format(**values) for a in c.args]
    env = dict(c.env)
    if "lint_tools" in c.module:
        env["PATH"] = str(home)  # no linter on PATH: the missing component
    proc = _run(c.module, *args, cwd=ROOT if c.cwd == "root" else empty, home=home, extra_env=env)
    shown = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-1500:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    assert proc.returncode == c.exit_code, shown
    lines = [line for line in proc.stderr.splitlines() if re.search(r"\berror:|^unhealthy:", line)]
    assert len(lines) == 1, shown
    assert re.search(c.says, lines[0], re.IGNORECASE), f"{lines[0]!r} should match {c.says!r}\n{shown}"


def test_the_readme_monitoring_commands_work_from_the_repository_root(tmp_path: Path) -> None:
    """README, Retraining: the default data is found from the repository root, wherever the package is."""
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "new.csv"
    proc = _run("sample_ml.monitoring.simulate", "--output", str(out), cwd=ROOT, home=home)
    assert proc.returncode == 0, proc.stderr
    assert len(out.read_text().splitlines()) == 301
    proc = _run("sample_ml.monitoring.quality", "--trials", "2", "--rows", "30", cwd=ROOT, home=home)
    assert proc.returncode == 0 and "false alarms" in proc.stdout, proc.stderr
    proc = _run("sample_ml.monitoring.simulate", "--help", cwd=ROOT, home=home)
    assert "With\n``--shift 0 --effect 0`` the batch is like the training data." in proc.stdout  # not cut short
