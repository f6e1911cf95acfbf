"""Stand-ins for the image predictor and the automatic mask generator, for the still-image service's fast tests:
they answer from the prompt's geometry, so a test knows the masks it should get back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from sam2_plus.media.rle import encode_rle

RADII = (3, 8, 14)  # the three candidates of a lone click: discs around it
IOUS = (0.55, 0.91, 0.72)  # their predicted IoUs (the second is the best)
LOGIT = 10.0
HEAD_BOX = (0.25, 0.5, 0.75, 1.0)  # the box task's head box, normalised


def disc(height: int, width: int, x: float, y: float, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return (xx - x) ** 2 + (yy - y) ** 2 <= radius ** 2


@dataclass
class Decoded:
    ious: torch.Tensor
    unclamped_logits: torch.Tensor
    boxes_norm: Optional[torch.Tensor]


class DiscPredictor:
    """ImagePredictor's torch level with model pixels = image pixels. Clicks: discs around the first positive
    click (three radii, or the middle one alone); a box: the box less discs around negative clicks. The box task
    also gives HEAD_BOX. Records its calls (with the task it decoded with)."""

    def __init__(self) -> None:
        self.task = "mask"
        self.image: Optional[np.ndarray] = None
        self.calls: list[dict[str, Any]] = []

    def set_image(self, image: np.ndarray) -> None:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        self.image = image

    def to_model_coords(self, coords: torch.Tensor, orig_hw: tuple[int, int]) -> torch.Tensor:
        assert orig_hw == self.image.shape[:2]
        return coords.float()

    def upscale(self, low_res_logits: torch.Tensor, orig_hw: tuple[int, int]) -> torch.Tensor:
        assert tuple(low_res_logits.shape[-2:]) == tuple(orig_hw)
        return low_res_logits

    def decode(self, coords, labels, boxes=None, mask_input=None, multimask_output=True) -> Decoded:
        assert self.image is not None, "set_image first"
        self.calls.append(dict(task=self.task, coords=coords, labels=labels, box=boxes, multimask=multimask_output))
        height, width = self.image.shape[:2]
        if boxes is not None:
            masks, ious = [self._box(boxes[0], height, width, coords, labels)], [0.8]
        else:
            x, y = coords[0, int(torch.argmax(labels[0]))].tolist()
            radii = RADII if multimask_output else RADII[1:2]
            masks = [disc(height, width, x, y, r) for r in radii]
            ious = list(IOUS) if multimask_output else [IOUS[1]]
        logits = torch.from_numpy(np.stack([np.where(m, LOGIT, -LOGIT).astype(np.float32) for m in masks]))[None]
        head = torch.tensor([HEAD_BOX] * len(masks))[None] if self.task == "box" else None
        return Decoded(torch.tensor([ious]), logits, head)

    @staticmethod
    def _box(box, height, width, coords, labels) -> np.ndarray:
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        mask = np.zeros((height, width), bool)
        mask[y1:y2, x1:x2] = True
        if coords is not None:
            for (x, y), label in zip(coords[0].tolist(), labels[0].tolist()):
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
