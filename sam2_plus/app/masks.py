"""Masks given as prompts: painted with the brush (gr.ImageEditor) or uploaded as an image."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Optional

import cv2
import numpy as np
from PIL import Image

from .errors import AppInputError


def mask_from_editor(value: Optional[Mapping[str, Any]], size: tuple[int, int]) -> np.ndarray:
    """The painted pixels of a gr.ImageEditor value (numpy layers, RGBA) as an HxW bool mask."""
    layers = [np.asarray(layer) for layer in (value or {}).get("layers") or [] if layer is not None]
    if not layers:
        raise AppInputError("nothing is painted: paint over the object with the brush first")
    painted = np.zeros(size, bool)
    for layer in layers:
        has_alpha = layer.ndim == 3 and layer.shape[2] == 4
        alpha = layer[..., 3] if has_alpha else layer.reshape(layer.shape[:2] + (-1,)).max(-1)
        painted |= _fit(alpha > 0, size)
    return painted


def mask_from_png(path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """An uploaded mask image as an HxW bool mask: nonzero pixels (or, with transparency, opaque ones)."""
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, ValueError) as e:
        raise AppInputError(f"the mask file cannot be read as an image: {e}") from None
    if (image.height, image.width) != tuple(size):
        raise AppInputError(f"the mask is {image.width}x{image.height} but the video is {size[1]}x{size[0]}; "
                            "give a mask of the video's size")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
        if alpha.min() < 255:
            return alpha > 0
    array = np.asarray(image if image.mode in ("P", "L", "1", "I", "I;16", "F") else image.convert("RGB"))
    return array.reshape(array.shape[:2] + (-1,)).max(-1) > 0


def _fit(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape == tuple(size):
        return mask
    resized = cv2.resize(mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return resized > 0
