"""Models, chosen by name: ``build_model("olsr", {...})``; ``MODELS`` lists them."""

from sample_ml.models.common.registry import MODELS, ModelSpec, build_model, model_names

__all__ = ["MODELS", "ModelSpec", "build_model", "model_names"]
