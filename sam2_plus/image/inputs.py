"""Checking and converting what SAM 2's image API takes (numpy images, clicks, boxes, low-res mask logits) into
the model's tensors. Bad input raises `PromptError` (prompts) or `MediaError` (images), both ValueErrors, with a
message that says what to change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..media.decode import MediaError
from ..prompts import PromptError

CLICK_LABELS = (-1, 0, 1, 2, 3)  # padding, negative, positive, box top-left, box bottom-right


@dataclass
class PromptTensors:
    """One predict call's prompts on the model's device, still in the caller's coordinates."""

    coords: Optional[torch.Tensor]  # [B, N, 2]
    labels: Optional[torch.Tensor]  # [B, N] int32
    boxes: Optional[torch.Tensor]  # [B, 4]
    mask_input: Optional[torch.Tensor]  # [B, 1, h, w]


def check_image(image, what: str = "image") -> np.ndarray:
    """An HxWx3 uint8 RGB array (a PIL image is converted)."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise MediaError(f"{what} must be an HxWx3 uint8 RGB numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise MediaError(f"{what} must be HxWx3 (RGB), got shape {tuple(image.shape)}")
    if image.dtype != np.uint8:
        raise MediaError(f"{what} must be uint8 with values 0-255, got {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise MediaError(f"{what} is empty: shape {tuple(image.shape)}")
    return image


def check_image_list(images) -> list[np.ndarray]:
    if not isinstance(images, (list, tuple)) or not images:
        raise MediaError("set_image_batch takes a non-empty list of HxWx3 uint8 RGB arrays")
    return [check_image(im, f"image {i}") for i, im in enumerate(images)]


def _float_array(values, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise PromptError(f"{name} must be numbers: {error}") from None
    if not np.all(np.isfinite(array)):
        raise PromptError(f"{name} must be finite numbers, got {array.tolist()}")
    return array


def _check_in_image(xy: np.ndarray, name: str, limits: tuple[float, float]) -> None:
    """xy [..., 2] within [0, width] x [0, height] (limits = (width, height))."""
    width, height = limits
    outside = (xy[..., 0] < 0) | (xy[..., 0] > width) | (xy[..., 1] < 0) | (xy[..., 1] > height)
    if np.any(outside):
        bad = xy[outside][0].tolist()
        raise PromptError(f"{name} {bad} is outside the image: x must be in [0, {width:g}] and y in [0, {height:g}]")


def check_clicks(point_coords, point_labels, limits: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Clicks [N, 2] / labels [N], or batched [B, N, 2] / [B, N]; returned batched."""
    if (point_coords is None) != (point_labels is None):
        raise PromptError("point_coords and point_labels go together: give both or neither")
    coords = _float_array(point_coords, "point_coords")
    labels = np.asarray(point_labels)
    if coords.ndim not in (2, 3) or coords.shape[-1] != 2:
        raise PromptError(f"point_coords must be Nx2 or BxNx2 (x, y), got shape {coords.shape}")
    if labels.shape != coords.shape[:-1]:
        raise PromptError(f"point_labels must have shape {coords.shape[:-1]} to match point_coords, "
                          f"got {labels.shape}")
    if coords.shape[-2] == 0:
        raise PromptError("point_coords has no points; pass None for no clicks")
    if not np.issubdtype(labels.dtype, np.number) or not np.all(np.isin(labels, CLICK_LABELS)):
        raise PromptError("point_labels must be 1 (positive), 0 (negative), 2 / 3 (box corners) or -1 (padding), "
                          f"got {labels.tolist()}")
    _check_in_image(coords, "point", limits)
    if coords.ndim == 2:
        coords, labels = coords[None], labels[None]
    return coords, labels.astype(np.int32)


def check_boxes(box, limits: tuple[float, float]) -> np.ndarray:
    """A box [4] or boxes [B, 4] as x0, y0, x1, y1; returned [B, 4]."""
    boxes = _float_array(box, "box")
    if boxes.shape == (4,):
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise PromptError(f"box must be [x0, y0, x1, y1] or Bx4, got shape {boxes.shape}")
    if np.any(boxes[:, 2] < boxes[:, 0]) or np.any(boxes[:, 3] < boxes[:, 1]):
        raise PromptError(f"box corners must be [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1, got {boxes.tolist()}")
    _check_in_image(boxes.reshape(-1, 2, 2), "box corner", limits)
    return boxes


def check_mask_input(mask_input, size: tuple[int, int]) -> np.ndarray:
    """Low-res mask logits [1, h, w] or [B, 1, h, w] (h, w = the prompt encoder's mask size); returned 4-D."""
    mask = _float_array(mask_input, "mask_input")
    if mask.ndim == 3:
        mask = mask[None]
    if mask.ndim != 4 or mask.shape[1] != 1 or tuple(mask.shape[-2:]) != tuple(size):
        raise PromptError(f"mask_input must be 1x{size[0]}x{size[1]} or Bx1x{size[0]}x{size[1]} logits "
                          f"(the low-res logits of an earlier predict), got shape {mask.shape}")
    return mask


def prompt_tensors(point_coords, point_labels, box, mask_input, *, limits: tuple[float, float],
                   mask_size: tuple[int, int], device: torch.device) -> PromptTensors:
    """Checked prompts of one image as tensors; their batch sizes must agree."""
    coords = labels = boxes = mask = None
    if point_coords is not None or point_labels is not None:
        coords, labels = check_clicks(point_coords, point_labels, limits)
    if box is not None:
        boxes = check_boxes(box, limits)
    if mask_input is not None:
        mask = check_mask_input(mask_input, mask_size)
    sizes = {name: x.shape[0] for name, x in (("points", coords), ("boxes", boxes), ("mask_input", mask))
             if x is not None}
    if len(set(sizes.values())) > 1:
        raise PromptError(f"the prompts' batch sizes differ: {sizes}; give each prompt of a batch all its parts")

    def tensor(x, dtype):
        return None if x is None else torch.as_tensor(x, dtype=dtype, device=device)

    return PromptTensors(tensor(coords, torch.float32), tensor(labels, torch.int32), tensor(boxes, torch.float32),
                         tensor(mask, torch.float32))
