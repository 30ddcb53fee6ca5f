"""Fixtures for testing one release image, named by ``--release-image`` (the ``integration``
stage passes it) or, in the full suite, the image the session-wide release flow produced."""

from __future__ import annotations

from typing import Any

import pytest

from cicd.images import Engine


@pytest.fixture(scope="session")
def release_image(request: pytest.FixtureRequest, engine: Engine) -> str:
    given = request.config.getoption("--release-image")
    if given:
        return str(given)
    flow: dict[str, Any] = request.getfixturevalue("released_flow")
    return str(flow["record"]["image"])
