"""Masks as polygons (OpenCV contours) that rasterise back to the same pixels.

Tools turn polygons into masks in two ways, and no polygon gives the same pixels under both:

- continuous coordinates, a pixel inside when its centre is (pycocotools, so COCO, CVAT and Datumaro):
  ``edges=True`` traces the mask upsampled two times and scales back, which puts every vertex a quarter
  pixel inside the mask's pixel edges. Filled by OpenCV on truncated coordinates (Ultralytics' own
  ``polygon2mask``) these polygons give the mask back too.
- OpenCV's ``fillPoly`` on integer coordinates, rounded (supervision) or truncated (Ultralytics):
  ``edges=False`` is OpenCV's contour through the centres of the mask's edge pixels, as Ultralytics' own mask
  converter writes YOLO labels; a continuous rasteriser loses half a pixel around it.

Either way the outlines are external (holes are filled) and, for ``edges=False``, parts of one or two
pixels in a row (fewer than three vertices) are left out.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..media.export import mask_to_box


def mask_polygons(mask: np.ndarray, edges: bool = True) -> list[np.ndarray]:
    """The outline of each part of a boolean mask as a [K, 2] float64 polygon (x, y), largest first; see the
    module docstring for `edges`."""
    box = mask_to_box(mask)
    if box is None:
        return []
    x1, y1, x2, y2 = (int(v) for v in box)
    crop = np.ascontiguousarray(mask[y1:y2, x1:x2], dtype=np.uint8)
    if edges:
        crop = np.repeat(np.repeat(crop, 2, axis=0), 2, axis=1)
    contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    points = [c.reshape(-1, 2).astype(np.float64) for c in contours if len(c) >= 3]
    polygons = [((p + 0.5) / 2 if edges else p) + (x1, y1) for p in points]
    return sorted(polygons, key=lambda p: -abs(cv2.contourArea(p.astype(np.float32))))


def single_polygon(polygons: list[np.ndarray]) -> np.ndarray:
    """The parts as one polygon, for formats with one polygon per object and frame (CVAT's tracks): every
    other part is joined to the largest by a bridge walked there and back, which encloses no area, so
    even-odd rasterisation (pycocotools) gives the union of the parts."""
    if len(polygons) <= 1:
        return polygons[0] if polygons else np.zeros((0, 2))
    base = polygons[0]
    detours: dict[int, list[np.ndarray]] = {}
    centre = base.mean(axis=0)
    for part in polygons[1:]:
        start = int(np.argmin(((part - centre) ** 2).sum(axis=1)))
        anchor = int(np.argmin(((base - part[start]) ** 2).sum(axis=1)))
        loop = np.concatenate([part[start:], part[:start + 1]])
        detours.setdefault(anchor, []).append(loop)
    walk: list[np.ndarray] = []
    for index, vertex in enumerate(base):
        walk.append(vertex[None])
        for loop in detours.get(index, []):
            walk.extend([loop, vertex[None]])
    return np.concatenate(walk)


def format_points(polygon: np.ndarray, scale: tuple[float, float] = (1.0, 1.0), decimals: int = 2) -> list[str]:
    """The polygon's coordinates as text, x and y divided by `scale`, trailing zeros dropped."""
    scaled = polygon / np.asarray(scale, dtype=np.float64)
    return [_number(v, decimals) for v in scaled.reshape(-1)]


def _number(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
