"""Which tracked frames an object's memory bank keeps: while propagating, the predictor forgets the outputs
that no later frame reads, so memory does not grow with the video's length (`keep_all_memory=True` keeps
them, as SAM 2 does). Prompted frames are always kept."""

from __future__ import annotations

from ..config import TrackerConfig
from .rules import TrackingRules
from .tracker import TrackedObject


def memory_reach(cfg: TrackerConfig, num_maskmem: int) -> int:
    """How many frames back a tracked frame reads memories and object pointers."""
    return max(cfg.max_obj_ptrs_in_encoder, num_maskmem * cfg.memory_temporal_stride_for_eval + 1)


def frames_read_near(obj: TrackedObject, anchor: int, direction: int, reach: int, rules: TrackingRules) -> set[int]:
    """Tracked frames a frame next to `anchor`, tracking away from it in `direction` (+1 forward, -1
    reverse), may read: those behind it within `reach`, and what the session's rules add."""
    near = {t for t in obj.non_cond_outputs if 0 <= (anchor - t) * direction <= reach}
    return near | rules.also_read(obj, anchor, direction)


def evict_unreachable(obj: TrackedObject, frame_idx: int, reverse: bool, reach: int, rules: TrackingRules) -> None:
    """Drop the tracked outputs that neither the continuation of this propagation nor a propagation from a
    prompted frame (in either direction) reads.

    What is dropped is only what the reference would still hold for a later prompt on an old tracked frame
    or a propagation started from an arbitrary unprompted frame."""
    direction = -1 if reverse else 1
    far = [t for t in obj.non_cond_outputs if (frame_idx - t) * direction > reach]
    if not far:
        return
    keep = frames_read_near(obj, frame_idx, direction, reach, rules)
    for cond in obj.cond_outputs:
        keep |= frames_read_near(obj, cond, 1, reach, rules) | frames_read_near(obj, cond, -1, reach, rules)
    for t in far:
        if t not in keep:
            del obj.non_cond_outputs[t]


def clear_around(obj: TrackedObject, frame_idx: int, cfg: TrackerConfig, num_maskmem: int) -> None:
    """Forget the tracked (non-prompted) memories near a corrected frame, which may contradict it (SAM 2's
    `clear_non_cond_mem_around_input`)."""
    span = cfg.memory_temporal_stride_for_eval * num_maskmem
    for t in range(frame_idx - span, frame_idx + span + 1):
        obj.non_cond_outputs.pop(t, None)
