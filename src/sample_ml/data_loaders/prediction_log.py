"""The ``predictions`` loader: a deployed service's prediction log, read back for the drift check."""

from __future__ import annotations

import pandas as pd

from sample_ml.data_loaders.sql_loader import SQLDataLoader
from sample_ml.errors import DataSourceError
from sample_ml.schema import DIABETES, Schema

TABLE = "predictions"  # the table the service's prediction log writes (sample_ml.service.prediction_log)


class PredictionLogLoader(SQLDataLoader):
    """A deployed service's prediction log (any SQLAlchemy URL, ``table`` ``predictions``).

    It holds what the model was asked, not the truth: the feature columns only, no target. So it
    serves the drift check (``drift --loader predictions``) and ``retrain --predictions``, which
    checks drift on it; a challenger is still trained on labelled data. ``version`` keeps only the
    rows one model version answered.
    """

    name = "predictions"

    def __init__(
        self,
        url: str | None = None,
        table: str = TABLE,
        schema: Schema = DIABETES,
        url_env: str | None = None,
        version: str | None = None,
    ) -> None:
        super().__init__(url, table, schema.without_target(), url_env)
        self.version = version

    def describe(self) -> str:
        which = f" (version {self.version})" if self.version else ""
        return f"the prediction log {self.table!r}{which} at {self._where()}"

    def read(self) -> pd.DataFrame:
        frame = super().read()
        missing = [c for c in ("version", *self.schema.feature_names) if c not in frame.columns]
        if missing:
            raise DataSourceError(f"{self.describe()} is not a prediction log of this model: no column(s) {missing}")
        if self.version:
            frame = frame[frame["version"] == self.version]
        if frame.empty:
            raise DataSourceError(
                f"{self.describe()} has no rows yet: the service logs predictions once it answers requests"
            )
        return frame[self.schema.feature_names].reset_index(drop=True)
