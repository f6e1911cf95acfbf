"""The predictor's results: every object's output on one frame turned into a `FrameResult` at video
resolution, computed on the model's device and brought to the host (`send_result`; from a GPU the copy runs
while the next frame is tracked, `ResultInTransit.receive` waits for it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F

from ..modeling.sam2_model import NO_OBJ_SCORE, apply_non_overlapping_constraints
from .tracker import FrameOutput


@dataclass
class FrameResult:
    """All objects' results on one frame."""

    frame_idx: int
    obj_ids: list[int]
    mask_logits: torch.Tensor  # [N, H, W] float32 at video resolution
    object_scores: torch.Tensor  # [N] object presence logits (> 0: present)
    boxes: Optional[torch.Tensor]  # [N, 4] xyxy video pixels
    points: Optional[torch.Tensor]  # [N, 2] (x, y) video pixels
    tasks: list[str] = field(default_factory=list)
    # motion-aware: [N] Kalman IoU of each object's chosen mask (NaN where the filter did not score it)
    motion_scores: Optional[torch.Tensor] = None

    @property
    def masks(self) -> torch.Tensor:
        """[N, H, W] bool."""
        return self.mask_logits > 0

    @property
    def visible(self) -> torch.Tensor:
        """[N] bool, by granularity: the object is present (presence logit > 0, probability > 0.5), and a mask
        object (the default without tasks) also has a mask pixel, since its result is the mask. A box or point
        object's result is its box or point, which the box head / the heatmap's peak give whether or not the
        heatmap behind them crosses zero anywhere: presence alone says it is there."""
        has_pixel = self.masks.flatten(1).any(dim=1)
        if self.tasks:
            by_presence = torch.tensor([task != "mask" for task in self.tasks], dtype=torch.bool,
                                       device=has_pixel.device)
            has_pixel = has_pixel | by_presence
        return (self.object_scores > 0) & has_pixel


@dataclass
class ResultInTransit:
    """A frame's results on their way from the model's device to the host."""

    frame_idx: int
    obj_ids: list[int]
    tasks: list[str]
    tensors: dict  # logits, scores, boxes, points: the FrameResult's tensors
    event: Optional[Any] = None  # a CUDA event recorded after the copies
    motion_scores: Optional[torch.Tensor] = None  # on the host already

    def receive(self) -> FrameResult:
        if self.event is not None:
            self.event.synchronize()
        t = self.tensors
        return FrameResult(self.frame_idx, self.obj_ids, t["logits"], t["scores"], t["boxes"], t["points"],
                           self.tasks, self.motion_scores)


@dataclass(frozen=True)
class VideoFrame:
    """What a result is drawn to: the video's size, and the objects' order, ids and tasks."""

    height: int
    width: int
    obj_ids: list[int]
    tasks: list[str]


def send_result(frame_idx: int, frame: VideoFrame, outputs: Sequence[Optional[FrameOutput]], image_size: int,
                device: torch.device, non_overlap_masks: bool,
                motion_scores: Optional[torch.Tensor] = None) -> ResultInTransit:
    """Start bringing a frame's results to the host: everything is computed on `device`, and from a GPU
    copied without waiting. An object without an output (None) comes back absent. `motion_scores` (host,
    [N]) rides along (`TrackingRules.motion_scores`)."""
    low_res, scores, head_boxes = _stack_outputs(frame, outputs, image_size, device)
    h, w = frame.height, frame.width
    logits = low_res if low_res.shape[-2:] == (h, w) else F.interpolate(
        low_res, size=(h, w), mode="bilinear", align_corners=False)
    if non_overlap_masks:
        logits = apply_non_overlapping_constraints(logits)
    logits = logits[:, 0].float()
    boxes, points = derived_boxes_and_points(logits)
    for i, box in head_boxes.items():
        boxes[i] = box
    tensors = dict(logits=logits, scores=scores, boxes=boxes, points=points)
    event = None
    if device.type == "cuda":
        tensors = {k: v.to("cpu", non_blocking=True) for k, v in tensors.items()}
        event = torch.cuda.Event()
        event.record()
    return ResultInTransit(frame_idx, frame.obj_ids, frame.tasks, tensors, event, motion_scores)


def _stack_outputs(frame: VideoFrame, outputs: Sequence[Optional[FrameOutput]], image_size: int,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor, dict[int, torch.Tensor]]:
    """Low-resolution logits [N, 1, S/4, S/4] and scores [N] of every object (absent: NO_OBJ_SCORE), and the
    box head's xyxy boxes in video pixels of box-task objects, by object index."""
    n = len(outputs)
    low_res = torch.full((n, 1, image_size // 4, image_size // 4), NO_OBJ_SCORE, dtype=torch.float32, device=device)
    scores = torch.full((n,), NO_OBJ_SCORE, dtype=torch.float32, device=device)
    head_boxes = {}
    for i, out in enumerate(outputs):
        if out is None:
            continue
        low_res[i] = out.pred_masks.to(device)[0]
        scores[i] = out.object_score_logits.reshape(-1)[0].to(device)
        if out.boxes_norm is not None and frame.tasks[i] == "box":
            x1, y1, x2, y2 = out.boxes_norm.reshape(4).to(device).float().unbind()
            w, h = frame.width, frame.height
            head_boxes[i] = torch.stack([x1 * w, y1 * h, x2 * w, y2 * h])  # scalars: nothing to upload
    return low_res, scores, head_boxes


def derived_boxes_and_points(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A mask object's box and point from its [N, H, W] logits at video resolution: the mask's xyxy box [N, 4]
    and the (x, y) of its highest logit [N, 2] (what SAM 2.1's and EdgeTAM's results report)."""
    w = logits.shape[-1]
    flat_argmax = (logits.flatten(1).argmax(dim=1) if len(logits)
                   else torch.zeros(0, dtype=torch.long, device=logits.device))
    points = torch.stack([flat_argmax % w, flat_argmax // w], dim=1).float()
    boxes, _ = mask_boxes(logits > 0)
    return boxes, points


def mask_boxes(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """xyxy boxes [N, 4] float32 (x2, y2 exclusive; zeros where empty) of [N, H, W] bool masks, and [N]
    whether each mask has a pixel. On the masks' device, without a host synchronisation."""
    rows, cols = masks.any(dim=2).int(), masks.any(dim=1).int()  # argmax returns the first maximum
    h, w = masks.shape[-2:]
    boxes = torch.stack([cols.argmax(dim=1), rows.argmax(dim=1), w - cols.flip(1).argmax(dim=1),
                         h - rows.flip(1).argmax(dim=1)], dim=1).float()
    nonempty = rows.any(dim=1)
    return torch.where(nonempty[:, None], boxes, 0.0), nonempty


def mask_bbox(mask: torch.Tensor) -> Optional[tuple[float, float, float, float]]:
    """xyxy of a [H, W] bool mask (x2, y2 exclusive), or None when empty."""
    boxes, nonempty = mask_boxes(mask[None])
    return tuple(boxes[0].tolist()) if bool(nonempty[0]) else None
