"""The loader contract: read raw rows, then check them against the declared schema."""

from __future__ import annotations

from abc import ABC, abstractmethod

import pandas as pd

from sample_ml.schema import DIABETES, Schema


class DataLoader(ABC):
    """Reads a data set and validates it against ``schema``.

    Subclasses implement :meth:`read` only; :meth:`load` adds the schema check so every
    source is held to the same contract.
    """

    name: str = ""

    def __init__(self, schema: Schema = DIABETES) -> None:
        self.schema = schema

    @abstractmethod
    def read(self) -> pd.DataFrame:
        """Return the raw rows; raise ``DataSourceError`` when the source cannot be read."""

    @abstractmethod
    def describe(self) -> str:
        """A short human description of the source, used in messages."""

    def load(self, *, require_target: bool = True) -> pd.DataFrame:
        frame = self.read()
        # Drivers may return name objects (e.g. SQLAlchemy's quoted_name): use plain strings.
        frame.columns = [str(c) for c in frame.columns]
        return self.schema.validate(frame, require_target=require_target, source=self.describe())
