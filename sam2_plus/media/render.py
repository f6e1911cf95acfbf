"""Draw tracking results on frames: masks, boxes and points, one stable colour per object.

``TrackRenderer`` draws a whole ``FrameRecord`` with each object at its own
granularity (mask / box / point) and remembers recent points to draw trails.
The ``overlay_mask``/``draw_box``/``draw_point`` functions draw one thing in
place. Work is limited to each object's bounding box, so rendering costs a few
milliseconds per HD frame.
"""

from __future__ import annotations

import colorsys
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..config import TASKS
from .export import FrameRecord

Color = tuple[int, int, int]  # RGB

# Distinct, readable on video; ids beyond the list get golden-ratio hues.
_BASE_PALETTE: tuple[Color, ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (255, 225, 25),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
    (170, 255, 195),
)


def hex_color(color: Color) -> str:
    """'#rrggbb' of an RGB colour."""
    return "#{:02x}{:02x}{:02x}".format(*color)


def color_for_id(obj_id: int) -> Color:
    """A colour that depends only on the object id."""
    obj_id = int(obj_id)
    if 1 <= obj_id <= len(_BASE_PALETTE):
        return _BASE_PALETTE[obj_id - 1]
    hue = (obj_id * 0.6180339887498949) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return int(red * 255), int(green * 255), int(blue * 255)


@dataclass(frozen=True)
class RenderStyle:
    mask_alpha: float = 0.45
    contour_thickness: int = 2
    box_thickness: int = 2
    point_radius: int = 6
    trail_length: int = 12  # frames of history drawn behind a point
    font_scale: float = 0.5


def overlay_mask(image: np.ndarray, mask: np.ndarray, color: Color, alpha: float = 0.45, contour: int = 2) -> None:
    """Tint ``mask`` pixels of ``image`` (HxWx3 uint8, in place) and outline the mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return
    cols = np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    margin = contour
    y0, y1 = max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, height)
    x0, x1 = max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, width)
    crop = image[y0:y1, x0:x1]
    crop_mask = mask[y0:y1, x0:x1]
    crop_mask = crop_mask.astype(np.uint8)
    tinted = cv2.addWeighted(crop, 1.0 - alpha, np.full_like(crop, color), alpha, 0.0)
    copied = cv2.copyTo(tinted, crop_mask, crop)  # masked copy; much faster than numpy's where=
    if copied is not crop and not np.shares_memory(copied, crop):
        crop[...] = copied
    if contour > 0:
        contours, _ = cv2.findContours(crop_mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(crop, contours, -1, color, contour, lineType=cv2.LINE_8)


def draw_box(
    image: np.ndarray,
    box: Sequence[float],
    color: Color,
    label: str | None = None,
    thickness: int = 2,
    font_scale: float = 0.5,
) -> None:
    """Draw an xyxy box (exclusive x2/y2) and an optional label tag above it, in place."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    left = int(np.clip(round(x1), 0, width - 1))
    top = int(np.clip(round(y1), 0, height - 1))
    right = int(np.clip(round(x2) - 1, 0, width - 1))
    bottom = int(np.clip(round(y2) - 1, 0, height - 1))
    cv2.rectangle(image, (left, top), (right, bottom), color, thickness, lineType=cv2.LINE_8)
    if label:
        (text_width, text_height), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        tag_height = text_height + baseline + 4
        tag_top = top - tag_height if top - tag_height >= 0 else top  # inside the box when no room above
        cv2.rectangle(image, (left, tag_top), (left + text_width + 6, tag_top + tag_height), color, cv2.FILLED)
        cv2.putText(
            image,
            label,
            (left + 3, tag_top + text_height + 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            _text_color(color),
            1,
            lineType=cv2.LINE_AA,
        )


def draw_point(
    image: np.ndarray,
    point: Sequence[float],
    color: Color,
    radius: int = 6,
    trail: Sequence[Sequence[float]] = (),
) -> None:
    """Draw a filled marker at (x, y) with a thin outline, after a polyline through ``trail`` (oldest first)."""
    height, width = image.shape[:2]
    center = _pixel(point, width, height)
    if len(trail):
        path = np.array([_pixel(p, width, height) for p in trail] + [center], dtype=np.int32)
        cv2.polylines(image, [path.reshape(-1, 1, 2)], False, color, max(1, radius // 3), lineType=cv2.LINE_AA)
    cv2.circle(image, center, radius + 1, _text_color(color), cv2.FILLED, lineType=cv2.LINE_AA)
    cv2.circle(image, center, radius, color, cv2.FILLED, lineType=cv2.LINE_8)


def _pixel(point: Sequence[float], width: int, height: int) -> tuple[int, int]:
    return int(np.clip(round(float(point[0])), 0, width - 1)), int(np.clip(round(float(point[1])), 0, height - 1))


def _text_color(background: Color) -> Color:
    luminance = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    return (0, 0, 0) if luminance > 150 else (255, 255, 255)


class TrackRenderer:
    """Draws results frame after frame; ``tasks`` gives each object's granularity (default "mask")."""

    def __init__(
        self,
        tasks: Mapping[int, str] | None = None,
        labels: Mapping[int, str] | None = None,
        style: RenderStyle = RenderStyle(),
    ) -> None:
        self.tasks = dict(tasks or {})
        unknown = {task for task in self.tasks.values() if task not in TASKS}
        if unknown:
            raise ValueError(f"unknown task(s) {sorted(unknown)}; expected one of {TASKS}")
        self.labels = dict(labels or {})
        self.style = style
        self._history: dict[int, deque[tuple[int, tuple[float, float]]]] = {}

    def render(self, frame: np.ndarray, result: FrameRecord) -> np.ndarray:
        """Return a copy of ``frame`` with ``result`` drawn on it. Objects that are not visible are not drawn."""
        if frame.shape[:2] != (result.height, result.width):
            raise ValueError(f"frame is {frame.shape[:2]} but the result masks are {(result.height, result.width)}")
        image = np.array(frame, dtype=np.uint8, copy=True)
        style = self.style
        drawn = [i for i in range(len(result.obj_ids)) if result.visible[i]]
        by_task: dict[str, list[int]] = {task: [] for task in TASKS}
        for i in drawn:
            by_task[self.tasks.get(result.obj_ids[i], "mask")].append(i)
        for i in by_task["mask"]:
            color = color_for_id(result.obj_ids[i])
            overlay_mask(image, result.masks[i], color, style.mask_alpha, style.contour_thickness)
        for i in by_task["box"]:
            box = result.box_for(i)
            if box is not None:
                obj_id = result.obj_ids[i]
                label = self.labels.get(obj_id, str(obj_id))
                draw_box(image, box, color_for_id(obj_id), label, style.box_thickness, style.font_scale)
        for i in by_task["point"]:
            point = result.point_for(i)
            if point is not None:
                obj_id = result.obj_ids[i]
                trail = self._trail(obj_id, result.frame_idx)
                draw_point(image, point, color_for_id(obj_id), style.point_radius, trail)
                self._remember(obj_id, result.frame_idx, point)
        return image

    def _trail(self, obj_id: int, frame_idx: int) -> list[tuple[float, float]]:
        oldest = frame_idx - self.style.trail_length
        return [p for f, p in sorted(self._history.get(obj_id, ())) if oldest <= f < frame_idx]

    def _remember(self, obj_id: int, frame_idx: int, point: np.ndarray) -> None:
        history = self._history.setdefault(obj_id, deque(maxlen=max(1, self.style.trail_length)))
        history.append((frame_idx, (float(point[0]), float(point[1]))))

    def reset(self) -> None:
        self._history.clear()
