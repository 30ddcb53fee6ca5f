from sample_ml.features.common.base import FrameTransformer, check_frame

__all__ = ["FrameTransformer", "check_frame"]
