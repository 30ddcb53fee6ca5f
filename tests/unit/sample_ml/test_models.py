from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from sample_ml.errors import ConfigError, NotFittedError, UnknownNameError
from sample_ml.models import MODELS, build_model, model_names
from sample_ml.models.regression.olsr_regressor import OLSRegressor
from sample_ml.models.rule_based.naive_model import NaiveRegressor
from sample_ml.pipelines.common import regression_metrics, split
from sample_ml.schema import DIABETES


@pytest.fixture(scope="module")
def parts(diabetes: pd.DataFrame):
    train, test = split(diabetes, 0.2, 42)
    return (*DIABETES.split_xy(train), *DIABETES.split_xy(test))


def test_registry_lists_the_seed_models() -> None:
    assert model_names() == ["naive", "olsr", "rf_no_features", "rf_all_features", "gbr"]


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_fits_predicts_and_clones(parts, name: str) -> None:
    x_train, y_train, x_test, _y_test = parts
    model = build_model(name)
    assert model.fit(x_train, y_train) is model  # fit returns self
    pred = model.predict(x_test)
    assert pred.shape == (len(x_test),) and np.isfinite(pred).all()
    clone(model)  # hyperparameters only in __init__: scikit-learn can clone it


@pytest.mark.parametrize("name", [n for n in MODELS if n != "naive"])
def test_every_real_model_beats_the_naive_baseline(parts, name: str) -> None:
    x_train, y_train, x_test, y_test = parts
    naive = regression_metrics(y_test, build_model("naive").fit(x_train, y_train).predict(x_test))
    real = regression_metrics(y_test, build_model(name).fit(x_train, y_train).predict(x_test))
    assert real["rmse"] < 0.8 * naive["rmse"]
    assert real["r2"] > 0.4


@pytest.mark.parametrize("estimator", [NaiveRegressor(), OLSRegressor()])
def test_unfitted_models_say_to_call_fit(estimator) -> None:
    with pytest.raises(NotFittedError, match="call 'fit'") as info:
        estimator.predict(np.zeros((2, 3)))
    assert isinstance(info.value, SklearnNotFittedError)


@pytest.mark.parametrize(("strategy", "expected"), [("mean", 2.0), ("median", 1.0)])
def test_naive_strategies(strategy: str, expected: float) -> None:
    model = NaiveRegressor(strategy).fit(np.zeros((3, 1)), [1.0, 1.0, 4.0])
    assert model.constant_ == expected
    assert model.predict(np.zeros((2, 1))).tolist() == [expected, expected]


def test_naive_rejects_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="strategy must be"):
        NaiveRegressor("mode").fit(np.zeros((1, 1)), [1.0])


def test_ols_recovers_exact_coefficients() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 3.0
    model = OLSRegressor().fit(X, y)
    assert model.coef_ == pytest.approx([1.0, -2.0, 0.5])
    assert model.intercept_ == pytest.approx(3.0)


def test_unknown_model_and_params() -> None:
    with pytest.raises(UnknownNameError, match="unknown model 'svm'"):
        build_model("svm")
    with pytest.raises(ConfigError, match=r"has no hyperparameter\(s\) \['depth'\]"):
        build_model("gbr", {"depth": 3})
