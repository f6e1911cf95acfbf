"""Effects on video frames (OpenCV): each chosen object's region gets its effect, the rest of the frame the
background's; ``EffectFrame.alpha`` is the chosen objects' region as an alpha matte, for cut-outs.

An object's region is its mask (mask task), its box (box task) or a disc around its point (point task), on
frames where it is visible. Work on objects is limited to their bounding boxes (with the margins that blurs
and feathering need), so the result equals the operation done on the whole frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ..media.export import FrameRecord
from ..media.render import Color, color_for_id
from .settings import Effect, EffectSettings

BLACK: Color = (0, 0, 0)
MIN_PYRAMID_SIGMA = 2.0  # a blur is done at the smallest pyramid level where its sigma stays at least this


@dataclass(frozen=True)
class EffectFrame:
    rgb: np.ndarray  # HxWx3 uint8: the frame with the effects
    alpha: Optional[np.ndarray] = None  # HxW uint8: 255 in the chosen objects, 0 outside, soft when feathered

    def rgba(self, clear_transparent: bool = False) -> np.ndarray:
        """HxWx4; `clear_transparent` blacks out fully transparent pixels (PNGs of them compress far better)."""
        if self.alpha is None:
            raise ValueError("this frame was composed without an alpha matte")
        rgba = np.dstack([self.rgb, self.alpha])
        if clear_transparent:
            rgba[self.alpha == 0] = 0
        return rgba


@dataclass(frozen=True)
class Window:
    """Rows y0:y1 and columns x0:x1 of a frame."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def grown(self, margin: int, height: int, width: int) -> "Window":
        return Window(max(self.y0 - margin, 0), min(self.y1 + margin, height), max(self.x0 - margin, 0),
                      min(self.x1 + margin, width))

    def within(self, outer: "Window") -> tuple[slice, slice]:
        """This window's slices inside an array that holds `outer`."""
        return (slice(self.y0 - outer.y0, self.y1 - outer.y0), slice(self.x0 - outer.x0, self.x1 - outer.x0))


def bounding_window(mask: np.ndarray) -> Optional[Window]:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return Window(int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)


# --------------------------------------------------------------------------- image operations


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of standard deviation `sigma`. A strong one runs on a copy halved k times (pyrDown,
    itself a Gaussian) and is enlarged again: within a few grey levels of the full-size blur (mean about 0.2)
    at a small fraction of its cost."""
    levels = 0
    while sigma / 2 ** (levels + 1) >= MIN_PYRAMID_SIGMA:
        levels += 1
    if levels == 0:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    small = image
    for _ in range(levels):
        small = cv2.pyrDown(small)
    scale = 4 ** levels  # pyrDown's kernel has variance 1 at its level: (4**k - 1) / 3 at full size in all
    small = cv2.GaussianBlur(small, (0, 0), math.sqrt(max(sigma ** 2 - (scale - 1) / 3, scale / 4) / scale))
    return cv2.resize(small, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)


def blur_window(image: np.ndarray, window: Window, sigma: float) -> np.ndarray:
    """`window` of the blurred image: blurred with 3 sigma of context around it."""
    height, width = image.shape[:2]
    context = window.grown(math.ceil(3 * sigma), height, width)
    return gaussian_blur(image[context.slices], sigma)[window.within(context)]


def pixelate_window(image: np.ndarray, window: Window, block: int) -> np.ndarray:
    """`window` of the pixelated image: each block x block square of a grid fixed to the frame becomes its mean
    colour (squares cut by the frame's edge: the mean of the part inside the frame)."""
    height, width = image.shape[:2]
    grid = Window(window.y0 - window.y0 % block, min(-(-window.y1 // block) * block, height),
                  window.x0 - window.x0 % block, min(-(-window.x1 // block) * block, width))
    crop = image[grid.slices]
    sums = cv2.integral(crop)  # (h + 1) x (w + 1): block sums from four corners, partial blocks included
    ys = np.minimum(np.arange(0, crop.shape[0] + block, block), crop.shape[0])
    xs = np.minimum(np.arange(0, crop.shape[1] + block, block), crop.shape[1])
    totals = sums[ys[1:]][:, xs[1:]] - sums[ys[:-1]][:, xs[1:]] - sums[ys[1:]][:, xs[:-1]] + sums[ys[:-1]][:, xs[:-1]]
    means = np.rint(totals / (np.diff(ys)[:, None, None] * np.diff(xs)[None, :, None])).astype(np.uint8)
    big = cv2.resize(means, (means.shape[1] * block, means.shape[0] * block), interpolation=cv2.INTER_NEAREST)
    return big[: crop.shape[0], : crop.shape[1]][window.within(grid)]


def grayscale(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def dimmed(image: np.ndarray, keep: float) -> np.ndarray:
    return cv2.convertScaleAbs(image, alpha=keep)


def soft_weights(mask: np.ndarray, feather: float) -> np.ndarray:
    """float32 weights in [0, 1]: the 0/1 mask under a Gaussian of sigma `feather` (callers leave 3 sigma of
    zeros around the mask, or the frame's edge, where the mask continues as if mirrored)."""
    radius = math.ceil(3 * feather)
    return cv2.GaussianBlur(mask.astype(np.float32), (2 * radius + 1, 2 * radius + 1), feather)


def paste(dst: np.ndarray, src: np.ndarray, mask: np.ndarray, weights: Optional[np.ndarray]) -> None:
    """dst = src where the mask is set (hard) or src * w + dst * (1 - w) (soft), in place."""
    if weights is None:
        copied = cv2.copyTo(src, mask.view(np.uint8), dst)  # far faster than numpy's where=
        if not np.shares_memory(copied, dst):  # OpenCV wrote to a new array (dst is a strided view)
            dst[...] = copied
    else:
        dst[...] = cv2.blendLinear(src, dst, weights, 1.0 - weights)


# --------------------------------------------------------------------------- regions


def object_region(result: FrameRecord, index: int, task: str, point_radius: int) -> Optional[np.ndarray]:
    """HxW bool: the mask (mask task), the box (box task) or a disc around the point (point task); None when
    the object is not visible or has no box / point on this frame."""
    if not result.visible[index]:
        return None
    if task == "mask":
        return result.masks[index]
    region = np.zeros((result.height, result.width), np.uint8)
    if task == "box":
        box = result.box_for(index)
        if box is None:
            return None
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        region[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = 1
    else:
        point = result.point_for(index)
        if point is None:
            return None
        cv2.circle(region, (int(round(float(point[0]))), int(round(float(point[1])))), point_radius, 1, cv2.FILLED)
    return region.view(bool)


def default_point_radius(height: int, width: int) -> int:
    return max(4, round(0.05 * min(height, width)))


# --------------------------------------------------------------------------- the renderer

WindowEffect = Callable[[np.ndarray, Window], np.ndarray]


class EffectRenderer:
    """Composes effect frames; ``render`` has ``TrackRenderer.render``'s signature (live previews)."""

    def __init__(self, settings: EffectSettings, tasks: Mapping[int, str], with_alpha: bool = False) -> None:
        self.settings = settings
        self.tasks = dict(tasks)
        self.with_alpha = with_alpha
        self.chosen = settings.chosen(self.tasks)

    def render(self, frame: np.ndarray, result: FrameRecord) -> np.ndarray:
        return self.compose(frame, result).rgb

    def compose(self, frame: np.ndarray, result: FrameRecord) -> EffectFrame:
        if frame.shape[:2] != (result.height, result.width):
            raise ValueError(f"frame is {frame.shape[:2]} but the result masks are {(result.height, result.width)}")
        regions = self._regions(result)
        image = np.array(frame, dtype=np.uint8, copy=True)
        for obj_id, region in regions.items():
            self._apply_object_effect(image, obj_id, region)
        matte = None
        if self.with_alpha or not self.settings.background.is_none:
            matte = self._matte(list(regions.values()), result.height, result.width)
        if not self.settings.background.is_none:
            image = self._apply_background(image, frame, matte)
        for obj_id, region in regions.items():
            effect = self.settings.effect_for(obj_id)
            if effect.name == "outline":
                draw_outline(image, region, effect.color or color_for_id(obj_id), effect.thickness)
        return EffectFrame(image, matte.alpha(result.height, result.width) if self.with_alpha else None)

    def _regions(self, result: FrameRecord) -> dict[int, np.ndarray]:
        radius = self.settings.point_radius or default_point_radius(result.height, result.width)
        regions = {}
        for index, obj_id in enumerate(result.obj_ids):
            if obj_id in self.chosen:
                region = object_region(result, index, self.tasks.get(obj_id, "mask"), radius)
                if region is not None and region.any():
                    regions[obj_id] = region
        return dict(sorted(regions.items(), key=lambda item: self.chosen.index(item[0])))

    def _apply_object_effect(self, image: np.ndarray, obj_id: int, region: np.ndarray) -> None:
        effect = self.settings.effect_for(obj_id)
        operation = _window_effect(effect)
        if operation is None:
            return
        height, width = region.shape
        margin = math.ceil(3 * self.settings.feather)
        window = bounding_window(region).grown(margin, height, width)
        crop = image[window.slices]
        mask = region[window.slices]
        weights = soft_weights(mask, self.settings.feather) if self.settings.feather else None
        paste(crop, operation(image, window), mask, weights)

    def _matte(self, regions: list[np.ndarray], height: int, width: int) -> "Matte":
        """The union of the chosen objects' regions, feathered, in the window that holds it."""
        if not regions:
            return Matte(None, None, None)
        union = np.logical_or.reduce(regions) if len(regions) > 1 else regions[0]
        window = bounding_window(union).grown(math.ceil(3 * self.settings.feather), height, width)
        mask = union[window.slices]
        return Matte(window, mask, soft_weights(mask, self.settings.feather) if self.settings.feather else None)

    def _apply_background(self, image: np.ndarray, frame: np.ndarray, matte: "Matte") -> np.ndarray:
        """The background's effect on the frame, with `image` (the objects and their effects) inside the matte."""
        output = background_image(frame, self.settings.background)
        if matte.window is not None:
            paste(output[matte.window.slices], image[matte.window.slices], matte.mask, matte.weights)
        return output


@dataclass(frozen=True)
class Matte:
    """The chosen objects in `window` (none visible: all None): 0/1 mask, and float weights when feathered."""

    window: Optional[Window]
    mask: Optional[np.ndarray]
    weights: Optional[np.ndarray]

    def alpha(self, height: int, width: int) -> np.ndarray:
        """HxW uint8: 255 in the chosen objects, 0 outside, soft at a feathered edge."""
        alpha = np.zeros((height, width), np.uint8)
        if self.window is not None:
            alpha[self.window.slices] = (self.mask * np.uint8(255) if self.weights is None
                                         else np.rint(self.weights * 255).astype(np.uint8))
        return alpha


def _window_effect(effect: Effect) -> Optional[WindowEffect]:
    if effect.name == "blur":
        return lambda image, window: blur_window(image, window, effect.strength)
    if effect.name == "pixelate":
        return lambda image, window: pixelate_window(image, window, effect.block)
    if effect.name == "fill":
        color = effect.color or BLACK
        return lambda image, window: np.full((window.y1 - window.y0, window.x1 - window.x0, 3), color, np.uint8)
    return None  # none; outline is drawn after the background


def background_image(frame: np.ndarray, effect: Effect) -> np.ndarray:
    """The whole frame with the background's effect (erase: black; the alpha matte holds the transparency)."""
    name = effect.name
    if name == "blur":
        return gaussian_blur(frame, effect.strength)
    if name == "grayscale":
        return grayscale(frame)
    if name == "fill":
        return np.full_like(frame, effect.color or BLACK)
    if name == "erase":
        return np.zeros_like(frame)
    if name == "spotlight":
        return dimmed(frame, effect.dim)
    return np.array(frame, copy=True)


def draw_outline(image: np.ndarray, region: np.ndarray, color: Color, thickness: int) -> None:
    """The region's contour, `thickness` pixels wide and centred on its boundary pixels, in place."""
    height, width = region.shape
    window = bounding_window(region).grown(thickness, height, width)
    crop = image[window.slices]
    contours, _ = cv2.findContours(region[window.slices].view(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(crop, contours, -1, color, thickness, lineType=cv2.LINE_8)
