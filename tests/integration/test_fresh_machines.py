"""The flow as it is really run, on fresh machines: every CI job on a fresh runner, and a newcomer.

- GitHub's five jobs (under act) and Azure's five stages, in the flow's order, each on a fresh
  runner that shares only git's origin and the registry with the others (:mod:`ci_jobs`).
- A newcomer on a fresh Debian 12 runs the README's first command verbatim (:mod:`newcomer`).

The three share nothing (each has its own origin, registry, engine or container, and ports), so
they run side by side, as three separate machines would; each keeps its logs in the test's tmp
folder. A failure in one is reported with the others' outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import pytest

from cicd.images import Engine
from tests.integration.ci_jobs import open_runners, run_in_order
from tests.integration.newcomer import require_newcomer_image, run_readme_main_job

pytestmark = pytest.mark.slow(seconds=430)  # left out by --fast; the estimate orders the workers


def test_every_ci_job_and_the_readme_on_fresh_machines(
    tmp_path_factory: pytest.TempPathFactory, engine: Engine, base_image: str, proxy_image: str, tmp_path: Path
) -> None:
    require_newcomer_image(engine)
    with ExitStack() as stack:
        worlds: dict[str, Callable[[], None]] = {}
        for ci in ("github", "azure"):
            scratch = tmp_path_factory.mktemp(f"ci-{ci}")
            runners = stack.enter_context(open_runners(ci, scratch, engine, base_image, proxy_image))
            worlds[ci] = partial(run_in_order, ci, runners, tmp_path)
        newcomer = tmp_path_factory.mktemp("newcomer")
        worlds["newcomer"] = partial(run_readme_main_job, engine, base_image, proxy_image, newcomer)
        with ThreadPoolExecutor(len(worlds)) as pool:
            futures = {name: pool.submit(run) for name, run in worlds.items()}
        errors = {name: f.exception() for name, f in futures.items()}
    for err in errors.values():
        if isinstance(err, pytest.skip.Exception):
            raise err
    failed = {name: err for name, err in errors.items() if err is not None}
    assert not failed, "\n\n".join(f"--- {name}: {type(e).__name__}: {e}" for name, e in failed.items())
