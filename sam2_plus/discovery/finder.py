"""Finding objects on one keyframe: every object (automatic masks) or the objects named by phrases (an
open-vocabulary detector's boxes made masks by the image predictor). Both run on the image features the tracker
already computed for the frame when it gives them (`backbone`), so a keyframe costs no second encoder pass."""

from __future__ import annotations

from typing import Optional, Protocol, Sequence

import numpy as np

from ..image.automatic import AutomaticMaskGenerator
from ..image.predictor import ImagePredictor
from .detector import TextDetector
from .found import Found
from .settings import DiscoverySettings


class Finder(Protocol):
    """Finds objects on an HxWx3 uint8 RGB frame; `backbone`: the frame's image-encoder output, when known;
    `frame_idx`: which frame of the video it is (stand-ins in tests go by it)."""

    def find(self, image: np.ndarray, backbone: Optional[dict] = None, frame_idx: Optional[int] = None) -> list[Found]:
        ...


class EverythingFinder:
    """Automatic masks (SAM 2's generator with the discovery settings' grid and thresholds)."""

    def __init__(self, predictor: ImagePredictor, settings: DiscoverySettings) -> None:
        self.generator = AutomaticMaskGenerator(
            predictor, points_per_side=settings.points_per_side, pred_iou_thresh=settings.pred_iou_thresh,
            stability_score_thresh=settings.stability_score_thresh)

    def find(self, image: np.ndarray, backbone: Optional[dict] = None, frame_idx: Optional[int] = None) -> list[Found]:
        candidates = self.generator.find(image, backbone)
        masks = self.generator.full_masks(candidates, image.shape[:2])
        scores = candidates.ious.float().cpu().tolist()
        return [Found(mask, score) for mask, score in zip(masks, scores)]


class TextFinder:
    """The detector's boxes for the phrases, each made a mask by the image predictor (one mask per box)."""

    def __init__(self, detector: TextDetector, predictor: ImagePredictor, settings: DiscoverySettings) -> None:
        self.detector, self.predictor, self.settings = detector, predictor, settings

    def find(self, image: np.ndarray, backbone: Optional[dict] = None, frame_idx: Optional[int] = None) -> list[Found]:
        detections = self.detector.detect(image, self.settings.phrases, self.settings.score_threshold)
        if not detections:
            return []
        if backbone is not None:
            self.predictor.set_features(backbone, image.shape[:2])
        else:
            self.predictor.set_image(image)
        boxes = np.array([d.box for d in detections], np.float32)
        masks, _, _ = self.predictor.predict(box=boxes, multimask_output=False)
        masks = masks.reshape(len(detections), *image.shape[:2]) > 0
        return [Found(mask, d.score, d.label) for mask, d in zip(masks, detections)]


def within_area(found: Sequence[Found], settings: DiscoverySettings, frame_pixels: int) -> list[Found]:
    """The found masks whose area is a plausible object's (settings.min_area to max_area of the frame)."""
    low, high = settings.min_area * frame_pixels, settings.max_area * frame_pixels
    return [item for item in found if low <= item.area <= high]


def build_finder(settings: DiscoverySettings, predictor: ImagePredictor,
                 detector: Optional[TextDetector] = None) -> Finder:
    """The finder for the settings' mode over an image predictor of the tracker's network (and, for text, a
    detector)."""
    if settings.mode == "everything":
        return EverythingFinder(predictor, settings)
    if detector is None:
        raise ValueError("the text mode needs a detector")
    return TextFinder(detector, predictor, settings)
