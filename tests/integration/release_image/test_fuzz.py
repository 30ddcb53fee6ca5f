"""The release image's HTTP API, fuzzed with schemathesis from the service's own OpenAPI document:
no 500, and no answer that breaks the schema. Fixed seed (derandomized) and a bounded number of
examples per operation, so a run is repeatable and its time known."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from cicd.http import free_port, wait_healthy
from cicd.images import Engine

EXAMPLES = 60  # per operation
OPENAPI = (
    "import json; from sample_ml.service.app import create_app; print(json.dumps(create_app('/opt/model').openapi()))"
)


@pytest.fixture(scope="module")
def served(engine: Engine, release_image: str) -> Iterator[str]:
    """The image serving on 127.0.0.1 as deployed (docs off: the document comes from its code)."""
    port = free_port()
    name = f"trainyard-fuzz-{uuid.uuid4().hex[:8]}"
    cid = engine.containers.start_service(release_image, name, {"SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": str(port)})
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_healthy(f"{base}/health", timeout=60, is_alive=lambda: engine.containers.running(cid))
        yield base
    finally:
        engine.containers.stop(cid)


def test_no_500_and_no_answer_outside_the_schema(engine: Engine, release_image: str, served: str) -> None:
    """Every operation of the document, fuzzed (schemathesis' pytest plugin does not run on pytest 9,
    so its Python API drives hypothesis here)."""
    code, out = engine.containers.capture(release_image, ["python", "-c", OPENAPI])
    assert code == 0, out[-2000:]
    document = json.loads(out.strip().splitlines()[-1])
    assert "/predict" in document["paths"] and "/metrics" not in document["paths"]
    fuzzed = []
    for result in schemathesis.openapi.from_dict(document).get_all_operations():
        assert isinstance(result, Ok), f"an operation schemathesis cannot read: {result.err()}"
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        def call(case: Any) -> None:
            case.call_and_validate(base_url=served)

        call()
        fuzzed.append(operation.label)
    assert "POST /predict" in fuzzed, fuzzed
