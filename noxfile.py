"""Trainyard's sessions. Thin on purpose: each installs the toolkit's pinned requirements into its
own venv and calls ``python -m cicd <command>``, forwarding ``session.posargs``. nox is the only
prerequisite.

    nox -s demo                 # the main job: the whole flow in a throwaway copy of this repository
    nox -s tests                # the whole test suite
    nox -s build unit lint      # feature branch: build image, unit tests and linters inside it
    nox -s release integration  # develop: release image (pushed if a registry is set), its tests
    nox -s deploy -- staging && nox -s acceptance -- staging   # master/main
    nox -s promote -- production                               # manual, approved
    nox -s retrain              # scheduled: drift check, champion/challenger, retrain/<date> branch
    nox -s drift -- --source production   # drift check on an environment's prediction log
    nox -s bench / nox -s drills  # figures beside a naive baseline; failure drills (Trainyard's own)
    nox -s contract             # does the package provide what the toolkit calls? one line per gap
    nox -s doctor               # the first day: what is still to do before the flow runs, with commands
    nox -s update               # in a project made from Trainyard: copier update, then any conflicts named

Every session takes the toolkit's global options after ``--``: ``nox -s release -- --dry-run``
says each write instead of doing it, ``--json`` prints the result as JSON.
"""

from __future__ import annotations

import re
from pathlib import Path

import nox

nox.needs_version = ">=2024.4.15"
nox.options.reuse_venv = "yes"
# uv when nox was installed with it (``nox[uv]``, as the README does): venvs in seconds; else virtualenv.
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True

HERE = Path(__file__).resolve().parent  # the project's root
# The Python the sessions run on, from `.python-version` (also what CI's setup steps install and
# the locks are compiled for): the version tested. Another minor version is untested, so nox
# refuses rather than guess.
PYTHON = (HERE / ".python-version").read_text().strip()
TOOLKIT = "cicd/requirements.txt"
# The project's package folder, `package` in cicd/pipeline.yaml (read as text: nox's own venv has
# no YAML parser); its requirements beside it.
_SPEC = HERE / "cicd" / "pipeline.yaml"
PACKAGE = "./" + (re.findall(r"(?m)^package:\s*([^\s#]+)", _SPEC.read_text()) or ["src"])[0].strip("\"'")
TEST = f"{PACKAGE}/requirements/test.txt"  # pytest and the runtime pins
DEV = f"{PACKAGE}/requirements/dev.txt"  # TEST plus the linters and test tools


def _cicd(session: nox.Session, command: str, *extra: str) -> None:
    session.install("--require-hashes", "-r", TOOLKIT, *extra)
    session.run("python", "-m", "cicd", command, *session.posargs)


def _with_project(session: nox.Session, command: str) -> None:
    """A session whose tests or commands import the project's package: install it beside its pins.

    Each session stands alone (a CI job runs it in a fresh clone), so it installs everything
    that what it runs imports; nothing may come from another session's venv. Linters are not
    among it: they run inside the build image. The package is built with the toolkit's pinned,
    hashed setuptools (:func:`_install_package`), never one fetched for an isolated build.
    """
    session.install("--require-hashes", "-r", TOOLKIT, "-r", TEST)
    _install_package(session)
    session.run("python", "-m", "cicd", command, *session.posargs)


def _install_package(session: nox.Session, *how: str) -> None:
    """The project's package (``-e``: editable), without its dependencies (the locks have them) and
    without build isolation: an isolated build would download an unpinned ``setuptools`` in jobs
    that hold secrets, and build a venv for it every time. The toolkit's locked setuptools builds it."""
    session.install("--no-deps", "--no-build-isolation", *how, PACKAGE)


@nox.session(python=PYTHON, default=False)
def demo(session: nox.Session) -> None:
    """The whole flow, end to end, in a throwaway copy of this repository (``-- --local``: no Docker)."""
    _with_project(session, "demo")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suites (``-- --test-type unit`` for one suite; other args go to pytest)."""
    session.install("--require-hashes", "-r", TOOLKIT, "-r", DEV)
    _install_package(session, "-e")
    wants_type = any(a.startswith("--test-type") for a in session.posargs)
    args = session.posargs if wants_type else ["--test-type", "all", *session.posargs]
    # Always in a new random order (modules, and tests within them; the seed is printed, and
    # `-- -p random_order --random-order-seed=N` repeats one): no test may lean on another's leftovers.
    session.run("python", "tests/run_tests.py", "--random-order-bucket=module", *args)


@nox.session(python=PYTHON, tags=["feature"])
def build(session: nox.Session) -> None:
    """Build the wheel and the build image (source, tests, dev dependencies)."""
    _cicd(session, "build")


@nox.session(python=PYTHON, requires=["build"], tags=["feature"])
def unit(session: nox.Session) -> None:
    """Unit tests inside the build image; JUnit XML and coverage in artifacts/reports/unit."""
    _cicd(session, "unit")


@nox.session(python=PYTHON, requires=["build"], tags=["feature"])
def lint(session: nox.Session) -> None:
    """Linters and CI-file checks inside the build image; reports in artifacts/reports/lint."""
    _cicd(session, "lint")


@nox.session(python=PYTHON, default=False, tags=["develop"])
def release(session: nox.Session) -> None:
    """Train and gate the model, build the release image, push it if a registry is set, record it in git."""
    _cicd(session, "release")


@nox.session(python=PYTHON, default=False, tags=["develop"])
def integration(session: nox.Session) -> None:
    """Integration tests against this commit's release image (pulled by digest from the registry if pushed)."""
    _cicd(session, "integration", "-r", TEST)


@nox.session(python=PYTHON, default=False)
def merge(session: nox.Session) -> None:
    """Merge this branch into its target (feature → develop, develop → master/main) once its checks passed."""
    _cicd(session, "merge")


def _environment(session: nox.Session, command: str) -> None:
    if not session.posargs:
        session.error(f"name the environment: nox -s {command} -- staging")
    _cicd(session, command)


@nox.session(python=PYTHON, default=False, tags=["release"])
def deploy(session: nox.Session) -> None:
    """Deploy this commit's release image, by digest, to an environment: ``nox -s deploy -- staging``."""
    _environment(session, "deploy")


@nox.session(python=PYTHON, default=False, tags=["release"])
def acceptance(session: nox.Session) -> None:
    """Acceptance tests against an environment's deployed service: ``nox -s acceptance -- staging``."""
    if not session.posargs:
        session.error("name the environment: nox -s acceptance -- staging")
    _with_project(session, "acceptance")  # the project's acceptance tests may import its package


@nox.session(python=PYTHON, default=False)
def promote(session: nox.Session) -> None:
    """Deploy what Staging runs (same digest, no build) and tag it: ``nox -s promote -- production``."""
    _environment(session, "promote")


@nox.session(python=PYTHON, default=False)
def rollback(session: nox.Session) -> None:
    """Redeploy an environment's previous recorded digest: ``nox -s rollback -- production``."""
    _environment(session, "rollback")


@nox.session(python=PYTHON, default=False)
def status(session: nox.Session) -> None:
    """For each environment: tagged commit, version, digest, what runs and whether it is healthy."""
    _cicd(session, "status")


@nox.session(python=PYTHON, default=False)
def doctor(session: nox.Session) -> None:
    """What this project still needs before its flow runs (git, signing key, origin, registry,
    hosts), each with its command; exit 1 while something is left to do. Writes nothing."""
    _cicd(session, "doctor")


@nox.session(python=PYTHON, default=False)
def ci(session: nox.Session) -> None:
    """Run the flow's row for this branch and event (CI variables, or ``-- --branch B --event E``);
    ``-- --plan`` prints it."""
    _with_project(session, "ci")  # a row may hold any session, acceptance among them


@nox.session(python=PYTHON, default=False, tags=["retrain"])
def retrain(session: nox.Session) -> None:
    """Drift check on new data (or, ``-- --source production``, on an environment's prediction log);
    if it fires (or ``-- --force``), champion/challenger, and an accepted model card, data snapshot
    and settings committed on a new ``retrain/<date>`` branch, pushed."""
    _with_project(session, "retrain")  # it runs the package's train and retrain


@nox.session(python=PYTHON, default=False)
def drift(session: nox.Session) -> None:
    """Drift check on an environment's prediction log (``-- --source staging``) against the model it
    serves; the report in ``artifacts/drift/<environment>/``."""
    _with_project(session, "drift")  # it runs the package's drift check


@nox.session(python=PYTHON, default=False)
def contract(session: nox.Session) -> None:
    """Check the project's package against the bring-your-own-model contract (cicd/README.md), one
    line per gap; ``lint`` runs the same check inside the build image."""
    session.install("--require-hashes", "-r", TOOLKIT)
    if Path(TEST).is_file():  # with its pinned requirements, the package's commands answer --help
        session.install("--require-hashes", "-r", TEST)
    else:  # one of the gaps the check names: go on to name them all, rather than stop at this one
        session.warn(f"{TEST} is missing: the package's commands are asked for --help without their requirements")
    session.run("python", "-m", "cicd.contract", *session.posargs)


@nox.session(python=PYTHON, default=False)
def update(session: nox.Session) -> None:
    """In a project made from Trainyard: take the newest Trainyard (``copier update --vcs-ref HEAD
    --defaults``; other copier arguments after ``--``) and name every file left with conflicts
    (copier itself exits 0 when it wrote conflict markers)."""
    session.install("--require-hashes", "-r", "cicd/requirements-copier.txt")  # copier, pinned
    session.run("copier", "update", "--defaults", *(session.posargs or ["--vcs-ref", "HEAD"]), external=False)
    session.run("python", "-m", "cicd.conflicts")


@nox.session(python=PYTHON, default=False)
def lock(session: nox.Session) -> None:
    """Compile every requirements ``.in`` into its hashed ``.txt`` lock with uv (needs the package index)."""
    session.install("--require-hashes", "-r", TOOLKIT, "-r", "cicd/requirements-ci.txt")  # uv, pinned
    session.run("python", "-m", "cicd.locks", "--write", *session.posargs)


def _benchmarks(session: nox.Session, module: str) -> None:
    session.install("--require-hashes", "-r", TOOLKIT, "-r", DEV)
    _install_package(session, "-e")
    session.run("python", "-m", f"benchmarks.{module}", *session.posargs)


if (HERE / "benchmarks").is_dir():  # Trainyard's own; a project made from it has none

    @nox.session(python=PYTHON, default=False)
    def bench(session: nox.Session) -> None:
        """Benchmarks, ours beside a naive single-stage baseline: builds, image sizes, the feature stage,
        the whole flow cold and warm, promotion, serving latency. Prints a table, writes JSON."""
        _benchmarks(session, "run")

    @nox.session(python=PYTHON, default=False)
    def drills(session: nox.Session) -> None:
        """Failure drills: kill a deploy mid-swap, drop the registry mid-push, no engine, unhealthy
        service, taken port, five promotions at once, malformed specs, a canary password."""
        _benchmarks(session, "drills")
