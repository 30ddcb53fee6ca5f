"""The machinery of the entry-point tables (the toolkit's in ``test_entry_points.py``, each
package's beside its tests): every ``python -m`` module and console script is run for real, as a
user on a fresh machine would run it (a new empty HOME: no git identity, no caches), with a bad
argument, a missing file and, where it uses one, a missing component (no Docker engine, no git
repository, no service). Each must end with one ``error:`` line that names the problem and what to
do, and exit 2 (a health probe says unhealthy with 1, as Docker expects). A table is checked
against the entry points found in the tree, so a new one cannot be missed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from cicd.http import free_port
from tests.integration.conftest import ROOT

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
BAD_ARG = "unrecognized arguments: --no-such-flag|invalid choice|expected one argument"


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


def run(
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


def entry_points(*packages: tuple[str, Path], scripts_of: Path | None = None) -> set[str]:
    """Every ``python -m`` module of the ``(folder, root)`` packages, and the modules of the
    console scripts in the ``pyproject.toml`` ``scripts_of``."""
    found = set()
    for folder, package_root in packages:
        for path in (package_root / folder).rglob("*.py"):
            if '__name__ == "__main__"' in path.read_text():
                parts = path.relative_to(package_root).with_suffix("").parts
                found.add(".".join(parts[:-1] if parts[-1] == "__main__" else parts))
    if scripts_of is not None:
        scripts = tomllib.loads(scripts_of.read_text())["project"]["scripts"]
        found |= {target.split(":")[0] for target in scripts.values()}
    return found


def check_table(cases: list[Case], found: set[str]) -> None:
    """The table names exactly the entry points found, each with a bad argument and a missing part."""
    kinds: dict[str, set[str]] = {}
    for c in cases:
        kinds.setdefault(c.module, set()).add(c.kind)
    assert set(kinds) == found
    for module, seen in kinds.items():
        assert {"bad argument"} < seen, f"{module}: a bad argument and a missing file or component"


def case_id(c: Case) -> str:
    return f"{c.module}:{c.kind}:{' '.join(c.args)[:40]}"


def check_mistake(c: Case, tmp_path: Path) -> None:
    """Run one row and check its one ``error:`` line and exit code."""
    home, empty = tmp_path / "home", tmp_path / "empty"
    home.mkdir()
    empty.mkdir()
    values = {"tmp": str(tmp_path), "root": str(ROOT), "free_port": str(free_port())}
    args = [a.format(**values) for a in c.args]
    env = dict(c.env)
    if "lint_tools" in c.module:
        env["PATH"] = str(home)  # no linter on PATH: the missing component
    proc = run(c.module, *args, cwd=ROOT if c.cwd == "root" else empty, home=home, extra_env=env)
    shown = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-1500:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    assert proc.returncode == c.exit_code, shown
    lines = [line for line in proc.stderr.splitlines() if re.search(r"\berror:|^unhealthy:", line)]
    assert len(lines) == 1, shown
    assert re.search(c.says, lines[0], re.IGNORECASE), f"{lines[0]!r} should match {c.says!r}\n{shown}"
