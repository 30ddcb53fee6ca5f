from __future__ import annotations

from typing import Any

from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from sample_ml.errors import NotFittedError


class ModelNotFittedError(NotFittedError, SklearnNotFittedError):
    """Raised by our estimators before ``fit``; also caught by scikit-learn's own checks."""


def ensure_fitted(estimator: Any, attribute: str) -> None:
    if not hasattr(estimator, attribute):
        raise ModelNotFittedError(
            f"this {type(estimator).__name__} is not fitted yet; call 'fit' with training data first"
        )
