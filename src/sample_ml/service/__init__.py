"""The HTTP prediction service (FastAPI): ``/health``, ``/metadata``, ``/predict``."""

from sample_ml.service.app import create_app

__all__ = ["create_app"]
