"""Acceptance tests run against a deployed service: ``--base-url`` is required."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def base_url(request: pytest.FixtureRequest) -> str:
    url = request.config.getoption("--base-url")
    if not url:
        pytest.fail("acceptance tests need --base-url (nox -s acceptance -- staging passes it)")
    return str(url).rstrip("/")
