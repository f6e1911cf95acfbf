"""The SAM 2++ unified decoder.

One two-way transformer and one set of output tokens are shared by the three
tasks; each task has its own output head:

* ``"mask"``  -- segmentation mask logits (as in SAM 2.1),
* ``"point"`` -- Gaussian-heatmap logits around the tracked point,
* ``"box"``   -- a box per output token from the corner-heatmap :class:`BoxHead`,
  plus mask logits (from the box hypernetwork, or a rasterised box).

A head is ``output_upscaling_<task>`` (two transposed convs that fuse the
stride-8 / stride-4 backbone features), ``conv_s0_<task>`` / ``conv_s1_<task>``
(the projections of those backbone features, applied by the caller before the
decoder runs), and ``output_hypernetworks_mlps_<task>`` (one MLP per output
token). The IoU and object-score heads are shared.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import nn

from ..config import TASKS
from .box_head import BoxHead, BoxHeadLowRes
from .mask_decoder import DecoderBase, project_masks

__all__ = ["UnifiedDecoder"]


class UnifiedDecoder(DecoderBase):
    """Mask / box / point decoder of SAM 2++.

    Arguments specific to SAM 2++:
        sam_image_embedding_size: side of the image embedding (``image_size // 16``, 64).
        image_size: model input side (1024).
        unified_decoder_box_head_freeze_bn: frozen batch norm in the box head.
        unified_decoder_box_head_inner_dim: inner width of the box head (256).
        unified_decoder_box_head_pred_masks: in the box task, predict mask logits with
            the box hypernetwork (True) or rasterise the predicted boxes to +-10 logits.

    The remaining (keyword) arguments are those of SAM 2.1's mask decoder:
    ``transformer_dim, transformer, num_multimask_outputs=3, activation=nn.GELU,
    iou_head_depth=3, iou_head_hidden_dim=256, use_high_res_features=False,
    iou_prediction_use_sigmoid=False, dynamic_multimask_via_stability=False,
    dynamic_multimask_stability_delta=0.05, dynamic_multimask_stability_thresh=0.98,
    pred_obj_scores=False, pred_obj_scores_mlp=False, use_multimask_token_for_obj_ptr=False``.
    """

    def __init__(
        self,
        sam_image_embedding_size: int,
        image_size: int,
        unified_decoder_box_head_freeze_bn: bool,
        unified_decoder_box_head_inner_dim: int,
        unified_decoder_box_head_pred_masks: bool,
        **decoder_args,
    ) -> None:
        super().__init__()
        if image_size // 16 != sam_image_embedding_size:
            raise ValueError(
                f"image_size // 16 ({image_size // 16}) must equal sam_image_embedding_size "
                f"({sam_image_embedding_size}): the backbone stride must be 16")
        self._init_shared(**decoder_args)  # shared tokens and quality heads

        self.sam_image_embedding_size = sam_image_embedding_size
        self.image_size = image_size
        self.unified_decoder_box_head_freeze_bn = unified_decoder_box_head_freeze_bn
        self.unified_decoder_box_head_inner_dim = unified_decoder_box_head_inner_dim
        self.unified_decoder_box_head_pred_masks = unified_decoder_box_head_pred_masks

        # per-task heads (registration order = checkpoint key order)
        self._add_mask_head("_mask", self.activation)
        feat_sz = sam_image_embedding_size * 4
        stride = image_size // feat_sz
        if stride != 4:
            raise ValueError(f"box head stride must be 4, got {stride} "
                             f"(image_size={image_size}, feat_sz={feat_sz})")
        head_cls = BoxHead if self.use_high_res_features else BoxHeadLowRes
        self.box_head = head_cls(
            inplanes=self.transformer_dim,
            channel=unified_decoder_box_head_inner_dim,
            feat_sz=feat_sz,
            stride=stride,
            freeze_bn=unified_decoder_box_head_freeze_bn,
        )
        self._add_mask_head("_box", self.activation)
        self._add_mask_head("_point", self.activation)

    def high_res_projections(self, task: str) -> Tuple[nn.Conv2d, nn.Conv2d]:
        """``(conv_s0, conv_s1)`` of ``task``: applied to backbone levels 0 and 1 before decoding."""
        _check_task(task)
        return getattr(self, f"conv_s0_{task}"), getattr(self, f"conv_s1_{task}")

    # ------------------------------------------------------------------------------------------
    def _head_outputs(self, src: torch.Tensor, mask_tokens_out: torch.Tensor,
                      high_res_features: Optional[List[torch.Tensor]], task: str = "mask"):
        """``(masks [B, T, 4h, 4w], boxes [B, T, 4] normalised xyxy or None (tasks other than "box"))`` of
        ``task``'s head: forward(..., task=...) returns ``(masks, boxes, iou_pred, sam_tokens_out,
        object_score_logits)``, M = 3 outputs with multimask output, else 1."""
        _check_task(task)
        upscaled, hyper_in = self._mask_head(f"_{task}", src, mask_tokens_out, high_res_features)

        boxes = None
        if task == "box":
            if self.use_high_res_features:
                feat_s0, feat_s1 = high_res_features
                box_input = [feat_s0, feat_s1, src]
            else:
                box_input = src
            boxes = self.box_head(box_input, hyper_in)
            if self.unified_decoder_box_head_pred_masks:
                masks = project_masks(hyper_in, upscaled)
            else:
                masks = self._boxes_to_mask_logits(boxes.detach())
        else:
            masks = project_masks(hyper_in, upscaled)

        return masks, boxes

    def _boxes_to_mask_logits(self, boxes: torch.Tensor) -> torch.Tensor:
        """Rasterise normalised xyxy boxes ``[B, N, 4]`` to ``[B, N, S, S]`` logits of +-10
        (``S = image_size // 4``). Corners are scaled to cells, clipped to ``[0, S]`` and
        truncated; the filled cells are ``y0 <= row < y1`` and ``x0 <= col < x1``."""
        size = self.image_size // 4
        scaled = boxes * size  # height == width
        clipped = scaled.clamp(0, size).to(torch.int64)  # values >= 0: truncation == floor
        x0, y0, x1, y1 = clipped.unbind(-1)
        idx = torch.arange(size, device=boxes.device)
        rows = (idx >= y0[..., None]) & (idx < y1[..., None])  # [B, N, S]
        cols = (idx >= x0[..., None]) & (idx < x1[..., None])
        inside = rows[..., :, None] & cols[..., None, :]
        logits = inside.to(torch.float32) * 20.0 + (-10.0)
        return logits

    def _dynamic_multimask_via_stability(self, all_mask_logits, all_boxes, all_iou_scores):
        """Single-output selection: keep token 0 when its mask is stable, otherwise take
        the multimask output (tokens 1..3) with the highest predicted IoU (boxes may be None)."""
        masks, iou, boxes = self._stable_or_best(all_mask_logits, all_iou_scores, all_boxes)
        return masks, boxes, iou


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
