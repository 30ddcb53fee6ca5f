from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from sample_ml.features.build_feature_one import make_feature_one
from sample_ml.features.build_feature_one.filter import CorrelationFilter
from sample_ml.features.build_feature_one.postfilter import InteractionFeatures
from sample_ml.features.build_feature_one.prefilter import QuantileClipper
from sample_ml.features.build_features_two import make_features_two
from sample_ml.features.build_features_two.transformers import CategoryIndicator, LogTransform, RatioFeatures


@pytest.fixture
def xy(diabetes: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    return diabetes.drop(columns=["target"]), diabetes["target"]


def test_clipper_bounds_values_to_learned_quantiles(xy) -> None:
    X, _ = xy
    out = QuantileClipper(0.05, 0.95).fit(X).transform(X)
    assert (out["bmi"] <= X["bmi"].quantile(0.95) + 1e-9).all()
    assert (out["bmi"] >= X["bmi"].quantile(0.05) - 1e-9).all()


@pytest.mark.parametrize(("lower", "upper"), [(0.5, 0.5), (-0.1, 0.9), (0.2, 1.2)])
def test_clipper_rejects_bad_quantiles(xy, lower: float, upper: float) -> None:
    with pytest.raises(ValueError, match="need 0 <= lower < upper <= 1"):
        QuantileClipper(lower, upper).fit(xy[0])


@pytest.mark.parametrize(("threshold", "expect_all"), [(0.0, True), (0.99, False)])
def test_correlation_filter(xy, threshold: float, expect_all: bool) -> None:
    X, y = xy
    kept = CorrelationFilter(threshold).fit(X, y).selected_
    if expect_all:
        assert kept == list(X.columns)
    else:
        best = X.corrwith(y).abs().idxmax()
        assert kept == [best]  # nothing passes 0.99, yet never empty: the best column survives


def test_correlation_filter_needs_y(xy) -> None:
    with pytest.raises(ValueError, match="needs the target"):
        CorrelationFilter().fit(xy[0])


def test_interactions_skip_dropped_columns() -> None:
    frame = pd.DataFrame({"bmi": [1.0, 2.0], "s5": [3.0, 4.0]})
    out = InteractionFeatures().fit(frame).transform(frame)
    assert list(out.columns) == ["bmi", "s5", "bmi_x_s5"]
    assert out["bmi_x_s5"].tolist() == [3.0, 8.0]


def test_flow_two_transformers() -> None:
    frame = pd.DataFrame({"sex": [1.0, 2.0], "s1": [np.e - 1, 0.0], "s3": [2.0, 0.0]})
    ratios = RatioFeatures(ratios=(("s1", "s3"),)).fit(frame).transform(frame)
    assert ratios["s1_per_s3"].tolist() == pytest.approx([(np.e - 1) / 2, 0.0])
    logged = LogTransform(columns=("s1",)).fit(frame).transform(frame)
    assert logged["s1"].tolist() == pytest.approx([1.0, 0.0])
    onehot = CategoryIndicator().fit(frame).transform(frame)
    assert "sex" not in onehot and onehot["sex_2"].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("make", [make_feature_one, make_features_two], ids=["flow-one", "flow-two"])
def test_flows_are_sklearn_transformers_with_names(xy, make) -> None:
    X, y = xy
    flow = make().fit(X, y)
    out = flow.transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(flow.get_feature_names_out())
    assert np.isfinite(out.to_numpy()).all()
    assert len(out) == len(X)


def test_unfitted_transformer_says_to_fit(xy) -> None:
    with pytest.raises(NotFittedError, match="fit"):
        QuantileClipper().transform(xy[0])


def test_transform_rejects_frames_missing_fitted_columns(xy) -> None:
    X, _ = xy
    clipper = QuantileClipper().fit(X)
    with pytest.raises(ValueError, match=r"lacks fitted column\(s\) \['age'\]"):
        clipper.transform(X.drop(columns=["age"]))
