"""Per-object tracking state and the single-frame tracking step.

A `TrackedObject` holds one object's prompts and its memory bank: outputs of conditioning frames
(frames the user prompted) and of the other tracked frames. `select_memory` decides which of them a
frame attends to; `track_frame` runs the model on one frame for one object (or a batch of objects
that share a task and a frame state).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Callable, Optional, Sequence

import torch

from ..config import TrackerConfig
from ..image.predictor import decode_image_prompt
from ..modeling.sam2_model import (HIGHEST_IOU, FrameFeatures, HeadOutput, MaskChoice, MemoryContext, MemoryEntry,
                                  PointPrompt, SAM2Model)


@dataclass
class FrameOutput:
    """One object's result on one frame, kept as memory for later frames."""

    pred_masks: torch.Tensor  # [1, 1, 256, 256] low-resolution mask logits
    obj_ptr: torch.Tensor  # [1, C]
    object_score_logits: torch.Tensor  # [1, 1]
    boxes_norm: Optional[torch.Tensor] = None  # [1, 1, 4] normalised xyxy (box task)
    maskmem_features: Optional[torch.Tensor] = None  # [1, 64, 64, 64] bfloat16, None until encoded
    maskmem_pos_enc: Optional[torch.Tensor] = None
    is_mask_from_pts: bool = False

    def memory_entry(self) -> MemoryEntry:
        return MemoryEntry(self.maskmem_features, self.maskmem_pos_enc, self.obj_ptr)


@dataclass
class TrackedObject:
    """Prompts and memory of one object."""

    obj_id: int
    task: str
    point_inputs: dict[int, PointPrompt] = field(default_factory=dict)
    mask_inputs: dict[int, torch.Tensor] = field(default_factory=dict)
    cond_outputs: dict[int, FrameOutput] = field(default_factory=dict)
    non_cond_outputs: dict[int, FrameOutput] = field(default_factory=dict)
    # outputs of prompts given since the last propagation; their memory is encoded when it starts
    pending_cond: dict[int, FrameOutput] = field(default_factory=dict)
    pending_non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    frames_tracked: dict[int, bool] = field(default_factory=dict)  # frame -> tracked in reverse

    def pending(self, is_cond: bool) -> dict[int, FrameOutput]:
        return self.pending_cond if is_cond else self.pending_non_cond


def select_cond_frames(frame_idx: int, cond_frames: dict[int, FrameOutput], max_num: int):
    """Split conditioning frames into those a frame attends to (the closest before and after it, then
    the temporally closest others, up to `max_num`; -1 = all) and the rest."""
    if max_num == -1 or len(cond_frames) <= max_num:
        return dict(cond_frames), {}
    if max_num < 2:
        raise ValueError("max_cond_frames_in_attn must allow at least 2 conditioning frames")
    selected = {}
    before = max((t for t in cond_frames if t < frame_idx), default=None)
    if before is not None:
        selected[before] = cond_frames[before]
    after = min((t for t in cond_frames if t >= frame_idx), default=None)
    if after is not None:
        selected[after] = cond_frames[after]
    rest = sorted((t for t in cond_frames if t not in selected), key=lambda t: abs(t - frame_idx))
    for t in rest[: max_num - len(selected)]:
        selected[t] = cond_frames[t]
    unselected = {t: v for t, v in cond_frames.items() if t not in selected}
    return selected, unselected


def memory_frame_indices(frame_idx: int, num_maskmem: int, stride: int, reverse: bool) -> list[tuple[int, int]]:
    """(t_pos, frame) of the non-conditioning memories a frame reads: the previous frame, then every
    `stride`-th frame before it (after it when tracking in reverse); t_pos 1 is the oldest."""
    out = []
    for t_pos in range(1, num_maskmem):
        t_rel = num_maskmem - t_pos
        if t_rel == 1:
            prev = frame_idx + 1 if reverse else frame_idx - 1
        elif not reverse:
            prev = ((frame_idx - 2) // stride) * stride - (t_rel - 2) * stride
        else:
            prev = -(-(frame_idx + 2) // stride) * stride + (t_rel - 2) * stride
        out.append((t_pos, prev))
    return out


# Which non-conditioning memories a frame reads: (track, frame_idx, num_frames, reverse, unselected conditioning
# outputs) -> [(t_pos, frame)], t_pos ascending (1 = oldest), or None, and then `memory_frame_indices` decides.
MemoryFramesFn = Callable[[TrackedObject, int, int, bool, dict], Optional[list]]


def select_memory(track: TrackedObject, frame_idx: int, num_frames: int, reverse: bool, cfg: TrackerConfig,
                  num_maskmem: int, memory_frames: Optional[MemoryFramesFn] = None) -> MemoryContext:
    """The memories and object pointers a (non-initial) frame of this object attends to."""
    if not track.cond_outputs:
        raise RuntimeError(f"object {track.obj_id} has no prompted frame to track from")
    selected, unselected = select_cond_frames(frame_idx, track.cond_outputs, cfg.max_cond_frames_in_attn)
    ctx = MemoryContext()
    ctx.spatial = [(0, out.memory_entry()) for out in selected.values()]
    frames = None if memory_frames is None else memory_frames(track, frame_idx, num_frames, reverse, unselected)
    if frames is None:
        frames = memory_frame_indices(frame_idx, num_maskmem, cfg.memory_temporal_stride_for_eval, reverse)
    for t_pos, prev in frames:
        out = track.non_cond_outputs.get(prev) or unselected.get(prev)
        if out is not None and out.maskmem_features is not None:
            ctx.spatial.append((t_pos, out.memory_entry()))

    if cfg.use_obj_ptrs_in_encoder:
        max_ptrs = min(num_frames, cfg.max_obj_ptrs_in_encoder)
        ptr_frames = selected
        if cfg.only_obj_ptrs_in_the_past_for_eval:
            ptr_frames = {t: o for t, o in selected.items() if (t >= frame_idx if reverse else t <= frame_idx)}
        sign = -1 if reverse else 1
        for t, out in ptr_frames.items():
            distance = (frame_idx - t) * sign if cfg.use_signed_tpos_enc_to_obj_ptrs else abs(frame_idx - t)
            ctx.pointers.append((distance, out.obj_ptr))
        for t_diff in range(1, max_ptrs):
            t = frame_idx + t_diff if reverse else frame_idx - t_diff
            if t < 0 or t >= num_frames:
                break
            out = track.non_cond_outputs.get(t, unselected.get(t))
            if out is not None:
                ctx.pointers.append((t_diff, out.obj_ptr))
    return ctx


def memory_layout(memory: MemoryContext) -> tuple:
    """What decides the shape and position encoding of a memory's tokens: the temporal index of each
    spatial memory and the frame distance of each object pointer. Objects whose memories have the
    same layout can attend in one batch."""
    return tuple(t_pos for t_pos, _ in memory.spatial), tuple(d for d, _ in memory.pointers)


def stack_memories(memories: Sequence[MemoryContext]) -> MemoryContext:
    """The memories of several objects with the same layout as one batch (object k is batch row k)."""
    if len(memories) == 1:
        return memories[0]
    layout = memory_layout(memories[0])
    if any(memory_layout(m) != layout for m in memories[1:]):
        raise ValueError("only memories of the same layout can be stacked")

    def cat(tensors):
        return torch.cat([t.to(tensors[0].device) for t in tensors], dim=0)

    stacked = MemoryContext()
    for k, (t_pos, _) in enumerate(memories[0].spatial):
        entries = [m.spatial[k][1] for m in memories]
        stacked.spatial.append((t_pos, MemoryEntry(cat([e.maskmem_features for e in entries]),
                                                   cat([e.maskmem_pos_enc for e in entries]),
                                                   cat([e.obj_ptr for e in entries]))))
    for k, (distance, _) in enumerate(memories[0].pointers):
        stacked.pointers.append((distance, cat([m.pointers[k][1] for m in memories])))
    return stacked


@dataclass
class StepResult:
    """What `track_frame` gives for a batch of objects (batch row k = object k)."""

    head: HeadOutput
    maskmem_features: Optional[torch.Tensor] = None
    maskmem_pos_enc: Optional[torch.Tensor] = None

    def split(self) -> list["StepResult"]:
        """One result per object."""
        n = self.head.obj_ptr.shape[0]
        if n == 1:
            return [self]

        def row(t: Optional[torch.Tensor], b: int) -> Optional[torch.Tensor]:
            return None if t is None else t[b:b + 1]

        return [
            StepResult(
                HeadOutput(**{f.name: row(getattr(self.head, f.name), b) for f in fields(HeadOutput)}),
                row(self.maskmem_features, b),
                row(self.maskmem_pos_enc, b),
            )
            for b in range(n)
        ]


def track_frame(
    model: SAM2Model,
    task: str,
    feats: FrameFeatures,
    memory: Optional[MemoryContext],
    num_frames: int,
    points: Optional[PointPrompt] = None,
    mask: Optional[torch.Tensor] = None,
    prev_mask_logits: Optional[torch.Tensor] = None,
    is_init_cond_frame: bool = False,
    run_mem_encoder: bool = True,
    multimask_output: Optional[bool] = None,
    choice: MaskChoice = HIGHEST_IOU,
) -> StepResult:
    """Segment one frame for a batch of objects of one task (SAM 2's `track_step`).

    memory is None on an initial conditioning frame. A mask prompt (and for the box and point tasks
    the matching box or point) is used directly as the output when the model is configured so. `choice`
    settles presence and the candidate mask (`SAM2Model.decode`)."""
    pix_top = feats.top_level_map()
    high_res = feats.high_res_maps() if len(feats.vision_feats) > 1 else None
    as_output = model.tracker_cfg.use_mask_input_as_output_without_sam and mask is not None
    if as_output and (task == "mask" or points is not None):
        head = model.prompt_as_output(task, pix_top, high_res, mask, points, choice=choice)
    else:
        pix_feat = model.condition_on_memory(task, feats, None if is_init_cond_frame else memory, num_frames)
        if prev_mask_logits is not None:
            mask = prev_mask_logits
        if task == "point":
            tc = model.tracker_cfg
            points = points if tc.point_task_coord_xy else None
            mask = mask if tc.point_task_gaussian_mask else None
        if multimask_output is None:
            multimask_output = model.use_multimask(task, is_init_cond_frame, points)
        # the image predictor's prompt step on the memory-conditioned frame, then the tracker's presence gate,
        # choice and object pointer
        decoded = decode_image_prompt(model, task, pix_feat, high_res,
                                      None if points is None else points.coords,
                                      None if points is None else points.labels,
                                      mask_input=mask, multimask_output=multimask_output, pad_without_points=True)
        head = model.settle(decoded, multimask_output, choice)
    result = StepResult(head)
    if run_mem_encoder and model.num_maskmem > 0:
        result.maskmem_features, result.maskmem_pos_enc = model.encode_memory(
            task, feats, head.high_res_masks, head.object_score_logits, is_mask_from_pts=points is not None
        )
    return result
