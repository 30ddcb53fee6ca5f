from __future__ import annotations

from pathlib import Path

import pandas as pd

from sample_ml.data_loaders.base import DataLoader
from sample_ml.errors import DataSourceError
from sample_ml.schema import DIABETES, Schema


class CSVDataLoader(DataLoader):
    """A comma-separated file with a header row."""

    name = "csv"

    def __init__(self, path: str | Path, schema: Schema = DIABETES) -> None:
        super().__init__(schema)
        self.path = Path(path)

    def describe(self) -> str:
        return f"CSV file {str(self.path)!r}"

    def read(self) -> pd.DataFrame:
        if not self.path.is_file():
            raise DataSourceError(f"{self.describe()} does not exist; check the path")
        try:
            return pd.read_csv(self.path)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()
        except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
            raise DataSourceError(f"cannot parse {self.describe()}: {err}") from err
