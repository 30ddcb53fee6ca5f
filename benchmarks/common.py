"""What the benchmark and drill scripts check before they start: a writable output folder and an engine."""

from __future__ import annotations

from pathlib import Path

from cicd.errors import CICDError
from cicd.images import Engine


def prepare(output: Path) -> Engine:
    """Create ``output`` and connect to the engine, so a mistake is one line before any work starts."""
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CICDError(f"cannot create the output folder {output} ({err.strerror}); pass --output DIR") from None
    return Engine.from_env()  # EngineUnavailableError says how to start one
