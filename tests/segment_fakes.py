"""Stand-ins for the image predictor and the automatic mask generator, for the still-image service's fast tests:
they answer from the prompt's geometry, so a test knows the masks it should get back."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from sam2_plus.media.rle import encode_rle

RADII = (3, 8, 14)  # the three candidates of a lone click: discs around it
IOUS = (0.55, 0.91, 0.72)  # their predicted IoUs (the second is the best)
LOGIT = 10.0


def disc(height: int, width: int, x: float, y: float, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return (xx - x) ** 2 + (yy - y) ** 2 <= radius ** 2


class DiscPredictor:
    """Clicks: discs around the first positive click (three radii, or the middle one alone); a box: the box
    (with clicks, the box less the discs of negative clicks). Records its calls."""

    def __init__(self) -> None:
        self.image: Optional[np.ndarray] = None
        self.calls: list[dict[str, Any]] = []

    def set_image(self, image: np.ndarray) -> None:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        self.image = image

    def predict(self, point_coords=None, point_labels=None, box=None, mask_input=None, multimask_output=True,
                return_logits=False, normalize_coords=True):
        assert self.image is not None, "set_image first"
        self.calls.append(dict(points=point_coords, labels=point_labels, box=box, multimask=multimask_output,
                               logits=return_logits, normalized=normalize_coords))
        height, width = self.image.shape[:2]
        if box is not None:
            masks = [self._box(box, height, width, point_coords, point_labels)]
            ious = [0.8]
        else:
            x, y = point_coords[int(np.argmax(point_labels))]
            radii = RADII if multimask_output else RADII[1:2]
            masks = [disc(height, width, x, y, r) for r in radii]
            ious = list(IOUS) if multimask_output else [IOUS[1]]
        logits = np.stack([np.where(m, LOGIT, -LOGIT).astype(np.float32) for m in masks])
        out = logits if return_logits else logits > 0
        return out, np.array(ious, np.float32), np.zeros((len(masks), 256, 256), np.float32)

    @staticmethod
    def _box(box, height, width, points, labels) -> np.ndarray:
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        mask = np.zeros((height, width), bool)
        mask[y1:y2, x1:x2] = True
        for (x, y), label in zip(points if points is not None else [], labels if labels is not None else []):
            if label == 0:
                mask &= ~disc(height, width, x, y, 3)
        return mask


class SquareGenerator:
    """The automatic generator's output (coco_rle) for given squares (x, y, side, predicted_iou)."""

    def __init__(self, squares: list[tuple[int, int, int, float]]) -> None:
        self.squares = squares
        self.images: list[np.ndarray] = []

    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        self.images.append(image)
        height, width = image.shape[:2]
        out = []
        for x, y, side, iou in self.squares:
            mask = np.zeros((height, width), bool)
            mask[y:y + side, x:x + side] = True
            rle = encode_rle(mask)
            out.append({"segmentation": {"size": rle["size"], "counts": rle["counts"].encode("ascii")},
                        "area": int(mask.sum()), "bbox": [x, y, side - 1, side - 1], "predicted_iou": iou,
                        "point_coords": [[x + side / 2, y + side / 2]], "stability_score": 0.97,
                        "crop_box": [0, 0, width, height]})
        return out
