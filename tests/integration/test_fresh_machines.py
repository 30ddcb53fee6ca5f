"""The flow as it is really run, on fresh machines: every CI job on a fresh runner, and a newcomer.

- GitHub's five jobs (under act) and Azure's five stages, in the flow's order, each on a fresh
  runner that shares only git's origin and the registry with the others (:mod:`ci_jobs`).
- A newcomer on a fresh Debian 12 runs the README's first command verbatim (:mod:`newcomer`).

The three share nothing (each has its own origin, registry, engine or container, and ports), so
they run side by side, as three separate machines would, in one module fixture (the CI jobs'
logs in its ``ci-logs`` folder); each world's outcome is a test of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial

import pytest

from cicd.images import Engine
from tests.integration.ci_jobs import open_runners, run_in_order
from tests.integration.newcomer import require_newcomer_image, run_readme_main_job

pytestmark = pytest.mark.slow(seconds=1000)  # left out by --fast; the estimate orders the workers


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, engine: Engine, base_image: str, proxy_image: str
) -> dict[str, BaseException | None]:
    """The three worlds side by side; what each ended with (None: it held all the way)."""
    require_newcomer_image(engine)
    logs = tmp_path_factory.mktemp("ci-logs")
    with ExitStack() as stack:
        worlds: dict[str, Callable[[], None]] = {}
        for ci in ("github", "azure"):
            scratch = tmp_path_factory.mktemp(f"ci-{ci}")
            runners = stack.enter_context(open_runners(ci, scratch, engine, base_image, proxy_image))
            worlds[ci] = partial(run_in_order, ci, runners, logs)
        newcomer = tmp_path_factory.mktemp("newcomer")
        worlds["newcomer"] = partial(run_readme_main_job, engine, base_image, proxy_image, newcomer)
        with ThreadPoolExecutor(len(worlds)) as pool:
            futures = {name: pool.submit(run) for name, run in worlds.items()}
        return {name: f.exception() for name, f in futures.items()}


# One test per world, so that a failure names it (and so that pytest-xdist, which hands a worker
# its next module when two of this one's tests are left, does not queue one behind these worlds).
@pytest.mark.parametrize("world", ["github", "azure", "newcomer"])
def test_each_ci_job_and_the_readme_on_fresh_machines(outcomes: dict[str, BaseException | None], world: str) -> None:
    err = outcomes[world]
    if isinstance(err, pytest.skip.Exception):  # missing() outside CI; under CI it fails instead
        raise err
    assert err is None, f"--- {world}: {type(err).__name__}: {err}"
