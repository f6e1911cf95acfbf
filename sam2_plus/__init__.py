"""SAM 2.1 and SAM 2++ video tracking and image segmentation: prompts as masks, boxes or points; results as masks,
boxes and points."""

from .build import build_model, build_video_predictor, from_pretrained
from .config import MODEL_CONFIG_FILES, load_config
from .image import ImagePredictor, build_image_predictor
from .image.automatic import AutomaticMaskGenerator
from .video.predictor import FrameResult, PromptError, TrackingSession, UnknownObjectError, VideoPredictor
from .weights import CheckpointError

MODEL_NAMES = tuple(MODEL_CONFIG_FILES)

__all__ = [
    "AutomaticMaskGenerator",
    "MODEL_NAMES",
    "CheckpointError",
    "FrameResult",
    "ImagePredictor",
    "PromptError",
    "TrackingSession",
    "UnknownObjectError",
    "VideoPredictor",
    "build_image_predictor",
    "build_model",
    "build_video_predictor",
    "from_pretrained",
    "load_config",
]
