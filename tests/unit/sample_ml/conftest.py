from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from sample_ml.config import DataConfig, Settings
from sample_ml.data_loaders import CSVDataLoader


@pytest.fixture(scope="session")
def diabetes(dummy_csv: Path) -> pd.DataFrame:
    return CSVDataLoader(dummy_csv).load()


@pytest.fixture(scope="session")
def settings(dummy_csv: Path) -> Settings:
    return replace(Settings(), data=DataConfig("csv", {"path": str(dummy_csv)}))


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Path:
    from sample_ml.pipelines.train import train

    return train(settings, tmp_path_factory.mktemp("bundle") / "model")
