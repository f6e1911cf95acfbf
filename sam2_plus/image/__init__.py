"""The image half of SAM 2: the image predictor (prompts on one image -> candidate masks), over SAM 2's network
or EdgeTAM's."""

from .edgetam import EdgeTamImagePredictor
from .predictor import ImageDecode, ImagePredictor, build_image_predictor

__all__ = ["EdgeTamImagePredictor", "ImageDecode", "ImagePredictor", "build_image_predictor"]
