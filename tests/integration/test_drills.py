"""The failure drills (``benchmarks/drills.py``, ``nox -s drills``) in the suite, so they cannot rot
outside it: one throwaway project with its own registry process and ports, two releases, staging
and production deployed through the real flow, then every drill in order. One test per drill;
each drill first shows that its fault really happened (a drill whose fault stops taking effect
fails here), then that the environments serve what the rules say, with no stray container.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks import drills
from cicd.images import Engine
from tests.integration.conftest import _registry_binary

pytestmark = pytest.mark.slow(seconds=440)  # left out by --fast; the estimate orders the workers

VARIANTS = 100  # malformed specs: fewer than the script's 300, the same checks


@pytest.fixture(scope="module")
def held(
    tmp_path_factory: pytest.TempPathFactory,
    engine: Engine,
    base_image: str,
    proxy_image: str,
    monkeypatch_module: pytest.MonkeyPatch,
) -> Iterator[dict[str, drills.Drill]]:
    _registry_binary()  # fails under CI when it is missing, as every registry test does
    monkeypatch_module.setenv("TRAINYARD_PROXY_IMAGE", proxy_image)
    lab = drills.Lab(tmp_path_factory.mktemp("drills"), base_image)
    try:
        found = drills.run_all(lab, VARIANTS)
        print(drills.table(list(found.values())), file=sys.stderr)  # the same table as nox -s drills
        yield found
    finally:
        lab.cleanup()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("name", drills.NAMES)
def test_the_drill_holds(held: dict[str, Any], name: str) -> None:
    drill = held[name]
    assert drill.ok, f"{drill.name}\n  expected: {drill.expected}\n  observed: {drill.observed}"
