"""The HTTP prediction service (FastAPI): ``/health``, ``/metadata``, ``/predict``.

Nothing heavy is imported here: the app is made on first use.
"""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    from sample_ml.service.app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["create_app"]
