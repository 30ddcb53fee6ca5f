"""Shared fixtures and the folder → marker rule (tests/unit → unit, and so on)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DUMMY_DATA = ROOT / "notebooks" / "dummy_data"
_FOLDER_MARKERS = {"unit", "integration", "acceptance"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in _FOLDER_MARKERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


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
