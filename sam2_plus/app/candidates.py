"""The candidate masks of a click prompt (three for one click, by SAM 2's rule; one otherwise): what the preview returns with them (`MaskCandidates`) and their
thumbnails under the frame view, each with its predicted IoU (`thumbnails`)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..media.render import Color, overlay_mask

THUMBNAIL_SIDE = 240  # pixels on the longer side: small under the frame view, large enough to tell them apart


@dataclass(frozen=True)
class MaskCandidates:
    """The candidate masks of a click prompt on one frame, each at the video's size as the preview would show
    it, with their predicted IoU; `chosen` is the one the clicks give by themselves (the highest IoU)."""

    masks: np.ndarray  # [M, H, W] bool
    ious: np.ndarray  # [M] float32
    points: np.ndarray  # [M, 2] (x, y) where each one's logits peak, as the tracker's point
    chosen: int

    def __len__(self) -> int:
        return len(self.ious)

    def caption(self, index: int, in_use: int) -> str:
        mark = " ✓ in use" if index == in_use else ""
        default = " (the clicks' own)" if index == self.chosen else ""
        return f"{index + 1}: IoU {float(self.ious[index]):.2f}{default}{mark}"


def thumbnails(frame: np.ndarray, candidates: MaskCandidates, color: Color,
               in_use: int) -> list[tuple[np.ndarray, str]]:
    """Each candidate drawn on the frame, shrunk to THUMBNAIL_SIDE, with its caption."""
    height, width = frame.shape[:2]
    factor = min(1.0, THUMBNAIL_SIDE / max(height, width))
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    shown = []
    for index in range(len(candidates)):
        image = np.array(frame, dtype=np.uint8, copy=True)
        overlay_mask(image, candidates.masks[index], color)
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if factor < 1 else image
        shown.append((small, candidates.caption(index, in_use)))
    return shown
