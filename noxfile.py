"""Trainyard's sessions. Thin on purpose: each installs what it needs and calls ``python -m cicd``
or the test runner, forwarding ``session.posargs``. nox is the only prerequisite.

    nox -s demo     # the main job: train, evaluate, predict and serve the sample model
    nox -s tests    # the whole test suite
"""

from __future__ import annotations

import nox

nox.needs_version = ">=2024.4.15"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

TOOLKIT_REQUIREMENTS = "cicd/requirements.txt"
RUNTIME_REQUIREMENTS = "src/requirements/default.txt"
DEV_REQUIREMENTS = "src/requirements/dev.txt"


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """Train, evaluate, predict and serve the sample model on the dummy data; print a report."""
    session.install("-r", TOOLKIT_REQUIREMENTS, "-r", RUNTIME_REQUIREMENTS)
    session.install("--no-deps", "./src")
    session.run("python", "-m", "cicd", "demo", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suites (``-- --test-type unit`` for one suite; other args go to pytest)."""
    session.install("-r", TOOLKIT_REQUIREMENTS, "-r", DEV_REQUIREMENTS)
    session.install("--no-deps", "-e", "./src")
    args = (
        session.posargs
        if any(a.startswith("--test-type") for a in session.posargs)
        else ["--test-type", "all", *session.posargs]
    )
    session.run("python", "tests/run_tests.py", *args)
