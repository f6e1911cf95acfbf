"""The image half of SAM 2: the image predictor (prompts on one image -> candidate masks)."""

from .predictor import ImageDecode, ImagePredictor, build_image_predictor

__all__ = ["ImageDecode", "ImagePredictor", "build_image_predictor"]
