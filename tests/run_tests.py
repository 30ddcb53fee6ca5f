#!/usr/bin/env python3
"""Run a test suite: ``python tests/run_tests.py --test-type unit|integration|acceptance|all [pytest args]``.

Extra arguments go to pytest unchanged (``-k``, ``-x``, ``--base-url`` ...). ``all`` runs the
unit and integration suites, and the acceptance suite too when ``--base-url`` is given (it tests
a deployed service, so without one there is nothing for it to test).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SUITES = ("unit", "integration", "acceptance")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-type", choices=[*SUITES, "all"], default="unit")
    args, pytest_args = parser.parse_known_args(argv)
    if args.test_type == "all":
        wants_acceptance = any(a == "--base-url" or a.startswith("--base-url=") for a in pytest_args)
        suites = [s for s in SUITES if s != "acceptance" or wants_acceptance]
    else:
        suites = [args.test_type]
    paths = [str(TESTS / s) for s in suites]
    return int(pytest.main([*paths, *pytest_args]))


if __name__ == "__main__":
    sys.exit(main())
