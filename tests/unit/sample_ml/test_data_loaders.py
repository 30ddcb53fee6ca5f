from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from sample_ml.data_loaders import CSVDataLoader, SQLDataLoader, get_loader
from sample_ml.errors import ConfigError, DataSourceError, SchemaError, UnknownNameError
from sample_ml.schema import DIABETES


def test_csv_and_sql_load_the_same_rows(dummy_csv: Path, dummy_sqlite: Path) -> None:
    csv = CSVDataLoader(dummy_csv).load()
    sql = SQLDataLoader(f"sqlite:///{dummy_sqlite}").load()
    assert len(csv) == 442
    assert list(csv.columns) == [*DIABETES.feature_names, "target"]
    pd.testing.assert_frame_equal(csv, sql)


def test_shipped_data_equals_scikit_learns_copy(dummy_csv: Path) -> None:
    from sklearn.datasets import load_diabetes

    expected = load_diabetes(as_frame=True, scaled=False).frame
    pd.testing.assert_frame_equal(CSVDataLoader(dummy_csv).load(), expected.astype("float64"))


@pytest.mark.parametrize(
    ("name", "options", "cls"),
    [("csv", {"path": "x.csv"}, CSVDataLoader), ("sql", {"url": "sqlite:///x.db"}, SQLDataLoader)],
)
def test_loaders_are_chosen_by_name(name: str, options: dict[str, str], cls: type) -> None:
    assert isinstance(get_loader(name, **options), cls)


def test_unknown_loader_names_the_choices() -> None:
    with pytest.raises(UnknownNameError, match="unknown data loader 'parquet'; choose one of: csv, predictions, sql"):
        get_loader("parquet", path="x")


def test_wrong_loader_options_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bad options"):
        get_loader("csv", url="sqlite://")


def _write(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns=["bmi"]), r"missing column\(s\) \['bmi'\]"),
        (lambda f: f.assign(extra=1.0), r"unexpected column\(s\) \['extra'\]"),
        (lambda f: f.assign(bp="high"), r"non-numeric values in column\(s\) \['bp'\]"),
        (lambda f: f.assign(s1=float("nan")), r"missing values \(NaN\) in \{'s1': 442\}"),
        (lambda f: f.iloc[0:0], "is empty"),
        (lambda f: f.assign(sex=3), r"column 'sex' has value\(s\) \[3.0\] outside its categories \[1, 2\]"),
        (lambda f: f.drop(columns=["target"]), r"missing column\(s\) \['target'\]"),
    ],
    ids=["missing", "extra", "wrong-type", "nan", "empty", "bad-category", "no-target"],
)
def test_schema_violations_name_the_columns(tmp_path: Path, diabetes: pd.DataFrame, mutate, message: str) -> None:
    path = _write(tmp_path, mutate(diabetes.copy()))
    with pytest.raises(SchemaError, match=message):
        CSVDataLoader(path).load()


def test_target_is_optional_when_scoring(tmp_path: Path, diabetes: pd.DataFrame) -> None:
    path = _write(tmp_path, diabetes.drop(columns=["target"]))
    assert list(CSVDataLoader(path).load(require_target=False).columns) == DIABETES.feature_names


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: CSVDataLoader(p / "absent.csv"), "does not exist"),
        (lambda p: SQLDataLoader(f"sqlite:///{p / 'absent.sqlite'}"), "does not exist"),
        (lambda p: SQLDataLoader("not a url"), "is not a SQLAlchemy URL"),
        (lambda p: SQLDataLoader("postgresql://u:s3cret@127.0.0.1:1/db"), "postgresql://u:\\*\\*\\*@127.0.0.1:1/db"),
    ],
    ids=["csv-missing", "sqlite-missing", "bad-url", "no-driver-or-unreachable"],
)
def test_unreadable_sources(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(DataSourceError, match=message) as info:
        make(tmp_path).load()
    assert "s3cret" not in str(info.value)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.sqlite"
    bogus.write_text("not sqlite at all " * 100)
    with pytest.raises(DataSourceError, match="check that the database is reachable"):
        SQLDataLoader(f"sqlite:///{bogus}").load()


def test_missing_table(tmp_path: Path) -> None:
    db = tmp_path / "empty.sqlite"
    sqlite3.connect(db).close()
    with pytest.raises(DataSourceError, match=r"table .diabetes. .* does not exist"):
        SQLDataLoader(f"sqlite:///{db}").load()


def test_table_names_must_be_identifiers() -> None:
    with pytest.raises(DataSourceError, match="not a plain SQL identifier"):
        SQLDataLoader("sqlite://", table="x; drop table y")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bob:canary-1@db:5432/x",
        "postgresql://db/x?user=bob&password=canary-1",
        "postgresql://db/x?sslmode=require&PWD=canary-1",
        "mssql+pyodbc://db/x?odbc_connect=DRIVER%3D%7BODBC%7D%3BUID%3Dbob%3BPWD%3Dcanary-1%3B",
        "mssql+pyodbc://db/x?odbc_connect=DRIVER%3D%7BODBC%7D%3BPassword%3D%7Bcanary-1%7D",
        "not a url at all canary-1",
    ],
)
def test_a_database_password_never_shows_in_any_form(url: str) -> None:
    """The loader's description goes into messages, decision.json and model cards: no secret in it."""
    from sample_ml.data_loaders.sql_loader import SQLDataLoader
    from sample_ml.errors import DataSourceError

    loader = SQLDataLoader(url)
    assert "canary-1" not in loader.describe()
    with pytest.raises(DataSourceError) as caught:
        loader.read()
    assert "canary-1" not in str(caught.value)


def test_a_url_from_a_variable_is_described_by_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from sample_ml.data_loaders.sql_loader import SQLDataLoader

    monkeypatch.setenv("TEST_DB_URL", "postgresql://bob:canary-2@db/x")
    assert SQLDataLoader(url_env="TEST_DB_URL").describe() == "table 'diabetes' at the database in $TEST_DB_URL"
