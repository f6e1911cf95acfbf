"""Find objects: the automatic mask generator's masks on an image (or a video frame) as numbered proposals.

    generator = build_generator(images, options)        # AutomaticMaskGenerator with the options' grid
    proposals = find_objects(image, options, generator)  # largest first (options.sort "area") or by score

The generator runs a grid of clicks (`FindOptions.grid` per side: coarse 8, normal 16, fine 32), keeps masks
above the quality and stability thresholds and removes duplicates (box NMS). The proposals are then sorted,
largest area first (`sort: "area"`, the default: the objects a person names first) or highest predicted IoU
first (`sort: "score"`), ties broken by the other key, cut to `max_proposals`, and numbered from 1 in that order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..image.automatic import AutomaticMaskGenerator
from ..media.export import FrameRecord, mask_to_box
from ..media.rle import decode_rle, encode_rle, rle_size
from .inputs import FindOptions, StillImage


class MaskGenerator(Protocol):
    """What find_objects needs (sam2_plus.image.automatic.AutomaticMaskGenerator with output_mode="coco_rle")."""

    def generate(self, image: np.ndarray) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Proposal:
    id: int  # 1-based, in the proposals' order
    mask: dict[str, Any]  # COCO RLE {"size": [H, W], "counts": str}
    bbox: tuple[float, float, float, float]  # XYWH pixels of the mask, COCO's bbox (w, h count whole pixels)
    predicted_iou: float
    stability_score: float
    area: int  # mask pixels
    point: tuple[float, float]  # (x, y): the grid click that gave the mask

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "mask": self.mask, "bbox": [round(v, 3) for v in self.bbox],
                "predicted_iou": round(self.predicted_iou, 5), "stability_score": round(self.stability_score, 5),
                "area": self.area, "point": [round(v, 3) for v in self.point]}

    def decode(self) -> np.ndarray:
        """The mask as HxW bool."""
        return decode_rle(self.mask)

    @property
    def prompt(self) -> dict[str, Any]:
        """This proposal as an object of the prompts JSON: a mask prompt on the frame it was found on (add
        "frame" and the object id)."""
        return {"task": "mask", "prompts": [{"mask": self.mask}]}


def build_generator(images: Any, options: FindOptions) -> MaskGenerator:
    """The automatic mask generator over an image predictor (any model's: SAM 2's or EdgeTAM's) with the
    options' grid and filters."""
    return AutomaticMaskGenerator(images, **options.generator_settings())


def find_objects(image: StillImage, options: FindOptions, generator: MaskGenerator) -> list[Proposal]:
    """The generator's masks on `image`, sorted (`options.sort`), capped (`options.max_proposals`), numbered."""
    found = [_proposal(0, entry, image) for entry in generator.generate(image.pixels)]
    found.sort(key=_sort_key(options.sort))
    return [Proposal(index, p.mask, p.bbox, p.predicted_iou, p.stability_score, p.area, p.point)
            for index, p in enumerate(found[:options.max_proposals], start=1)]


def _sort_key(sort: str):
    if sort == "score":
        return lambda p: (-p.predicted_iou, -p.area)
    return lambda p: (-p.area, -p.predicted_iou)


def _proposal(index: int, entry: Mapping[str, Any], image: StillImage) -> Proposal:
    """A generator's entry as a proposal; its box is the mask's as COCO counts it (the generator's bbox, SAM's,
    spans from the first to the last pixel: one less in width and height)."""
    rle = _rle(entry["segmentation"])
    if rle_size(rle) != (image.height, image.width):
        raise ValueError(f"the generator's mask is {rle_size(rle)}, the image {(image.height, image.width)}")
    box = mask_to_box(decode_rle(rle))
    x1, y1, x2, y2 = (0.0, 0.0, 0.0, 0.0) if box is None else (float(v) for v in box)
    point = np.asarray(entry["point_coords"], np.float64).reshape(-1, 2)[0]
    return Proposal(index, rle, (x1, y1, x2 - x1, y2 - y1), float(entry["predicted_iou"]),
                    float(entry["stability_score"]), int(entry["area"]), (float(point[0]), float(point[1])))


def _rle(segmentation: Any) -> dict[str, Any]:
    """COCO RLE with text counts (pycocotools gives bytes); a binary mask is encoded."""
    if isinstance(segmentation, np.ndarray):
        return encode_rle(segmentation)
    counts = segmentation["counts"]
    return {"size": [int(v) for v in segmentation["size"]],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def proposals_record(proposals: Sequence[Proposal], image: StillImage) -> FrameRecord:
    """The proposals as a frame's record (object id = proposal id, score = predicted IoU, boxes the masks'), for
    the COCO writer."""
    masks = (np.stack([p.decode() for p in proposals]) if proposals
             else np.zeros((0, image.height, image.width), bool))
    return FrameRecord(frame_idx=image.frame, obj_ids=[p.id for p in proposals], masks=masks, boxes=None,
                       points=np.array([p.point for p in proposals], np.float32).reshape(-1, 2),
                       scores=np.array([p.predicted_iou for p in proposals], np.float32),
                       visible=np.ones(len(proposals), bool))
