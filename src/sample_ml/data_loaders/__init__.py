"""Data loaders, chosen by name from configuration (``csv``, ``sql`` or ``predictions``)."""

from __future__ import annotations

from typing import Any

from sample_ml.data_loaders.base import DataLoader
from sample_ml.data_loaders.csv_loader import CSVDataLoader
from sample_ml.data_loaders.prediction_log import PredictionLogLoader
from sample_ml.data_loaders.sql_loader import SQLDataLoader
from sample_ml.errors import ConfigError, UnknownNameError

LOADERS: dict[str, type[DataLoader]] = {
    CSVDataLoader.name: CSVDataLoader,
    SQLDataLoader.name: SQLDataLoader,
    PredictionLogLoader.name: PredictionLogLoader,
}


def get_loader(name: str, **options: Any) -> DataLoader:
    """Build the loader registered as ``name`` with its options (``path``; ``url``, ``table``; ``version``)."""
    try:
        cls = LOADERS[name]
    except KeyError:
        raise UnknownNameError("data loader", name, list(LOADERS)) from None
    try:
        return cls(**options)
    except TypeError as err:
        raise ConfigError(f"bad options {sorted(options)} for data loader {name!r}: {err}") from err


__all__ = ["LOADERS", "CSVDataLoader", "DataLoader", "PredictionLogLoader", "SQLDataLoader", "get_loader"]
