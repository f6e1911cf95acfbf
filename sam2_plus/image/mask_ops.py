"""The array steps of automatic mask generation: point grids, crop boxes, stability scores, mask boxes, the
crop-edge filter, moving boxes and points from a crop to the image, and the output encodings.

Each works on a whole batch of masks at once (tensors in, tensors out); the generator in `automatic.py` strings
them together. The arithmetic follows SAM 2's automatic mask generator step for step (integer crop sizes,
float32 points, `>` and `>=` where it has them), since its results are what ours must equal.
"""

from __future__ import annotations

import math
from itertools import product
from typing import Any

import numpy as np
import torch

from ..media.rle import encode_rle, mask_to_counts

CropBox = tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels (x1, y1 exclusive)

EDGE_TOLERANCE = 20.0  # pixels: a box side this close to a crop's inner edge was cut by the crop


def point_grid(n_per_side: int) -> np.ndarray:
    """[n*n, 2] (x, y) points in [0, 1], the centres of an n x n grid of cells, x varying fastest."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs, ys = np.meshgrid(side, side)
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def layer_point_grids(n_per_side: int, n_layers: int, downscale: int) -> list[np.ndarray]:
    """One grid for the whole image and one for each crop layer, layer i with n / downscale**i points a side."""
    return [point_grid(int(n_per_side / downscale**layer)) for layer in range(n_layers + 1)]


def crop_boxes(image_hw: tuple[int, int], n_layers: int, overlap_ratio: float) -> tuple[list[CropBox], list[int]]:
    """The whole image, then for layer i (1-based) a 2**i x 2**i tiling of overlapping crops; with each box its
    layer. The overlap is a fraction of the short side, halved with each layer."""
    height, width = image_hw
    boxes: list[CropBox] = [(0, 0, width, height)]
    layers = [0]
    for layer in range(1, n_layers + 1):
        per_side = 2**layer
        overlap = int(overlap_ratio * min(height, width) * (2 / per_side))
        crop_w = math.ceil((overlap * (per_side - 1) + width) / per_side)
        crop_h = math.ceil((overlap * (per_side - 1) + height) / per_side)
        x_starts = [int((crop_w - overlap) * i) for i in range(per_side)]
        y_starts = [int((crop_h - overlap) * i) for i in range(per_side)]
        for x0, y0 in product(x_starts, y_starts):
            boxes.append((x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height)))
            layers.append(layer)
    return boxes, layers


def stability_scores(logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """[N] float32: how much of a mask survives raising its cut-off from threshold - offset to threshold +
    offset (the pixels above the high cut-off over those above the low one; the first set lies in the second)."""
    high = (logits > threshold + offset).flatten(1).sum(1, dtype=torch.int32)
    low = (logits > threshold - offset).flatten(1).sum(1, dtype=torch.int32)
    return high / low


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """[N, 4] int64 XYXY boxes of [N, H, W] bool masks, the right and bottom sides inclusive (the last pixel's
    column and row); an empty mask gets [0, 0, 0, 0]."""
    rows = masks.any(dim=2)
    cols = masks.any(dim=1)
    height, width = masks.shape[-2:]
    top = rows.int().argmax(dim=1)
    bottom = height - 1 - rows.flip(1).int().argmax(dim=1)
    left = cols.int().argmax(dim=1)
    right = width - 1 - cols.flip(1).int().argmax(dim=1)
    boxes = torch.stack([left, top, right, bottom], dim=1).long()
    return boxes * rows.any(dim=1, keepdim=True)


def shift_boxes(boxes: torch.Tensor, crop: CropBox) -> torch.Tensor:
    """XYXY boxes from a crop's pixels to the image's."""
    x0, y0 = crop[:2]
    return boxes + torch.tensor([x0, y0, x0, y0], device=boxes.device)


def shift_points(points: torch.Tensor, crop: CropBox) -> torch.Tensor:
    """(x, y) points from a crop's pixels to the image's."""
    return points + torch.tensor([crop[0], crop[1]], device=points.device)


def near_crop_edge(boxes: torch.Tensor, crop: CropBox, image_hw: tuple[int, int]) -> torch.Tensor:
    """[N] bool: the box (crop pixels) has a side within EDGE_TOLERANCE of an edge of the crop that is not also
    an edge of the image, so the crop probably cut the object there."""
    height, width = image_hw
    in_image = shift_boxes(boxes, crop).float()
    crop_sides = torch.tensor(crop, dtype=torch.float, device=boxes.device)
    image_sides = torch.tensor([0, 0, width, height], dtype=torch.float, device=boxes.device)
    at_crop = torch.isclose(in_image, crop_sides[None], atol=EDGE_TOLERANCE, rtol=0)
    at_image = torch.isclose(in_image, image_sides[None], atol=EDGE_TOLERANCE, rtol=0)
    return (at_crop & ~at_image).any(dim=1)


def xyxy_to_xywh(box: list[float]) -> list[float]:
    x0, y0, x1, y1 = box
    return [x0, y0, x1 - x0, y1 - y0]


def encode_masks(masks: np.ndarray, output_mode: str) -> list[Any]:
    """[N, H, W] bool masks as the output mode asks: the arrays themselves, COCO's compact RLE (pycocotools),
    or uncompressed RLE (column-major run lengths starting with a run of zeros)."""
    if output_mode == "binary_mask":
        return list(masks)
    height, width = masks.shape[-2:]
    if output_mode == "coco_rle":
        return [encode_rle(mask) for mask in masks]
    return [{"size": [height, width], "counts": mask_to_counts(mask)} for mask in masks]
