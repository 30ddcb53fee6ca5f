#!/usr/bin/env python3
"""Run a test suite: ``python tests/run_tests.py --test-type unit|integration|acceptance|all [pytest args]``.

Extra arguments go to pytest unchanged (``-k``, ``-x``, ``--base-url`` ...). ``all`` runs the
unit and integration suites, and the acceptance suite too when ``--base-url`` is given (it tests
a deployed service, so without one there is nothing for it to test).

``--fast`` leaves out the integration modules marked ``slow`` (the whole flow, the CI jobs on
fresh runners, the hosts): the unit tests and the cheap integration tests, for people between
edits. CI always runs everything. ``--workers N`` runs the integration modules on N pytest-xdist
workers side by side (each module, and each set of tests sharing one release, on one worker; the
slow modules first); the default is ``TRAINYARD_TEST_WORKERS`` or 3 when integration tests run,
and 0 (in this process) for the unit suite alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SUITES = ("unit", "integration", "acceptance")
WORKERS = 3  # the suite waits on builds, engines and services: three workers keep two CPUs busy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-type", choices=[*SUITES, "all"], default="unit")
    parser.add_argument("--fast", action="store_true", help="leave out the integration modules marked slow")
    parser.add_argument("--workers", type=int, default=None, help="pytest-xdist workers (0: none)")
    args, pytest_args = parser.parse_known_args(argv)
    if args.test_type == "all":
        wants_acceptance = any(a == "--base-url" or a.startswith("--base-url=") for a in pytest_args)
        suites = [s for s in SUITES if s != "acceptance" or wants_acceptance]
    else:
        suites = [args.test_type]
    paths = [str(TESTS / s) for s in suites]
    extra: list[str] = []
    if args.fast:
        extra += ["-m", "not slow"]
    workers = args.workers
    if workers is None:
        workers = int(os.environ.get("TRAINYARD_TEST_WORKERS") or (WORKERS if "integration" in suites else 0))
    if workers > 0 and not any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in pytest_args):
        if importlib.util.find_spec("xdist") is None:
            parser.error(f"--workers {workers} needs pytest-xdist (in the dev requirements); --workers 0 runs without")
        # tests/conftest.py's scheduler keeps a module (or the modules sharing a release) on one
        # worker; --no-loadscope-reorder keeps the order it chose (the slow modules first).
        extra += ["-n", str(workers), "--dist", "loadscope", "--no-loadscope-reorder"]
    return int(pytest.main([*paths, *extra, *pytest_args]))


if __name__ == "__main__":
    sys.exit(main())
