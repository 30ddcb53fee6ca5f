"""The suite's time per module, printed after every run: where the time goes, so growth shows.

Each module's figure is the sum of its tests' setup, call and teardown (a module-scoped fixture
counts in the module that set it up; a session-scoped one in the first module that asked for it).
With several workers (pytest-xdist) the modules overlap, so the sum exceeds the wall-clock time,
which is printed beside the budget. Figures only: nothing here passes or fails a run (a timed
test flakes; the budget is for people to read).
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

BUDGET_S = 20 * 60  # the whole suite on 2 CPUs (.ci/run), well under CI's 90 minutes


class Budget:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.tests: dict[str, set[str]] = defaultdict(set)
        self.workers: dict[str, str] = {}
        self.started = time.monotonic()

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        module = report.nodeid.split("::", 1)[0]
        self.seconds[module] += report.duration
        self.tests[module].add(report.nodeid)
        worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", None)
        if worker is not None:  # which pytest-xdist worker ran it
            self.workers[module] = str(worker)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.seconds:
            return
        wall = time.monotonic() - self.started
        write = terminalreporter.write_line
        terminalreporter.section("time per module")
        for module, seconds in sorted(self.seconds.items(), key=lambda kv: -kv[1]):
            where = f"  [{self.workers[module]}]" if module in self.workers else ""
            write(f"{seconds:8.1f} s  {module}  ({len(self.tests[module])} tests){where}")
        total = sum(self.seconds.values())
        verdict = "within" if wall <= BUDGET_S else "OVER"
        write(f"{total:8.1f} s  in all, {wall:.0f} s wall clock: {verdict} the budget of {BUDGET_S // 60} minutes")


def register(config: pytest.Config) -> None:
    """Called by tests/conftest.py's ``pytest_configure``."""
    if not hasattr(config, "workerinput"):  # the controller (or a run without workers) reports
        config.pluginmanager.register(Budget(), "trainyard-budget")
