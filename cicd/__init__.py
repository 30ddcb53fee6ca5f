"""Trainyard's CI/CD toolkit: the logic behind the nox sessions (``python -m cicd --help``)."""

__version__ = "0.1.0"
