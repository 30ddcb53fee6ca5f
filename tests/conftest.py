"""Shared fixtures and the folder → marker rule (tests/unit → unit, and so on)."""

from __future__ import annotations

from pathlib import Path

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
_SHARED_RELEASE = {"released_flow", "release_image"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The folder → marker rule; and an xdist group for each module (its module-scoped fixtures
    are made once, on one worker) or for the tests sharing one release."""
    xdist = config.pluginmanager.hasplugin("xdist")  # not installed in a project's own sessions
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in _FOLDER_MARKERS:
            item.add_marker(getattr(pytest.mark, parts[0]))
        if not xdist:
            continue
        shares = _SHARED_RELEASE & set(getattr(item, "fixturenames", ()))
        item.add_marker(pytest.mark.xdist_group("released-flow" if shares else item.nodeid.split("::", 1)[0]))


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
