"""The prompts drawn on the frame view: clicks, boxes, mask outlines and a pending box corner."""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ..media.render import Color
from .editing import ObjectState


def draw_prompts(image: np.ndarray, objects: list[ObjectState], frame: int,
                 corner: Optional[tuple[int, int, float, float]] = None, scale: int = 1) -> np.ndarray:
    """Draw every object's prompt on `frame` (clicks, boxes, mask outlines) and a pending box corner, on an
    image `scale` times the video's size."""
    radius = max(4, round(min(image.shape[:2]) / 60))

    def at(x: float, y: float) -> tuple[int, int]:
        return int(round(x * scale)), int(round(y * scale))

    for obj in objects:
        prompt = obj.prompts.get(frame)
        if prompt is None:
            continue
        if prompt.mask is not None:
            contours, _ = cv2.findContours(prompt.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            contours = [c * scale for c in contours]
            cv2.drawContours(image, contours, -1, (255, 255, 255), 3)
            cv2.drawContours(image, contours, -1, obj.color, 1)
        if prompt.box is not None:
            x1, y1, x2, y2 = prompt.box.tolist()
            cv2.rectangle(image, at(x1, y1), at(x2 - 1, y2 - 1), (255, 255, 255), 3)
            cv2.rectangle(image, at(x1, y1), at(x2 - 1, y2 - 1), obj.color, 1)
        for (x, y), label in prompt.clicks():
            _draw_click(image, at(x, y), obj.color, label == 1, radius)
    if corner is not None and corner[1] == frame:
        obj = next((o for o in objects if o.obj_id == corner[0]), None)
        color = obj.color if obj else (255, 255, 255)
        center = at(corner[2], corner[3])
        cv2.drawMarker(image, center, (255, 255, 255), cv2.MARKER_CROSS, 4 * radius, 4)
        cv2.drawMarker(image, center, color, cv2.MARKER_CROSS, 4 * radius, 2)
    return image


def _draw_click(image: np.ndarray, center: tuple[int, int], color: Color, positive: bool, radius: int) -> None:
    fill = color if positive else (0, 0, 0)
    cv2.circle(image, center, radius + 2, (255, 255, 255), cv2.FILLED, cv2.LINE_AA)
    cv2.circle(image, center, radius, fill, cv2.FILLED, cv2.LINE_AA)
    arm = max(2, radius // 2)
    x, y = center
    cv2.line(image, (x - arm, y), (x + arm, y), (255, 255, 255), 2)
    if positive:
        cv2.line(image, (x, y - arm), (x, y + arm), (255, 255, 255), 2)
