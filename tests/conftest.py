"""Shared fixtures and the folder → marker rule (tests/unit → unit, and so on)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests import budget

ROOT = Path(__file__).resolve().parents[1]
DUMMY_DATA = ROOT / "notebooks" / "dummy_data"
_FOLDER_MARKERS = {"unit", "integration", "acceptance"}


def pytest_configure(config: pytest.Config) -> None:
    budget.register(config)
    config.pluginmanager.register(_SlowFirst(), "trainyard-slow-first")


# Tests that use the session's one release (tests/integration/conftest.py's ``released_flow``)
# run on one pytest-xdist worker, so the release is made once per run, not once per worker.
_SHARED_RELEASE = re.compile(r"\b(released_flow|release_image)\b")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The folder → marker rule: tests/unit → ``unit``, and so on."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in _FOLDER_MARKERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, which a project's own sessions may not have
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under pytest-xdist (``run_tests.py --workers N``): each module is one unit of work, on one
    worker, so its module-scoped fixtures are made once; the modules sharing the session's one
    release are one unit together. Units go out in collection order (the slow ones first: see
    :class:`_SlowFirst`). A scheduler rather than ``xdist_group`` marks: with pytest 9 those no
    longer reach the scheduler (xdist 3.8 renames nodes in a way pytest 9 ignores)."""
    from xdist.scheduler import LoadScopeScheduling

    shared: dict[str, bool] = {}

    def shares(module: str) -> bool:
        if module not in shared:
            path = Path(str(config.rootpath)) / module
            shared[module] = path.is_file() and bool(_SHARED_RELEASE.search(path.read_text(errors="replace")))
        return shared[module]

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "the shared release" if shares(module) else module

    return ByModule(config, log)


class _SlowFirst:
    """The ``slow`` modules first, longest first by their ``slow(seconds=...)`` estimate, so that
    the workers finish together; the shuffled order (pytest-random-order) stays within each."""

    @pytest.hookimpl(trylast=True)  # after pytest-random-order has shuffled
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        def weight(item: pytest.Item) -> float:
            slow = item.get_closest_marker("slow")
            return -float(slow.kwargs.get("seconds", 60)) if slow else 0.0

        items.sort(key=weight)  # stable


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def dummy_csv() -> Path:
    return DUMMY_DATA / "diabetes.csv"


@pytest.fixture(scope="session")
def dummy_sqlite() -> Path:
    return DUMMY_DATA / "diabetes.sqlite"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--release-image", default=None, help="test this release image instead of building one")
    parser.addoption("--base-url", default=None, help="acceptance tests: URL of the deployed service")
    parser.addoption("--expected-digest", default=None, help="acceptance tests: the digest the service must report")
    parser.addoption("--expected-rmse", default=None, type=float, help="acceptance tests: the release's own RMSE")
