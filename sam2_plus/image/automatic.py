"""Automatic masks: a grid of one-click prompts over the image (and optionally over crops of it), each click's
candidate masks kept when the model's predicted IoU and the mask's stability are high enough and the crop did
not cut it, duplicates removed by box NMS. The results equal SAM 2's `SAM2AutomaticMaskGenerator` on the same
network, image and settings.

Where SAM 2 upscales every candidate to the full image and run-length encodes every one that passes the
filters, this generator reads the predicted IoU first and upscales only the candidates that pass it (the
filter reads nothing else, so the survivors are the same), keeps the 256x256 logits of the survivors instead of
their full-size masks, and builds full-size masks only for the masks that come out of NMS.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torchvision.ops import batched_nms, box_area

from ..modeling.sam2_model import SAM2Model
from ..postprocess import remove_small_regions
from .mask_ops import (CropBox, crop_boxes, encode_masks, layer_point_grids, mask_boxes, near_crop_edge,
                       shift_boxes, shift_points, stability_scores, xyxy_to_xywh)
from .api import ImagePredictorAPI
from .predictor import ImagePredictor

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
HOLE_FILL = 10.0  # logit offset from the mask threshold that small-region removal writes (as SAM 2's)
UPSCALE_CHUNK_PIXELS = 2**25  # full-size logits upscaled at a time (128 MB of float32)


@dataclass(frozen=True)
class GeneratorSettings:
    """The generator's settings, as SAM 2's keyword arguments (see `AutomaticMaskGenerator`)."""

    points_per_side: Optional[int] = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    point_grids: Optional[Sequence[np.ndarray]] = None
    min_mask_region_area: int = 0
    output_mode: str = "binary_mask"
    use_m2m: bool = False
    multimask_output: bool = True

    def __post_init__(self) -> None:
        if (self.points_per_side is None) == (self.point_grids is None):
            raise ValueError("give exactly one of points_per_side and point_grids")
        if self.points_per_side is not None and self.points_per_side < 1:
            raise ValueError(f"points_per_side must be at least 1, got {self.points_per_side}")
        if self.point_grids is not None and len(self.point_grids) < self.crop_n_layers + 1:
            raise ValueError(f"point_grids has {len(self.point_grids)} grids; crop_n_layers="
                             f"{self.crop_n_layers} needs one for the image and one for each crop layer")
        if self.points_per_batch < 1:
            raise ValueError(f"points_per_batch must be at least 1, got {self.points_per_batch}")
        if self.crop_n_layers < 0 or self.crop_n_points_downscale_factor < 1:
            raise ValueError("crop_n_layers must be >= 0 and crop_n_points_downscale_factor >= 1")
        deepest = self.crop_n_points_downscale_factor ** self.crop_n_layers
        if self.points_per_side is not None and self.points_per_side < deepest:
            raise ValueError(f"points_per_side={self.points_per_side} leaves no points in crop layer "
                             f"{self.crop_n_layers} (divided by {self.crop_n_points_downscale_factor} a layer)")
        if self.min_mask_region_area < 0:
            raise ValueError(f"min_mask_region_area must be >= 0, got {self.min_mask_region_area}")
        if self.output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {self.output_mode!r}")

    def grids(self) -> list[np.ndarray]:
        """The [N, 2] normalised point grid of the image (index 0) and of each crop layer."""
        if self.point_grids is not None:
            return [np.asarray(grid) for grid in self.point_grids]
        return layer_point_grids(self.points_per_side, self.crop_n_layers, self.crop_n_points_downscale_factor)


@dataclass
class Candidates:
    """Masks kept so far, one row each: their 256x256 logits (after small-region removal), the model's IoU,
    the stability score, the click (x, y), the XYXY box and the crop box (image pixels once placed)."""

    logits: torch.Tensor
    ious: torch.Tensor
    stability: torch.Tensor
    points: torch.Tensor
    boxes: torch.Tensor
    crops: torch.Tensor

    def __len__(self) -> int:
        return self.ious.shape[0]

    def select(self, keep: torch.Tensor) -> "Candidates":
        return Candidates(**{f.name: getattr(self, f.name)[keep] for f in fields(self)})

    @staticmethod
    def join(parts: Sequence["Candidates"]) -> "Candidates":
        return Candidates(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Candidates)})

    @staticmethod
    def empty(device: torch.device, low_res: int = 256) -> "Candidates":
        none = torch.zeros(0, device=device)
        return Candidates(none.reshape(0, low_res, low_res), none, none, none.reshape(0, 2),
                          none.reshape(0, 4).long(), none.reshape(0, 4).long())


def _non_max_suppression(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Indices of the boxes kept by greedy NMS, best score first (one class for all)."""
    boxes = boxes.float()
    return batched_nms(boxes, scores, torch.zeros_like(boxes[:, 0]), iou_threshold=threshold)


class AutomaticMaskGenerator:
    """Masks for everything in an image, as SAM 2's `SAM2AutomaticMaskGenerator`.

    `model` is a `SAM2Model` (any SAM 2.1 size or SAM 2++) or an image predictor (`ImagePredictor` over one,
    `EdgeTamImagePredictor` over EdgeTAM's network; its image is replaced by `generate`). The keyword arguments are SAM 2's, with its defaults (`GeneratorSettings`).
    `min_mask_region_area` > 0 removes, as SAM 2's image predictor does, the 8-connected holes and islands of at
    most that many pixels of the 256x256 logits before a mask is upscaled.
    """

    def __init__(self, model: Union[SAM2Model, ImagePredictorAPI], **settings: Any):
        self.settings = GeneratorSettings(**settings)
        self.predictor = model if isinstance(model, ImagePredictorAPI) else ImagePredictor(model)
        self._grids = self.settings.grids()

    @property
    def model(self) -> Any:
        return self.predictor.model

    @torch.inference_mode()
    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        """Records of the masks found in an HxWx3 uint8 image, best first within each crop: `segmentation` (as
        `output_mode` says), `area`, `bbox` (XYWH), `predicted_iou`, `point_coords`, `stability_score`,
        `crop_box` (XYWH)."""
        image = _checked_image(image)
        found = self.find(image)
        return self._records(found, image.shape[:2])

    def find(self, image: np.ndarray, backbone: Optional[dict] = None) -> Candidates:
        """The kept masks as 256x256 logits with their scores, boxes and crops (image pixels). `backbone`: the
        image encoder's output for the whole image, computed before by the same network (a video tracker's for
        the frame); the whole-image layer then skips the encoder (crops are encoded as usual)."""
        s = self.settings
        boxes, layers = crop_boxes(image.shape[:2], s.crop_n_layers, s.crop_overlap_ratio)
        found = Candidates.join([self._find_in_crop(image, box, layer, backbone if layer == 0 else None)
                                 for box, layer in zip(boxes, layers)])
        if len(boxes) > 1:
            keep = _non_max_suppression(found.boxes, 1 / box_area(found.crops), s.crop_nms_thresh)
            found = found.select(keep)
        return found

    def _find_in_crop(self, image: np.ndarray, crop: CropBox, layer: int,
                      backbone: Optional[dict] = None) -> Candidates:
        x0, y0, x1, y1 = crop
        crop_hw = (y1 - y0, x1 - x0)
        if backbone is not None:
            self.predictor.set_features(backbone, crop_hw)
        else:
            self.predictor.set_image(np.ascontiguousarray(image[y0:y1, x0:x1]))
        grid = self._grids[layer] * np.array(crop_hw)[None, ::-1]
        points = torch.as_tensor(grid, dtype=torch.float32, device=self.predictor.device)
        step = self.settings.points_per_batch
        parts = [self._decode_batch(points[i:i + step], crop, image.shape[:2]) for i in range(0, len(points), step)]
        found = Candidates.join(parts) if parts else Candidates.empty(points.device)
        found = found.select(_non_max_suppression(found.boxes, found.ious, self.settings.box_nms_thresh))
        found.boxes = shift_boxes(found.boxes, crop)
        found.points = shift_points(found.points, crop)
        found.crops = torch.tensor([crop], device=found.boxes.device).expand(len(found), 4)
        return found

    def _decode_batch(self, points: torch.Tensor, crop: CropBox, image_hw: tuple[int, int]) -> Candidates:
        """One batch of clicks (crop pixels) -> the candidates that pass the IoU, stability and crop-edge tests."""
        s = self.settings
        crop_hw = (crop[3] - crop[1], crop[2] - crop[0])
        out = self._decode(points, crop_hw, mask_input=None, multimask=s.multimask_output)
        logits, ious = out.unclamped_logits.flatten(0, 1), out.ious.flatten(0, 1)
        points = points.repeat_interleave(out.ious.shape[1], dim=0)
        if s.use_m2m:
            logits, ious = self._refine(points, out.low_res_logits.flatten(0, 1), crop_hw)
        keep = ious > s.pred_iou_thresh if s.pred_iou_thresh > 0 else torch.ones_like(ious, dtype=torch.bool)
        logits, ious, points = logits[keep], ious[keep], points[keep]
        if s.min_mask_region_area > 0:
            logits = remove_small_regions(logits, s.min_mask_region_area, s.min_mask_region_area,
                                          s.mask_threshold)
        stability, boxes = self._score_and_box(logits, crop_hw)
        keep = stability >= s.stability_score_thresh if s.stability_score_thresh > 0 else torch.ones_like(
            stability, dtype=torch.bool)
        keep &= ~near_crop_edge(boxes, crop, image_hw)
        return Candidates(logits[keep], ious[keep], stability[keep], points[keep], boxes[keep],
                          torch.zeros(int(keep.sum()), 4, dtype=torch.long, device=boxes.device))

    def _decode(self, points: torch.Tensor, crop_hw: tuple[int, int], mask_input: Optional[torch.Tensor],
                multimask: bool):
        coords = self.predictor.to_model_coords(points, crop_hw)[:, None, :]
        labels = torch.ones(coords.shape[0], 1, dtype=torch.int, device=coords.device)
        return self.predictor.decode(coords, labels, mask_input=mask_input, multimask_output=multimask)

    def _refine(self, points: torch.Tensor, clamped: torch.Tensor, crop_hw: tuple[int, int]):
        """Each candidate decoded again (one mask) from its click with its own clamped logits as the mask prompt."""
        step = self.settings.points_per_batch
        outs = [self._decode(points[i:i + step], crop_hw, clamped[i:i + step, None], multimask=False)
                for i in range(0, len(points), step)]
        return torch.cat([o.unclamped_logits[:, 0] for o in outs]), torch.cat([o.ious[:, 0] for o in outs])

    def _score_and_box(self, logits: torch.Tensor, crop_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Stability scores and XYXY boxes (crop pixels) of the masks at the crop's full size, a chunk at a time."""
        s = self.settings
        if len(logits) == 0:
            return logits.new_zeros(0), torch.zeros(0, 4, dtype=torch.long, device=logits.device)
        scores, boxes = [], []
        for chunk in torch.split(logits, _chunk_rows(crop_hw)):
            full = self.predictor.upscale(chunk[:, None], crop_hw)[:, 0]
            scores.append(stability_scores(full, s.mask_threshold, s.stability_score_offset))
            boxes.append(mask_boxes(full > s.mask_threshold))
        return torch.cat(scores), torch.cat(boxes)

    def full_masks(self, found: Candidates, image_hw: tuple[int, int]) -> np.ndarray:
        """[K, H, W] bool masks of the found candidates, each upscaled within its crop."""
        masks = np.zeros((len(found), *image_hw), dtype=bool)
        for crop in torch.unique(found.crops, dim=0).tolist():
            rows = torch.nonzero((found.crops == torch.tensor(crop, device=found.crops.device)).all(1))[:, 0]
            x0, y0, x1, y1 = crop
            for chunk in torch.split(rows, _chunk_rows((y1 - y0, x1 - x0))):
                full = self.predictor.upscale(found.logits[chunk][:, None], (y1 - y0, x1 - x0))[:, 0]
                masks[chunk.cpu().numpy(), y0:y1, x0:x1] = (full > self.settings.mask_threshold).cpu().numpy()
        return masks

    def _records(self, found: Candidates, image_hw: tuple[int, int]) -> list[dict[str, Any]]:
        masks = self.full_masks(found, image_hw)
        areas = masks.sum(axis=(1, 2)).tolist()
        segmentations = encode_masks(masks, self.settings.output_mode)
        boxes = found.boxes.float().tolist()
        crops = found.crops.float().tolist()
        points = found.points.float().tolist()
        ious, stability = found.ious.float().tolist(), found.stability.float().tolist()
        return [
            dict(segmentation=segmentations[i], area=int(areas[i]), bbox=xyxy_to_xywh(boxes[i]),
                 predicted_iou=ious[i], point_coords=[points[i]], stability_score=stability[i],
                 crop_box=xyxy_to_xywh(crops[i]))
            for i in range(len(found))
        ]


def _chunk_rows(hw: tuple[int, int]) -> int:
    return max(1, UPSCALE_CHUNK_PIXELS // (hw[0] * hw[1]))


def _checked_image(image: Any) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be an HxWx3 uint8 array, got shape {image.shape} and dtype {image.dtype}")
    if min(image.shape[:2]) < 1:
        raise ValueError(f"image is empty: shape {image.shape}")
    return image
