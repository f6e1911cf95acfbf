"""The model's work on one frame for the predictor: the memory an object attends to, the step for a batch of
objects under the session's rules (`rules.TrackingRules`), and the outputs kept as memory (encoded at once
for tracked frames; for prompted frames when propagation starts, `encode_prompt_memory`)."""

from __future__ import annotations

import contextlib
from typing import Optional

import torch
import torch.nn.functional as F

from .features import FrameEncoder
from ..modeling.sam2_model import FrameFeatures, MemoryContext, SAM2Model
from ..postprocess import fill_holes_in_mask_scores
from .rules import StepRules
from .session import TrackingSession
from .tracker import FrameOutput, StepResult, TrackedObject, memory_layout, select_memory, stack_memories, track_frame

# "auto": bfloat16 on CUDA, float32 on the CPU; "float32": exact everywhere; "bfloat16": fast everywhere
PRECISIONS = ("auto", "float32", "bfloat16")


def uses_bfloat16(precision: str, device: torch.device) -> bool:
    """Whether matrix work runs in bfloat16: "auto" means on CUDA (as the reference's inference tools run) and not
    on the CPU, where float32 reproduces the reference's numbers."""
    if precision == "auto":
        return device.type == "cuda"
    return precision == "bfloat16"


def precision_autocast(precision: str, device: torch.device):
    """The autocast context of a precision on a device (none in float32)."""
    if uses_bfloat16(precision, device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class FrameStepper:
    """Runs one model (its image encoder through `encoder`) on the frames of sessions."""

    def __init__(self, model: SAM2Model, precision: str = "auto", fill_hole_area: int = 0) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.model, self.precision, self.fill_hole_area = model, precision, fill_hole_area
        self.encoder = FrameEncoder(model)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def uses_bfloat16(self) -> bool:
        return uses_bfloat16(self.precision, self.device)

    def autocast(self):
        return precision_autocast(self.precision, self.device)

    def features(self, session: TrackingSession, frame_idx: int, task: str) -> FrameFeatures:
        return self.encoder.features(session.features, frame_idx, task)

    def select_memory(self, session: TrackingSession, obj: TrackedObject, frame_idx: int,
                      reverse: bool) -> MemoryContext:
        """The memory one object's (non-initial) frame attends to."""
        return select_memory(obj, frame_idx, session.tracking_length, reverse, self.model.tracker_cfg,
                             self.model.num_maskmem, memory_frames=session.rules.memory_frames)

    def batch_key(self, obj: TrackedObject, memory: MemoryContext) -> tuple:
        """Objects with equal keys are tracked in one batch: same task and same memory layout. The memory
        encoder's non-overlap constraint would mix the objects of a batch, so with it each object is
        tracked alone, as the reference does."""
        if self.model.tracker_cfg.non_overlap_masks_for_mem_enc:
            return ("object", obj.obj_id)
        return ("batch", obj.task, memory_layout(memory))

    def track_batch(self, session: TrackingSession, members: list[tuple[TrackedObject, MemoryContext]],
                    frame_idx: int, reverse: bool) -> list[FrameOutput]:
        """Track objects of one task and memory layout on a frame in one batch; their outputs in order."""
        objects = [obj for obj, _ in members]
        memory = stack_memories([m for _, m in members])
        step, rules = self.step(session, objects, frame_idx, reverse, memory, run_mem_encoder=True)
        rules.tracked(step.head)
        return [self.output(session, s, is_mask_from_pts=False) for s in step.split()]

    def step(self, session: TrackingSession, objects: list[TrackedObject], frame_idx: int, reverse: Optional[bool],
             memory: Optional[MemoryContext], **kwargs) -> tuple[StepResult, StepRules]:
        """The model on one frame for a batch of objects of one task, by the session's rules (reverse: None
        for a prompt, else the propagation's direction); `kwargs` are `tracker.track_frame`'s."""
        rules = session.rules.step(objects, frame_idx, reverse)
        with self.autocast():
            feats = self.features(session, frame_idx, objects[0].task).expand(len(objects))
            step = track_frame(self.model, objects[0].task, feats, memory, session.tracking_length, choice=rules,
                               **kwargs)
        return step, rules

    def output(self, session: TrackingSession, step: StepResult, is_mask_from_pts: bool) -> FrameOutput:
        """One object's step result as the output it keeps (holes filled, on the session's storage device)."""
        head = step.head
        pred_masks = head.low_res_masks
        if self.fill_hole_area > 0:
            pred_masks = fill_holes_in_mask_scores(pred_masks, self.fill_hole_area)
        out = FrameOutput(
            pred_masks=pred_masks.to(session.storage_device),
            obj_ptr=head.obj_ptr,
            object_score_logits=head.object_score_logits,
            boxes_norm=head.boxes_norm,
            is_mask_from_pts=is_mask_from_pts,
        )
        if step.maskmem_features is not None:
            out.maskmem_features = step.maskmem_features.to(torch.bfloat16).to(session.storage_device)
            out.maskmem_pos_enc = self._shared_pos_enc(session, step.maskmem_pos_enc)
        return out

    def encode_prompt_memory(self, session: TrackingSession, obj: TrackedObject, frame_idx: int,
                             out: FrameOutput) -> None:
        """The memory of a prompted frame, from its stored low-resolution logits."""
        size = self.model.image_size
        high_res = F.interpolate(out.pred_masks.to(self.device), size=(size, size), mode="bilinear",
                                 align_corners=False)
        with self.autocast():
            feats = self.features(session, frame_idx, obj.task)
            features, pos_enc = self.model.encode_memory(obj.task, feats, high_res, out.object_score_logits.to(
                self.device), is_mask_from_pts=out.is_mask_from_pts)
        out.maskmem_features = features.to(torch.bfloat16).to(session.storage_device)
        out.maskmem_pos_enc = self._shared_pos_enc(session, pos_enc)

    @staticmethod
    def _shared_pos_enc(session: TrackingSession, pos_enc: torch.Tensor) -> torch.Tensor:
        if session.maskmem_pos_enc is None:  # identical for every frame and object
            session.maskmem_pos_enc = pos_enc[0:1].clone()
        return session.maskmem_pos_enc
